// Package salesforcebridge carries the Omni-Channel bridge's browser core so Go programs can
// serve it: the Salesforce simulator's agent console runs the very file an admin deploys as a
// static resource.
package salesforcebridge

import _ "embed"

// Core is force-app/main/default/staticresources/omnipresenceBridge.js.
//
//go:embed force-app/main/default/staticresources/omnipresenceBridge.js
var Core []byte
