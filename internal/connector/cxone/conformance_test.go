package cxone

import (
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/connectortest"
	"github.com/omnipresence/omnipresence/internal/vendorsim/cxone"
)

// env is a CXone simulator on httptest, with checkpoints its connectors share.
type env struct {
	sim *cxone.Server
	url string
	cps *connector.MemoryCheckpoints
}

func newEnv(t *testing.T, cfg cxone.Config) *env {
	t.Helper()
	s, err := cxone.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	s.SetURL(ts.URL)
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	return &env{sim: s, url: ts.URL, cps: &connector.MemoryCheckpoints{}}
}

// connect opens a connector discovering its API from the tenant id, as a policy with
// tenant_id and auth_url does.
func (e *env) connect(t *testing.T, o Options) *Connector {
	t.Helper()
	o.System, o.TenantID, o.AuthURL = "cx", cxone.DemoTenantID, e.url
	o.AccessKeyID, o.AccessKeySecret, o.ClientID, o.ClientSecret = "demo-access-key", "demo-access-secret", "demo-client", "demo-secret"
	o.Checkpoints = e.cps
	if o.PollInterval == 0 {
		o.PollInterval = 100 * time.Millisecond
	}
	o.MinBackoff = 5 * time.Millisecond
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// statusName is the name the person picks for a catalog id.
func statusName(id string) string {
	names := map[int]string{cxone.BreakCode: "Break", cxone.LunchCode: "Lunch", cxone.MeetingCode: "Meeting",
		cxone.TrainingCode: "Training", cxone.PersonalCode: "Personal", cxone.CoachingCode: "Coaching"}
	if n, err := strconv.Atoi(id); err == nil && n > 8 {
		return names[n]
	}
	return map[string]string{"1": "Available", "2": "Unavailable"}[id]
}

// TestConformance runs the connector conformance suite against the CXone simulator, whose
// clock runs a year behind and whose request budget is 80 per 2 s.
func TestConformance(t *testing.T) {
	ana := strconv.Itoa(cxone.DemoAgentID(1))
	bo := strconv.Itoa(cxone.DemoAgentID(2))
	connectortest.Run(t, func(t *testing.T) *connectortest.Env {
		epoch := time.Now().AddDate(-1, 0, 0)
		start := time.Now()
		e := newEnv(t, cxone.Config{Now: func() time.Time { return epoch.Add(time.Since(start)) },
			RateLimit: 80, RateWindow: 2 * time.Second})
		if err := e.sim.SetStatus(ana, "Available"); err != nil {
			t.Fatal(err)
		}
		return &connectortest.Env{
			Connect: func(t *testing.T) connector.Connector {
				return e.connect(t, Options{RateLimit: 80, RateWindow: 2 * time.Second})
			},
			Account: ana, StatusA: strconv.Itoa(cxone.MeetingCode), StatusB: strconv.Itoa(cxone.TrainingCode),
			Act: func(t *testing.T, account, statusID string) {
				if err := e.sim.SetStatus(account, statusName(statusID)); err != nil {
					t.Fatal(err)
				}
			},
			Epoch:        epoch,
			Faults:       e.sim.Faults(),
			ExpireTokens: e.sim.ExpireTokens,
			Throttled:    e.sim.Throttled,
			Deferred: func(*testing.T) (string, string) {
				return bo, strconv.Itoa(cxone.BreakCode) // Bo is logged out
			},
		}
	})
}
