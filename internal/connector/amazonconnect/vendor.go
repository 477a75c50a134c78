// Package amazonconnect connects Amazon Connect: agent statuses, users, PutUserStatus and
// GetCurrentUserData through the Connect API, and the instance's agent event stream on Kinesis,
// both with AWS's Go SDK. Vendor describes it to the rest of the program.
package amazonconnect

import (
	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Vendor describes Amazon Connect to the rest of the program; internal/vendors registers it.
var Vendor = connector.Vendor{
	Kind:  "amazonconnect",
	Title: "Amazon Connect",
	Settings: []connector.Setting{
		{Key: "region", Required: true, Doc: "the instance's AWS region (us-east-1)"},
		{Key: "instance_id", Required: true, Doc: "the Connect instance id"},
		{Key: "endpoint", Doc: "Connect API endpoint override (the simulator's URL)"},
		{Key: "kinesis_endpoint", Doc: "Kinesis endpoint override (the simulator's kinesis_url)"},
		{Key: "agent_event_stream", Doc: "the Kinesis stream the instance's agent events go to"},
		{Key: "access_key_id", Doc: "AWS access key id; without it, the standard AWS credential chain"},
		{Key: "secret_access_key", Secret: true, Doc: "AWS secret access key, with access_key_id"},
	},
	Check: checkSettings,
	Catalog: connector.CatalogFacts{
		SystemStates:      []string{"Busy", "Pending", "PendingBusy", "CallingCustomer", "AfterCallWork"},
		SystemStatePhrase: "a Connect system state",
	},
	Open: Factory,
}

// checkSettings requires the two keys of static credentials together.
func checkSettings(s settings.Settings) []connector.Problem {
	_, id := s["access_key_id"]
	_, secret := s["secret_access_key"]
	switch {
	case id && !secret:
		return []connector.Problem{{Key: "access_key_id", Message: "access_key_id needs secret_access_key (or leave both out for the AWS credential chain)"}}
	case secret && !id:
		return []connector.Problem{{Key: "secret_access_key", Message: "secret_access_key needs access_key_id (or leave both out for the AWS credential chain)"}}
	}
	return nil
}
