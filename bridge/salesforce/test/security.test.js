'use strict';
// The core evaluated the way each Salesforce security layer evaluates a static resource:
//
//  - Lightning Locker: strict mode, no globalThis, `this` undefined, `window` a SecureWindow
//    exposing only what Locker allows, and none of AbortController, BroadcastChannel, Web
//    Locks, TextDecoder, atob or crypto (the core must work with fetch, localStorage, timers
//    and storage events alone);
//  - Lightning Web Security: strict mode, a sandboxed window as window, self and globalThis,
//    with the modern APIs.
//
// Each tab evaluates the source on its own, as each page does, and runs the bridge against
// the loopback service.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const h = require('./harness.js');
const { setup } = require('./setup.js');

const SOURCE = fs.readFileSync(h.CORE_PATH, 'utf8');

// The names a Locker sandbox leaves undefined (or never offered) for this code.
const LOCKER_HIDDEN = ['globalThis', 'self', 'module', 'exports', 'define', 'require', 'AbortController',
  'BroadcastChannel', 'TextDecoder', 'atob', 'btoa', 'crypto', 'navigator'];

// secureWindow is what Locker's SecureWindow gives this code: its documented surface.
function secureWindow(tab) {
  return {
    addEventListener: (t, f) => tab.window.addEventListener(t, f),
    removeEventListener: (t, f) => tab.window.removeEventListener(t, f),
    document: tab.document,
    localStorage: tab.storage,
    setTimeout, clearTimeout, setInterval, clearInterval,
    location: { href: 'https://acme.lightning.force.com/lightning/page/home' },
  };
}

function evaluateLocker(tab) {
  const win = secureWindow(tab);
  const fn = new Function('window', 'document', ...LOCKER_HIDDEN, '"use strict";\n' + SOURCE);
  fn.apply(undefined, [win, tab.document, ...LOCKER_HIDDEN.map(() => undefined)]);
  tab.sandbox = win;
  return win.OmnipresenceBridge;
}

function evaluateLWS(tab, env) {
  const target = {
    navigator: { locks: env.locks.as(tab) },
    document: tab.document,
    localStorage: tab.storage,
    addEventListener: (t, f) => tab.window.addEventListener(t, f),
    removeEventListener: (t, f) => tab.window.removeEventListener(t, f),
  };
  // Writes stay in the sandbox; reads fall through to the platform, as LWS distorts them.
  const sandbox = new Proxy(target, {
    get: (o, k) => (k in o ? o[k] : globalThis[k]),
    has: () => true,
  });
  const fn = new Function('window', 'self', 'globalThis', 'document', 'navigator', 'module', 'exports', 'define', 'require',
    '"use strict";\n' + SOURCE);
  fn.call(undefined, sandbox, sandbox, sandbox, tab.document, target.navigator, undefined, undefined, undefined, undefined);
  assert.equal(globalThis.OmnipresenceBridge, undefined, 'the core leaked out of the sandbox');
  tab.sandbox = target;
  return target.OmnipresenceBridge;
}

test('the Locker harness is what Locker is: strict, no globalThis, no this', () => {
  const fn = new Function('window', ...LOCKER_HIDDEN, '"use strict"; return [typeof globalThis, this, typeof AbortController, typeof window];');
  assert.deepEqual(fn.apply(undefined, [{}, ...LOCKER_HIDDEN.map(() => undefined)]), ['undefined', undefined, 'undefined', 'object']);
});

test('Locker: the core loads onto the SecureWindow, never onto the real global', (t) => {
  const tab = { window: h.createTarget(), document: h.createTarget({ visibilityState: 'visible' }), storage: h.createStorage() };
  const api = evaluateLocker(tab);
  assert.equal(typeof api.createBridge, 'function');
  assert.equal(globalThis.OmnipresenceBridge, undefined);
  t.diagnostic('OmnipresenceBridge defined on the SecureWindow');
});

test('Locker: two tabs elect one leader over the lease and storage events, apply a command, report events, and recover a silent stream', async (t) => {
  const env = await setup(t, { locks: false, broadcast: false });
  const tabOpts = { detect: true, coreFor: evaluateLocker };
  const a = env.tab(tabOpts);
  a.bridge.start();
  await env.until(() => a.bridge.status().leader && a.bridge.status().connected, 'first tab leads');
  assert.equal(a.bridge.status().leadership, 'lease');
  const b = env.tab(tabOpts);
  b.bridge.start();
  await env.runFor(10000);
  assert.equal(b.bridge.status().leader, false);

  env.svc.send({ id: 'cmd-l', action: 'set_status', statusId: '0N5000000000009CAA' });
  await env.until(() => env.svc.acks.length === 1 && env.svc.events.length === 1, 'applied and echoed');
  assert.deepEqual(a.toolkit.calls, [['setServicePresenceStatus', '0N5000000000009']]);
  assert.equal(env.svc.events[0].commandId, 'cmd-l');
  assert.match(env.svc.events[0].id, /^[0-9a-f-]{36}$/, 'the id fallback without crypto');

  // The stream goes silent: without AbortController it is closed by cancelling its reader.
  env.svc.silent = true;
  env.svc.dropStreams();
  await env.until(() => env.svc.streamRequests.length === 2, 'reopened');
  await env.until(() => env.svc.streamRequests.length === 3, 'reopened after the silent one was closed', { virtualMs: 120000 });
  await env.until(() => env.svc.streamsClosed >= 2, 'the silent stream closed at the service');
  env.svc.silent = false;

  // The leader leaves: the storage event carries its resignation, and the standby takes over.
  const before = env.clock.now();
  a.bridge.stop();
  await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'takeover');
  assert.ok(env.clock.now() - before <= 600, 'takeover took ' + (env.clock.now() - before) + ' virtual ms');
  assert.equal(a.window.listenerCount('storage'), 0, 'a stopped bridge still listens to storage');
});

test('Lightning Web Security: the core finds Web Locks, BroadcastChannel and AbortController in the sandbox', async (t) => {
  const env = await setup(t);
  const tabOpts = { detect: true, coreFor: (tab) => evaluateLWS(tab, env) };
  const a = env.tab(tabOpts);
  a.bridge.start();
  await env.until(() => a.bridge.status().leader && a.bridge.status().connected, 'first tab leads');
  assert.equal(a.bridge.status().leadership, 'web-locks');
  const b = env.tab(tabOpts);
  b.bridge.start();
  await env.runFor(10000);
  assert.equal(b.bridge.status().leader, false);
  env.svc.send({ id: 'cmd-w', action: 'set_status', statusId: '0N5000000000009' });
  await env.until(() => env.svc.acks.length === 1 && env.svc.events.length === 1, 'applied and echoed');
  const before = env.clock.now();
  a.bridge.stop();
  await env.until(() => b.bridge.status().leader && b.bridge.status().connected, 'takeover');
  assert.ok(env.clock.now() - before <= 600);
});
