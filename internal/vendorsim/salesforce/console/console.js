// The simulated Lightning console of one Salesforce user: an Omni-Channel widget, and the Omni
// toolkit API and Omni events as the Lightning console offers them to utility-bar components
// (lightning:omniToolkitAPI methods returning Promises; lightning:omniChannel* events with their
// documented payloads). Every change, made here or elsewhere, is read back from the org and
// announced as the console would announce it.
(function () {
  'use strict';
  var script = document.currentScript;
  var user = script.getAttribute('data-user');
  var base = '/console/' + encodeURIComponent(user);
  var state = null;
  var handlers = {};
  // The reasons omniChannelLogout carries; an agent's own logout carries none.
  var logoutReasons = { DuplicateLogin: 1, DuplicateLoginInSameBrowser: 1, MaintenanceLogout: 1, OmniSupervisorLogout: 1 };

  function emit(name, payload) {
    (handlers[name] || []).slice().forEach(function (fn) {
      try { fn(payload); } catch (e) { console.error(name, e); }
    });
  }

  function api(method, path, body) {
    return fetch(base + path, {
      method: method,
      headers: body ? { 'Content-Type': 'application/json' } : {},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (res) {
      if (!res.ok) return res.text().then(function (t) { throw new Error(t.trim() || res.statusText); });
      return res.status === 204 ? null : res.json();
    });
  }

  function statusPayload(s) {
    return { statusId: s.statusId, statusApiName: s.statusApiName, statusName: s.statusName };
  }

  // refresh reads the org and announces what changed since the last reading.
  function refresh() {
    return api('GET', '/state').then(function (next) {
      var prev = state;
      state = next;
      render();
      if (!prev) return next;
      announceWork(prev.works || [], next.works || []);
      var was = prev.loggedIn ? prev.status.statusId : null;
      var now = next.loggedIn ? next.status.statusId : null;
      if (was === now) return next;
      if (!now) {
        emit('lightning:omniChannelLogout', logoutReasons[next.reason] ? { reason: next.reason } : {});
        emit('lightning:omniChannelWorkloadChanged', {
          configuredCapacity: next.workload.configuredCapacity, previousWorkload: 0, newWorkload: 0,
          configuredInterruptibleCapacity: 0, previousInterruptibleWorkload: 0, newInterruptibleWorkload: 0
        });
        return next;
      }
      if (!was) emit('lightning:omniChannelLoginSuccess', { statusId: now });
      var p = statusPayload(next.status);
      p.channels = JSON.stringify(next.status.channels);
      p.reason = next.reason || 'OmniManualStatusChange';
      emit('lightning:omniChannelStatusChanged', p);
      return next;
    });
  }

  // announceWork fires omniChannelWorkAssigned and omniChannelWorkAccepted for work that got
  // there since the last reading.
  function announceWork(before, after) {
    var had = {};
    before.forEach(function (w) { had[w.workId] = w; });
    after.forEach(function (w) {
      var old = had[w.workId];
      if (!old) emit('lightning:omniChannelWorkAssigned', { workId: w.workId, workItemId: w.workItemId });
      if (w.isEngaged && !(old && old.isEngaged)) emit('lightning:omniChannelWorkAccepted', { workId: w.workId, workItemId: w.workItemId });
    });
  }

  function render() {
    var current = document.querySelector('[data-omni-current]');
    current.textContent = state.loggedIn ? state.status.statusApiName : 'Offline';
    current.setAttribute('data-status-id', state.loggedIn ? state.status.statusId : '0');
    var box = document.getElementById('statuses');
    if (!box.childElementCount) {
      state.statuses.concat([{ statusId: '0', statusApiName: 'Offline', statusName: 'Offline' }]).forEach(function (s) {
        var b = document.createElement('button');
        b.type = 'button';
        b.textContent = s.statusName;
        b.setAttribute('data-status-api-name', s.statusApiName);
        b.setAttribute('data-status-id', s.statusId);
        b.addEventListener('click', function () { choose(s); });
        box.appendChild(b);
      });
    }
    Array.prototype.forEach.call(box.children, function (b) {
      var id = b.getAttribute('data-status-id');
      b.setAttribute('aria-pressed', String(state.loggedIn ? id === state.status.statusId : id === '0'));
    });
  }

  // choose is the agent picking a status in the widget.
  function choose(s) {
    var done = s.statusId === '0'
      ? api('POST', '/logout', {})
      : api('POST', '/status', { statusId: s.statusId, reason: state.loggedIn ? 'OmniManualStatusChange' : 'OmniLoginStatusChange' });
    done.then(refresh, function (e) { console.error(e); });
  }

  function byId(statusId) {
    return state.statuses.filter(function (s) { return s.statusId === statusId; })[0];
  }

  // The toolkit takes 15-character status ids, as Salesforce's examples pass them; given
  // another form it refuses, so a caller that sends 18 characters fails here first.
  function valid15(args) {
    return args && typeof args.statusId === 'string' && /^[0-9A-Za-z]{15}$/.test(args.statusId);
  }

  // Every call that changes the status is counted, so tests can tell how often a command was applied.
  window.omniToolkitCalls = [];

  var toolkit = {
    setServicePresenceStatus: function (args) {
      window.omniToolkitCalls.push(['setServicePresenceStatus', args && args.statusId]);
      if (!valid15(args)) return Promise.reject(new Error('Invalid statusId: ' + JSON.stringify(args && args.statusId) + ' (use the 15-character id)'));
      var s = byId(args && args.statusId);
      if (!s) return Promise.reject(new Error('The agent does not have access to status ' + (args && args.statusId)));
      return api('POST', '/status', { statusId: s.statusId, reason: 'OmniToolkitStatusChange' }).then(function (st) {
        return refresh().then(function () {
          var r = statusPayload(st);
          r.channels = st.channels;
          return r;
        });
      });
    },
    getServicePresenceStatusId: function () {
      return refresh().then(function (st) {
        if (!st.loggedIn) throw new Error('The agent is not logged in to Omni-Channel');
        return statusPayload(st.status);
      });
    },
    getServicePresenceStatusChannels: function () {
      return refresh().then(function (st) {
        return { channels: st.loggedIn ? st.status.channels : [] };
      });
    },
    login: function (args) {
      window.omniToolkitCalls.push(['login', args && args.statusId]);
      if (!valid15(args)) return Promise.reject(new Error('Invalid statusId: ' + JSON.stringify(args && args.statusId) + ' (use the 15-character id)'));
      var s = byId(args && args.statusId);
      if (!s) return Promise.reject(new Error('The agent does not have access to status ' + (args && args.statusId)));
      return api('POST', '/status', { statusId: s.statusId, reason: 'OmniLoginStatusChange' }).then(refresh).then(function () { return true; });
    },
    logout: function () {
      window.omniToolkitCalls.push(['logout']);
      return api('POST', '/logout', {}).then(refresh).then(function () { return true; });
    },
    getAgentWorks: function () {
      return refresh().then(function (st) { return { works: JSON.stringify(st.works || []) }; });
    },
    getAgentWorkload: function () {
      return refresh().then(function (st) {
        var w = st.workload;
        return { configuredCapacity: w.configuredCapacity, currentWorkload: w.currentWorkload,
          configuredInterruptibleCapacity: w.configuredInterruptibleCapacity, currentInterruptibleWorkload: w.currentInterruptibleWorkload };
      });
    }
  };

  // omniConsole is what a utility-bar component receives in the Lightning console: the
  // toolkit, and the Omni events (subscribe with on(name, handler)).
  window.omniConsole = {
    user: user,
    toolkit: toolkit,
    on: function (name, fn) { (handlers[name] = handlers[name] || []).push(fn); },
    off: function (name, fn) { handlers[name] = (handlers[name] || []).filter(function (h) { return h !== fn; }); },
    refresh: refresh
  };

  function load(src, then) {
    var el = document.createElement('script');
    el.src = src;
    if (then) el.onload = then;
    document.body.appendChild(el);
  }

  refresh().then(function () {
    setInterval(function () { refresh().catch(function () {}); }, 500);
    // With ?service=<omnipresence URL> the bridge's own Aura component runs in the utility bar,
    // on a stand-in for the Aura runtime (aura.js); it finds the toolkit and events here.
    if (new URLSearchParams(location.search).get('service')) {
      load('/console/assets/aura.js');
    }
  });
})();
