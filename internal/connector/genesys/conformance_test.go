package genesys

import (
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/connectortest"
	sim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

// TestConformance runs the connector conformance suite against the Genesys simulator, whose
// clock runs a year behind and whose request budget is 20 per (shrunk) minute.
func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) *connectortest.Env {
		epoch := time.Now().AddDate(-1, 0, 0)
		start := time.Now()
		e := newEnv(t, sim.Config{Now: func() time.Time { return epoch.Add(time.Since(start)) }, RateLimitPerMinute: 20}, Options{})
		return &connectortest.Env{
			Connect: func(t *testing.T) connector.Connector {
				c, err := New(Options{System: "gc", APIURL: e.url, ClientID: "demo-client", ClientSecret: "demo-secret",
					WireSecond: wireSecond, MinBackoff: 5 * time.Millisecond, PingInterval: time.Hour})
				if err != nil {
					t.Fatal(err)
				}
				return c
			},
			Account: id(1), StatusA: sim.MeetingID, StatusB: sim.TrainingID,
			Act: func(t *testing.T, account, statusID string) {
				if err := e.sim.SetPresence(account, statusID); err != nil {
					t.Fatal(err)
				}
			},
			Epoch:        epoch,
			Faults:       e.sim.Faults(),
			ExpireTokens: e.sim.ExpireTokens,
			Throttled:    e.counts.throttled,
		}
	})
}
