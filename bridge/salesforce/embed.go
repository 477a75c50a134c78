// Package salesforcebridge carries the Omni-Channel bridge's browser files so Go programs can
// serve them: the Salesforce simulator's agent console runs the very files an admin deploys —
// the core (a static resource) and the Aura component's markup, controller and helper.
package salesforcebridge

import _ "embed"

// Core is force-app/main/default/staticresources/omnipresenceBridge.js.
//
//go:embed force-app/main/default/staticresources/omnipresenceBridge.js
var Core []byte

// Component is the Aura component's markup (omnipresenceBridge.cmp).
//
//go:embed force-app/main/default/aura/omnipresenceBridge/omnipresenceBridge.cmp
var Component []byte

// Controller is the Aura component's client-side controller.
//
//go:embed force-app/main/default/aura/omnipresenceBridge/omnipresenceBridgeController.js
var Controller []byte

// Helper is the Aura component's helper.
//
//go:embed force-app/main/default/aura/omnipresenceBridge/omnipresenceBridgeHelper.js
var Helper []byte
