package salesforce

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// TestHeadlessConsoleSpeaksTheBridgeProtocol runs a headless console against the service's own
// bridge handler: a command lands in the org and is acknowledged, its change comes back tagged
// with the command id, a person's change comes back untagged, and the console steps aside while
// the user's console page is open with its bridge.
func TestHeadlessConsoleSpeaksTheBridgeProtocol(t *testing.T) {
	key, err := os.ReadFile("../../../bridge/salesforce/test/fixtures/test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bridgetoken.ParseSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := os.ReadFile("../../../bridge/salesforce/test/fixtures/test-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := bridgetoken.ParseCertificates(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := bridgetoken.NewVerifier(certs, nil)
	if err != nil {
		t.Fatal(err)
	}
	sim, err := New(Config{BridgeSigner: signer})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []presence.Event
	hub := bridge.NewHub(nil)
	h, err := bridge.NewHandler(bridge.Options{Verifier: verifier, System: "sf", Hub: hub,
		Ingest: func(_ context.Context, ev presence.Event) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(bridge.Prefix, h)
	svc := httptest.NewServer(mux)
	defer svc.Close()
	defer hub.Close()

	ctx, cancel := context.WithCancel(context.Background())
	wait, err := sim.StartHeadlessConsoles(ctx, HeadlessOptions{Service: svc.URL, Users: []string{"ana@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); hub.Close(); wait() }()
	ana, err := sim.UserID("ana@example.com")
	if err != nil {
		t.Fatal(err)
	}
	until(t, "the console's stream", func() bool { return hub.Connected(ana) })

	// A command: the org changes, the ack resolves Send, the change carries the command id.
	sendCtx, sendCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer sendCancel()
	if _, err := hub.Send(sendCtx, ana, sim.statusID("Break")); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if p, _ := sim.Presence(ana); p != "Break" {
		t.Fatalf("presence %s after the command, want Break", p)
	}
	until(t, "the command's event", func() bool { return hasEvent(&mu, &events, "Break", true) })
	// A login came first: the agent was offline.
	mu.Lock()
	if events[0].Type != presence.Login {
		t.Errorf("first event %s, want login", events[0].Type)
	}
	mu.Unlock()

	// A person's change: reported without a command id.
	if _, err := sim.SetStatus(ana, "Lunch", "OmniManualStatusChange"); err != nil {
		t.Fatal(err)
	}
	until(t, "the person's event", func() bool { return hasEvent(&mu, &events, "Lunch", false) })

	// The page opens with its bridge: the headless console closes its stream.
	sim.noteConsolePoll(ana, true)
	keepOpen := make(chan struct{})
	go func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-keepOpen:
				return
			case <-tick.C:
				sim.noteConsolePoll(ana, false)
			}
		}
	}()
	until(t, "the console to step aside", func() bool { return !hub.Connected(ana) })
	close(keepOpen)
	// The page closes: the headless console takes over again.
	until(t, "the console to take over", func() bool { return hub.Connected(ana) })
}

func hasEvent(mu *sync.Mutex, events *[]presence.Event, apiName string, tagged bool) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range *events {
		if ev.Type == presence.StatusChanged && ev.Data["statusApiName"] == apiName && (ev.Data["commandId"] != nil) == tagged &&
			(ev.Origin == presence.OriginSelf) == tagged {
			return true
		}
	}
	return false
}

// until waits for cond, failing after 30 s: the condition is an outcome, not a timing.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
