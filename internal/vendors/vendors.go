// Package vendors lists the vendors this build knows: one line per vendor, naming its connector
// (connector.Vendor, from the vendor's package under internal/connector) and its simulator
// (vendorsim.Simulator, from internal/vendorsim), or nil while it has none. Importing the
// package registers every connector with internal/connector, which policy loading, validation
// and the service ask; the CLI builds `omnipresence sim <kind>` and the demo from Simulators.
//
// Adding a vendor is one line here; see docs/contributing.md.
package vendors

import (
	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/amazonconnect"
	"github.com/omnipresence/omnipresence/internal/connector/cxone"
	"github.com/omnipresence/omnipresence/internal/connector/genesys"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce"
	"github.com/omnipresence/omnipresence/internal/vendorsim"
	acsim "github.com/omnipresence/omnipresence/internal/vendorsim/amazonconnect"
	cxsim "github.com/omnipresence/omnipresence/internal/vendorsim/cxone"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

func init() {
	register(salesforce.Vendor, &sfsim.Simulator)
	register(genesys.Vendor, &gcsim.Simulator)
	register(cxone.Vendor, &cxsim.Simulator)
	register(amazonconnect.Vendor, &acsim.Simulator)
}

var simulators []vendorsim.Simulator

// register adds one vendor: its connector to the connector registry, its simulator (if any)
// to Simulators.
func register(v connector.Vendor, sim *vendorsim.Simulator) {
	connector.Register(v)
	if sim != nil {
		if sim.Kind != v.Kind {
			panic("vendors: simulator of kind " + sim.Kind + " registered with vendor " + v.Kind)
		}
		simulators = append(simulators, *sim)
	}
}

// Simulators lists the registered simulators in registration order.
func Simulators() []vendorsim.Simulator { return simulators }
