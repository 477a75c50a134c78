/*
 * omnipresence Omni-Channel bridge core.
 *
 * Framework-free: all the bridge's logic lives here, the Aura utility-bar component only forwards
 * Omni-Channel events and toolkit calls. Loaded as a static resource it defines
 * `window.OmnipresenceBridge`; under CommonJS (Node tests) it is the module's export.
 *
 * It runs under Lightning Locker and under Lightning Web Security. It needs no `globalThis` and
 * no top-level `this` (Locker evaluates it in strict mode with neither), and detects what the
 * page offers, with a fallback for each: Web Locks (else a lease in localStorage),
 * BroadcastChannel (else localStorage's storage event), AbortController (else cancelling the
 * body's reader), TextDecoder and atob (else its own UTF-8 and base64url decoding), and
 * crypto.randomUUID (else Math.random).
 *
 * Wire contract: POST {serviceUrl}/api/v1/bridge/events, GET {serviceUrl}/api/v1/bridge/stream
 * (Server-Sent Events read over fetch, because EventSource cannot send an Authorization header),
 * POST {serviceUrl}/api/v1/bridge/ack, POST {serviceUrl}/api/v1/bridge/heartbeat; every request
 * carries `Authorization: Bearer <token>`.
 */
(function (factory) {
  'use strict';
  var api = factory();
  if (typeof module === 'object' && module && module.exports) {
    module.exports = api;
    return;
  }
  // Locker hands a static resource a SecureWindow as `window`; Lightning Web Security a
  // sandboxed window; a plain page its window. Components of the namespace see what is set here.
  var root = typeof window !== 'undefined' ? window : (typeof self !== 'undefined' ? self : null);
  if (!root && typeof globalThis !== 'undefined') {
    root = globalThis;
  }
  if (!root) {
    throw new Error('omnipresence bridge: no window to attach OmnipresenceBridge to');
  }
  root.OmnipresenceBridge = api;
}(function () {
  'use strict';

  var DEFAULTS = {
    leaseMs: 5000,            // lease of a visible leader that stops renewing (or its Web Lock record)
    hiddenLeaseMs: 150000,    // the same for a hidden leader: Chrome runs a hidden tab's timers once a minute
    renewMs: 1500,            // lease renewal (leader) and lease check (standby) period
    confirmMs: 250,           // wait after writing a lease before trusting it (storage has no CAS)
    backoffInitialMs: 1000,
    backoffMaxMs: 30000,
    streamIdleMs: 45000,      // the service sends a heartbeat comment every 15 s
    heartbeatMs: 30000,       // the bridge calls the service at least this often
    tokenRefreshLeadMs: 60000,
    echoWindowMs: 15000,      // how long a command's status change is awaited for tagging
    standbyHoldMs: 2000,      // a standby's copy of an Omni event waits this long for the leader's own
    dedupeWindowMs: 10000,    // copies of one Omni event seen by several tabs arrive within this
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

  // Omni-Channel reasons that name someone other than the toolkit: never a command's echo.
  var NOT_OURS = {
    OmniManualStatusChange: true,
    OmniSupervisorStatusChange: true,
    OmniPushTimeout: true,
    OmniDeclineWork: true
  };

  // Logout reasons meaning the agent's Omni-Channel session moved to another browser or tab.
  var SESSION_MOVED = { DuplicateLogin: true, DuplicateLoginInSameBrowser: true };

  // Keys of versions before storage was scoped per org and user; whose they were is unknown.
  var LEGACY_KEYS = ['leader', 'outbox', 'commands', 'lastEventId'];

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

  /**
   * createUTF8Decoder returns a streaming UTF-8 decoder with TextDecoder's decode(bytes,
   * {stream}) shape, for pages that do not offer TextDecoder. Malformed bytes become U+FFFD.
   */
  function createUTF8Decoder() {
    var pending = [];
    return {
      decode: function (bytes, o) {
        var b = pending.concat(Array.prototype.slice.call(bytes || []));
        pending = [];
        var out = '';
        var i = 0;
        while (i < b.length) {
          var c = b[i];
          var n = c < 0x80 ? 0 : (c & 0xE0) === 0xC0 ? 1 : (c & 0xF0) === 0xE0 ? 2 : (c & 0xF8) === 0xF0 ? 3 : -1;
          if (n < 0) {
            out += '\uFFFD';
            i++;
            continue;
          }
          if (i + n >= b.length && n > 0 && o && o.stream) {
            pending = b.slice(i);
            break;
          }
          var cp = n === 0 ? c : c & (0x3F >> n);
          var ok = true;
          for (var k = 1; k <= n; k++) {
            var cc = b[i + k];
            if (cc === undefined || (cc & 0xC0) !== 0x80) {
              ok = false;
              break;
            }
            cp = (cp << 6) | (cc & 0x3F);
          }
          if (!ok) {
            out += '\uFFFD';
            i++;
            continue;
          }
          i += n + 1;
          if (cp > 0xFFFF) {
            cp -= 0x10000;
            out += String.fromCharCode(0xD800 + (cp >> 10), 0xDC00 + (cp & 0x3FF));
          } else {
            out += String.fromCharCode(cp);
          }
        }
        return out;
      }
    };
  }

  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  /** base64UrlBytes decodes base64url (with or without padding, or standard base64) to bytes. */
  function base64UrlBytes(s) {
    s = String(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    var out = [];
    var bits = 0;
    var acc = 0;
    for (var i = 0; i < s.length; i++) {
      var v = B64.indexOf(s.charAt(i));
      if (v < 0) {
        throw new Error('not base64url');
      }
      acc = (acc << 6) | v;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        out.push((acc >> bits) & 0xFF);
      }
    }
    return out;
  }

  /**
   * tokenClaims returns the JSON claims of a bridge token (a compact JWS: header.claims.sig),
   * or null. The bridge reads exp and iat to refresh in time, and sub to check the user.
   */
  function tokenClaims(token) {
    try {
      var parts = String(token).split('.');
      if (parts.length !== 3) {
        return null;
      }
      var c = JSON.parse(createUTF8Decoder().decode(base64UrlBytes(parts[1])));
      return typeof c === 'object' && c ? c : null;
    } catch (e) {
      return null;
    }
  }

  /** id15 returns the 15-character form of a Salesforce id (what the Omni toolkit takes). */
  function id15(id) {
    var s = String(id || '');
    return s.length === 18 ? s.slice(0, 15) : s;
  }

  function sameId(a, b) {
    // Salesforce ids compare equal in their 15- and 18-character forms.
    return !!a && !!b && id15(a) === id15(b);
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
    try {
      if (typeof crypto !== 'undefined' && crypto && typeof crypto.randomUUID === 'function') {
        return crypto.randomUUID();
      }
    } catch (e) { /* a wrapped crypto may refuse; fall back */ }
    return 'xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx'.replace(/[xy]/g, function (c) {
      var r = Math.random() * 16 | 0;
      return (c === 'x' ? r : (r & 3 | 8)).toString(16);
    });
  }

  /**
   * worksOf reads getAgentWorks' answer in either shape Salesforce has used: {works: "<JSON
   * array>"}, {works: [...]}, or a bare array.
   */
  function worksOf(r) {
    var w = r;
    if (r && !Array.isArray(r) && r.works !== undefined) {
      w = r.works;
    }
    if (typeof w === 'string') {
      try {
        w = JSON.parse(w);
      } catch (e) {
        return [];
      }
    }
    return Array.isArray(w) ? w : [];
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
        return call(function () { return omniApi.setServicePresenceStatus({ statusId: id15(statusId) }); });
      },
      logout: function () {
        return call(function () { return omniApi.logout(); });
      },
      getServicePresenceStatusId: function () {
        return call(function () { return omniApi.getServicePresenceStatusId(); });
      },
      getAgentWorks: function () {
        return call(function () { return omniApi.getAgentWorks(); }).then(worksOf);
      }
    };
  }

  /**
   * storageChannel is a BroadcastChannel stand-in over localStorage: a message is written to a
   * key, and the other tabs of the origin get a storage event for it.
   */
  function storageChannel(storage, win, key) {
    var handlers = [];
    function onStorage(e) {
      // Locker's storage prefixes keys with the namespace: match the end.
      var k = e && e.key ? String(e.key) : '';
      if (k.slice(-key.length) !== key || !e.newValue) {
        return;
      }
      var m;
      try {
        m = JSON.parse(e.newValue);
      } catch (x) {
        return;
      }
      handlers.slice().forEach(function (fn) { fn({ data: m.d }); });
    }
    return {
      postMessage: function (data) {
        try {
          storage.setItem(key, JSON.stringify({ n: randomId(), d: data }));
        } catch (e) { /* full storage: the lease still works */ }
      },
      addEventListener: function (type, fn) {
        if (type !== 'message') {
          return;
        }
        if (handlers.length === 0) {
          win.addEventListener('storage', onStorage);
        }
        handlers.push(fn);
      },
      removeEventListener: function (type, fn) {
        handlers = handlers.filter(function (h) { return h !== fn; });
        if (handlers.length === 0) {
          win.removeEventListener('storage', onStorage);
        }
      },
      close: function () {
        handlers = [];
        win.removeEventListener('storage', onStorage);
      }
    };
  }

  /**
   * describeState is a short line for a wrapper's panel: connected, connecting, standing by,
   * or the problem that keeps the bridge from working.
   */
  function describeState(st) {
    if (!st || !st.running) {
      return 'stopped';
    }
    if (st.problem) {
      return st.problem;
    }
    if (st.yielded) {
      return 'standing by (Omni-Channel moved to another window)';
    }
    if (!st.leader) {
      return 'standing by (another tab carries the bridge)';
    }
    return st.connected ? 'connected' : 'connecting';
  }

  /**
   * createBridge builds one tab's bridge. Options:
   *   serviceUrl     base URL of the omnipresence service (no trailing /api/...)
   *   orgId, userId  the Salesforce org and user the console runs for; storage keys, channel
   *                  and lock names carry them, so users sharing a browser never share state
   *   getToken       async () => token (the Apex controller's; it must name userId)
   *   toolkit        {setServicePresenceStatus(statusId), logout(), getServicePresenceStatusId()?,
   *                   getAgentWorks()? => [{workId, isEngaged}]}, each returning a Promise
   *   lookupChannel  optional async (workId) => service channel DeveloperName
   *   storage        localStorage-like {getItem, setItem, removeItem} shared by the agent's tabs
   *   broadcast      optional BroadcastChannel-like {postMessage, addEventListener|onmessage};
   *                  default: a BroadcastChannel when the page has one, else storage events
   *   locks          optional Web Locks (navigator.locks); default: the page's, else a lease
   *   window, document   default: the globals (lifecycle events, visibility, storage events)
   *   fetch, AbortController, TextDecoder, BroadcastChannel   default: the globals
   *   now, setTimeout, clearTimeout, random, newId   default: the globals
   *   log            optional (level, message, detail) => void; secrets are never passed to it
   *   onState        optional (status) => void, called whenever status() changes
   * plus any DEFAULTS key to tune timings.
   */
  function createBridge(opts) {
    if (!opts || !opts.serviceUrl || typeof opts.getToken !== 'function' || !opts.toolkit || !opts.storage ||
        !opts.orgId || !opts.userId) {
      throw new Error('createBridge needs serviceUrl, orgId, userId, getToken, toolkit and storage');
    }
    var o = {};
    Object.keys(DEFAULTS).forEach(function (k) {
      o[k] = opts[k] !== undefined ? opts[k] : DEFAULTS[k];
    });
    var base = String(opts.serviceUrl).replace(/\/+$/, '') + '/api/v1/bridge';
    var fetchFn = opts.fetch || (typeof fetch === 'function' ? function (u, i) { return fetch(u, i); } : null);
    var Abort = opts.AbortController !== undefined ? opts.AbortController
      : (typeof AbortController === 'function' ? AbortController : null);
    var Decoder = opts.TextDecoder !== undefined ? opts.TextDecoder
      : (typeof TextDecoder === 'function' ? TextDecoder : null);
    var BC = opts.BroadcastChannel !== undefined ? opts.BroadcastChannel
      : (typeof BroadcastChannel === 'function' ? BroadcastChannel : null);
    var win = opts.window !== undefined ? opts.window : (typeof window !== 'undefined' ? window : null);
    var doc = opts.document !== undefined ? opts.document : (typeof document !== 'undefined' ? document : null);
    var locks = opts.locks !== undefined ? opts.locks
      : (typeof navigator !== 'undefined' && navigator && navigator.locks && typeof navigator.locks.request === 'function' ? navigator.locks : null);
    var now = opts.now || function () { return Date.now(); };
    var setT = opts.setTimeout || function (fn, ms) { return setTimeout(fn, ms); };
    var clearT = opts.clearTimeout || function (h) { clearTimeout(h); };
    var random = opts.random || Math.random;
    var newId = opts.newId || randomId;
    var log = opts.log || function () {};
    var toolkit = opts.toolkit;
    var storage = opts.storage;
    var userId = id15(opts.userId);
    var scope = o.keyPrefix + '.' + id15(opts.orgId) + '.' + userId;
    var keys = {
      lease: scope + '.leader',
      outbox: scope + '.outbox',
      recent: scope + '.recent',
      done: scope + '.commands',
      lastEventId: scope + '.lastEventId',
      message: scope + '.message'
    };
    var bc = null;
    var instanceId = newId();

    // openChannel returns the channel to the user's other tabs: the one given, else a
    // BroadcastChannel named for the user, else storage events; null when none works.
    function openChannel() {
      if (opts.broadcast) {
        return opts.broadcast;
      }
      if (BC) {
        try {
          return new BC(scope);
        } catch (e) { /* refused: fall back */ }
      }
      if (win && typeof win.addEventListener === 'function') {
        return storageChannel(storage, win, keys.message);
      }
      return null;
    }

    var s = {
      running: false,
      leader: false,
      connected: false,
      yielded: false,
      timers: {},
      splitLeft: 0,
      posting: false,
      postAttempt: 0,
      acks: [],
      acking: false,
      ackAttempt: 0,
      cmdQueue: [],
      cmdRunning: null,
      expect: null,
      stream: null,
      streamAttempt: 0,
      streamGen: 0,
      token: null,
      tokenRefreshAt: 0,
      tokenPromise: null,
      lastEventId: null,
      lastState: '',
      problem: '',
      lockGen: 0,
      lockPending: 0,
      lockHeld: 0,
      lockAbort: null,
      stealing: 0,
      release: null
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

    function hidden() {
      try {
        return !!doc && doc.visibilityState === 'hidden';
      } catch (e) {
        return false;
      }
    }

    // withLock runs fn alone among this user's tabs when the page has Web Locks (else at once)
    // and returns its result as a Promise.
    function withLock(name, fn) {
      if (!locks) {
        return Promise.resolve().then(fn);
      }
      return Promise.resolve(locks.request(name, function () { return fn(); }));
    }

    function outbox() {
      var ob = load(keys.outbox, []);
      return Array.isArray(ob) ? ob : [];
    }

    function status() {
      return {
        instanceId: instanceId,
        running: s.running,
        leader: s.leader,
        connected: s.connected,
        yielded: s.yielded,
        pendingEvents: outbox().length,
        pendingAcks: s.acks.length,
        problem: s.problem,
        leadership: locks ? 'web-locks' : 'lease'
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

    function setProblem(p) {
      if (s.problem !== p) {
        s.problem = p;
        if (p) {
          log('warn', p, {});
        }
        emitState();
      }
    }

    // ---- token -----------------------------------------------------------------------

    function token(force) {
      if (!force && s.token && now() < s.tokenRefreshAt) {
        return Promise.resolve(s.token);
      }
      if (!s.tokenPromise) {
        s.tokenPromise = Promise.resolve().then(function () { return opts.getToken(); }).then(function (t) {
          if (typeof t !== 'string' || !t) {
            throw new Error('getToken returned no token');
          }
          var c = tokenClaims(t);
          if (c && c.sub && !sameId(c.sub, userId)) {
            throw new Error('the token names another user than this console\'s');
          }
          var t0 = now();
          var refreshAt = t0 + 4 * 60 * 1000;
          if (c && typeof c.exp === 'number') {
            var exp = c.exp * 1000;
            var life = typeof c.iat === 'number' ? (c.exp - c.iat) * 1000 : exp - t0;
            refreshAt = exp - Math.min(o.tokenRefreshLeadMs, Math.max(0, life) / 4);
          }
          s.tokenPromise = null;
          s.token = t;
          s.tokenRefreshAt = Math.max(refreshAt, t0 + 1000);
          if (/^cannot get a token/.test(s.problem)) {
            setProblem('');
          }
          scheduleTokenRefresh();
          return t;
        }).catch(function (err) {
          s.tokenPromise = null;
          setProblem('cannot get a token: ' + errorMessage(err));
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

    // noteAnswer records what a service answer says about the bridge's health.
    function noteAnswer(res) {
      if (res.status === 401) {
        s.token = null;
        setProblem('the service refused the token (HTTP 401): check the bridge certificate');
      } else if (res.status >= 500) {
        setProblem('cannot reach the service: HTTP ' + res.status);
      } else if (/^(cannot reach|the service refused)/.test(s.problem)) {
        setProblem('');
      }
      return res;
    }

    function noteFailure(err) {
      if (!/^cannot get a token/.test(s.problem)) {
        setProblem('cannot reach the service: ' + errorMessage(err));
      }
    }

    function post(path, body) {
      return token(false).then(function (t) {
        return fetchFn(base + path, {
          method: 'POST',
          mode: 'cors',
          credentials: 'omit',
          headers: authHeaders(t, { 'Content-Type': 'application/json' }),
          body: JSON.stringify(body === undefined ? {} : body)
        }).then(noteAnswer, function (err) {
          noteFailure(err);
          throw err;
        });
      });
    }

    // ---- leadership -------------------------------------------------------------------
    //
    // One tab per user carries the bridge. With Web Locks the leader holds a lock, which the
    // browser releases when the tab goes, and keeps a record {owner, until} in storage; a
    // standby steals the lock when the record runs out (the leader is frozen or hung). Without
    // Web Locks the record is a lease. The record's life is short while the leader is visible
    // and long while it is hidden, since Chrome then runs its timers only once a minute. A
    // leader that freezes hands over first; one that finds the record no longer its own stops
    // at once; a command is applied only by the tab the record names.

    function readLease() {
      return load(keys.lease, null);
    }

    function writeLease() {
      var t = now();
      save(keys.lease, { owner: instanceId, at: t, until: t + (hidden() ? o.hiddenLeaseMs : o.leaseMs) });
    }

    // fenced reports whether this tab may act as the leader now.
    function fenced() {
      var l = readLease();
      return s.leader && !!l && l.owner === instanceId;
    }

    function leaseTick() {
      if (!s.running) {
        return;
      }
      var lease = readLease();
      var t = now();
      if (s.leader) {
        if (lease && lease.owner !== instanceId) {
          log('info', 'another tab took the lead; standing by', {});
          stepDown();
        } else {
          writeLease();
          flushEvents();
        }
      } else if (!s.yielded) {
        var lapsed = !lease || !(lease.until > t);
        if (locks) {
          if (lease && lease.owner !== instanceId && lapsed) {
            if (!s.stealing) {
              log('info', 'the leading tab stopped renewing; taking over', {});
              requestLock(true);
            }
          } else if (!s.lockPending) {
            requestLock(false);
          }
        } else if (lapsed || lease.owner === instanceId) {
          writeLease();
          timer('confirm', o.confirmMs, function () {
            var l = readLease();
            if (s.running && !s.leader && !s.yielded && l && l.owner === instanceId) {
              becomeLeader();
            }
          });
        }
      }
      timer('lease', o.renewMs, leaseTick);
    }

    // requestLock asks for the leader lock: waiting for it (or, without AbortController to
    // cancel a wait, trying once), or stealing it from a leader that stopped renewing.
    function requestLock(steal) {
      var gen = ++s.lockGen;
      var lo = {};
      if (steal) {
        lo.steal = true;
        s.stealing = gen;
      } else if (Abort) {
        s.lockAbort = new Abort();
        lo.signal = s.lockAbort.signal;
      } else {
        lo.ifAvailable = true;
      }
      if (!steal) {
        s.lockPending = gen;
      }
      var p;
      try {
        p = locks.request(keys.lease, lo, function (lock) {
          if (s.lockPending === gen) {
            s.lockPending = 0;
          }
          if (s.stealing === gen) {
            s.stealing = 0;
          }
          if (!lock || !s.running || s.yielded || gen !== s.lockGen) {
            return null;
          }
          return new Promise(function (release) {
            s.lockHeld = gen;
            s.release = release;
            writeLease();
            becomeLeader();
          });
        });
      } catch (e) {
        s.lockPending = 0;
        log('warn', 'Web Locks refused the request', { error: errorMessage(e) });
        return;
      }
      Promise.resolve(p).then(function () {
        lockEnded(gen, null);
      }, function (err) {
        lockEnded(gen, err);
      });
    }

    function lockEnded(gen, err) {
      if (s.lockPending === gen) {
        s.lockPending = 0;
      }
      if (s.stealing === gen) {
        s.stealing = 0;
      }
      if (s.lockHeld !== gen) {
        return;
      }
      s.lockHeld = 0;
      s.release = null;
      if (err && s.leader) {
        log('info', 'another tab took the lead; standing by', {});
        stepDown();
        emitState();
      }
      if (s.running && !s.yielded) {
        timer('lease', 0, leaseTick);
      }
    }

    function releaseLock() {
      if (s.lockAbort) {
        try {
          s.lockAbort.abort();
        } catch (e) { /* already settled */ }
        s.lockAbort = null;
      }
      s.lockGen++;
      if (s.release) {
        var r = s.release;
        s.release = null;
        s.lockHeld = 0;
        r();
      }
    }

    function onBroadcast(msg) {
      if (!s.running || !msg || msg.from === instanceId) {
        return;
      }
      if (msg.type === 'resign' && !s.leader) {
        // The leader left: check soon, at a random offset so standbys do not collide.
        timer('lease', Math.round(random() * o.confirmMs), leaseTick);
      } else if (msg.type === 'leader' && s.leader) {
        timer('lease', 0, leaseTick);
      } else if (msg.type === 'outbox' && s.leader) {
        flushEvents();
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
      beat();
    }

    function stepDown() {
      s.leader = false;
      s.connected = false;
      s.streamGen++;
      abortStream();
      ['token', 'stream', 'post', 'ack', 'idle', 'beat', 'hold'].forEach(cancel);
      emitState();
    }

    // resign hands the lead over: this tab stops, says so, and lets the lock or lease go.
    function resign() {
      var was = s.leader;
      stepDown();
      if (was) {
        var lease = readLease();
        if (lease && lease.owner === instanceId) {
          try {
            storage.removeItem(keys.lease);
          } catch (e) { /* nothing to release */ }
        }
      }
      releaseLock();
      if (was) {
        broadcastMsg('resign');
      }
    }

    // ---- events to the service -----------------------------------------------------------

    function eventKey(ev, extra) {
      switch (ev.type) {
        case 'status_changed':
          return 'sc|' + id15(ev.statusId) + '|' + (ev.reason || '');
        case 'login':
          return 'li|' + id15(ev.statusId);
        case 'logout':
          return 'lo|' + (ev.reason || '');
        case 'workload_changed':
          return 'wl|' + ev.previousWorkload + '|' + ev.newWorkload + '|' + ev.configuredCapacity;
        default:
          return 'wa|' + (extra || ev.id);
      }
    }

    // record puts an event in the shared outbox. Omni-Channel may announce one change in
    // every tab of the agent; each tab records its copy, and a copy matching one another tab
    // recorded moments before is dropped, except that the leader's copy (which knows the
    // command it applied) replaces a standby's that has not gone out. A standby's copy waits a
    // little before it may go, for the leader's to arrive.
    function record(ev, at, extra) {
      ev.id = newId();
      ev.at = at || new Date(now()).toISOString();
      var leading = s.leader;
      var key = eventKey(ev, extra);
      var t = now();
      withLock(keys.outbox, function () {
        var ob = outbox();
        var recent = load(keys.recent, []);
        recent = (Array.isArray(recent) ? recent : []).filter(function (r) { return t - r.t < o.dedupeWindowMs; });
        var twin = null;
        for (var i = 0; i < recent.length && !twin; i++) {
          var r = recent[i];
          if (r.k === key && r.tab !== instanceId && (r.m || []).indexOf(instanceId) < 0) {
            twin = r;
          }
        }
        var added = true;
        if (twin) {
          twin.m = (twin.m || []).concat([instanceId]);
          var qi = -1;
          for (var j = 0; j < ob.length; j++) {
            if (ob[j].id === twin.id) {
              qi = j;
            }
          }
          if (leading && qi >= 0 && ob[qi].hold) {
            ob[qi] = ev;
            twin.id = ev.id;
          } else if (leading && ev.commandId && qi < 0) {
            // The standby's copy went out without the command's mark: this one carries it.
            ob.push(ev);
          } else {
            added = false;
          }
        } else {
          if (!leading) {
            ev.hold = t + o.standbyHoldMs;
          }
          ob.push(ev);
          recent.push({ k: key, t: t, id: ev.id, tab: instanceId });
        }
        if (ob.length > o.maxOutbox) {
          var dropped = ob.splice(0, ob.length - o.maxOutbox);
          log('error', 'event outbox full; oldest events dropped', { dropped: dropped.length });
        }
        save(keys.outbox, ob);
        save(keys.recent, recent);
        return added;
      }).then(function (added) {
        if (!added) {
          return;
        }
        emitState();
        if (s.leader) {
          flushEvents();
        } else {
          broadcastMsg('outbox');
        }
      }, function (err) {
        log('error', 'recording an event failed', { error: errorMessage(err) });
      });
      return ev;
    }

    function removeEvents(ids) {
      var gone = {};
      ids.forEach(function (id) { gone[id] = true; });
      return withLock(keys.outbox, function () {
        save(keys.outbox, outbox().filter(function (e) { return !gone[e.id]; }));
      });
    }

    function retryEvents() {
      var d = backoffDelay(s.postAttempt++, o.backoffInitialMs, o.backoffMaxMs, random);
      timer('post', d, flushEvents);
    }

    function flushEvents() {
      if (!s.leader || s.posting || s.timers.post !== undefined) {
        return;
      }
      var ob = outbox();
      var t = now();
      var batch = [];
      for (var i = 0; i < ob.length && batch.length < (s.splitLeft > 0 ? 1 : o.batchSize); i++) {
        if (ob[i].hold && ob[i].hold > t) {
          // A standby's copy waits for the leader's own; later events wait behind it, in order.
          timer('hold', ob[i].hold - t, flushEvents);
          break;
        }
        batch.push(ob[i]);
      }
      if (batch.length === 0) {
        return;
      }
      var ids = batch.map(function (e) { return e.id; });
      var wire = batch.map(function (e) {
        var c = {};
        Object.keys(e).forEach(function (k) {
          if (k !== 'hold') {
            c[k] = e[k];
          }
        });
        return c;
      });
      s.posting = true;
      post('/events', { events: wire }).then(function (res) {
        if (res.ok) {
          s.postAttempt = 0;
          s.splitLeft = Math.max(0, s.splitLeft - batch.length);
          return removeEvents(ids).then(function () {
            s.posting = false;
            emitState();
            flushEvents();
          });
        }
        if ((res.status === 400 || res.status === 413) && batch.length > 1) {
          // One bad event must not hold back the others: send this batch one by one.
          s.posting = false;
          s.splitLeft = batch.length;
          flushEvents();
          return null;
        }
        if (res.status === 400 || res.status === 413) {
          s.splitLeft = Math.max(0, s.splitLeft - 1);
          return res.text().then(function (body) {
            log('error', 'service rejected an event; dropped', { event: wire[0], response: body });
            return removeEvents(ids);
          }).then(function () {
            s.posting = false;
            emitState();
            flushEvents();
          });
        }
        s.posting = false;
        log('warn', 'posting events failed; will retry', { status: res.status });
        retryEvents();
        return null;
      }).catch(function (err) {
        s.posting = false;
        log('warn', 'posting events failed; will retry', { error: errorMessage(err) });
        retryEvents();
      });
    }

    // beat tells the service the console is still there when nothing else has.
    function beat() {
      timer('beat', o.heartbeatMs, function () {
        if (!s.leader) {
          return;
        }
        post('/heartbeat').then(function () {}, function (err) {
          log('warn', 'heartbeat failed', { error: errorMessage(err) });
        });
        beat();
      });
    }

    // ---- Omni-Channel events ------------------------------------------------------------

    function omniKey(name) {
      var n = String(name || '').replace(/^lightning:/, '').replace(/^omniChannel/, '');
      return n.charAt(0).toLowerCase() + n.slice(1);
    }

    function takeEcho(type, statusId, reason) {
      var e = s.expect;
      if (!e || e.type !== type || now() > e.until || !s.leader) {
        return undefined;
      }
      if (type === 'status_changed' && (!sameId(e.statusId, statusId) || NOT_OURS[reason])) {
        return undefined;
      }
      if (type === 'logout' && reason) {
        // A supervisor's, Salesforce's or another session's logout is not ours.
        return undefined;
      }
      s.expect = null;
      return e.commandId;
    }

    function onOmniEvent(name, payload) {
      var type = EVENT_TYPES[omniKey(name)];
      var p = payload || {};
      if (!type || !s.running) {
        return null;
      }
      var ev = { type: type };
      if (type === 'status_changed' || type === 'login') {
        if (p.statusId) { ev.statusId = String(p.statusId); }
        if (p.statusApiName) { ev.statusApiName = String(p.statusApiName); }
      }
      if (type === 'status_changed') {
        if (p.reason) { ev.reason = String(p.reason); }
        var cid = takeEcho('status_changed', p.statusId, ev.reason);
        if (cid) { ev.commandId = cid; }
      } else if (type === 'logout') {
        if (p.reason) { ev.reason = String(p.reason); }
        var lid = takeEcho('logout', null, ev.reason);
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
              if (!s.running) { return; }
              var e = { type: 'work_accepted' };
              if (ch) { e.channel = String(ch); }
              record(e, at, String(p.workId));
            });
          return null;
        }
      }
      var recorded = record(ev, null, p.workId ? String(p.workId) : null);
      if (type === 'logout' && SESSION_MOVED[ev.reason]) {
        // Omni-Channel moved to another browser or tab: this tab must not log the agent back in
        // here by applying a command. It stands aside until Omni logs in here again.
        log('info', 'Omni-Channel moved to another window (' + ev.reason + '); standing aside', {});
        s.yielded = true;
        resign();
        emitState();
      } else if (s.yielded && (type === 'login' || type === 'status_changed')) {
        s.yielded = false;
        emitState();
        timer('lease', 0, leaseTick);
      }
      return recorded;
    }

    // ---- commands from the service --------------------------------------------------------

    function doneCommands() {
      var d = load(keys.done, null);
      return d && d.results && Array.isArray(d.order) ? d : { order: [], results: {} };
    }

    function remember(id, result, reason) {
      var d = doneCommands();
      d.results[id] = { result: result, reason: reason || '' };
      d.order.push(id);
      while (d.order.length > o.maxRemembered) {
        delete d.results[d.order.shift()];
      }
      save(keys.done, d);
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
      if (!fenced()) {
        // The lease names another tab (this one was frozen or cut off): it applies nothing.
        log('info', 'a command reached a tab that no longer leads; standing by', { id: cmd.id });
        stepDown();
        return;
      }
      var done = doneCommands().results[cmd.id];
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
      if (!fenced() || doneCommands().results[cmd.id]) {
        runCommands();
        return;
      }
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
        return worksOf(works).filter(function (w) { return w && (w.isEngaged === true || w.isEngaged === 'true'); });
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
      var statusId = id15(cmd.statusId);
      return currentStatusId().then(function (cur) {
        if (sameId(cur, statusId)) {
          return { result: 'applied', reason: 'already in this status' };
        }
        s.expect = { type: 'status_changed', statusId: statusId, commandId: cmd.id, until: now() + o.echoWindowMs };
        return callToolkit(cmd, function () { return toolkit.setServicePresenceStatus(statusId); });
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

    // abortStream ends the open stream at once: with AbortController when the page has it,
    // and by cancelling the body's reader, which also ends the request, when it does not.
    function abortStream() {
      var st = s.stream;
      s.stream = null;
      if (!st) {
        return;
      }
      if (st.ctrl) {
        try {
          st.ctrl.abort();
        } catch (e) { /* already done */ }
      }
      if (st.reader) {
        try {
          Promise.resolve(st.reader.cancel()).catch(function () {});
        } catch (e) { /* already done */ }
      }
    }

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
      if (!s.leader || s.stream || s.timers.stream !== undefined) {
        return;
      }
      var gen = ++s.streamGen;
      var st = { ctrl: null, reader: null };
      if (Abort) {
        try {
          st.ctrl = new Abort();
        } catch (e) {
          st.ctrl = null;
        }
      }
      s.stream = st;
      var finish = function (err) {
        cancel('idle');
        if (s.stream === st) {
          s.stream = null;
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
        var init = {
          method: 'GET',
          mode: 'cors',
          credentials: 'omit',
          cache: 'no-store',
          headers: authHeaders(t, extra)
        };
        if (st.ctrl) {
          init.signal = st.ctrl.signal;
        }
        return fetchFn(base + '/stream', init).then(noteAnswer, function (err) {
          noteFailure(err);
          throw err;
        });
      }).then(function (res) {
        if (gen !== s.streamGen || s.stream !== st) {
          if (res && res.body && typeof res.body.cancel === 'function') {
            Promise.resolve(res.body.cancel()).catch(function () {});
          }
          return null;
        }
        if (!res.ok || !res.body || typeof res.body.getReader !== 'function') {
          throw new Error('stream answered HTTP ' + res.status);
        }
        s.streamAttempt = 0;
        s.connected = true;
        emitState();
        log('info', 'stream open', {});
        return readStream(res.body, st, gen);
      }).then(function () { finish(null); }, finish);
    }

    function readStream(body, st, gen) {
      var reader = body.getReader();
      st.reader = reader;
      if (s.stream !== st) {
        // Stepped down while the answer came.
        Promise.resolve(reader.cancel()).catch(function () {});
        return Promise.resolve();
      }
      var decoder = Decoder ? new Decoder('utf-8') : createUTF8Decoder();
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
          if (s.stream === st) {
            abortStream();
          }
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
    var onVisibility = function () {
      if (!s.running) {
        return;
      }
      if (s.leader) {
        // The lease's life follows visibility.
        writeLease();
      } else {
        timer('lease', 0, leaseTick);
      }
    };
    var onFreeze = function () {
      // Chrome freezes this page: hand the lead over now rather than hold it while frozen.
      if (s.running && s.leader) {
        log('info', 'page frozen; handing the lead over', {});
        resign();
      }
    };
    var onResume = function () {
      if (s.running) {
        timer('lease', 0, leaseTick);
      }
    };
    var onPageHide = function () { stop(); };

    function listen(target, name, fn, add) {
      if (target && typeof target.addEventListener === 'function') {
        try {
          if (add) {
            target.addEventListener(name, fn);
          } else {
            target.removeEventListener(name, fn);
          }
        } catch (e) { /* a wrapped target may refuse an event name */ }
      }
    }

    function lifecycle(add) {
      listen(doc, 'visibilitychange', onVisibility, add);
      listen(doc, 'freeze', onFreeze, add);
      listen(doc, 'resume', onResume, add);
      listen(win, 'pagehide', onPageHide, add);
    }

    // dropLegacy removes what versions before per-user storage left: whose it was is unknown,
    // so it must not be sent under this user's token.
    function dropLegacy() {
      var old = [];
      try {
        old = JSON.parse(storage.getItem(o.keyPrefix + '.outbox') || '[]');
      } catch (e) { /* unreadable: dropped all the same */ }
      LEGACY_KEYS.forEach(function (k) {
        try {
          storage.removeItem(o.keyPrefix + '.' + k);
        } catch (e) { /* nothing to drop */ }
      });
      if (Array.isArray(old) && old.length > 0) {
        log('warn', 'dropped events an earlier version left unsent, because whose they were is unknown', { dropped: old.length });
      }
    }

    function start() {
      if (s.running) {
        return;
      }
      s.running = true;
      dropLegacy();
      bc = openChannel();
      if (bc) {
        if (typeof bc.addEventListener === 'function') {
          bc.addEventListener('message', bcHandler);
        } else {
          bc.onmessage = bcHandler;
        }
      }
      lifecycle(true);
      emitState();
      leaseTick();
    }

    function stop() {
      if (!s.running) {
        return;
      }
      resign();
      s.running = false;
      Object.keys(s.timers).forEach(cancel);
      lifecycle(false);
      if (bc) {
        if (typeof bc.removeEventListener === 'function') {
          bc.removeEventListener('message', bcHandler);
        } else if (bc.onmessage === bcHandler) {
          bc.onmessage = null;
        }
        if (bc !== opts.broadcast && typeof bc.close === 'function') {
          try {
            bc.close();
          } catch (e) { /* closed */ }
        }
        bc = null;
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
    createUTF8Decoder: createUTF8Decoder,
    backoffDelay: backoffDelay,
    tokenClaims: tokenClaims,
    describeState: describeState,
    worksOf: worksOf,
    DEFAULTS: DEFAULTS
  };
}));
