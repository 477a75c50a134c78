package amazonconnect

import (
	"context"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/connectortest"
	sim "github.com/omnipresence/omnipresence/internal/vendorsim/amazonconnect"
)

// env is a simulator started for one test, with the options of a connector facing it.
type env struct {
	sim  *sim.Server
	opts Options
	ana  string
}

// newEnv starts a simulator whose clock runs a year behind, with fast shard reads so that
// events arrive within tens of milliseconds.
func newEnv(t testing.TB, cfg sim.Config) *env {
	t.Helper()
	epoch := time.Now().AddDate(-1, 0, 0)
	start := time.Now()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return epoch.Add(time.Since(start)) }
	}
	if cfg.ShardReads == 0 {
		cfg.ShardReads = 100
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	info := s.Info()
	o := Options{System: "connect", Region: info["region"].(string), InstanceID: info["instance_id"].(string),
		Endpoint: url, KinesisEndpoint: url, Stream: info["agent_event_stream"].(string),
		AccessKeyID: info["access_key_id"].(string), SecretAccessKey: info["secret_access_key"].(string),
		Checkpoints: &connector.MemoryCheckpoints{}, ShardReads: cfg.ShardReads, PollInterval: 20 * time.Millisecond,
		ShardRefresh: 200 * time.Millisecond, WireSecond: cfg.WireSecond}
	if cfg.RatePerSecond > 0 {
		o.WriteRate, o.ReadRate = cfg.RatePerSecond, cfg.RatePerSecond
	}
	if cfg.Burst > 0 {
		o.WriteBurst, o.ReadBurst = cfg.Burst, cfg.Burst
	}
	return &env{sim: s, opts: o, ana: s.Users()[0].ID}
}

func (e *env) connector(t testing.TB) *Connector {
	t.Helper()
	c, err := New(context.Background(), e.opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestConformance runs the connector conformance suite against the Amazon Connect simulator,
// whose clock runs a year behind and whose quotas are Connect's (2 requests a second, burst 5;
// GetCurrentUserData 5, burst 8).
func TestConformance(t *testing.T) {
	connectortest.Run(t, func(t *testing.T) *connectortest.Env {
		e := newEnv(t, sim.Config{})
		epoch := time.Now().AddDate(-1, 0, 0)
		var contact string
		return &connectortest.Env{
			Connect: func(t *testing.T) connector.Connector { return e.connector(t) },
			Account: e.ana, StatusA: sim.LunchID, StatusB: sim.BreakID,
			Act: func(t *testing.T, account, statusID string) {
				if err := e.sim.SetStatus(account, statusID); err != nil {
					t.Fatal(err)
				}
			},
			Epoch:        epoch.Add(-time.Minute),
			Faults:       e.sim.Faults(),
			ExpireTokens: e.sim.ExpireTokens,
			Throttled:    e.sim.Throttled,
			Deferred: func(t *testing.T) (string, string) {
				id, err := e.sim.StartContact(sim.ContactRequest{User: e.ana, Answer: true})
				if err != nil {
					t.Fatal(err)
				}
				contact = id
				return e.ana, sim.LunchID
			},
			Release: func(t *testing.T) {
				if err := e.sim.EndContact(contact); err != nil {
					t.Fatal(err)
				}
				if err := e.sim.ClearContact(contact); err != nil {
					t.Fatal(err)
				}
			},
		}
	})
}
