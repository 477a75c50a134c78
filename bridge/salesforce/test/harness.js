'use strict';
// Test doubles for the bridge core: a browser's shared storage, Web Locks and broadcast hub, a
// fake Omni toolkit, a loopback HTTP service speaking the bridge wire contract, a manual clock so
// that second-scale timings (lease, backoff, token refresh) pass in milliseconds, exactly, and
// per-tab page state (hidden, frozen) with Chrome's timer throttling.

const http = require('node:http');
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const CORE_PATH = path.join(__dirname, '..', 'force-app', 'main', 'default', 'staticresources', 'omnipresenceBridge.js');
const core = require(CORE_PATH);

const fixture = (name) => fs.readFileSync(path.join(__dirname, 'fixtures', name), 'utf8');
// The org's certificate and its private key (in a real org the key never leaves Salesforce).
const ORG_KEY = crypto.createPrivateKey(fixture('test-key.pem'));
const ORG_CERT = new crypto.X509Certificate(fixture('test-cert.pem'));
const OTHER_KEY = crypto.createPrivateKey(fixture('other-key.pem'));

const ORG = '00D000000000001EAA';
const USER = '005000000000001AAA';
const AUDIENCE = 'omnipresence-bridge';

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// mintToken signs the claims RS256, as the Apex controller does with Crypto.signWithCertificate.
function mintToken(claims, key = ORG_KEY) {
  const signed = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' })) + '.' + b64url(JSON.stringify(claims));
  return signed + '.' + b64url(crypto.sign('sha256', Buffer.from(signed), key));
}

function verifyToken(header, nowSec) {
  const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(header || '');
  if (!m) return null;
  const hdr = JSON.parse(Buffer.from(m[1], 'base64url').toString());
  if (hdr.alg !== 'RS256') return null;
  if (!crypto.verify('sha256', Buffer.from(m[1] + '.' + m[2]), ORG_CERT.publicKey, Buffer.from(m[3], 'base64url'))) return null;
  const c = JSON.parse(Buffer.from(m[2], 'base64url').toString());
  if (c.aud !== AUDIENCE || !(c.exp > nowSec - 60) || c.exp - c.iat > 900) return null;
  return c;
}

// A manual clock: virtual time stands still until advance() fires the earliest timer, so every
// duration the tests measure is exact whatever the machine's load. setTimeout records what the
// bridge asked for (virtual milliseconds).
function createClock() {
  let t = Date.UTC(2026, 10, 22, 8, 0, 0);
  let seq = 0;
  const timers = new Map();
  const requested = [];
  return {
    requested,
    now: () => t,
    setTimeout: (fn, ms) => {
      requested.push(ms);
      const id = ++seq;
      timers.set(id, { at: t + Math.max(0, ms), fn });
      return id;
    },
    // at schedules fn at an absolute virtual time (throttled tabs).
    at: (when, fn) => {
      const id = ++seq;
      timers.set(id, { at: Math.max(t, when), fn });
      return id;
    },
    clearTimeout: (id) => { timers.delete(id); },
    pending: () => timers.size,
    // pendingAt is when the earliest timer is due, null when none is set.
    pendingAt: () => {
      let next = null;
      for (const v of timers.values()) if (next === null || v.at < next) next = v.at;
      return next;
    },
    // jump moves time to `to` when no timer is due before it.
    jump: (to) => { t = Math.max(t, to); },
    // advance moves to the earliest timer and runs it; false when none is set.
    advance() {
      let id = null;
      let next = null;
      for (const [k, v] of timers) {
        if (!next || v.at < next.at) { id = k; next = v; }
      }
      if (!next) return false;
      timers.delete(id);
      t = Math.max(t, next.at);
      next.fn();
      return true;
    },
  };
}

// createStorage is one browser's localStorage: every tab of the origin shares it, and a write
// raises a storage event in the other tabs (windows registered with attach).
function createStorage() {
  const m = new Map();
  const windows = new Set();
  const st = {
    map: m,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => {
      const old = m.has(k) ? m.get(k) : null;
      m.set(k, String(v));
      st.notify(k, old, String(v));
    },
    removeItem: (k) => {
      const old = m.has(k) ? m.get(k) : null;
      m.delete(k);
      st.notify(k, old, null);
    },
    attach: (w) => windows.add(w),
    detach: (w) => windows.delete(w),
    writer: null,
    notify(key, oldValue, newValue) {
      const from = st.writer;
      for (const w of windows) {
        if (w !== from) setImmediate(() => w.dispatch('storage', { key, oldValue, newValue }));
      }
    },
  };
  return st;
}

// An event target with dispatch, standing in for a tab's window or document.
function createTarget(props = {}) {
  const listeners = new Map();
  const target = {
    addEventListener(type, fn) { (listeners.get(type) || listeners.set(type, new Set()).get(type)).add(fn); },
    removeEventListener(type, fn) { listeners.get(type)?.delete(fn); },
    dispatch(type, ev = {}) { [...(listeners.get(type) || [])].forEach((fn) => fn({ type, ...ev })); },
    listenerCount: (type) => (listeners.get(type) || new Set()).size,
  };
  // Copy accessors as accessors, so that a getter (visibilityState) stays live.
  return Object.defineProperties(target, Object.getOwnPropertyDescriptors(props));
}

// A BroadcastChannel look-alike: messages reach every other endpoint, asynchronously.
function createHub() {
  const endpoints = new Set();
  return function endpoint() {
    const listeners = new Set();
    const ep = {
      postMessage(data) {
        for (const other of endpoints) {
          if (other !== ep) setImmediate(() => other.listeners.forEach((fn) => fn({ data })));
        }
      },
      addEventListener(type, fn) { if (type === 'message') listeners.add(fn); },
      removeEventListener(type, fn) { listeners.delete(fn); },
      close() { endpoints.delete(ep); },
      listeners,
    };
    endpoints.add(ep);
    return ep;
  };
}

// createBroadcastChannels returns one browser's BroadcastChannel constructor: a message reaches
// the other channels of the same name, asynchronously.
function createBroadcastChannels() {
  const byName = new Map();
  return class FakeBroadcastChannel {
    constructor(name) {
      this.name = String(name);
      this.listeners = new Set();
      this.onmessage = null;
      (byName.get(this.name) || byName.set(this.name, new Set()).get(this.name)).add(this);
      FakeBroadcastChannel.names.add(this.name);
    }
    postMessage(data) {
      for (const other of byName.get(this.name) || []) {
        if (other === this) continue;
        setImmediate(() => {
          other.listeners.forEach((fn) => fn({ data }));
          if (other.onmessage) other.onmessage({ data });
        });
      }
    }
    addEventListener(type, fn) { if (type === 'message') this.listeners.add(fn); }
    removeEventListener(type, fn) { this.listeners.delete(fn); }
    close() { byName.get(this.name)?.delete(this); }
    static names = new Set();
  };
}

// createLocks is one browser's Web Locks (exclusive mode), with ifAvailable, steal and signal.
// A tab that goes away releases its locks; a frozen tab keeps them.
function createLocks() {
  const held = new Map();   // name -> {owner, reject, done}
  const queue = new Map();  // name -> [request]
  const abortError = () => Object.assign(new Error('The lock request is aborted'), { name: 'AbortError' });
  function grant(name) {
    if (held.has(name)) return;
    const q = queue.get(name) || [];
    const r = q.shift();
    if (!r) return;
    run(name, r);
  }
  function run(name, r) {
    const entry = { owner: r.owner, reject: r.reject, stolen: false };
    held.set(name, entry);
    Promise.resolve().then(() => r.cb({ name, mode: 'exclusive' })).then((v) => {
      if (entry.stolen) return;
      held.delete(name);
      r.resolve(v);
      grant(name);
    }, (e) => {
      if (entry.stolen) return;
      held.delete(name);
      r.reject(e);
      grant(name);
    });
  }
  const api = {
    held,
    request(name, opts, cb) {
      if (typeof opts === 'function') { cb = opts; opts = {}; }
      return new Promise((resolve, reject) => {
        const r = { cb, resolve, reject, owner: opts.owner };
        if (opts.signal && opts.signal.aborted) { reject(abortError()); return; }
        if (opts.steal) {
          const cur = held.get(name);
          if (cur) { cur.stolen = true; held.delete(name); cur.reject(abortError()); }
          run(name, r);
          return;
        }
        if (opts.ifAvailable && (held.has(name) || (queue.get(name) || []).length > 0)) {
          Promise.resolve().then(() => cb(null)).then(resolve, reject);
          return;
        }
        (queue.get(name) || queue.set(name, []).get(name)).push(r);
        if (opts.signal) {
          opts.signal.addEventListener('abort', () => {
            const q = queue.get(name) || [];
            const i = q.indexOf(r);
            if (i >= 0) { q.splice(i, 1); reject(abortError()); }
          });
        }
        grant(name);
      });
    },
    // as returns the API for one tab, so that the tab's locks can be released when it goes.
    as(owner) {
      return { request: (name, opts, cb) => (typeof opts === 'function' ? api.request(name, { owner }, opts) : api.request(name, { ...opts, owner }, cb)) };
    },
    // drop releases every lock a tab held, as the browser does when the tab closes or crashes.
    drop(owner) {
      for (const [name, e] of [...held]) {
        if (e.owner === owner) { e.stolen = true; held.delete(name); grant(name); }
      }
      for (const [name, q] of queue) queue.set(name, q.filter((r) => r.owner !== owner));
    },
  };
  return api;
}

// The fake Omni toolkit: status changes succeed and are announced as Omni would, unless `reject`
// holds a message.
function createToolkit() {
  const tk = {
    calls: [],
    statusId: '0N5000000000001',
    reject: null,
    engaged: [],
    worksShape: 'string',
    bridge: null,
    setServicePresenceStatus(statusId) {
      tk.calls.push(['setServicePresenceStatus', statusId]);
      if (tk.reject) return Promise.reject(new Error(tk.reject));
      tk.statusId = statusId;
      setImmediate(() => tk.bridge && tk.bridge.onOmniEvent('lightning:omniChannelStatusChanged', {
        statusId, statusApiName: 'Api_' + statusId, statusName: 'Name', channels: '[]', reason: 'OmniToolkitStatusChange',
      }));
      return Promise.resolve({ statusId, statusApiName: 'Api_' + statusId, statusName: 'Name' });
    },
    logout() {
      tk.calls.push(['logout']);
      if (tk.reject) return Promise.reject(new Error(tk.reject));
      tk.statusId = null;
      setImmediate(() => tk.bridge && tk.bridge.onOmniEvent('lightning:omniChannelLogout', {}));
      return Promise.resolve();
    },
    getServicePresenceStatusId() {
      return tk.statusId ? Promise.resolve({ statusId: tk.statusId }) : Promise.reject(new Error('not logged in'));
    },
    getAgentWorks() {
      const works = tk.engaged.map((w) => ({ workId: w, workItemId: '500x', isEngaged: true }));
      if (tk.worksShape === 'array') return Promise.resolve(works);
      if (tk.worksShape === 'works-array') return Promise.resolve({ works });
      return Promise.resolve({ works: JSON.stringify(works) });
    },
  };
  return tk;
}

// The loopback service: records events, acks and heartbeats per user, serves a command stream
// per connection.
async function createService(clock) {
  const svc = {
    events: [],          // every event accepted, in order (duplicates kept to detect them)
    eventRequests: [],   // {auth, sub, ids, status}
    acks: [],
    heartbeats: [],      // {sub, at}
    streams: [],         // open stream responses
    streamRequests: [],  // {auth, sub, lastEventId, status}
    streamsClosed: 0,
    failEvents: 0,       // answer the next n event posts with 500
    failStreams: 0,      // answer the next n stream requests with 503
    silent: false,       // send no hello comment on new streams
    unacked: new Map(),  // commandId -> command, resent on every connect
  };
  const server = http.createServer((req, res) => {
    const claims = verifyToken(req.headers.authorization, clock.now() / 1000);
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (!claims) { res.writeHead(401, { 'Content-Type': 'application/json' }).end('{"error":"unauthorized"}'); return; }
      if (req.method === 'POST' && req.url === '/api/v1/bridge/events') {
        const events = JSON.parse(body).events;
        const ids = events.map((e) => e.id);
        // Like the service: a workload_changed event needs all three numbers, and the wire
        // event has no other fields than the contract's; one bad event rejects the whole batch.
        const fields = new Set(['id', 'type', 'at', 'statusId', 'statusApiName', 'reason', 'commandId', 'channel', 'previousWorkload', 'newWorkload', 'configuredCapacity']);
        const bad = events.findIndex((e) => Object.keys(e).some((k) => !fields.has(k)) || (e.type === 'workload_changed' &&
          ['previousWorkload', 'newWorkload', 'configuredCapacity'].some((k) => typeof e[k] !== 'number')));
        if (bad >= 0) {
          svc.eventRequests.push({ auth: req.headers.authorization, sub: claims.sub, ids, status: 400 });
          res.writeHead(400, { 'Content-Type': 'application/json' })
            .end(JSON.stringify({ error: 'invalid events', detail: [{ index: bad, problems: ['bad event'] }] }));
          return;
        }
        if (svc.failEvents > 0) {
          svc.failEvents--;
          svc.eventRequests.push({ auth: req.headers.authorization, sub: claims.sub, ids, status: 500 });
          res.writeHead(500).end();
          return;
        }
        svc.eventRequests.push({ auth: req.headers.authorization, sub: claims.sub, ids, status: 200 });
        svc.events.push(...events.map((e) => ({ ...e, sub: claims.sub })));
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ accepted: events.length }));
      } else if (req.method === 'POST' && req.url === '/api/v1/bridge/ack') {
        const ack = JSON.parse(body);
        svc.acks.push(ack);
        svc.unacked.delete(ack.id);
        res.writeHead(204).end();
      } else if (req.method === 'POST' && req.url === '/api/v1/bridge/heartbeat') {
        svc.heartbeats.push({ sub: claims.sub, at: clock.now() });
        res.writeHead(204).end();
      } else if (req.method === 'GET' && req.url === '/api/v1/bridge/stream') {
        if (svc.failStreams > 0) {
          svc.failStreams--;
          svc.streamRequests.push({ auth: req.headers.authorization, sub: claims.sub, lastEventId: req.headers['last-event-id'], status: 503 });
          res.writeHead(503).end();
          return;
        }
        svc.streamRequests.push({ auth: req.headers.authorization, sub: claims.sub, lastEventId: req.headers['last-event-id'], status: 200 });
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        if (svc.silent) res.flushHeaders(); else res.write(': hello\n\n');
        res.sub = claims.sub;
        svc.streams.push(res);
        res.on('close', () => { svc.streamsClosed++; svc.streams = svc.streams.filter((r) => r !== res); });
        for (const cmd of svc.unacked.values()) writeCommand(res, cmd);
      } else {
        res.writeHead(404).end();
      }
    });
  });
  function writeCommand(res, cmd) {
    res.write('event: command\nid: ' + cmd.id + '\ndata: ' + JSON.stringify(cmd) + '\n\n');
  }
  svc.send = (cmd) => {
    svc.unacked.set(cmd.id, cmd);
    for (const res of svc.streams) writeCommand(res, cmd);
  };
  svc.dropStreams = () => {
    for (const res of svc.streams) res.destroy();
    svc.streams = [];
  };
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  svc.url = 'http://127.0.0.1:' + server.address().port;
  svc.close = () => new Promise((r) => {
    svc.dropStreams();
    server.closeAllConnections();
    server.close(r);
  });
  return svc;
}

const turn = () => new Promise((r) => setImmediate(r));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// until runs the bridge's virtual time forward, one timer at a time, until cond() holds. Time moves
// only while no request is awaiting the service, so nothing times out because the machine is slow.
async function until(env, cond, what, { virtualMs = 60000, realMs = 10000 } = {}) {
  const startV = env.clock.now();
  const endR = Date.now() + realMs;
  for (;;) {
    await settle(env, endR, what);
    const v = cond();
    if (v) return v;
    if (Date.now() > endR) throw new Error('timed out waiting for ' + what);
    if (env.clock.now() - startV > virtualMs) throw new Error(`not within ${virtualMs} virtual ms: ${what}`);
    if (!env.clock.advance()) await sleep(5);
  }
}

// settle waits until no request is in flight and the promise chains that follow have run.
async function settle(env, endR = Date.now() + 10000, what = 'requests') {
  do {
    while (env.inflight > 0) {
      if (Date.now() > endR) throw new Error('timed out (requests in flight) waiting for ' + what);
      await sleep(1);
    }
    for (let i = 0; i < 5; i++) await turn();
  } while (env.inflight > 0);
  await sleep(1);
}

// runFor moves virtual time forward by ms, running every timer due on the way.
async function runFor(env, ms) {
  const end = env.clock.now() + ms;
  for (;;) {
    await settle(env);
    const next = env.clock.pendingAt();
    if (next === null || next > end) break;
    env.clock.advance();
  }
  env.clock.jump(end);
  await settle(env);
}

// newTab wires one tab's bridge to the doubles; opts override anything. The tab has its own
// window and document (visibility, lifecycle events), and can be hidden (its timers then run
// once a minute, as Chrome throttles a page hidden for five minutes) and frozen (nothing of
// it runs until it is thawed).
function newTab(env, opts = {}) {
  const tokens = env.tokens || (env.tokens = []);
  const toolkit = opts.toolkit || createToolkit();
  const logs = [];
  const user = opts.user || USER;
  const tab = { toolkit, logs, hidden: false, throttled: false, frozen: false, held: [], waiting: [] };
  tab.window = createTarget();
  tab.document = createTarget({ get visibilityState() { return tab.hidden ? 'hidden' : 'visible'; } });
  tab.storage = tabStorage(env.storage, tab.window);
  env.storage.attach(tab.window);
  // Timers of a frozen tab are held until it thaws; of a throttled one, aligned to the next
  // whole minute. clearTimeout cancels a timer wherever it waits.
  const handles = new Map();
  let hseq = 0;
  const setT = (fn, ms) => {
    const h = ++hseq;
    const run = () => {
      if (!handles.has(h)) return;
      if (tab.frozen) { tab.held.push(h); return; }
      handles.delete(h);
      fn();
    };
    run.h = h;
    const due = env.clock.now() + Math.max(0, ms);
    handles.set(h, { run, id: tab.throttled ? env.clock.at(Math.ceil(due / 60000) * 60000, run) : env.clock.setTimeout(run, ms) });
    return h;
  };
  const clearT = (h) => {
    const e = handles.get(h);
    if (e) { env.clock.clearTimeout(e.id); handles.delete(h); }
  };
  // Answers to a frozen tab's requests wait until it thaws, and so do its stream's chunks.
  const gate = (v) => (tab.frozen ? new Promise((r) => tab.waiting.push(() => r(v))) : v);
  const wrapBody = (body) => {
    if (!body) return body;
    return {
      getReader() {
        const r = body.getReader();
        return { read: () => r.read().then(gate), cancel: (x) => r.cancel(x) };
      },
      cancel: (x) => body.cancel(x),
    };
  };
  const api = opts.coreFor ? opts.coreFor(tab) : core;
  // detect: give the bridge no platform objects, so that it finds (or misses) them itself.
  const platform = opts.detect ? {} : {
    broadcast: env.hub ? env.hub() : undefined,
    BroadcastChannel: env.BC || null,
    locks: env.locks ? env.locks.as(tab) : null,
    window: tab.window,
    document: tab.document,
  };
  const bridge = api.createBridge({
    serviceUrl: env.svc.url + '/',
    orgId: ORG,
    userId: user,
    getToken: async () => {
      if (env.tokenError) throw new Error(env.tokenError);
      if (env.badTokens > 0) {
        env.badTokens--;
        const bad = mintToken({ iss: ORG, sub: user, aud: AUDIENCE, iat: 1, exp: 2 }, OTHER_KEY);
        tokens.push({ token: bad, at: env.clock.now(), user });
        return bad;
      }
      const iat = Math.floor(env.clock.now() / 1000);
      const sub = opts.tokenUser || user;
      const t = mintToken({ iss: ORG, sub, aud: AUDIENCE, iat, exp: iat + (env.tokenLifetime || 600) });
      tokens.push({ token: t, at: env.clock.now(), exp: (iat + (env.tokenLifetime || 600)) * 1000, user: sub });
      return t;
    },
    toolkit,
    fetch: (url, init) => {
      env.inflight = (env.inflight || 0) + 1;
      return fetch(url, init).then((res) => gate(res)).then((res) => {
        if (!res.body) return res;
        return { ok: res.ok, status: res.status, text: () => res.text(), json: () => res.json(), body: wrapBody(res.body) };
      }).finally(() => { env.inflight--; });
    },
    storage: tab.storage,
    ...platform,
    now: env.clock.now,
    setTimeout: setT,
    clearTimeout: clearT,
    log: (level, msg, detail) => logs.push([level, msg, detail]),
    ...opts.bridge,
  });
  toolkit.bridge = bridge;
  tab.bridge = bridge;
  tab.hide = () => { tab.hidden = true; tab.document.dispatch('visibilitychange'); };
  tab.show = () => { tab.hidden = false; tab.throttled = false; tab.document.dispatch('visibilitychange'); };
  // freeze stops the tab; with `announce` it first gets the freeze event, as Chrome sends it.
  tab.freeze = (announce = true) => { if (announce) tab.document.dispatch('freeze'); tab.frozen = true; };
  tab.thaw = () => {
    tab.frozen = false;
    const held = tab.held.splice(0);
    const waiting = tab.waiting.splice(0);
    tab.document.dispatch('resume');
    waiting.forEach((f) => f());
    held.forEach((h) => {
      const e = handles.get(h);
      if (e) e.id = env.clock.setTimeout(e.run, 0);
    });
  };
  // crash ends the tab without a word: its timers stop, the browser releases its locks.
  tab.crash = () => {
    tab.frozen = true;
    env.storage.detach(tab.window);
    if (env.locks) env.locks.drop(tab);
  };
  return tab;
}

// tabStorage marks the writer so that the storage event skips the tab that wrote.
function tabStorage(shared, win) {
  return {
    getItem: (k) => shared.getItem(k),
    setItem: (k, v) => { shared.writer = win; try { shared.setItem(k, v); } finally { shared.writer = null; } },
    removeItem: (k) => { shared.writer = win; try { shared.removeItem(k); } finally { shared.writer = null; } },
  };
}

module.exports = {
  core, CORE_PATH, mintToken, verifyToken, createClock, createStorage, createTarget, createHub, createLocks, createBroadcastChannels,
  createToolkit, createService, until, settle, runFor, newTab, ORG, USER, AUDIENCE, ORG_KEY, OTHER_KEY, b64url,
};
