'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness.js');

// setup starts a loopback service and a fast clock; every bridge made through it is stopped and
// the service closed when the test ends.
async function setup(t, extra = {}) {
  const clock = h.createClock();
  const svc = await h.createService(clock);
  const env = { clock, svc, storage: h.createStorage(), hub: h.createHub(), tokenLifetime: extra.tokenLifetime };
  env.inflight = 0;
  env.until = (cond, what, o) => h.until(env, cond, what, o);
  const made = [];
  env.make = (opts) => {
    const b = h.newBridge(env, opts);
    made.push(b.bridge);
    return b;
  };
  t.after(async () => {
    made.forEach((b) => b.stop());
    await svc.close();
    assert.equal(clock.pending(), 0, 'timers left running after stop');
  });
  return env;
}

async function leader(env) {
  const b = env.make();
  b.bridge.start();
  await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'leader connected');
  return b;
}

test('one leader among two tabs; the standby takes over when the leader closes', async (t) => {
  const env = await setup(t);
  const a = env.make();
  const b = env.make();
  a.bridge.start();
  await env.until(() => a.bridge.status().leader, 'first tab leads');
  b.bridge.start();
  // The standby keeps checking the lease for several heartbeats without taking it.
  const ticks = env.clock.requested.length;
  await env.until(() => env.clock.requested.length > ticks + 6, 'heartbeats');
  assert.equal(b.bridge.status().leader, false);
  assert.equal(a.bridge.status().leader, true);
  await env.until(() => env.svc.streamRequests.length === 1, 'one stream');

  // Only the leader reports.
  assert.equal(b.bridge.onOmniEvent('lightning:omniChannelLogout', {}), null);
  a.bridge.onOmniEvent('lightning:omniChannelLoginSuccess', { statusId: '0N5000000000002' });
  await env.until(() => env.svc.events.length === 1, 'login event');
  assert.equal(env.svc.events[0].type, 'login');

  const before = env.clock.now();
  a.bridge.stop();
  await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'standby takes over');
  const took = env.clock.now() - before;
  assert.ok(took <= 600, 'takeover after a clean close took ' + took + ' virtual ms');
  assert.equal(env.svc.streamRequests.length, 2);
  assert.equal(a.bridge.status().leader, false);
});

test('a leader that vanishes without closing is replaced once its lease runs out', async (t) => {
  const env = await setup(t);
  const a = env.make({ broadcast: undefined });
  a.bridge.start();
  await env.until(() => a.bridge.status().leader, 'first tab leads');
  const b = env.make({ broadcast: undefined });
  b.bridge.start();
  // Freeze the first tab: its timers stop, as when a browser tab crashes.
  const lease = JSON.parse(env.storage.getItem('omnipresence.bridge.leader'));
  a.bridge.stop();
  env.storage.setItem('omnipresence.bridge.leader', JSON.stringify(lease));
  const before = env.clock.now();
  await env.until(() => b.bridge.status().leader, 'takeover after lease expiry');
  const took = env.clock.now() - before;
  assert.ok(took >= 3000 && took < 9000, 'takeover took ' + took + ' virtual ms');
});

test('an Omni status change posts one event with its reason; a failed post is retried with the same id', async (t) => {
  const env = await setup(t);
  const { bridge } = await leader(env);
  env.svc.failEvents = 2;
  const ev = bridge.onOmniEvent('lightning:omniChannelStatusChanged', {
    statusId: '0N5000000000003', statusApiName: 'Away', statusName: 'Away', channels: '[]', reason: 'OmniManualStatusChange',
  });
  assert.match(ev.id, /^[0-9a-f-]{36}$/);
  await env.until(() => env.svc.events.length === 1, 'event accepted');
  assert.deepEqual(env.svc.eventRequests.map((r) => [r.status, r.ids]), [
    [500, [ev.id]], [500, [ev.id]], [200, [ev.id]],
  ]);
  const got = env.svc.events[0];
  assert.equal(got.id, ev.id);
  assert.equal(got.type, 'status_changed');
  assert.equal(got.statusId, '0N5000000000003');
  assert.equal(got.statusApiName, 'Away');
  assert.equal(got.reason, 'OmniManualStatusChange');
  assert.equal(got.commandId, undefined);
  assert.ok(!Number.isNaN(Date.parse(got.at)));
  await env.until(() => bridge.status().pendingEvents === 0, 'outbox emptied');
  assert.equal(JSON.parse(env.storage.getItem('omnipresence.bridge.outbox')).length, 0);
});

test('work accepted and workload changes carry the channel and numbers', async (t) => {
  const env = await setup(t);
  const { bridge } = await leader(env);
  // Workload fields may arrive as strings (the component reference types them so).
  bridge.onOmniEvent('omniChannelWorkloadChanged', { configuredCapacity: '10', previousWorkload: 0, newWorkload: '2' });
  await env.until(() => env.svc.events.length === 1, 'workload event');
  assert.deepEqual(
    { ...env.svc.events[0], id: undefined, at: undefined },
    { type: 'workload_changed', previousWorkload: 0, newWorkload: 2, configuredCapacity: 10, id: undefined, at: undefined },
  );
});

test('work accepted looks up the service channel', async (t) => {
  const env = await setup(t);
  const b = env.make({ lookupChannel: async (workId) => (workId === '0Bz000000000001' ? 'sfdc_phone' : null) });
  b.bridge.start();
  await env.until(() => b.bridge.status().connected, 'connected');
  b.bridge.onOmniEvent('lightning:omniChannelWorkAccepted', { workId: '0Bz000000000001', workItemId: '500000000000001' });
  await env.until(() => env.svc.events.length === 1, 'work event');
  assert.equal(env.svc.events[0].type, 'work_accepted');
  assert.equal(env.svc.events[0].channel, 'sfdc_phone');
});

test('a command is applied through the toolkit, its status change carries the commandId, and it is acked', async (t) => {
  const env = await setup(t);
  const { bridge, toolkit } = await leader(env);
  env.svc.send({ id: 'cmd-1', action: 'set_status', statusId: '0N5000000000009', statusApiName: 'Busy' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.deepEqual(env.svc.acks[0], { id: 'cmd-1', result: 'applied' });
  assert.deepEqual(toolkit.calls, [['setServicePresenceStatus', '0N5000000000009']]);
  await env.until(() => env.svc.events.length === 1, 'echo event');
  assert.equal(env.svc.events[0].type, 'status_changed');
  assert.equal(env.svc.events[0].commandId, 'cmd-1');
  assert.equal(env.svc.events[0].reason, 'OmniToolkitStatusChange');

  // A later manual change to the same status is the agent's own, not an echo.
  bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: '0N5000000000009', reason: 'OmniManualStatusChange' });
  await env.until(() => env.svc.events.length === 2, 'manual event');
  assert.equal(env.svc.events[1].commandId, undefined);
});

test('Offline is applied with logout() and the logout event carries the commandId', async (t) => {
  const env = await setup(t);
  const { toolkit } = await leader(env);
  env.svc.send({ id: 'cmd-off', action: 'logout', statusId: '0' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.deepEqual(env.svc.acks[0], { id: 'cmd-off', result: 'applied' });
  assert.deepEqual(toolkit.calls, [['logout']]);
  await env.until(() => env.svc.events.length === 1, 'logout event');
  assert.equal(env.svc.events[0].type, 'logout');
  assert.equal(env.svc.events[0].commandId, 'cmd-off');
});

test('set_status with statusId "0" also logs out', async (t) => {
  const env = await setup(t);
  const { toolkit } = await leader(env);
  env.svc.send({ id: 'cmd-0', action: 'set_status', statusId: '0' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.deepEqual(toolkit.calls, [['logout']]);
});

test('a toolkit rejection is acked as deferred with its message', async (t) => {
  const env = await setup(t);
  const { toolkit } = await leader(env);
  toolkit.reject = 'Agent does not have access to the status';
  env.svc.send({ id: 'cmd-2', action: 'set_status', statusId: '0N5000000000009' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.equal(env.svc.acks[0].id, 'cmd-2');
  assert.equal(env.svc.acks[0].result, 'deferred');
  assert.match(env.svc.acks[0].reason, /Agent does not have access to the status/);
});

test('logout is deferred while the agent is engaged in work', async (t) => {
  const env = await setup(t);
  const { toolkit } = await leader(env);
  toolkit.engaged = ['0Bz000000000001'];
  env.svc.send({ id: 'cmd-3', action: 'logout', statusId: '0' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.equal(env.svc.acks[0].result, 'deferred');
  assert.match(env.svc.acks[0].reason, /engaged in 1 work item/);
  assert.deepEqual(toolkit.calls, []);
});

test('a malformed command fails', async (t) => {
  const env = await setup(t);
  await leader(env);
  env.svc.send({ id: 'cmd-4', action: 'dance' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  assert.equal(env.svc.acks[0].result, 'failed');
});

test('the stream reconnects with growing backoff and a resent command is applied once', async (t) => {
  const env = await setup(t);
  const { toolkit } = await leader(env);
  // The first ack is lost: the service keeps the command unacknowledged and resends it.
  const realAck = env.svc.acks;
  env.svc.send({ id: 'cmd-5', action: 'set_status', statusId: '0N5000000000007' });
  await env.until(() => realAck.length === 1, 'first ack');
  env.svc.unacked.set('cmd-5', { id: 'cmd-5', action: 'set_status', statusId: '0N5000000000007' });

  env.svc.failStreams = 3;
  const from = env.clock.requested.length;
  env.svc.dropStreams();
  await env.until(() => env.svc.streamRequests.filter((r) => r.status === 200).length === 2, 'reconnected');
  await env.until(() => realAck.length === 2, 'second ack for the resend');
  assert.deepEqual(realAck[1], { id: 'cmd-5', result: 'applied' });
  assert.equal(toolkit.calls.length, 1, 'applied twice: ' + JSON.stringify(toolkit.calls));
  assert.equal(env.svc.streamRequests.at(-1).lastEventId, 'cmd-5');

  // Four waits (the drop, then three 503s), each 1 s, 2 s, 4 s, 8 s less up to 20 % jitter.
  const waits = env.clock.requested.slice(from).filter((ms) => ms >= 800 && ms <= 30000 && ms !== 1500);
  const expect = [1000, 2000, 4000, 8000];
  const streamWaits = waits.filter((ms) => expect.some((e) => ms <= e && ms >= e * 0.8)).slice(0, 4);
  assert.equal(streamWaits.length, 4, 'backoff waits ' + JSON.stringify(waits));
  streamWaits.forEach((ms, i) => assert.ok(ms <= expect[i] && ms >= expect[i] * 0.8, `wait ${i} = ${ms}`));
});

test('backoff runs from 1 s to 30 s with jitter', () => {
  const d = (a, r) => h.core.backoffDelay(a, 1000, 30000, () => r);
  assert.equal(d(0, 1), 1000);
  assert.equal(d(0, 0), 800);
  assert.equal(d(1, 1), 2000);
  assert.equal(d(4, 1), 16000);
  assert.equal(d(5, 1), 30000);
  assert.equal(d(50, 1), 30000);
  assert.equal(d(50, 0), 24000);
});

test('the token is refreshed before it expires and later requests use the new one', async (t) => {
  const env = await setup(t, { tokenLifetime: 20 });
  const { bridge } = await leader(env);
  await env.until(() => env.tokens.length >= 2, 'refreshed token');
  const [first, second] = env.tokens;
  assert.ok(second.at < first.exp, `refreshed at ${second.at}, first expires ${first.exp}`);
  assert.ok(second.at >= first.exp - 6000, 'refreshed too early');
  bridge.onOmniEvent('lightning:omniChannelLogout', {});
  await env.until(() => env.svc.eventRequests.length >= 1, 'event');
  const used = env.svc.eventRequests.at(-1).auth;
  assert.ok(env.tokens.slice(1).some((x) => 'Bearer ' + x.token === used), 'event posted with the first token');
});

test('events queued by a leader that closed are posted by the next one', async (t) => {
  const env = await setup(t);
  env.svc.failEvents = 1000;
  const a = await leader(env);
  const ev = a.bridge.onOmniEvent('lightning:omniChannelLogout', {});
  await env.until(() => env.svc.eventRequests.length >= 1, 'failed post');
  const b = env.make();
  b.bridge.start();
  a.bridge.stop();
  env.svc.failEvents = 0;
  await env.until(() => env.svc.events.length === 1, 'posted by the new leader');
  assert.equal(env.svc.events[0].id, ev.id);
});

test('a rejected token is replaced and the stream opens with the new one', async (t) => {
  const env = await setup(t);
  env.badTokens = 1;
  const { bridge } = await leader(env);
  assert.deepEqual(env.svc.streamRequests.map((r) => r.status), [200]);
  assert.equal(env.tokens.length, 2);
  assert.equal(env.tokens[0].token, 'v1.bad.bad');
  assert.equal(bridge.status().connected, true);
});

test('an event the service rejects is dropped without holding back the others', async (t) => {
  const env = await setup(t);
  const { bridge, logs } = await leader(env);
  env.svc.failEvents = 1;
  const a = bridge.onOmniEvent('lightning:omniChannelLogout', {});
  // Batched behind the failed post: one good, one without its numbers, one good.
  const b = bridge.onOmniEvent('lightning:omniChannelWorkloadChanged', { configuredCapacity: 10, newWorkload: 1 });
  const c = bridge.onOmniEvent('lightning:omniChannelLoginSuccess', { statusId: '0N5000000000002' });
  await env.until(() => bridge.status().pendingEvents === 0, 'outbox emptied');
  assert.deepEqual(env.svc.events.map((e) => e.id), [a.id, c.id]);
  assert.ok(logs.some(([level, msg, d]) => level === 'error' && /rejected an event/.test(msg) && d.event.id === b.id));
});

test('SSE parsing follows the event-stream rules across chunk boundaries', () => {
  const got = [];
  const push = h.core.createSSEParser((e) => got.push(e));
  push(': comment\r\nevent: command\r');
  push('\nid: a1\ndata: {"x":');
  push('1}\ndata: more\n\nretry: 5\ndata:plain\r\r');
  push('event: x\n\n');
  assert.deepEqual(got, [
    { event: 'command', id: 'a1', data: '{"x":1}\nmore' },
    { event: 'message', id: null, data: 'plain' },
  ]);
});

test('token claims decode the spec format', () => {
  const tok = h.mintToken({ sub: '005000000000001AAA', org: '00D000000000001EAA', iat: 1700000000, exp: 1700000600 });
  assert.deepEqual(h.core.tokenClaims(tok), { sub: '005000000000001AAA', org: '00D000000000001EAA', iat: 1700000000, exp: 1700000600 });
  assert.equal(h.core.tokenClaims('v2.abc.def'), null);
  assert.equal(h.core.tokenClaims('garbage'), null);
  // The vector the Apex test checks (OmnipresenceBridgeTokenTest.knownVector).
  assert.equal(
    h.mintToken({ sub: '005000000000001AAA', org: '00D000000000001EAA', iat: 1700000000, exp: 1700000600 }, 'omnipresence-test-secret'),
    KNOWN_VECTOR,
  );
});

test('the Aura adapter passes statusId as Omni expects and parses works', async () => {
  const calls = [];
  const omni = {
    setServicePresenceStatus: (a) => { calls.push(a); return Promise.resolve({}); },
    logout: () => { calls.push('logout'); return Promise.resolve(); },
    getServicePresenceStatusId: () => Promise.resolve({ statusId: '0N5' }),
    getAgentWorks: () => Promise.resolve({ works: '[{"workId":"0Bz","isEngaged":true}]' }),
  };
  let wrapped = 0;
  const tk = h.core.auraToolkit(omni, (fn) => () => { wrapped++; return fn(); });
  await tk.setServicePresenceStatus('0N5x');
  await tk.logout();
  assert.deepEqual(calls, [{ statusId: '0N5x' }, 'logout']);
  assert.deepEqual(await tk.getAgentWorks(), [{ workId: '0Bz', isEngaged: true }]);
  assert.equal(wrapped, 3);
});

const KNOWN_VECTOR = 'v1.eyJzdWIiOiIwMDUwMDAwMDAwMDAwMDFBQUEiLCJvcmciOiIwMEQwMDAwMDAwMDAwMDFFQUEiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDYwMH0.t36Py07jU3qXQQ48GaV8SJShvdLv-KqOUO9MxlHukjo';
