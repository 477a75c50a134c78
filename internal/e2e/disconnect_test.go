package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/server"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

const disconnectPolicy = bridgePolicy + `    on_disconnect:
      of: sf
      after: 2m
      set: {gc: Offline}
`

// TestOnDisconnect runs the engine with the bridge on a virtual clock: an agent who closes the
// console is set Offline in Genesys once it has been gone for the policy's after, and explain
// says why; an agent whose console reloads is left alone.
func TestOnDisconnect(t *testing.T) {
	const (
		ana, anaSF = "ana@example.com", "005000000000001AAA" // closes her console
		bo, boSF   = "bo@example.com", "005000000000002AAA"  // reloads his
		onQ        = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
		gcOffline  = "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5"
	)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(disconnectPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub := bridge.NewHub(nil)
	accounts := []presence.Account{{ID: anaSF, Email: ana}, {ID: boSF, Email: bo}}
	sf := bridgedSalesforce{fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts), hub}
	gc := fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(), []presence.Account{{ID: ana, Email: ana}, {ID: bo, Email: bo}})
	st := memory.New()
	eng, err := engine.New(engine.Config{Policy: cfg, Store: st, Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
		Machine: engine.Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var clockMu sync.Mutex
	now := time.Now().Truncate(time.Second)
	t0 := now
	clock := func() time.Time {
		clockMu.Lock()
		defer clockMu.Unlock()
		return now
	}
	set := func(t time.Time) {
		clockMu.Lock()
		now = t
		clockMu.Unlock()
	}
	// A 5m threshold besides on_disconnect's: its event marks that the tracker has looked at
	// the later time.
	h, err := bridge.NewHandler(bridge.Options{Verifier: orgVerifier(t), System: "sf", Hub: hub, Ingest: eng.Ingest,
		DisconnectAfter: []time.Duration{cfg.Policies[0].OnDisconnect.After, 5 * time.Minute}, Checkpoints: st, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(server.New(server.Options{Engine: eng, Bridge: h}).Handler())
	defer hs.Close()
	ts := hs.URL
	// at moves the virtual clock; Bo's console, which is there all along, calls at once.
	at := func(d time.Duration) {
		set(t0.Add(d))
		req, _ := http.NewRequest(http.MethodPost, ts+bridge.Prefix+"heartbeat", nil)
		req.Header.Set("Authorization", "Bearer "+orgToken(t, boSF, t0))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("heartbeat answered %s", resp.Status)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = eng.Run(ctx) }()
	go func() { defer wg.Done(); _ = h.Run(ctx) }()
	defer func() {
		hub.Close()
		cancel()
		wg.Wait()
	}()
	waitFor(t, "engine ready", func() bool { return eng.Ready() == nil })

	anaStream := openCommandStream(t, ts, orgToken(t, anaSF, t0))
	boStream := openCommandStream(t, ts, orgToken(t, boSF, t0))
	waitFor(t, "both consoles", func() bool { return hub.Connected(anaSF) && hub.Connected(boSF) })
	gc.Act(ana, onQ)
	gc.Act(bo, onQ)
	waitFor(t, "both on queue", func() bool {
		for _, a := range []string{ana, bo} {
			if v, ok, _ := eng.Agent(ctx, a); !ok || v.Systems["gc"].Observed != "On Queue" {
				return false
			}
		}
		return true
	})
	// Commands for AvailableforVoice go to both consoles; they apply them.
	for user, s := range map[string]*commandStream{anaSF: anaStream, boSF: boStream} {
		select {
		case c := <-s.ch:
			b, _ := json.Marshal(map[string]string{"id": c.ID, "result": bridge.ResultApplied})
			req, _ := http.NewRequest(http.MethodPost, ts+bridge.Prefix+"ack", bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+orgToken(t, user, t0))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		case <-time.After(15 * time.Second):
			t.Fatal("no command")
		}
	}

	// Ana closes her console; Bo reloads his (closed and open again within seconds).
	anaStream.close()
	boStream.close()
	waitFor(t, "the consoles to close", func() bool { return !hub.Connected(anaSF) && !hub.Connected(boSF) })
	set(t0.Add(5 * time.Second))
	boStream = openCommandStream(t, ts, orgToken(t, boSF, t0))
	defer boStream.close()
	waitFor(t, "Bo's console back", func() bool { return hub.Connected(boSF) })

	// Past the grace period the disconnect is recorded; Genesys is left as it is until after.
	at(119 * time.Second)
	explained := func(email, text string) bool {
		steps, err := eng.Explain(ctx, email, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range steps {
			if strings.Contains(s.Cause+" "+s.Summary+" "+strings.Join(s.Details, " "), text) {
				return true
			}
		}
		return false
	}
	waitFor(t, "the recorded disconnect", func() bool { return explained(ana, "sf console_disconnected (closed)") })
	if got := gc.Status(ana); got != onQ {
		t.Fatalf("Genesys changed before on_disconnect's after: %s", got)
	}

	// Two minutes after the console went away: Offline in Genesys, explained.
	at(2*time.Minute + time.Second)
	waitFor(t, "Genesys Offline for Ana", func() bool { return gc.Status(ana) == gcOffline })
	if !explained(ana, "voice/on_disconnect") {
		t.Error("explain does not name on_disconnect")
	}
	// Bo's reload recorded nothing; his Genesys status stays.
	at(4 * time.Minute)
	at(6 * time.Minute)
	waitFor(t, "the tracker at the later time", func() bool { return explained(ana, "gone 5m0s") })
	if explained(bo, "console_disconnected") || gc.Status(bo) != onQ {
		t.Errorf("Bo's reload counted as a disconnect (Genesys %s)", gc.Status(bo))
	}
}
