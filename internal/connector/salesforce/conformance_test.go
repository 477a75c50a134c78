package salesforce

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/connectortest"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

// consoleBridge stands in for the agents' Lightning consoles: a write for an agent whose
// console is open is applied as the Omni toolkit applies it; others wait (deferred).
type consoleBridge struct {
	sim  *sfsim.Server
	open map[string]bool
}

func (b *consoleBridge) Send(_ context.Context, account, statusID string) (connector.Receipt, error) {
	if !b.open[account] {
		return connector.Receipt{}, &connector.DeferredError{Reason: "no Omni-Channel bridge connected"}
	}
	if _, err := b.sim.SetStatus(account, statusID, "OmniToolkitStatusChange"); err != nil {
		return connector.Receipt{}, &connector.PermanentError{Err: err}
	}
	// The real bridge's receipt is its command id, which the bridge's own event carries (see
	// package bridge); the change events of Watch carry none, so this stand-in gives none.
	return connector.Receipt{}, nil
}

// throttleCounter counts the 429 answers a connector gets.
type throttleCounter struct{ n atomic.Int64 }

func (c *throttleCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusTooManyRequests {
		c.n.Add(1)
	}
	return resp, err
}

// TestConformance runs the connector conformance suite against the Salesforce simulator, whose
// clock runs a year behind.
func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) *connectortest.Env {
		epoch := time.Now().AddDate(-1, 0, 0)
		start := time.Now()
		o := startOrg(t, sfsim.Config{Now: func() time.Time { return epoch.Add(time.Since(start)) }})
		ana, err := o.sim.UserID("ana@example.com")
		if err != nil {
			t.Fatal(err)
		}
		bo, err := o.sim.UserID("bo@example.com")
		if err != nil {
			t.Fatal(err)
		}
		throttled := &throttleCounter{}
		connect := func(t *testing.T) connector.Connector {
			c, err := Vendor.Connect(context.Background(), "sf", o.settings(), connector.Deps{
				HTTPClient: &http.Client{Transport: throttled}, Checkpoints: o.cps})
			if err != nil {
				t.Fatal(err)
			}
			c.(connector.BridgeAttacher).AttachBridge(&consoleBridge{sim: o.sim, open: map[string]bool{ana: true}})
			return c
		}
		ids := map[string]string{}
		c := connect(t)
		cat, err := c.Catalog(context.Background())
		c.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range cat {
			ids[s.Name] = s.ID
		}
		return &connectortest.Env{
			Connect: connect,
			Account: ana, StatusA: ids["Training"], StatusB: ids["Meeting"],
			Act: func(t *testing.T, account, statusID string) {
				if _, err := o.sim.SetStatus(account, statusID, ""); err != nil {
					t.Fatal(err)
				}
			},
			Epoch:           epoch,
			Faults:          o.sim.Faults(),
			ExpireTokens:    o.sim.ExpireTokens,
			Throttled:       func() int { return int(throttled.n.Load()) },
			WritesBypassAPI: true,
			Deferred:        func(*testing.T) (string, string) { return bo, ids["Training"] },
		}
	})
}
