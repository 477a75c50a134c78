package genesys

import (
	"context"
	"net/url"
	"strings"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Kind is how policy files name Genesys Cloud systems.
const Kind = "genesys"

// Vendor describes Genesys Cloud to the rest of the program; internal/vendors registers it.
var Vendor = connector.Vendor{
	Kind:  Kind,
	Title: "Genesys Cloud",
	Settings: []connector.Setting{
		{Key: "region", Doc: "the org's region domain (mypurecloud.com, mypurecloud.ie, usw2.pure.cloud, …); sets api_url and login_url"},
		{Key: "api_url", Doc: "Platform API base URL, https://api.<region>; overrides region (the simulator's URL)"},
		{Key: "login_url", Doc: "OAuth base URL; https://login.<region> with region, else api_url"},
		{Key: "client_id", Required: true, Doc: "OAuth client id (client credentials grant)"},
		{Key: "client_secret", Required: true, Secret: true, Doc: "OAuth client secret"},
	},
	Check: checkSettings,
	Catalog: connector.CatalogFacts{
		// Genesys enters Idle on its own; an administrator can set anyone Offline through the
		// presence API, so Offline is an ordinary, settable status.
		SystemStates:      []string{"Idle"},
		SystemStatePhrase: "a Genesys system presence",
		StatusKeys:        []string{"system_presence"},
	},
	Extension: &connector.ExtensionSide{Key: "genesysCloudStatus", IDKey: "id", Status: extensionStatus},
	Open:      Factory,
}

// extensionStatus is a Genesys status as the CX Cloud status-sync contract shows it:
// {"id", "systemPresence"}.
func extensionStatus(s presence.Status) map[string]string {
	sp := s.SystemPresence
	if sp == "" {
		sp = s.Name
	}
	return map[string]string{"id": s.ID, "systemPresence": sp}
}

// checkSettings checks what the settings' declarations cannot say.
func checkSettings(s settings.Settings) []connector.Problem {
	var out []connector.Problem
	_, hasRegion := s["region"]
	_, hasAPI := s["api_url"]
	if !hasRegion && !hasAPI {
		out = append(out, connector.Problem{Message: "region or api_url is required (region: mypurecloud.com, or api_url: https://api.mypurecloud.com)"})
	}
	if r, ok := s.Literal("region"); ok && (r == "" || strings.ContainsAny(r, "/: ")) {
		out = append(out, connector.Problem{Key: "region", Message: "region must be a domain such as mypurecloud.com, got " + quote(r)})
	}
	for _, k := range []string{"api_url", "login_url"} {
		if v, ok := s.Literal(k); ok {
			if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				out = append(out, connector.Problem{Key: k, Message: k + " must be an http(s) URL, got " + quote(v)})
			}
		}
	}
	return out
}

func quote(s string) string { return `"` + s + `"` }

// Factory is the connector.Factory of Genesys Cloud; the settings have passed checkSettings.
func Factory(_ context.Context, name string, s settings.Settings, deps connector.Deps) (connector.Connector, error) {
	o, err := OptionsFrom(s)
	if err != nil {
		return nil, err
	}
	o.System, o.HTTPClient, o.Logger = name, deps.HTTPClient, deps.Logger
	return New(o)
}

// OptionsFrom reads the connection settings of a genesys system: api_url and login_url, or
// their defaults from region.
func OptionsFrom(s settings.Settings) (Options, error) {
	var o Options
	for _, f := range []struct {
		key string
		dst *string
	}{{"api_url", &o.APIURL}, {"login_url", &o.LoginURL}, {"client_id", &o.ClientID}, {"client_secret", &o.ClientSecret}} {
		v, err := s.String(f.key)
		if err != nil {
			return Options{}, err
		}
		*f.dst = strings.TrimSpace(v)
	}
	region, err := s.String("region")
	if err != nil {
		return Options{}, err
	}
	if region = strings.TrimSpace(region); region != "" && o.APIURL == "" {
		o.APIURL = "https://api." + region
		if o.LoginURL == "" {
			o.LoginURL = "https://login." + region
		}
	}
	return o, nil
}
