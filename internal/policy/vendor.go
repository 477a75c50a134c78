package policy

import "github.com/omnipresence/omnipresence/internal/presence"

// The system kinds a policy file may name.
const (
	KindSalesforce    = "salesforce"
	KindGenesys       = "genesys"
	KindCXone         = "cxone"
	KindAmazonConnect = "amazonconnect"
)

// Kinds lists every system kind, in documentation order.
var Kinds = []string{KindSalesforce, KindGenesys, KindCXone, KindAmazonConnect}

// connectionKeys are the connection settings each kind accepts (CONTRACTS.md "Connection
// settings"); salesforce "auth" is a nested map checked by authFlows.
var connectionKeys = map[string][]string{
	KindGenesys:       {"region", "api_url", "login_url", "client_id", "client_secret"},
	KindSalesforce:    {"login_url", "api_version", "auth", "pubsub_url", "channel", "work_channel"},
	KindAmazonConnect: {"region", "instance_id", "endpoint", "kinesis_endpoint", "agent_event_stream", "access_key_id", "secret_access_key"},
	KindCXone:         {"api_url", "tenant_id", "auth_url", "access_key_id", "access_key_secret", "client_id", "client_secret"},
}

// authFlows are the keys each Salesforce auth flow requires, besides "flow".
var authFlows = map[string][]string{
	"client_credentials": {"client_id", "client_secret"},
	"jwt":                {"client_id", "username", "private_key_file"},
}

// systemStates are the states each vendor enters on its own and refuses to have set, with the
// phrase naming them in a diagnostic. Policies may test them but never target them.
var systemStates = map[string]struct {
	phrase string
	names  []string
}{
	KindAmazonConnect: {"a Connect system state", []string{"Busy", "Pending", "PendingBusy", "CallingCustomer", "AfterCallWork"}},
	KindGenesys:       {"a Genesys system presence", []string{"Idle"}},
	KindCXone: {"a CXone contact state", []string{"InboundContact", "OutboundContact", "InboundConsult",
		"OutboundConsult", "Dialer", "DialerPending", "LoggedIn"}},
}

// vendorSystemState reports whether name is a state the vendor of kind never lets anyone set,
// and the phrase that says so.
func vendorSystemState(kind, name string) (string, bool) {
	s, ok := systemStates[kind]
	if !ok {
		return "", false
	}
	for _, n := range s.names {
		if n == name {
			return s.phrase, true
		}
	}
	return "", false
}

// agentConsoles names, per kind, the agent console whose connects and disconnects the service
// sees (on_disconnect may watch it): the Salesforce bridge runs in the agent's console.
var agentConsoles = map[string]string{
	KindSalesforce: "Omni-Channel bridge (the agent's Salesforce console)",
}

// salesforceOffline is the status a logged-out Salesforce agent shows; it always exists.
var salesforceOffline = presence.Status{ID: "0", Name: presence.OfflineName, Label: presence.OfflineName,
	Category: presence.CategoryOffline, Settable: true}

// workloadFields are the operand fields only salesforce systems have.
var workloadFields = []string{"channel", "previous_workload", "new_workload", "previous_workload_pct",
	"new_workload_pct", "configured_capacity"}

// stateFields exist for every kind.
var stateFields = []string{"new_state", "old_state"}

// fieldsFor returns the operand fields of a system kind.
func fieldsFor(kind string) []string {
	if kind == KindSalesforce {
		return append(append([]string{}, stateFields...), workloadFields...)
	}
	return stateFields
}
