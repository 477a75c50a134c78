// A stand-in for the Aura runtime of a Lightning console, enough to run the omnipresence bridge's
// utility-bar component exactly as deployed: its markup (attributes, event handlers, body), its
// client-side controller and helper, $A.getCallback and $A.enqueueAction, component get, set,
// find and isValid, its Apex controller's actions (answered by the simulator, as Salesforce
// answers them), and ltng:require loading the static resource the way the org's security layer
// evaluates it:
//
//   ?security=lws     Lightning Web Security: strict mode in a sandbox whose window, self and
//                     globalThis are one sandboxed window; the platform's APIs are there.
//   ?security=locker  Lightning Locker: strict mode, no globalThis, `this` undefined, a
//                     SecureWindow with what Locker allows and without AbortController,
//                     BroadcastChannel, Web Locks, TextDecoder, atob or crypto.
//   ?security=plain   a plain <script>, as no Salesforce org loads it.
//
// The utility panel shows the component's body; its data-bridge-* attributes carry the
// bridge's status for tests.
(function () {
  'use strict';
  var oc = window.omniConsole;
  var params = new URLSearchParams(location.search);
  var service = params.get('service') || '';
  var security = params.get('security') || 'lws';
  var base = '/console/' + encodeURIComponent(oc.user);
  var panel = document.getElementById('utility');

  // The globals a Locker sandbox does not give this namespace's code.
  var LOCKER_HIDDEN = ['globalThis', 'self', 'module', 'exports', 'define', 'require', 'AbortController',
    'BroadcastChannel', 'TextDecoder', 'atob', 'btoa', 'crypto', 'navigator'];

  function text(path) {
    return fetch(path).then(function (res) {
      if (!res.ok) throw new Error(path + ' answered ' + res.status);
      return res.text();
    });
  }

  // sandboxes returns, per security mode, the window the namespace's code sees and how code
  // is evaluated in it.
  function sandbox($A) {
    if (security === 'locker') {
      var secureWindow = {
        document: document,
        localStorage: window.localStorage,
        location: window.location,
        console: window.console,
        addEventListener: function (t, f) { window.addEventListener(t, f); },
        removeEventListener: function (t, f) { window.removeEventListener(t, f); },
        setTimeout: window.setTimeout.bind(window),
        clearTimeout: window.clearTimeout.bind(window),
        setInterval: window.setInterval.bind(window),
        clearInterval: window.clearInterval.bind(window),
        fetch: window.fetch.bind(window)
      };
      return {
        window: secureWindow,
        run: function (src, asExpression) {
          var body = '"use strict";\n' + (asExpression ? 'return (' + src + '\n);' : src);
          var fn = Function.apply(null, ['window', 'document', '$A', 'fetch'].concat(LOCKER_HIDDEN, [body]));
          return fn.apply(undefined, [secureWindow, document, $A, secureWindow.fetch].concat(LOCKER_HIDDEN.map(function () { return undefined; })));
        }
      };
    }
    if (security === 'lws') {
      var target = {};
      var sandboxed = new Proxy(target, {
        get: function (t, k) {
          if (k in t) return t[k];
          var v = window[k];
          // Platform functions are called on the real window; constructors stay as they are.
          return typeof v === 'function' && !/^[A-Z]/.test(String(k)) ? v.bind(window) : v;
        },
        set: function (t, k, v) { t[k] = v; return true; },
        has: function () { return true; }
      });
      return {
        window: sandboxed,
        run: function (src, asExpression) {
          var body = '"use strict";\n' + (asExpression ? 'return (' + src + '\n);' : src);
          return new Function('window', 'self', 'globalThis', 'document', '$A', body)
            .call(undefined, sandboxed, sandboxed, sandboxed, document, $A);
        }
      };
    }
    return {
      window: window,
      run: function (src, asExpression) {
        if (asExpression) return new Function('$A', 'return (' + src + '\n);')(window.$A);
        var el = document.createElement('script');
        el.textContent = src;
        document.head.appendChild(el);
        return undefined;
      }
    };
  }

  // markup reads what the runtime needs from the component's .cmp.
  function markup(cmp) {
    var attrs = {};
    cmp.replace(/<aura:attribute\s+([^>]*)\/?>/g, function (_, a) {
      var name = /name="([^"]+)"/.exec(a);
      var def = /default="([^"]*)"/.exec(a);
      var type = /type="([^"]+)"/.exec(a);
      if (!name) return '';
      var v = def ? def[1] : undefined;
      if (type && type[1] === 'Boolean' && v !== undefined) v = v === 'true';
      if (type && /\[\]$/.test(type[1]) && v !== undefined) v = JSON.parse(v);
      attrs[name[1]] = v;
      return '';
    });
    var handlers = [];
    cmp.replace(/<aura:handler\s+([^>]*)\/?>/g, function (_, a) {
      var ev = /event="([^"]+)"/.exec(a);
      var name = /name="([^"]+)"/.exec(a);
      var action = /action="\{!c\.([A-Za-z0-9_]+)\}"/.exec(a);
      if (action) handlers.push({ event: ev ? ev[1] : null, name: name ? name[1] : null, action: action[1] });
      return '';
    });
    var req = /<ltng:require\s+([^>]*)\/?>/.exec(cmp);
    var loaded = req && /afterScriptsLoaded="\{!c\.([A-Za-z0-9_]+)\}"/.exec(req[1]);
    var start = cmp.indexOf('<div');
    var end = cmp.lastIndexOf('</div>');
    return { attrs: attrs, handlers: handlers, afterScriptsLoaded: loaded ? loaded[1] : null,
      body: start >= 0 && end > start ? cmp.slice(start, end + 6) : '' };
  }

  function escape(s) {
    return String(s === undefined || s === null ? '' : s).replace(/[&<>"]/g, function (c) {
      return { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c];
    });
  }

  function start(files) {
    var def = markup(files.cmp);
    var attrs = def.attrs;
    var valid = true;

    function render() {
      panel.innerHTML = def.body.replace(/\{!v\.([A-Za-z0-9_]+)\}/g, function (_, k) { return escape(attrs[k]); });
      var bridge = attrs.bridge;
      var st = bridge && typeof bridge.status === 'function' ? bridge.status() : null;
      panel.setAttribute('data-bridge-state', String(attrs.state || ''));
      panel.setAttribute('data-bridge-leader', String(!!(st && st.leader)));
      panel.setAttribute('data-bridge-connected', String(!!(st && st.connected)));
      panel.setAttribute('data-bridge-problem', st ? st.problem : '');
      panel.setAttribute('data-bridge-leadership', st ? st.leadership : '');
      window.omniBridge = bridge || null;
    }

    var $A = {
      getCallback: function (fn) {
        return function () {
          var r = fn.apply(this, arguments);
          render();
          return r;
        };
      },
      enqueueAction: function (action) { action.run(); }
    };

    // serverAction is an Apex action of the component's controller, sent to the simulator.
    function serverAction(method) {
      var p = null;
      var cb = null;
      return {
        setParams: function (x) { p = x; },
        setCallback: function (scope, fn) { cb = fn.bind(scope); },
        run: function () {
          fetch(base + '/apex/' + method + '?service=' + encodeURIComponent(service), {
            method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ params: p || {} })
          }).then(function (res) { return res.json(); }).then(function (r) { return r; }, function (e) {
            return { state: 'ERROR', error: [{ message: e.message }] };
          }).then(function (r) {
            cb({
              getState: function () { return r.state; },
              getReturnValue: function () { return r.returnValue; },
              getError: function () { return r.error || []; }
            });
            render();
          });
        }
      };
    }

    var component = {
      get: function (key) {
        if (key.indexOf('v.') === 0) return attrs[key.slice(2)];
        if (key.indexOf('c.') === 0) return serverAction(key.slice(2));
        return undefined;
      },
      set: function (key, value) {
        if (key.indexOf('v.') === 0) {
          attrs[key.slice(2)] = value;
          render();
        }
      },
      find: function (id) { return id === 'omniToolkit' ? oc.toolkit : undefined; },
      isValid: function () { return valid; }
    };

    var box = sandbox($A);
    window.$A = $A;
    var controller = box.run(files.controller, true);
    var helper = box.run(files.helper, true);
    function invoke(action, event) {
      controller[action](component, event, helper);
      render();
    }
    def.handlers.forEach(function (hd) {
      if (hd.event) {
        var short = hd.event.replace(/^[a-z]+:/, '');
        oc.on(hd.event, function (payload) {
          invoke(hd.action, {
            getName: function () { return short; },
            getParams: function () { return payload || {}; },
            getParam: function (k) { return (payload || {})[k]; }
          });
        });
      } else if (hd.name === 'destroy') {
        window.addEventListener('pagehide', function () {
          invoke(hd.action, { getName: function () { return 'destroy'; } });
          valid = false;
        });
      }
    });
    render();
    // ltng:require: the static resource, then afterScriptsLoaded.
    box.run(files.core, false);
    if (!box.window.OmnipresenceBridge) {
      attrs.state = 'the static resource did not define OmnipresenceBridge';
      render();
      return;
    }
    if (def.afterScriptsLoaded) invoke(def.afterScriptsLoaded, { getName: function () { return 'afterScriptsLoaded'; } });
  }

  Promise.all(['omnipresenceBridge.cmp', 'omnipresenceBridgeController.js', 'omnipresenceBridgeHelper.js', 'omnipresenceBridge.js']
    .map(function (f) { return text('/console/assets/' + f); })).then(function (f) {
    start({ cmp: f[0], controller: f[1], helper: f[2], core: f[3] });
  }).catch(function (e) {
    panel.textContent = 'omnipresence bridge: ' + (e && e.message ? e.message : e);
    panel.setAttribute('data-bridge-problem', String(e && e.message ? e.message : e));
  });
})();
