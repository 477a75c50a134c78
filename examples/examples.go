// Package examples embeds the ready policies so that `omnipresence demo` needs no files.
package examples

import _ "embed"

// DemoPolicy is examples/demo/policy.yaml: Salesforce and Genesys kept in sync both ways, plus
// the Communicate-call activity. Its connection settings come from DEMO_* variables that
// `omnipresence demo` sets to its simulators.
//
//go:embed demo/policy.yaml
var DemoPolicy []byte
