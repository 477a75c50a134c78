// Package cxone connects NICE CXone. Vendor describes it to the rest of the program.
package cxone

import (
	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Vendor describes NICE CXone to the rest of the program; internal/vendors registers it.
var Vendor = connector.Vendor{
	Kind:  "cxone",
	Title: "NICE CXone",
	Settings: []connector.Setting{
		{Key: "api_url", Doc: "the tenant's api_endpoint (https://api-na1.niceincontact.com); or tenant_id"},
		{Key: "tenant_id", Doc: "the tenant id, from which api_url and auth_url are discovered"},
		{Key: "auth_url", Doc: "the token endpoint's base URL; discovered with tenant_id"},
		{Key: "access_key_id", Required: true, Doc: "the access key of the integration user"},
		{Key: "access_key_secret", Required: true, Secret: true, Doc: "that access key's secret"},
		{Key: "client_id", Required: true, Doc: "the registered application's client id"},
		{Key: "client_secret", Required: true, Secret: true, Doc: "the registered application's client secret"},
	},
	Check: checkSettings,
	Catalog: connector.CatalogFacts{
		SystemStates: []string{"InboundContact", "OutboundContact", "InboundConsult", "OutboundConsult",
			"Dialer", "DialerPending", "LoggedIn"},
		SystemStatePhrase: "a CXone contact state",
	},
}

// checkSettings requires api_url or tenant_id.
func checkSettings(s settings.Settings) []connector.Problem {
	_, api := s["api_url"]
	_, tenant := s["tenant_id"]
	if !api && !tenant {
		return []connector.Problem{{Message: "api_url or tenant_id is required"}}
	}
	return nil
}
