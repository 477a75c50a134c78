// Package e2e runs the engine against the vendor simulators over their real wire APIs.
package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	gcconn "github.com/omnipresence/omnipresence/internal/connector/genesys"
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
	conns := map[string]connector.Connector{}
	cfg, err := policy.Load(path, policy.Options{Catalog: func(sys *policy.System) ([]presence.Status, error) {
		c, err := gcconn.Factory(ctx, sys.Name, sys.Settings, connector.Deps{HTTPClient: http.DefaultClient})
		if err != nil {
			return nil, err
		}
		conns[sys.Name] = c
		return c.Catalog(ctx)
	}})
	if err != nil {
		t.Fatal(err)
	}
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
	waitFor(t, "the engine to see the restore", observed("On Queue"))

	writes := eng.Stats().Writes.Load()
	events := eng.Stats().Events.Load()
	acd, err := sim.StartCall(ana, true, "")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACD call's start", func() bool { return eng.Stats().Events.Load() > events })
	events = eng.Stats().Events.Load()
	if err := sim.EndCall(acd); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ACD call's end", func() bool { return eng.Stats().Events.Load() > events })
	time.Sleep(200 * time.Millisecond) // a write, if one were wrongly made, would land by now
	if got := eng.Stats().Writes.Load(); got != writes {
		t.Errorf("an ACD call made %d writes, want none", got-writes)
	}
	if u, _ := sim.UserByEmail(ana); u.Presence != "On Queue" {
		t.Errorf("after the ACD call presence = %q, want On Queue", u.Presence)
	}
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
