'use strict';
const assert = require('node:assert/strict');
const h = require('./harness.js');

// setup starts a loopback service and a manual clock for one browser (shared storage, and
// Web Locks unless `locks: false`); every tab made through it is stopped and the service closed
// when the test ends.
async function setup(t, extra = {}) {
  const clock = h.createClock();
  const svc = await h.createService(clock);
  const env = {
    clock, svc, storage: h.createStorage(), BC: extra.broadcast === false ? null : h.createBroadcastChannels(),
    locks: extra.locks === false ? null : h.createLocks(), tokenLifetime: extra.tokenLifetime, inflight: 0,
  };
  env.until = (cond, what, o) => h.until(env, cond, what, o);
  env.runFor = (ms) => h.runFor(env, ms);
  const made = [];
  env.tab = (opts) => {
    const tab = h.newTab(env, opts);
    made.push(tab);
    return tab;
  };
  t.after(async () => {
    made.forEach((tab) => {
      tab.frozen = false;
      tab.bridge.stop();
    });
    await svc.close();
    assert.equal(clock.pending(), 0, 'timers left running after stop');
  });
  return env;
}

// leader starts a tab and waits until it leads with its stream open.
async function leader(env, opts) {
  const tab = env.tab(opts);
  tab.bridge.start();
  await env.until(() => tab.bridge.status().leader && tab.bridge.status().connected, 'leader connected');
  return tab;
}

// scopedKey is the storage key of the test user's state.
const scopedKey = (name, user = h.USER) => `omnipresence.bridge.${h.ORG.slice(0, 15)}.${user.slice(0, 15)}.${name}`;

module.exports = { setup, leader, scopedKey };
