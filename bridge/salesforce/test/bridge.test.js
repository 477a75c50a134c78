'use strict';
// The bridge core's behaviour against the loopback service: events, commands, the stream,
// tokens, the outbox.
const test = require('node:test');
const assert = require('node:assert/strict');
const h = require('./harness.js');
const { setup, leader, scopedKey } = require('./setup.js');

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
  assert.equal(got.sub, h.USER);
  assert.ok(!Number.isNaN(Date.parse(got.at)));
  await env.until(() => bridge.status().pendingEvents === 0, 'outbox emptied');
  assert.equal(JSON.parse(env.storage.getItem(scopedKey('outbox'))).length, 0);
});

test('work accepted and workload changes carry the channel and numbers', async (t) => {
  const env = await setup(t);
  const { bridge } = await leader(env);
  // Workload fields may arrive as strings (the component reference types them so).
  bridge.onOmniEvent('omniChannelWorkloadChanged', { configuredCapacity: '10', previousWorkload: 0, newWorkload: '2' });
  await env.until(() => env.svc.events.length === 1, 'workload event');
  assert.deepEqual(
    { ...env.svc.events[0], id: undefined, at: undefined },
    { type: 'workload_changed', previousWorkload: 0, newWorkload: 2, configuredCapacity: 10, id: undefined, at: undefined, sub: h.USER },
  );
});

test('work accepted looks up the service channel', async (t) => {
  const env = await setup(t);
  const tab = env.tab({ bridge: { lookupChannel: async (workId) => (workId === '0Bz000000000001' ? 'sfdc_phone' : null) } });
  tab.bridge.start();
  await env.until(() => tab.bridge.status().connected, 'connected');
  tab.bridge.onOmniEvent('lightning:omniChannelWorkAccepted', { workId: '0Bz000000000001', workItemId: '500000000000001' });
  await env.until(() => env.svc.events.length === 1, 'work event');
  assert.equal(env.svc.events[0].type, 'work_accepted');
  assert.equal(env.svc.events[0].channel, 'sfdc_phone');
});

test('a command is applied through the toolkit with a 15-character id, its status change carries the commandId, and it is acked', async (t) => {
  const env = await setup(t);
  const { bridge, toolkit } = await leader(env);
  // The service may name the status by its 18-character id; the toolkit is given 15.
  env.svc.send({ id: 'cmd-1', action: 'set_status', statusId: '0N5000000000009CAA', statusApiName: 'Busy' });
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

test('a supervisor\'s change to the commanded status is not taken for the command\'s echo', async (t) => {
  const env = await setup(t);
  const { bridge, toolkit } = await leader(env);
  toolkit.setServicePresenceStatus = (id) => { toolkit.calls.push(['setServicePresenceStatus', id]); return Promise.resolve({}); };
  env.svc.send({ id: 'cmd-s', action: 'set_status', statusId: '0N5000000000009' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: '0N5000000000009', reason: 'OmniSupervisorStatusChange' });
  await env.until(() => env.svc.events.length === 1, 'supervisor event');
  assert.equal(env.svc.events[0].commandId, undefined);
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

test('logout reasons are forwarded, and a supervisor\'s logout is never a command\'s echo', async (t) => {
  const env = await setup(t);
  const { bridge, toolkit } = await leader(env);
  toolkit.logout = () => { toolkit.calls.push(['logout']); return Promise.resolve(); };
  env.svc.send({ id: 'cmd-off', action: 'logout', statusId: '0' });
  await env.until(() => env.svc.acks.length === 1, 'ack');
  for (const reason of ['OmniSupervisorLogout', 'MaintenanceLogout']) {
    bridge.onOmniEvent('lightning:omniChannelLogout', { reason });
  }
  await env.until(() => env.svc.events.length === 2, 'logout events');
  assert.deepEqual(env.svc.events.map((e) => [e.type, e.reason, e.commandId]), [
    ['logout', 'OmniSupervisorLogout', undefined], ['logout', 'MaintenanceLogout', undefined],
  ]);
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

for (const shape of ['string', 'works-array', 'array']) {
  test(`logout is deferred while the agent is engaged in work (getAgentWorks answering ${shape})`, async (t) => {
    const env = await setup(t);
    const { toolkit } = await leader(env);
    toolkit.worksShape = shape;
    toolkit.engaged = ['0Bz000000000001'];
    env.svc.send({ id: 'cmd-3', action: 'logout', statusId: '0' });
    await env.until(() => env.svc.acks.length === 1, 'ack');
    assert.equal(env.svc.acks[0].result, 'deferred');
    assert.match(env.svc.acks[0].reason, /engaged in 1 work item/);
    assert.deepEqual(toolkit.calls, []);
  });
}

test('getAgentWorks is read in every shape Salesforce has used', () => {
  const w = [{ workId: '0Bz', isEngaged: true }];
  assert.deepEqual(h.core.worksOf({ works: JSON.stringify(w) }), w);
  assert.deepEqual(h.core.worksOf({ works: w }), w);
  assert.deepEqual(h.core.worksOf(w), w);
  assert.deepEqual(h.core.worksOf(JSON.stringify(w)), w);
  for (const bad of [null, undefined, {}, { works: 'not json' }, { works: '{}' }, 42]) {
    assert.deepEqual(h.core.worksOf(bad), [], JSON.stringify(bad));
  }
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

// Without AbortController (Locker offers none) a stream that goes silent is still closed, by
// cancelling its reader, and a new one opened.
for (const abort of [true, false]) {
  test(`a silent stream is closed and reopened (${abort ? 'with' : 'without'} AbortController)`, async (t) => {
    const env = await setup(t);
    env.svc.silent = true;
    const tab = env.tab({ bridge: abort ? {} : { AbortController: null } });
    tab.bridge.start();
    await env.until(() => env.svc.streamRequests.length === 1 && tab.bridge.status().connected, 'first stream');
    await env.until(() => env.svc.streamRequests.length === 2, 'second stream after the first went silent', { virtualMs: 120000 });
    await env.until(() => env.svc.streamsClosed >= 1, 'the silent stream closed at the service');
    assert.ok(tab.logs.some(([, msg]) => /silent too long/.test(msg)));
  });
}

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

test('the leader tells the service it is there with a heartbeat', async (t) => {
  const env = await setup(t);
  await leader(env);
  const start = env.clock.now();
  await env.until(() => env.svc.heartbeats.length >= 3, 'heartbeats', { virtualMs: 120000 });
  assert.deepEqual(env.svc.heartbeats.map((b) => [b.sub, b.at - start]), [[h.USER, 30000], [h.USER, 60000], [h.USER, 90000]]);
});

test('events queued by a leader that closed are posted by the next one', async (t) => {
  const env = await setup(t);
  env.svc.failEvents = 1000;
  const a = await leader(env);
  const ev = a.bridge.onOmniEvent('lightning:omniChannelLogout', {});
  await env.until(() => env.svc.eventRequests.length >= 1, 'failed post');
  const b = env.tab();
  b.bridge.start();
  a.bridge.stop();
  env.svc.failEvents = 0;
  await env.until(() => env.svc.events.length === 1, 'posted by the new leader');
  assert.equal(env.svc.events[0].id, ev.id);
});

test('a token the service refuses is replaced and the stream opens with the new one', async (t) => {
  const env = await setup(t);
  env.badTokens = 1;
  const { bridge } = await leader(env);
  assert.deepEqual(env.svc.streamRequests.map((r) => r.status), [200]);
  assert.equal(env.tokens.length, 2);
  assert.equal(bridge.status().connected, true);
  assert.equal(bridge.status().problem, '');
});

test('a bridge that cannot get a token, or reach the service, says so', async (t) => {
  const env = await setup(t);
  env.tokenError = 'Omnipresence bridge: no certificate named omnipresence_bridge';
  const tab = env.tab();
  tab.bridge.start();
  await env.until(() => /^cannot get a token: .*no certificate/.test(tab.bridge.status().problem), 'token problem');
  assert.match(h.core.describeState(tab.bridge.status()), /cannot get a token/);
  assert.equal(env.svc.streamRequests.length, 0);
  env.tokenError = null;
  await env.until(() => tab.bridge.status().connected && tab.bridge.status().problem === '', 'connected once the token comes');

  await env.svc.close();
  tab.bridge.onOmniEvent('lightning:omniChannelLogout', {});
  await env.until(() => /^cannot reach the service/.test(tab.bridge.status().problem), 'service problem');
});

test('a token naming another user is refused by the bridge itself', async (t) => {
  const env = await setup(t);
  const tab = env.tab({ tokenUser: '005000000000002AAA' });
  tab.bridge.start();
  await env.until(() => /another user/.test(tab.bridge.status().problem), 'wrong-user problem');
  assert.equal(env.svc.streamRequests.length, 0);
  assert.equal(env.svc.eventRequests.length, 0);
});

test('an event the service rejects is dropped without holding back the others', async (t) => {
  const env = await setup(t);
  const { bridge, logs } = await leader(env);
  env.svc.failEvents = 1;
  const a = bridge.onOmniEvent('lightning:omniChannelLogout', {});
  // Batched behind the failed post: one good, one without its numbers, one good.
  const b = bridge.onOmniEvent('lightning:omniChannelWorkloadChanged', { configuredCapacity: 10, newWorkload: 1 });
  const c = bridge.onOmniEvent('lightning:omniChannelLoginSuccess', { statusId: '0N5000000000002' });
  await env.until(() => bridge.status().pendingEvents === 0 && env.svc.events.length === 2, 'outbox emptied');
  assert.deepEqual(env.svc.events.map((e) => e.id), [a.id, c.id]);
  assert.ok(logs.some(([level, msg, d]) => level === 'error' && /rejected an event/.test(msg) && d.event.id === b.id));
});

test('one tab repeating a change in quick succession keeps every repeat', async (t) => {
  const env = await setup(t);
  const { bridge } = await leader(env);
  for (const id of ['0N5000000000002', '0N5000000000003', '0N5000000000002', '0N5000000000003']) {
    bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: id, reason: 'OmniManualStatusChange' });
  }
  await env.until(() => env.svc.events.length === 4, 'four changes');
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

test('the UTF-8 fallback decodes like TextDecoder, across chunk boundaries', () => {
  const text = 'event: command\ndata: {"statusApiName":"Pause_café","emoji":"☕🙂","cjk":"休憩"}\n\n';
  const bytes = Buffer.from(text);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = h.core.createUTF8Decoder();
    const got = d.decode(bytes.subarray(0, cut), { stream: true }) + d.decode(bytes.subarray(cut), { stream: true });
    assert.equal(got, text, 'cut at ' + cut);
  }
  assert.equal(h.core.createUTF8Decoder().decode(Buffer.from([0x61, 0xff, 0x62])), 'a\uFFFDb');
});

test('token claims decode the JWS the Apex controller mints', () => {
  const claims = { iss: h.ORG, sub: h.USER, aud: h.AUDIENCE, iat: 1700000000, exp: 1700000600 };
  assert.deepEqual(h.core.tokenClaims(h.mintToken(claims)), claims);
  assert.equal(h.core.tokenClaims('garbage'), null);
  assert.equal(h.core.tokenClaims('a.!!!.c'), null);
  // The vector the Go and Apex tests pin (bridgetoken TestKnownVector, OmnipresenceBridgeTokenTest).
  assert.equal(h.mintToken(claims), KNOWN_VECTOR);
});

test('the Aura adapter passes a 15-character statusId as Omni expects and parses works', async () => {
  const calls = [];
  const omni = {
    setServicePresenceStatus: (a) => { calls.push(a); return Promise.resolve({}); },
    logout: () => { calls.push('logout'); return Promise.resolve(); },
    getServicePresenceStatusId: () => Promise.resolve({ statusId: '0N5' }),
    getAgentWorks: () => Promise.resolve({ works: '[{"workId":"0Bz","isEngaged":true}]' }),
  };
  let wrapped = 0;
  const tk = h.core.auraToolkit(omni, (fn) => () => { wrapped++; return fn(); });
  await tk.setServicePresenceStatus('0N5000000000009CAA');
  await tk.logout();
  assert.deepEqual(calls, [{ statusId: '0N5000000000009' }, 'logout']);
  assert.deepEqual(await tk.getAgentWorks(), [{ workId: '0Bz', isEngaged: true }]);
  assert.equal(wrapped, 3);
});

const KNOWN_VECTOR = 'eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.' +
  'eyJpc3MiOiIwMEQwMDAwMDAwMDAwMDFFQUEiLCJzdWIiOiIwMDUwMDAwMDAwMDAwMDFBQUEiLCJhdWQiOiJvbW5pcHJlc2VuY2UtYnJpZGdlIiwiaWF0IjoxNzAwMDAwMDAwLCJleHAiOjE3MDAwMDA2MDB9.' +
  'elfkWwaG9TNJY_-XwE3ykcPe15xEY86RS8v0o8KdtPkL8dWlQoYY--9O1qWrJxvJxFecVENGmRsVEXhTd5XVaaPFyQOXBiyX_PTlkkyY4guJjEBye5SgTRkD1OkNLzXzHPrK5wctDLPKRQYBBoz96PL2PBsGSyLLk18EoL_NuxGrkLDlk4sKIuwMecLadBmHZmUWnK_YZjeJLQglp-BPj31Kv3Ev7UUW0BBvuyMq_aNn5SnoDTIdmrn_yrfk33N3g7d85sO_nRnGED-Uoq8mBwLvEl5Tn121r386EIBVSAkdwjumdebRXg3yxYZho8WNtVr-0zX8rWbg3PYYF1EdZg';
