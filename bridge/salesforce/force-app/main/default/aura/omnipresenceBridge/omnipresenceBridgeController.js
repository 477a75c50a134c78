({
    onScriptsLoaded: function (component, event, helper) {
        helper.start(component);
    },

    onOmniEvent: function (component, event, helper) {
        helper.forward(component, event.getName(), event.getParams());
    },

    onDestroy: function (component, event, helper) {
        helper.stop(component);
    }
})
