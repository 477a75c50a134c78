// The console's stand-in for the omnipresence bridge's Aura wrapper: it runs the bridge core
// (served from the very file admins deploy) with the console's Omni toolkit and events, and
// tokens minted by the simulator with the bridge secret, as the Apex controller mints them.
(function () {
  'use strict';
  var oc = window.omniConsole;
  var service = new URLSearchParams(location.search).get('service');
  var user = oc.user;
  var panel = document.getElementById('utility');
  var bridge = window.OmnipresenceBridge.createBridge({
    serviceUrl: service,
    getToken: function () {
      return fetch('/console/' + encodeURIComponent(user) + '/bridge-token').then(function (res) {
        if (!res.ok) throw new Error('no bridge token: ' + res.status);
        return res.text();
      });
    },
    toolkit: window.OmnipresenceBridge.auraToolkit(oc.toolkit),
    storage: window.localStorage,
    broadcast: typeof BroadcastChannel === 'function' ? new BroadcastChannel('omnipresence.bridge.' + user) : null,
    keyPrefix: 'omnipresence.bridge.' + user,
    onState: function (st) {
      panel.textContent = 'omnipresence bridge: ' + (st.leader ? 'leader' : 'standby') + (st.connected ? ', connected' : '');
      panel.setAttribute('data-bridge-leader', String(!!st.leader));
      panel.setAttribute('data-bridge-connected', String(!!st.connected));
    }
  });
  ['lightning:omniChannelStatusChanged', 'lightning:omniChannelLogout', 'lightning:omniChannelLoginSuccess',
    'lightning:omniChannelWorkAccepted', 'lightning:omniChannelWorkloadChanged'].forEach(function (name) {
    oc.on(name, function (payload) { bridge.onOmniEvent(name, payload); });
  });
  window.omniBridge = bridge;
  bridge.start();
})();
