({
    // start reads the settings and a first token from Apex, then hands everything to the core.
    // The core scopes its storage, channel and lock to the org and user Apex names, finds what
    // the page offers (Locker and Lightning Web Security offer different things), and stops
    // itself when the page goes.
    start: function (component) {
        var helper = this;
        helper.apex(component, 'bridgeSettings', null).then($A.getCallback(function (settings) {
            var api = window.OmnipresenceBridge;
            var firstToken = settings.token;
            var bridge = api.createBridge({
                serviceUrl: settings.serviceUrl,
                orgId: settings.orgId,
                userId: settings.userId,
                getToken: function () {
                    if (firstToken) {
                        var t = firstToken;
                        firstToken = null;
                        return Promise.resolve(t);
                    }
                    return helper.apex(component, 'mintToken', null);
                },
                lookupChannel: function (workId) {
                    return helper.apex(component, 'serviceChannelOf', { workId: workId });
                },
                toolkit: api.auraToolkit(component.find('omniToolkit'), $A.getCallback),
                storage: window.localStorage,
                onState: $A.getCallback(function (st) {
                    if (component.isValid()) {
                        component.set('v.state', api.describeState(st));
                    }
                }),
                log: function (level, message, detail) {
                    (level === 'error' ? console.error : level === 'warn' ? console.warn : console.info)('omnipresence bridge: ' + message, detail || '');
                }
            });
            component.set('v.bridge', bridge);
            bridge.start();
            var pending = component.get('v.pending') || [];
            component.set('v.pending', []);
            pending.forEach(function (p) { bridge.onOmniEvent(p.name, p.params); });
        }), $A.getCallback(function (err) {
            component.set('v.state', 'not started: ' + (err && err.message ? err.message : err));
        }));
    },

    // forward passes one Omni event to the core, holding it until the core has started.
    forward: function (component, name, params) {
        var bridge = component.get('v.bridge');
        if (bridge) {
            bridge.onOmniEvent(name, params);
        } else {
            component.set('v.pending', (component.get('v.pending') || []).concat([{ name: name, params: params }]));
        }
    },

    stop: function (component) {
        var bridge = component.get('v.bridge');
        if (bridge) {
            bridge.stop();
        }
    },

    // apex calls an @AuraEnabled method of OmnipresenceBridgeToken and returns a Promise.
    apex: function (component, method, params) {
        return new Promise($A.getCallback(function (resolve, reject) {
            var action = component.get('c.' + method);
            if (params) {
                action.setParams(params);
            }
            action.setCallback(this, function (response) {
                if (response.getState() === 'SUCCESS') {
                    resolve(response.getReturnValue());
                } else {
                    var errors = response.getError() || [];
                    reject(new Error(errors.length && errors[0].message ? errors[0].message : method + ' failed'));
                }
            });
            $A.enqueueAction(action);
        }));
    }
})
