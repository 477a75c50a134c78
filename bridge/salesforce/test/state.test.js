'use strict';
// Users who share a browser (a shared workstation, "log in as") never share bridge state: the
// storage keys, the channel and the lock carry the org and the user.
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness.js');
const { setup, leader, scopedKey } = require('./setup.js');

const ANA = h.USER;
const BO = '005000000000002AAA';

test('another user in the same browser never sends the first one\'s unsent events', async (t) => {
  const env = await setup(t);
  env.svc.failEvents = 1000;
  const ana = await leader(env, { user: ANA });
  const anaEvent = ana.bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: '0N5000000000002', reason: 'OmniManualStatusChange' });
  await env.until(() => env.svc.eventRequests.length >= 1, 'Ana\'s post failed');
  ana.bridge.stop();
  assert.equal(JSON.parse(env.storage.getItem(scopedKey('outbox', ANA))).length, 1);

  // Bo logs in at the same workstation, and the service works again.
  env.svc.failEvents = 0;
  const bo = await leader(env, { user: BO });
  const boEvent = bo.bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: '0N5000000000003', reason: 'OmniManualStatusChange' });
  await env.until(() => env.svc.events.length === 1, 'Bo\'s event');
  await env.runFor(60000);
  assert.deepEqual(env.svc.events.map((e) => [e.id, e.sub]), [[boEvent.id, BO]]);
  assert.ok(env.svc.eventRequests.filter((r) => r.sub === BO).every((r) => !r.ids.includes(anaEvent.id)),
    'Bo\'s bridge sent Ana\'s event');
  assert.equal(JSON.parse(env.storage.getItem(scopedKey('outbox', ANA))).length, 1, 'Ana\'s outbox was touched');

  // When Ana is back, her bridge sends it, with her token.
  bo.bridge.stop();
  await leader(env, { user: ANA });
  await env.until(() => env.svc.events.length === 2, 'Ana\'s event');
  assert.deepEqual(env.svc.events[1].id, anaEvent.id);
  assert.equal(env.svc.events[1].sub, ANA);
});

test('two users\' consoles open in one browser each carry their own bridge', async (t) => {
  const env = await setup(t);
  const ana = await leader(env, { user: ANA });
  const bo = await leader(env, { user: BO });
  await env.runFor(10000);
  assert.ok(ana.bridge.status().leader && bo.bridge.status().leader, 'one user\'s tab stood by for the other\'s');
  assert.deepEqual(env.svc.streams.map((s) => s.sub).sort(), [ANA, BO]);
  // Bo leaving hands nothing to Ana.
  bo.bridge.stop();
  await env.runFor(10000);
  assert.deepEqual(env.svc.streams.map((s) => s.sub), [ANA]);
  assert.deepEqual([...env.BC.names].sort(), [`omnipresence.bridge.${h.ORG.slice(0, 15)}.${ANA.slice(0, 15)}`,
    `omnipresence.bridge.${h.ORG.slice(0, 15)}.${BO.slice(0, 15)}`]);
  for (const key of env.storage.map.keys()) {
    assert.match(key, /^omnipresence\.bridge\.00D000000000001\.00500000000000[12]\./, 'an unscoped key: ' + key);
  }
});

test('state an earlier version left without a user is dropped, not sent', async (t) => {
  const env = await setup(t);
  env.storage.setItem('omnipresence.bridge.outbox', JSON.stringify([{ id: 'old-1', type: 'logout', at: new Date(env.clock.now()).toISOString() }]));
  env.storage.setItem('omnipresence.bridge.leader', JSON.stringify({ owner: 'x', until: env.clock.now() + 100000 }));
  const bo = await leader(env, { user: BO });
  await env.runFor(30000);
  assert.equal(env.svc.eventRequests.length, 0);
  assert.equal(env.storage.getItem('omnipresence.bridge.outbox'), null);
  assert.equal(env.storage.getItem('omnipresence.bridge.leader'), null);
  assert.ok(bo.logs.some(([level, msg, d]) => level === 'warn' && /earlier version/.test(msg) && d.dropped === 1));
});

test('createBridge refuses to run without the org and user', () => {
  const base = { serviceUrl: 'http://x', getToken: () => '', toolkit: {}, storage: {} };
  assert.throws(() => h.core.createBridge({ ...base, orgId: h.ORG }), /userId/);
  assert.throws(() => h.core.createBridge({ ...base, userId: ANA }), /orgId/);
});
