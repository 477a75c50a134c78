/*
 * omnipresence Omni-Channel bridge core.
 *
 * Framework-free: all the bridge's logic lives here, the Aura utility-bar component only forwards
 * Omni-Channel events and toolkit calls. Loaded as a static resource it defines the global
 * `OmnipresenceBridge`; under CommonJS (Node tests) it is the module's export.
 *
 * Wire contract: POST {serviceUrl}/api/v1/bridge/events, GET {serviceUrl}/api/v1/bridge/stream
 * (Server-Sent Events read over fetch, because EventSource cannot send an Authorization header),
 * POST {serviceUrl}/api/v1/bridge/ack; every request carries `Authorization: Bearer <token>`.
 */
(function (root, factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
  } else {
    root.OmnipresenceBridge = api;
  }
}(typeof globalThis !== 'undefined' ? globalThis : this, function () {
  'use strict';

  var DEFAULTS = {
    leaseMs: 5000,            // a leader that stops renewing loses the lease after this long
    heartbeatMs: 1500,        // lease renewal (leader) and lease check (standby) period
    confirmMs: 250,           // wait after writing a lease before trusting it (storage has no CAS)
    backoffInitialMs: 1000,
    backoffMaxMs: 30000,
    streamIdleMs: 45000,      // the service sends a heartbeat comment every 15 s
    tokenRefreshLeadMs: 60000,
    echoWindowMs: 15000,      // how long a command's status change is awaited for tagging
    batchSize: 100,           // the service accepts at most 100 events per request
    maxOutbox: 1000,
    maxRemembered: 200,       // finished commands remembered to answer resends without re-applying
    keyPrefix: 'omnipresence.bridge'
  };

  var EVENT_TYPES = {
    statusChanged: 'status_changed',
    loginSuccess: 'login',
    login: 'login',
    logout: 'logout',
    workAccepted: 'work_accepted',
    workloadChanged: 'workload_changed'
  };

  /**
   * backoffDelay returns the wait before retry number `attempt` (0-based): 1 s doubling to 30 s,
   * each drawn from the upper fifth below the cap so that tabs and agents do not retry in step.
   */
  function backoffDelay(attempt, initialMs, maxMs, random) {
    var cap = Math.min(maxMs, initialMs * Math.pow(2, Math.min(attempt, 30)));
    return Math.round(cap * (0.8 + 0.2 * random()));
  }

  /**
   * createSSEParser returns a function fed with decoded text chunks; it calls onEvent({event, id,
   * data}) for every complete event, following the WHATWG event-stream rules (comments ignored,
   * multi-line data joined with "\n", CR, LF and CRLF line ends).
   */
  function createSSEParser(onEvent) {
    var buf = '';
    var data = [];
    var hasData = false;
    var eventName = '';
    var id = null;
    var pendingCR = false;

    function line(l) {
      if (l === '') {
        if (hasData) {
          onEvent({ event: eventName || 'message', id: id, data: data.join('\n') });
        }
        data = [];
        hasData = false;
        eventName = '';
        id = null;
        return;
      }
      if (l.charAt(0) === ':') {
        return;
      }
      var i = l.indexOf(':');
      var field = i < 0 ? l : l.slice(0, i);
      var value = i < 0 ? '' : l.slice(i + 1);
      if (value.charAt(0) === ' ') {
        value = value.slice(1);
      }
      if (field === 'data') {
        data.push(value);
        hasData = true;
      } else if (field === 'event') {
        eventName = value;
      } else if (field === 'id' && value.indexOf('\u0000') < 0) {
        id = value;
      }
    }

    return function push(chunk) {
      if (pendingCR && chunk.charAt(0) === '\n') {
        chunk = chunk.slice(1);
      }
      pendingCR = false;
      buf += chunk;
      var re = /\r\n|\r|\n/g;
      var start = 0;
      var m;
      while ((m = re.exec(buf)) !== null) {
        if (m[0] === '\r' && m.index === buf.length - 1) {
          pendingCR = true;
        }
        line(buf.slice(start, m.index));
        start = re.lastIndex;
      }
      buf = buf.slice(start);
    };
  }

  function base64UrlDecode(s) {
    s = String(s).replace(/-/g, '+').replace(/_/g, '/');
    while (s.length % 4) {
      s += '=';
    }
    return atob(s);
  }

  /** tokenClaims returns the JSON claims of a `v1.<payload>.<sig>` token, or null. */
  function tokenClaims(token) {
    try {
      var parts = String(token).split('.');
      if (parts.length !== 3 || parts[0] !== 'v1') {
        return null;
      }
      var c = JSON.parse(base64UrlDecode(parts[1]));
      return typeof c === 'object' && c ? c : null;
    } catch (e) {
      return null;
    }
  }

  function sameId(a, b) {
    // Salesforce ids compare equal in their 15- and 18-character forms.
    return !!a && !!b && String(a).slice(0, 15) === String(b).slice(0, 15);
  }

  function num(v) {
    if (v === undefined || v === null || v === '') {
      return undefined;
    }
    var n = Number(v);
    return isFinite(n) ? n : undefined;
  }

  function errorMessage(err) {
    if (!err) {
      return 'rejected';
    }
    if (typeof err === 'string') {
      return err;
    }
    if (err.message) {
      return String(err.message);
    }
    try {
      return JSON.stringify(err);
    } catch (e) {
      return String(err);
    }
  }

  function randomId() {
    if (typeof crypto !== 'undefined' && crypto && typeof crypto.randomUUID === 'function') {
      return crypto.randomUUID();
    }
    return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === 'x' ? r : (r & 3 | 8)).toString(16);
    });
  }

  /**
   * auraToolkit adapts the Aura `lightning:omniToolkitAPI` component to the toolkit shape the core
   * uses. `wrap` (Aura's $A.getCallback) makes calls made from timers and promises run inside
   * the Aura lifecycle.
   */
  function auraToolkit(omniApi, wrap) {
    var w = wrap || function (fn) { return fn; };
    function call(fn) {
      return new Promise(function (resolve, reject) {
        w(function () {
          try {
            Promise.resolve(fn()).then(resolve, reject);
          } catch (e) {
            reject(e);
          }
        })();
      });
    }
    return {
      setServicePresenceStatus: function (statusId) {
        return call(function () { return omniApi.setServicePresenceStatus({ statusId: statusId }); });
      },
      logout: function () {
        return call(function () { return omniApi.logout(); });
      },
      getServicePresenceStatusId: function () {
        return call(function () { return omniApi.getServicePresenceStatusId(); });
      },
      getAgentWorks: function () {
        return call(function () { return omniApi.getAgentWorks(); }).then(function (r) {
          var works = r && r.works;
          return typeof works === 'string' ? JSON.parse(works) : (works || []);
        });
      }
    };
  }

  /**
   * createBridge builds one tab's bridge. Options:
   *   serviceUrl     base URL of the omnipresence service (no trailing /api/...)
   *   getToken       async () => 'v1.<payload>.<sig>' (the Apex controller's token)
   *   toolkit        {setServicePresenceStatus(statusId), logout(), getServicePresenceStatusId()?,
   *                   getAgentWorks()? => [{workId, isEngaged}]}, each returning a Promise
   *   lookupChannel  optional async (workId) => service channel DeveloperName
   *   storage        localStorage-like {getItem, setItem, removeItem} shared by the agent's tabs
   *   broadcast      optional BroadcastChannel-like {postMessage, addEventListener|onmessage}
   *   fetch, AbortController, TextDecoder   defaults: the globals
   *   now, setTimeout, clearTimeout, random, newId   defaults: the globals
   *   log            optional (level, message, detail) => void; secrets are never passed to it
   *   onState        optional (status) => void, called whenever status() changes
   * plus any DEFAULTS key to tune timings.
   */
  function createBridge(opts) {
    if (!opts || !opts.serviceUrl || typeof opts.getToken !== 'function' || !opts.toolkit || !opts.storage) {
      throw new Error('createBridge needs serviceUrl, getToken, toolkit and storage');
    }
    var o = {};
    Object.keys(DEFAULTS).forEach(function (k) {
      o[k] = opts[k] !== undefined ? opts[k] : DEFAULTS[k];
    });
    var base = String(opts.serviceUrl).replace(/\/+$/, '') + '/api/v1/bridge';
    var fetchFn = opts.fetch || (typeof fetch === 'function' ? fetch.bind(globalThis) : null);
    var Abort = opts.AbortController || (typeof AbortController !== 'undefined' ? AbortController : null);
    var Decoder = opts.TextDecoder || (typeof TextDecoder !== 'undefined' ? TextDecoder : null);
    var now = opts.now || function () { return Date.now(); };
    var setT = opts.setTimeout || function (fn, ms) { return setTimeout(fn, ms); };
    var clearT = opts.clearTimeout || function (h) { clearTimeout(h); };
    var random = opts.random || Math.random;
    var newId = opts.newId || randomId;
    var log = opts.log || function () {};
    var toolkit = opts.toolkit;
    var storage = opts.storage;
    var bc = opts.broadcast || null;
    var keys = {
      lease: o.keyPrefix + '.leader',
      outbox: o.keyPrefix + '.outbox',
      done: o.keyPrefix + '.commands',
      lastEventId: o.keyPrefix + '.lastEventId'
    };
    var instanceId = newId();

    var s = {
      running: false,
      leader: false,
      connected: false,
      timers: {},
      outbox: [],
      splitLeft: 0,
      posting: false,
      postAttempt: 0,
      acks: [],
      acking: false,
      ackAttempt: 0,
      done: {},
      doneOrder: [],
      cmdQueue: [],
      cmdRunning: null,
      expect: null,
      streamAbort: null,
      streamAttempt: 0,
      streamGen: 0,
      token: null,
      tokenRefreshAt: 0,
      tokenPromise: null,
      lastEventId: null,
      lastState: ''
    };

    // ---- small helpers ------------------------------------------------------------------

    function timer(name, ms, fn) {
      cancel(name);
      if (!s.running) {
        return;
      }
      s.timers[name] = setT(function () {
        delete s.timers[name];
        fn();
      }, Math.max(0, ms));
    }

    function cancel(name) {
      if (s.timers[name] !== undefined) {
        clearT(s.timers[name]);
        delete s.timers[name];
      }
    }

    function load(key, fallback) {
      try {
        var v = storage.getItem(key);
        return v ? JSON.parse(v) : fallback;
      } catch (e) {
        return fallback;
      }
    }

    function save(key, value) {
      try {
        storage.setItem(key, JSON.stringify(value));
      } catch (e) {
        log('warn', 'storage write failed', { key: key, error: errorMessage(e) });
      }
    }

    function status() {
      return {
        instanceId: instanceId,
        running: s.running,
        leader: s.leader,
        connected: s.connected,
        pendingEvents: s.outbox.length,
        pendingAcks: s.acks.length
      };
    }

    function emitState() {
      if (typeof opts.onState !== 'function') {
        return;
      }
      var st = status();
      var sig = JSON.stringify(st);
      if (sig !== s.lastState) {
        s.lastState = sig;
        try {
          opts.onState(st);
        } catch (e) { /* the observer's problem */ }
      }
    }

    // ---- token -----------------------------------------------------------------------

    function token(force) {
      if (!force && s.token && now() < s.tokenRefreshAt) {
        return Promise.resolve(s.token);
      }
      if (!s.tokenPromise) {
        s.tokenPromise = Promise.resolve().then(function () { return opts.getToken(); }).then(function (t) {
          s.tokenPromise = null;
          if (typeof t !== 'string' || !t) {
            throw new Error('getToken returned no token');
          }
          var c = tokenClaims(t);
          var t0 = now();
          var refreshAt = t0 + 4 * 60 * 1000;
          if (c && typeof c.exp === 'number') {
            var exp = c.exp * 1000;
            var life = typeof c.iat === 'number' ? (c.exp - c.iat) * 1000 : exp - t0;
            refreshAt = exp - Math.min(o.tokenRefreshLeadMs, Math.max(0, life) / 4);
          }
          s.token = t;
          s.tokenRefreshAt = Math.max(refreshAt, t0 + 1000);
          scheduleTokenRefresh();
          return t;
        }, function (err) {
          s.tokenPromise = null;
          throw err;
        });
      }
      return s.tokenPromise;
    }

    function scheduleTokenRefresh() {
      if (!s.leader) {
        return;
      }
      timer('token', s.tokenRefreshAt - now(), function () {
        token(true).catch(function (err) {
          log('warn', 'token refresh failed', { error: errorMessage(err) });
          timer('token', backoffDelay(0, o.backoffInitialMs, o.backoffMaxMs, random), scheduleTokenRefresh);
        });
      });
    }

    function authHeaders(t, extra) {
      var h = { Authorization: 'Bearer ' + t };
      Object.keys(extra || {}).forEach(function (k) { h[k] = extra[k]; });
      return h;
    }

    function post(path, body) {
      return token(false).then(function (t) {
        return fetchFn(base + path, {
          method: 'POST',
          mode: 'cors',
          credentials: 'omit',
          headers: authHeaders(t, { 'Content-Type': 'application/json' }),
          body: JSON.stringify(body)
        });
      }).then(function (res) {
        if (res.status === 401) {
          s.token = null;
        }
        return res;
      });
    }

    // ---- leader election ----------------------------------------------------------------

    function readLease() {
      return load(keys.lease, null);
    }

    function leaseTick() {
      if (!s.running) {
        return;
      }
      var lease = readLease();
      var t = now();
      if (s.leader) {
        if (lease && lease.owner !== instanceId && lease.until > t) {
          log('info', 'another tab holds the lease; standing by', {});
          stepDown();
        } else {
          save(keys.lease, { owner: instanceId, until: t + o.leaseMs });
        }
      } else if (!lease || lease.owner === instanceId || !(lease.until > t)) {
        save(keys.lease, { owner: instanceId, until: t + o.leaseMs });
        timer('confirm', o.confirmMs, function () {
          var l = readLease();
          if (s.running && !s.leader && l && l.owner === instanceId) {
            becomeLeader();
          }
        });
      }
      timer('lease', o.heartbeatMs, leaseTick);
    }

    function onBroadcast(msg) {
      if (!s.running || !msg || msg.from === instanceId) {
        return;
      }
      if (msg.type === 'resign' && !s.leader) {
        // The leader left: check the lease soon, at a random offset so standbys do not collide.
        timer('lease', Math.round(random() * o.confirmMs), leaseTick);
      } else if (msg.type === 'leader' && s.leader) {
        timer('lease', 0, leaseTick);
      }
    }

    function broadcastMsg(type) {
      if (bc) {
        try {
          bc.postMessage({ type: type, from: instanceId });
        } catch (e) { /* closed channel */ }
      }
    }

    function becomeLeader() {
      s.leader = true;
      s.outbox = load(keys.outbox, []);
      var done = load(keys.done, { order: [], results: {} });
      s.done = done.results || {};
      s.doneOrder = done.order || [];
      s.lastEventId = load(keys.lastEventId, null);
      log('info', 'leading: this tab carries the bridge', { instanceId: instanceId });
      broadcastMsg('leader');
      emitState();
      if (s.token) {
        scheduleTokenRefresh();
      }
      connect();
      flushEvents();
      flushAcks();
    }

    function stepDown() {
      s.leader = false;
      s.connected = false;
      s.streamGen++;
      if (s.streamAbort) {
        s.streamAbort.abort();
        s.streamAbort = null;
      }
      ['token', 'stream', 'post', 'ack', 'idle'].forEach(cancel);
      emitState();
    }

    // ---- events to the service -----------------------------------------------------------

    function record(ev, at) {
      ev.id = newId();
      ev.at = at || new Date(now()).toISOString();
      s.outbox.push(ev);
      if (s.outbox.length > o.maxOutbox) {
        var dropped = s.outbox.splice(0, s.outbox.length - o.maxOutbox);
        log('error', 'event outbox full; oldest events dropped', { dropped: dropped.length });
      }
      save(keys.outbox, s.outbox);
      emitState();
      flushEvents();
      return ev;
    }

    function removeEvents(ids) {
      var gone = {};
      ids.forEach(function (id) { gone[id] = true; });
      s.outbox = s.outbox.filter(function (e) { return !gone[e.id]; });
      save(keys.outbox, s.outbox);
    }

    function retryEvents() {
      var d = backoffDelay(s.postAttempt++, o.backoffInitialMs, o.backoffMaxMs, random);
      timer('post', d, flushEvents);
    }

    function flushEvents() {
      if (!s.leader || s.posting || s.timers.post !== undefined || s.outbox.length === 0) {
        return;
      }
      var batch = s.outbox.slice(0, s.splitLeft > 0 ? 1 : o.batchSize);
      var ids = batch.map(function (e) { return e.id; });
      s.posting = true;
      post('/events', { events: batch }).then(function (res) {
        s.posting = false;
        if (res.ok) {
          s.postAttempt = 0;
          s.splitLeft = Math.max(0, s.splitLeft - batch.length);
          removeEvents(ids);
          emitState();
          flushEvents();
        } else if ((res.status === 400 || res.status === 413) && batch.length > 1) {
          // One bad event must not hold back the others: send this batch one by one.
          s.splitLeft = batch.length;
          flushEvents();
        } else if (res.status === 400 || res.status === 413) {
          s.splitLeft = Math.max(0, s.splitLeft - 1);
          return res.text().then(function (body) {
            log('error', 'service rejected an event; dropped', { event: batch[0], response: body });
            removeEvents(ids);
            emitState();
            flushEvents();
          });
        } else {
          log('warn', 'posting events failed; will retry', { status: res.status });
          retryEvents();
        }
      }).catch(function (err) {
        s.posting = false;
        log('warn', 'posting events failed; will retry', { error: errorMessage(err) });
        retryEvents();
      });
    }

    // ---- Omni-Channel events ------------------------------------------------------------

    function eventKey(name) {
      var n = String(name || '').replace(/^lightning:/, '').replace(/^omniChannel/, '');
      return n.charAt(0).toLowerCase() + n.slice(1);
    }

    function takeEcho(type, statusId) {
      var e = s.expect;
      if (!e || e.type !== type || now() > e.until) {
        return undefined;
      }
      if (type === 'status_changed' && !sameId(e.statusId, statusId)) {
        return undefined;
      }
      s.expect = null;
      return e.commandId;
    }

    function onOmniEvent(name, payload) {
      var type = EVENT_TYPES[eventKey(name)];
      var p = payload || {};
      if (!type || !s.running || !s.leader) {
        return null;
      }
      var ev = { type: type };
      if (type === 'status_changed' || type === 'login') {
        if (p.statusId) { ev.statusId = String(p.statusId); }
        if (p.statusApiName) { ev.statusApiName = String(p.statusApiName); }
      }
      if (type === 'status_changed') {
        if (p.reason) { ev.reason = String(p.reason); }
        var cid = takeEcho('status_changed', p.statusId);
        if (cid) { ev.commandId = cid; }
      } else if (type === 'logout') {
        var lid = takeEcho('logout');
        if (lid) { ev.commandId = lid; }
      } else if (type === 'workload_changed') {
        var pw = num(p.previousWorkload);
        var nw = num(p.newWorkload);
        var cc = num(p.configuredCapacity);
        if (pw !== undefined) { ev.previousWorkload = pw; }
        if (nw !== undefined) { ev.newWorkload = nw; }
        if (cc !== undefined) { ev.configuredCapacity = cc; }
      } else if (type === 'work_accepted') {
        if (p.channel) {
          ev.channel = String(p.channel);
        } else if (typeof opts.lookupChannel === 'function' && p.workId) {
          // The Omni payload has no channel: resolve it first; `at` is still the arrival time.
          var at = new Date(now()).toISOString();
          Promise.resolve().then(function () { return opts.lookupChannel(String(p.workId)); })
            .catch(function (err) {
              log('warn', 'service channel lookup failed', { error: errorMessage(err) });
              return null;
            })
            .then(function (ch) {
              if (!s.leader) { return; }
              var e = { type: 'work_accepted' };
              if (ch) { e.channel = String(ch); }
              record(e, at);
            });
          return null;
        }
      }
      return record(ev);
    }

    // ---- commands from the service --------------------------------------------------------

    function remember(id, result, reason) {
      s.done[id] = { result: result, reason: reason || '' };
      s.doneOrder.push(id);
      while (s.doneOrder.length > o.maxRemembered) {
        delete s.done[s.doneOrder.shift()];
      }
      save(keys.done, { order: s.doneOrder, results: s.done });
    }

    function queueAck(id, result, reason) {
      for (var i = 0; i < s.acks.length; i++) {
        if (s.acks[i].id === id) {
          return;
        }
      }
      var ack = { id: id, result: result };
      if (reason) { ack.reason = reason; }
      s.acks.push(ack);
      emitState();
      flushAcks();
    }

    function flushAcks() {
      if (!s.leader || s.acking || s.timers.ack !== undefined || s.acks.length === 0) {
        return;
      }
      var ack = s.acks[0];
      s.acking = true;
      post('/ack', ack).then(function (res) {
        s.acking = false;
        if (res.ok || (res.status >= 400 && res.status < 500 && res.status !== 401 && res.status !== 408 && res.status !== 429)) {
          if (!res.ok) {
            log('warn', 'service refused an ack; dropped', { id: ack.id, status: res.status });
          }
          s.ackAttempt = 0;
          s.acks.shift();
          emitState();
          flushAcks();
          return;
        }
        throw new Error('HTTP ' + res.status);
      }).catch(function (err) {
        s.acking = false;
        log('warn', 'ack failed; will retry', { id: ack.id, error: errorMessage(err) });
        timer('ack', backoffDelay(s.ackAttempt++, o.backoffInitialMs, o.backoffMaxMs, random), flushAcks);
      });
    }

    function onCommand(cmd) {
      if (!cmd || !cmd.id) {
        log('warn', 'command without id ignored', {});
        return;
      }
      var done = s.done[cmd.id];
      if (done) {
        // A resend after a lost ack or a reconnect: answer again, never apply twice.
        queueAck(cmd.id, done.result, done.reason);
        return;
      }
      if (s.cmdRunning === cmd.id) {
        return;
      }
      for (var i = 0; i < s.cmdQueue.length; i++) {
        if (s.cmdQueue[i].id === cmd.id) {
          return;
        }
      }
      s.cmdQueue.push(cmd);
      runCommands();
    }

    function runCommands() {
      if (s.cmdRunning || s.cmdQueue.length === 0 || !s.leader) {
        return;
      }
      var cmd = s.cmdQueue.shift();
      s.cmdRunning = cmd.id;
      applyCommand(cmd).then(function (r) {
        s.cmdRunning = null;
        remember(cmd.id, r.result, r.reason);
        log('info', 'command ' + r.result, { id: cmd.id, action: cmd.action, statusId: cmd.statusId, reason: r.reason });
        queueAck(cmd.id, r.result, r.reason);
        runCommands();
      });
    }

    function engagedWork() {
      if (typeof toolkit.getAgentWorks !== 'function') {
        return Promise.resolve([]);
      }
      return Promise.resolve().then(function () { return toolkit.getAgentWorks(); }).then(function (works) {
        return (works || []).filter(function (w) { return w && (w.isEngaged === true || w.isEngaged === 'true'); });
      }, function () { return []; });
    }

    function currentStatusId() {
      if (typeof toolkit.getServicePresenceStatusId !== 'function') {
        return Promise.resolve(null);
      }
      return Promise.resolve().then(function () { return toolkit.getServicePresenceStatusId(); }).then(function (r) {
        return r && r.statusId ? String(r.statusId) : (typeof r === 'string' ? r : null);
      }, function () { return null; });
    }

    /*
     * The deferral rule: a status change is handed to Omni-Channel as it is (Omni lets an agent
     * change status with work open; the work stays). Logging out an agent who is engaged in work
     * is not attempted. Whatever the toolkit rejects is deferred with its message, so the service
     * retries later. Only a malformed command fails.
     */
    function applyCommand(cmd) {
      var logout = cmd.action === 'logout' || (cmd.action === 'set_status' && cmd.statusId === '0');
      if (!logout && cmd.action !== 'set_status') {
        return Promise.resolve({ result: 'failed', reason: 'unknown action ' + JSON.stringify(cmd.action) });
      }
      if (!logout && !cmd.statusId) {
        return Promise.resolve({ result: 'failed', reason: 'set_status without statusId' });
      }
      if (logout) {
        return engagedWork().then(function (engaged) {
          if (engaged.length > 0) {
            return { result: 'deferred', reason: 'agent is engaged in ' + engaged.length + ' work item(s); not logging out of Omni-Channel' };
          }
          s.expect = { type: 'logout', commandId: cmd.id, until: now() + o.echoWindowMs };
          return callToolkit(cmd, function () { return toolkit.logout(); });
        });
      }
      return currentStatusId().then(function (cur) {
        if (sameId(cur, cmd.statusId)) {
          return { result: 'applied', reason: 'already in this status' };
        }
        s.expect = { type: 'status_changed', statusId: String(cmd.statusId), commandId: cmd.id, until: now() + o.echoWindowMs };
        return callToolkit(cmd, function () { return toolkit.setServicePresenceStatus(String(cmd.statusId)); });
      });
    }

    function callToolkit(cmd, fn) {
      return Promise.resolve().then(fn).then(function () {
        return { result: 'applied' };
      }, function (err) {
        if (s.expect && s.expect.commandId === cmd.id) {
          s.expect = null;
        }
        return { result: 'deferred', reason: 'Omni-Channel refused: ' + errorMessage(err) };
      });
    }

    // ---- the push channel ---------------------------------------------------------------

    function reconnectLater(gen) {
      if (gen !== s.streamGen || !s.leader) {
        return;
      }
      s.connected = false;
      emitState();
      var d = backoffDelay(s.streamAttempt++, o.backoffInitialMs, o.backoffMaxMs, random);
      log('info', 'stream closed; reconnecting', { inMs: d });
      timer('stream', d, connect);
    }

    function connect() {
      if (!s.leader || s.streamAbort || s.timers.stream !== undefined) {
        return;
      }
      var gen = ++s.streamGen;
      var ctrl = Abort ? new Abort() : { signal: undefined, abort: function () {} };
      s.streamAbort = ctrl;
      var finish = function (err) {
        cancel('idle');
        if (s.streamAbort === ctrl) {
          s.streamAbort = null;
        }
        if (err && gen === s.streamGen) {
          log('warn', 'stream error', { error: errorMessage(err) });
        }
        reconnectLater(gen);
      };
      token(false).then(function (t) {
        var extra = { Accept: 'text/event-stream', 'Cache-Control': 'no-cache' };
        if (s.lastEventId) {
          extra['Last-Event-ID'] = s.lastEventId;
        }
        return fetchFn(base + '/stream', {
          method: 'GET',
          mode: 'cors',
          credentials: 'omit',
          cache: 'no-store',
          headers: authHeaders(t, extra),
          signal: ctrl.signal
        });
      }).then(function (res) {
        if (gen !== s.streamGen) {
          ctrl.abort();
          return null;
        }
        if (res.status === 401) {
          s.token = null;
        }
        if (!res.ok || !res.body) {
          throw new Error('stream answered HTTP ' + res.status);
        }
        s.streamAttempt = 0;
        s.connected = true;
        emitState();
        log('info', 'stream open', {});
        return readStream(res.body, ctrl, gen);
      }).then(function () { finish(null); }, finish);
    }

    function readStream(body, ctrl, gen) {
      var reader = body.getReader();
      var decoder = new Decoder('utf-8');
      var parse = createSSEParser(function (ev) {
        if (gen !== s.streamGen) {
          return;
        }
        if (ev.id) {
          s.lastEventId = ev.id;
          save(keys.lastEventId, ev.id);
        }
        if (ev.event === 'command') {
          var cmd;
          try {
            cmd = JSON.parse(ev.data);
          } catch (e) {
            log('warn', 'unreadable command ignored', { id: ev.id });
            return;
          }
          if (cmd && !cmd.id && ev.id) {
            cmd.id = ev.id;
          }
          onCommand(cmd);
        }
      });
      function idle() {
        timer('idle', o.streamIdleMs, function () {
          log('warn', 'stream silent too long; reconnecting', {});
          ctrl.abort();
        });
      }
      idle();
      function step() {
        return reader.read().then(function (r) {
          if (r.done || gen !== s.streamGen) {
            return null;
          }
          idle();
          parse(decoder.decode(r.value, { stream: true }));
          return step();
        });
      }
      return step();
    }

    // ---- lifecycle -------------------------------------------------------------------------

    var bcHandler = function (e) { onBroadcast(e && e.data !== undefined ? e.data : e); };

    function start() {
      if (s.running) {
        return;
      }
      s.running = true;
      if (bc) {
        if (typeof bc.addEventListener === 'function') {
          bc.addEventListener('message', bcHandler);
        } else {
          bc.onmessage = bcHandler;
        }
      }
      emitState();
      leaseTick();
    }

    function stop() {
      if (!s.running) {
        return;
      }
      var wasLeader = s.leader;
      stepDown();
      s.running = false;
      Object.keys(s.timers).forEach(cancel);
      if (wasLeader) {
        var lease = readLease();
        if (lease && lease.owner === instanceId) {
          try {
            storage.removeItem(keys.lease);
          } catch (e) { /* nothing to release */ }
        }
        broadcastMsg('resign');
      }
      if (bc) {
        if (typeof bc.removeEventListener === 'function') {
          bc.removeEventListener('message', bcHandler);
        } else if (bc.onmessage === bcHandler) {
          bc.onmessage = null;
        }
      }
      emitState();
    }

    return {
      start: start,
      stop: stop,
      onOmniEvent: onOmniEvent,
      status: status
    };
  }

  return {
    createBridge: createBridge,
    auraToolkit: auraToolkit,
    createSSEParser: createSSEParser,
    backoffDelay: backoffDelay,
    tokenClaims: tokenClaims,
    DEFAULTS: DEFAULTS
  };
}));
