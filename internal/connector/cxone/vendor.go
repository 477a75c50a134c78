// Package cxone connects NICE CXone: access-key OAuth with API discovery, the catalog from
// unavailable codes, agents with their teams, watching by polling real-time agent states, and
// writes through the agent's session joined as the agent. Vendor describes it to the rest of
// the program.
package cxone

import (
	"context"
	"net/url"
	"strings"

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
		SystemStates: []string{"LoggedOut", "InboundContact", "OutboundContact", "InboundConsult", "OutboundConsult",
			"Dialer", "DialerPending", "LoggedIn"},
		SystemStatePhrase: "a CXone ACD state",
	},
	Open: Factory,
}

// Factory is the connector.Factory of NICE CXone; the settings have passed checkSettings.
func Factory(_ context.Context, name string, s settings.Settings, deps connector.Deps) (connector.Connector, error) {
	o := Options{System: name, HTTPClient: deps.HTTPClient, Logger: deps.Logger, Checkpoints: deps.Checkpoints}
	for _, f := range []struct {
		key string
		dst *string
	}{{"api_url", &o.APIURL}, {"tenant_id", &o.TenantID}, {"auth_url", &o.AuthURL}, {"access_key_id", &o.AccessKeyID},
		{"access_key_secret", &o.AccessKeySecret}, {"client_id", &o.ClientID}, {"client_secret", &o.ClientSecret}} {
		v, err := s.String(f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = strings.TrimSpace(v)
	}
	return New(o)
}

// checkSettings requires api_url or tenant_id, and http(s) URLs.
func checkSettings(s settings.Settings) []connector.Problem {
	_, api := s["api_url"]
	_, tenant := s["tenant_id"]
	var out []connector.Problem
	if !api && !tenant {
		out = append(out, connector.Problem{Message: "api_url or tenant_id is required (api_url: https://api-na1.niceincontact.com, or tenant_id: <your tenant id>)"})
	}
	for _, k := range []string{"api_url", "auth_url"} {
		if v, ok := s.Literal(k); ok {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				out = append(out, connector.Problem{Key: k, Message: k + " must be an http(s) URL, got \"" + v + "\""})
			}
		}
	}
	return out
}
