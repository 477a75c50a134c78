// Package e2e runs the engine against the vendor simulators over their real wire APIs.
package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const communicate = `version: 1
systems:
  gc:
    kind: genesys
    api_url: ${E2E_GC_URL}
    client_id: demo-client
    client_secret: demo-secret
policies:
  - name: communicate
    activities:
      - name: communicate-call
        start: gc.conversation_started
        end: gc.conversation_ended
        match: [{path: queueId, op: not_exists}]
        set: {gc: Busy}
`

// TestCommunicateCallAgainstGenesysSimulator is seed 002 end to end: a non-ACD call started in
// the simulator makes the agent Busy and its end restores the previous presence; an ACD call
// changes nothing.
func TestCommunicateCallAgainstGenesysSimulator(t *testing.T) {
	sim, err := gcsim.New(gcsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	t.Setenv("E2E_GC_URL", url)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(communicate), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg, conns := loadConnected(ctx, t, path, connector.Deps{HTTPClient: http.DefaultClient}, nil)
	eng, err := engine.New(engine.Config{Policy: cfg, Store: memory.New(), Connectors: conns})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "engine ready", func() bool { return eng.Ready() == nil })

	const ana = "ana@example.com"
	if err := sim.SetPresence(ana, "On Queue"); err != nil {
		t.Fatal(err)
	}
	presenceIs := func(want string) func() bool {
		return func() bool {
			u, ok := sim.UserByEmail(ana)
			return ok && u.Presence == want
		}
	}
	observed := func(want string) func() bool {
		return func() bool {
			v, ok, _ := eng.Agent(ctx, ana)
			return ok && v.Systems["gc"].Observed == want
		}
	}
	// settled: the engine sees want, wants it, and no write of its own is still unanswered (a
	// write's event can arrive before the write's answer, which is when it counts).
	settled := func(want string) func() bool {
		return func() bool {
			v, ok, _ := eng.Agent(ctx, ana)
			sv := v.Systems["gc"]
			return ok && sv.Observed == want && sv.InSync && sv.Pending == ""
		}
	}
	waitFor(t, "the engine to see On Queue", observed("On Queue"))

	id, err := sim.StartCall(ana, false, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Busy during the non-ACD call", presenceIs("Busy"))
	if err := sim.EndCall(id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "On Queue restored after the call", presenceIs("On Queue"))
	waitFor(t, "the restore answered and seen", settled("On Queue"))

	writes := eng.Stats().Writes.Load()
	events := eng.Stats().Events.Load()
	acdStart := time.Now()
	acd, err := sim.StartCall(ana, true, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACD call's start", func() bool { return eng.Stats().Events.Load() > events })
	events = eng.Stats().Events.Load()
	if err := sim.EndCall(acd); err != nil {
		t.Fatal(err)
	}
	// Decisions are made and recorded when an event is stored: once the explanation shows the
	// call's end, had the ACD call decided anything it would say so, and a write would be under way.
	var steps []engine.Step
	waitFor(t, "the ACD call's end decided", func() bool {
		steps, err = eng.Explain(ctx, ana, 1000)
		for _, st := range steps {
			if st.At.After(acdStart) && strings.Contains(st.Cause, "conversation_ended") {
				return true
			}
		}
		return false
	})
	for _, st := range steps {
		if strings.Contains(st.Cause, "conversation_") && st.Kind != engine.StepUnmapped {
			if st.Kind == engine.StepIntent || st.Kind == engine.StepActivityStart || st.Kind == engine.StepWrite {
				if st.At.After(acdStart) {
					t.Errorf("the ACD call decided %s: %s", st.Kind, st.Summary)
				}
			}
		}
	}
	if !settled("On Queue")() {
		t.Error("a write is under way after the ACD call")
	}
	if got := eng.Stats().Writes.Load(); got != writes {
		t.Errorf("an ACD call made %d writes, want none", got-writes)
	}
	if u, _ := sim.UserByEmail(ana); u.Presence != "On Queue" {
		t.Errorf("after the ACD call presence = %q, want On Queue", u.Presence)
	}
}

// loadConnected loads the policy at path, connecting with deps to each system open says to
// (every one when open is nil) and reading its catalog through that connector; the systems
// not opened have no catalog.
func loadConnected(ctx context.Context, t *testing.T, path string, deps connector.Deps, open func(*policy.System) bool) (*policy.Config, map[string]connector.Connector) {
	t.Helper()
	conns := map[string]connector.Connector{}
	cfg, err := policy.Load(path, policy.Options{Catalog: func(sys *policy.System) ([]presence.Status, error) {
		if open != nil && !open(sys) {
			return nil, nil
		}
		c, err := sys.Vendor.Connect(ctx, sys.Name, sys.Settings, deps)
		if err != nil {
			return nil, err
		}
		conns[sys.Name] = c
		return c.Catalog(ctx)
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, conns
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
