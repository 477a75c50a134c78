'use strict';
// Test doubles for the bridge core: a shared storage, a broadcast hub, a fake Omni toolkit, a
// loopback HTTP service speaking the bridge wire contract, and a manual clock so that
// second-scale timings (lease, backoff, token refresh) pass in milliseconds, exactly.

const http = require('node:http');
const crypto = require('node:crypto');
const path = require('node:path');

const core = require(path.join(__dirname, '..', 'force-app', 'main', 'default', 'staticresources', 'omnipresenceBridge.js'));

const SECRET = 'test-secret';

function b64url(buf) {
  return Buffer.from(buf).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// mintToken builds the spec's `v1.<payload>.<sig>` token the way the Apex controller does.
function mintToken(claims, secret = SECRET) {
  const payload = b64url(JSON.stringify(claims));
  const sig = b64url(crypto.createHmac('sha256', secret).update('v1.' + payload).digest());
  return 'v1.' + payload + '.' + sig;
}

function verifyToken(token, nowSec, secret = SECRET) {
  const m = /^Bearer (v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+))$/.exec(token || '');
  if (!m) return null;
  const want = b64url(crypto.createHmac('sha256', secret).update('v1.' + m[2]).digest());
  if (!crypto.timingSafeEqual(Buffer.from(want), Buffer.from(m[3].padEnd(want.length).slice(0, want.length)))) return null;
  const c = JSON.parse(Buffer.from(m[2], 'base64url').toString());
  if (!(c.exp > nowSec - 60) || c.exp - c.iat > 900) return null;
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
    clearTimeout: (id) => { timers.delete(id); },
    pending: () => timers.size,
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

function createStorage() {
  const m = new Map();
  return {
    map: m,
    getItem: (k) => (m.has(k) ? m.get(k) : null),
    setItem: (k, v) => { m.set(k, String(v)); },
    removeItem: (k) => { m.delete(k); },
  };
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

// The fake Omni toolkit: status changes succeed and are announced as Omni would, unless `reject`
// holds a message.
function createToolkit() {
  const tk = {
    calls: [],
    statusId: '0N5000000000001',
    reject: null,
    engaged: [],
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
      return Promise.resolve(tk.engaged.map((w) => ({ workId: w, workItemId: '500x', isEngaged: true })));
    },
  };
  return tk;
}

// The loopback service: records events and acks, serves a command stream per connection.
async function createService(clock) {
  const svc = {
    events: [],          // every event accepted, in order (duplicates kept to detect them)
    eventRequests: [],   // {auth, ids, status}
    acks: [],
    streams: [],         // open stream responses
    streamRequests: [],  // {auth, lastEventId, status}
    failEvents: 0,       // answer the next n event posts with 500
    failStreams: 0,      // answer the next n stream requests with 503
    unacked: new Map(),  // commandId -> command, resent on every connect
  };
  const server = http.createServer((req, res) => {
    const claims = verifyToken(req.headers.authorization, clock.now() / 1000);
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => {
      if (!claims) { res.writeHead(401).end(); return; }
      if (req.method === 'POST' && req.url === '/api/v1/bridge/events') {
        const events = JSON.parse(body).events;
        const ids = events.map((e) => e.id);
        // Like the service: a workload_changed event needs all three numbers; one bad event
        // rejects the whole batch.
        const bad = events.findIndex((e) => e.type === 'workload_changed' &&
          ['previousWorkload', 'newWorkload', 'configuredCapacity'].some((k) => typeof e[k] !== 'number'));
        if (bad >= 0) {
          svc.eventRequests.push({ auth: req.headers.authorization, ids, status: 400 });
          res.writeHead(400, { 'Content-Type': 'application/json' })
            .end(JSON.stringify({ error: 'invalid events', detail: [{ index: bad, problems: ['workload numbers'] }] }));
          return;
        }
        if (svc.failEvents > 0) {
          svc.failEvents--;
          svc.eventRequests.push({ auth: req.headers.authorization, ids, status: 500 });
          res.writeHead(500).end();
          return;
        }
        svc.eventRequests.push({ auth: req.headers.authorization, ids, status: 200 });
        svc.events.push(...events);
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ accepted: events.length }));
      } else if (req.method === 'POST' && req.url === '/api/v1/bridge/ack') {
        const ack = JSON.parse(body);
        svc.acks.push(ack);
        svc.unacked.delete(ack.id);
        res.writeHead(204).end();
      } else if (req.method === 'GET' && req.url === '/api/v1/bridge/stream') {
        if (svc.failStreams > 0) {
          svc.failStreams--;
          svc.streamRequests.push({ auth: req.headers.authorization, lastEventId: req.headers['last-event-id'], status: 503 });
          res.writeHead(503).end();
          return;
        }
        svc.streamRequests.push({ auth: req.headers.authorization, lastEventId: req.headers['last-event-id'], status: 200 });
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write(': hello\n\n');
        svc.streams.push(res);
        res.on('close', () => { svc.streams = svc.streams.filter((r) => r !== res); });
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
    // Settle: no request in flight, and the promise chains that follow have run.
    do {
      while (env.inflight > 0) {
        if (Date.now() > endR) throw new Error('timed out (requests in flight) waiting for ' + what);
        await sleep(1);
      }
      for (let i = 0; i < 5; i++) await turn();
    } while (env.inflight > 0);
    await sleep(1);
    const v = cond();
    if (v) return v;
    if (Date.now() > endR) throw new Error('timed out waiting for ' + what);
    if (env.clock.now() - startV > virtualMs) throw new Error(`not within ${virtualMs} virtual ms: ${what}`);
    if (!env.clock.advance()) await sleep(5);
  }
}

// newBridge wires one tab's bridge to the doubles; opts override anything.
function newBridge(env, opts = {}) {
  const tokens = env.tokens || (env.tokens = []);
  const toolkit = opts.toolkit || createToolkit();
  const logs = [];
  const bridge = core.createBridge({
    serviceUrl: env.svc.url + '/',
    getToken: async () => {
      if (env.badTokens > 0) {
        env.badTokens--;
        tokens.push({ token: 'v1.bad.bad', at: env.clock.now() });
        return 'v1.bad.bad';
      }
      const iat = Math.floor(env.clock.now() / 1000);
      const t = mintToken({ sub: '005000000000001AAA', org: '00D000000000001EAA', iat, exp: iat + (env.tokenLifetime || 600) });
      tokens.push({ token: t, at: env.clock.now(), exp: (iat + (env.tokenLifetime || 600)) * 1000 });
      return t;
    },
    toolkit,
    fetch: (url, init) => {
      env.inflight = (env.inflight || 0) + 1;
      return fetch(url, init).finally(() => { env.inflight--; });
    },
    storage: env.storage,
    broadcast: env.hub ? env.hub() : undefined,
    now: env.clock.now,
    setTimeout: env.clock.setTimeout,
    clearTimeout: env.clock.clearTimeout,
    log: (level, msg, detail) => logs.push([level, msg, detail]),
    ...opts,
  });
  toolkit.bridge = bridge;
  return { bridge, toolkit, logs };
}

module.exports = { core, mintToken, verifyToken, createClock, createStorage, createHub, createToolkit, createService, until, newBridge, SECRET };
