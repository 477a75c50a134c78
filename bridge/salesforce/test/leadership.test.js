'use strict';
// One bridge per agent across tabs, with Web Locks and with the lease Locker falls back to;
// and tabs Chrome hides (throttling their timers to once a minute) or freezes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, leader, scopedKey } = require('./setup.js');

const leaders = (tabs) => tabs.filter((x) => x.bridge.status().leader).length;
const MODES = [
  { name: 'Web Locks', opts: {} },
  { name: 'lease, storage events (Locker)', opts: { locks: false, broadcast: false } },
];

for (const mode of MODES) {
  test(`${mode.name}: one leader among two tabs; the standby takes over when the leader closes`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = env.tab();
    const b = env.tab();
    a.bridge.start();
    await env.until(() => a.bridge.status().leader, 'first tab leads');
    b.bridge.start();
    await env.runFor(10000);
    assert.equal(b.bridge.status().leader, false);
    assert.equal(a.bridge.status().leader, true);
    await env.until(() => env.svc.streamRequests.length === 1, 'one stream');

    const before = env.clock.now();
    a.bridge.stop();
    await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'standby takes over');
    const took = env.clock.now() - before;
    assert.ok(took <= 600, 'takeover after a clean close took ' + took + ' virtual ms');
    assert.equal(env.svc.streamRequests.length, 2);
    assert.equal(a.bridge.status().leader, false);
  });

  test(`${mode.name}: a leader that crashes is replaced`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = env.tab();
    a.bridge.start();
    await env.until(() => a.bridge.status().leader, 'first tab leads');
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    const before = env.clock.now();
    a.crash();
    await env.until(() => b.bridge.status().leader, 'takeover');
    const took = env.clock.now() - before;
    // The browser releases a crashed tab's Web Lock at once; a lease runs out after 5 s.
    const [lo, hi] = mode.opts.locks === false ? [2000, 9000] : [0, 1600];
    assert.ok(took >= lo && took <= hi, 'takeover took ' + took + ' virtual ms');
  });

  test(`${mode.name}: a hidden leader whose timers run once a minute keeps the lead, alone, for ten minutes`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = await leader(env);
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    a.hide();
    b.hide();
    a.throttled = b.throttled = true;
    let most = 0;
    for (let s = 0; s < 600; s += 5) {
      await env.runFor(5000);
      most = Math.max(most, leaders([a, b]));
      assert.ok(a.bridge.status().leader, `the hidden leader lost the lead after ${s + 5} s`);
      if (s === 300) env.svc.send({ id: 'cmd-h', action: 'set_status', statusId: '0N5000000000009' });
    }
    assert.equal(most, 1);
    await env.until(() => env.svc.acks.length === 1, 'the command sent while hidden is acked');
    assert.equal(a.toolkit.calls.length + b.toolkit.calls.length, 1, 'applied more than once');
  });

  test(`${mode.name}: a leader frozen by Chrome hands over at once; thawed, it applies nothing`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = await leader(env);
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    a.hide();
    a.freeze(true);
    await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'standby leads', { virtualMs: 2000 });
    env.svc.send({ id: 'cmd-f', action: 'set_status', statusId: '0N5000000000009' });
    await env.until(() => env.svc.acks.length === 1, 'ack by the new leader');
    a.thaw();
    await env.runFor(10000);
    assert.equal(a.bridge.status().leader, false);
    assert.deepEqual(a.toolkit.calls, []);
    assert.equal(b.toolkit.calls.length, 1);
  });

  test(`${mode.name}: a leader frozen without warning is replaced; thawed, it drops the command it had and stops`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = await leader(env);
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    a.hide();
    a.freeze(false);
    // The command reaches the frozen tab's stream, and waits there unread.
    env.svc.send({ id: 'cmd-z', action: 'set_status', statusId: '0N5000000000009' });
    await env.runFor(1000);
    // The agent works in the other tab meanwhile: its Omni events are kept, not dropped.
    b.bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId: '0N5000000000004', reason: 'OmniManualStatusChange' });
    await env.runFor(10000);
    assert.equal(env.svc.events.length, 0, 'nothing goes out while the leader is frozen');
    assert.equal(JSON.parse(env.storage.getItem(scopedKey('outbox'))).length, 1);
    // A hidden leader's record lives 150 s; then the standby takes the lead.
    await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'the standby takes over', { virtualMs: 200000 });
    await env.until(() => env.svc.acks.length === 1 && env.svc.events.length === 2, 'the command applied, the change and the echo posted');
    assert.equal(env.svc.events[0].statusId, '0N5000000000004');
    a.thaw();
    await env.runFor(5000);
    assert.equal(a.bridge.status().leader, false, 'the thawed tab still leads');
    assert.deepEqual(a.toolkit.calls, [], 'the thawed tab applied the command it had read');
    assert.equal(b.toolkit.calls.length, 1);
    assert.equal(env.svc.streams.length, 1, 'the thawed tab kept its stream open');
    assert.equal(leaders([a, b]), 1);
    assert.equal(env.svc.events.length, 2, 'the echo of the command, and nothing twice');
  });

  test(`${mode.name}: both tabs see one Omni change; the service gets it once, marked as the command's echo`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = await leader(env);
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    // Omni announces the change in every tab; here the standby hears it first.
    const announce = (statusId) => {
      b.bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId, reason: 'OmniToolkitStatusChange' });
    };
    a.toolkit.setServicePresenceStatus = (statusId) => {
      a.toolkit.calls.push(['setServicePresenceStatus', statusId]);
      announce(statusId);
      setImmediate(() => a.bridge.onOmniEvent('lightning:omniChannelStatusChanged', { statusId, reason: 'OmniToolkitStatusChange' }));
      return Promise.resolve({});
    };
    env.svc.send({ id: 'cmd-e', action: 'set_status', statusId: '0N5000000000009' });
    await env.until(() => env.svc.events.length === 1 && env.svc.acks.length === 1, 'one event');
    await env.runFor(5000);
    assert.equal(env.svc.events.length, 1);
    assert.equal(env.svc.events[0].commandId, 'cmd-e');
    // A change only the standby heard goes out after its short hold.
    b.bridge.onOmniEvent('lightning:omniChannelWorkloadChanged', { previousWorkload: 0, newWorkload: 1, configuredCapacity: 4 });
    await env.until(() => env.svc.events.length === 2, 'the standby\'s event');
    assert.equal(env.svc.events[1].type, 'workload_changed');
  });

  test(`${mode.name}: Omni moving to another tab (DuplicateLoginInSameBrowser) makes this tab stand aside`, async (t) => {
    const env = await setup(t, mode.opts);
    const a = await leader(env);
    const b = env.tab();
    b.bridge.start();
    await env.runFor(3000);
    a.bridge.onOmniEvent('lightning:omniChannelLogout', { reason: 'DuplicateLoginInSameBrowser' });
    await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'the other tab leads');
    await env.until(() => env.svc.events.length === 1, 'the logout reported');
    assert.equal(env.svc.events[0].reason, 'DuplicateLoginInSameBrowser');
    assert.equal(a.bridge.status().yielded, true);
    // It does not take the lead back, even when the other tab closes...
    b.bridge.stop();
    await env.runFor(20000);
    assert.equal(a.bridge.status().leader, false);
    // ...until Omni logs in here again.
    a.bridge.onOmniEvent('lightning:omniChannelLoginSuccess', { statusId: '0N5000000000002' });
    await env.until(() => a.bridge.status().leader, 'leads again');
  });
}

// The control: with a hidden leader's lease as short as a visible one's, throttled timers let
// the lease lapse and a second tab leads — what the longer hidden lease prevents.
test('control: a 5 s lease under once-a-minute timers does not hold', async (t) => {
  const env = await setup(t, { locks: false });
  const a = env.tab({ bridge: { hiddenLeaseMs: 5000 } });
  a.bridge.start();
  await env.until(() => a.bridge.status().leader && a.bridge.status().connected, 'leader');
  const b = env.tab({ bridge: { hiddenLeaseMs: 5000 } });
  b.bridge.start();
  await env.runFor(3000);
  a.hide();
  b.hide();
  a.throttled = b.throttled = true;
  let bLed = false;
  for (let s = 0; s < 300 && !bLed; s += 5) {
    await env.runFor(5000);
    bLed = b.bridge.status().leader;
  }
  assert.ok(bLed, 'the standby never took over, so the control proves nothing');
});
