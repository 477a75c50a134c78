package salesforce

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Kind is how policy files name Salesforce systems.
const Kind = "salesforce"

// The event data keys of workload events (workload_changed) and accepted work (work_accepted).
const (
	DataPreviousWorkload   = "previousWorkload"
	DataNewWorkload        = "newWorkload"
	DataConfiguredCapacity = "configuredCapacity"
	DataChannel            = "channel"
)

// authFlows are the keys each auth flow needs, besides "flow".
var authFlows = map[string][]string{
	"client_credentials": {"client_id", "client_secret"},
	"jwt":                {"client_id", "username", "private_key_file"},
}

// offline is the status Salesforce reserves for an agent logged out of Omni-Channel.
var offline = presence.Status{ID: OfflineID, Name: presence.OfflineName, Label: presence.OfflineName,
	Category: presence.CategoryOffline, Settable: true}

// Vendor describes Salesforce Omni-Channel to the rest of the program; internal/vendors
// registers it.
var Vendor = connector.Vendor{
	Kind:  Kind,
	Title: "Salesforce Omni-Channel",
	Settings: []connector.Setting{
		{Key: "login_url", Default: DefaultLoginURL, Doc: "where the OAuth flow runs: https://login.salesforce.com, https://test.salesforce.com or the org's My Domain"},
		{Key: "api_version", Default: DefaultAPIVersion, Doc: "REST API version"},
		{Key: "auth", Required: true, Doc: "{flow: client_credentials, client_id, client_secret} or {flow: jwt, client_id, username, private_key_file}",
			Keys: []connector.Setting{
				{Key: "flow", Required: true, Doc: "client_credentials or jwt"},
				{Key: "client_id", Doc: "the connected app's consumer key"},
				{Key: "client_secret", Secret: true, Doc: "the connected app's consumer secret (client_credentials)"},
				{Key: "username", Doc: "the integration user (jwt)"},
				{Key: "private_key_file", Secret: true, Doc: "PEM file of the key whose certificate the connected app holds (jwt)"},
			}},
		{Key: "pubsub_url", Default: DefaultPubSubURL, Doc: "Pub/Sub API endpoint; http://host:port is plaintext (the simulator)"},
		{Key: "channel", Default: DefaultChannel, Doc: "change event channel carrying UserServicePresence events"},
		{Key: "work_channel", Doc: "change event channel carrying AgentWork events; unset: no work events"},
	},
	Check: checkSettings,
	Catalog: connector.CatalogFacts{
		Offline: &offline,
	},
	Operands: []connector.Operand{
		{Name: "channel", Type: connector.Text, Doc: "the service channel (DeveloperName) of accepted work",
			Text: func(ev presence.Event) string { s, _ := ev.Data[DataChannel].(string); return s }},
		{Name: "previous_workload", Type: connector.Int, Doc: "units of work before the change",
			Number: func(ev presence.Event) float64 { return number(ev.Data[DataPreviousWorkload]) }},
		{Name: "new_workload", Type: connector.Int, Doc: "units of work after the change",
			Number: func(ev presence.Event) float64 { return number(ev.Data[DataNewWorkload]) }},
		{Name: "previous_workload_pct", Type: connector.Double, Doc: "previous_workload as a percentage (0-100) of configured_capacity",
			Number: func(ev presence.Event) float64 { return pct(ev, DataPreviousWorkload) }},
		{Name: "new_workload_pct", Type: connector.Double, Doc: "new_workload as a percentage (0-100) of configured_capacity",
			Number: func(ev presence.Event) float64 { return pct(ev, DataNewWorkload) }},
		{Name: "configured_capacity", Type: connector.Int, Doc: "the agent's capacity in their presence configuration",
			Number: func(ev presence.Event) float64 { return number(ev.Data[DataConfiguredCapacity]) }},
	},
	Extension:    &connector.ExtensionSide{Key: "salesforceStatus", IDKey: "statusId", Status: extensionStatus},
	AgentConsole: "Omni-Channel bridge (the agent's Salesforce console)",
	Open:         Open,
}

// extensionStatus is a Salesforce status as the CX Cloud status-sync contract shows it.
func extensionStatus(s presence.Status) map[string]string {
	return map[string]string{"statusApiName": s.Name, "statusId": s.ID, "statusName": s.Label}
}

// pct is the workload under key as a percentage of the configured capacity; 0 without one.
func pct(ev presence.Event, key string) float64 {
	capacity := number(ev.Data[DataConfiguredCapacity])
	if capacity == 0 {
		return 0
	}
	return number(ev.Data[key]) * 100 / capacity
}

// number reads a JSON number (or numeric text) from event data; 0 otherwise.
func number(v any) float64 {
	switch t := v.(type) {
	case float64:
		return t
	case int:
		return float64(t)
	case int64:
		return float64(t)
	case int32:
		return float64(t)
	case string:
		n, err := strconv.ParseFloat(t, 64)
		if err == nil {
			return n
		}
	case fmt.Stringer: // json.Number
		n, err := strconv.ParseFloat(t.String(), 64)
		if err == nil {
			return n
		}
	}
	return 0
}

// checkSettings checks URLs, channels and the keys of the auth flow.
func checkSettings(s settings.Settings) []connector.Problem {
	var out []connector.Problem
	if v, ok := s.Literal("login_url"); ok {
		if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			out = append(out, connector.Problem{Key: "login_url", Message: fmt.Sprintf("login_url must be an http(s) URL, got %q", v)})
		}
	}
	ch, chKnown := s.Literal("channel")
	if chKnown && !strings.HasPrefix(ch, "/data/") {
		out = append(out, connector.Problem{Key: "channel", Message: fmt.Sprintf("channel %q must be a change event channel (/data/…)", ch)})
	}
	if !chKnown && s["channel"] == nil {
		ch, chKnown = DefaultChannel, true
	}
	if v, ok := s.Literal("work_channel"); ok && (!strings.HasPrefix(v, "/data/") || chKnown && v == ch) {
		out = append(out, connector.Problem{Key: "work_channel", Message: fmt.Sprintf("work_channel %q must be a change event channel (/data/…) other than channel", v)})
	}
	auth := s.Sub("auth")
	if auth == nil {
		return out
	}
	flows := make([]string, 0, len(authFlows))
	for f := range authFlows {
		flows = append(flows, f)
	}
	slices.Sort(flows)
	flow, known := auth.Literal("flow")
	if !known {
		return out
	}
	keys, ok := authFlows[flow]
	if !ok {
		return append(out, connector.Problem{Key: "auth.flow", Message: fmt.Sprintf("auth flow %q is not supported; use %s", flow, strings.Join(flows, " or "))})
	}
	for _, k := range keys {
		if v, known := auth.Literal(k); auth[k] == nil || known && strings.TrimSpace(v) == "" {
			out = append(out, connector.Problem{Key: "auth", Message: fmt.Sprintf("auth (flow %s) is missing %s", flow, k)})
		}
	}
	for k := range auth {
		if k != "flow" && !slices.Contains(keys, k) {
			out = append(out, connector.Problem{Key: "auth." + k, Message: fmt.Sprintf("auth flow %s takes no %s; it takes %s", flow, k, strings.Join(keys, ", "))})
		}
	}
	slices.SortFunc(out, func(a, b connector.Problem) int { return strings.Compare(a.String(), b.String()) })
	return out
}
