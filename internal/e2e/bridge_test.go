package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/server"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

const bridgePolicy = `version: 1
systems:
  sf:
    kind: salesforce
    catalog:
      - {id: "0N5000000000001CAA", name: AvailableforVoice, category: available}
      - {id: "0N5000000000003CAA", name: Lunch, category: meal}
      - {id: "0", name: Offline, category: offline}
  gc:
    kind: genesys
    catalog:
      - {id: "e08eaf1b-ee47-4fa9-a231-1200e284798f", name: On Queue, category: on_queue}
      - {id: "3fd96123-badb-4f69-bc03-1b1ccc6d8014", name: Meal, category: meal}
      - {id: "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5", name: Offline, category: offline}
policies:
  - name: voice
    map:
      - {from: sf, to: gc, states: {AvailableforVoice: On Queue, Lunch: Meal, Offline: Offline}}
      - {from: gc, to: sf, states: {On Queue: AvailableforVoice, Meal: Lunch, Offline: Offline}}
`

// bridgedSalesforce is the Salesforce side as the service sees it once the bridge is on: status
// writes go to the hub; events arrive through the bridge endpoints, not Watch.
type bridgedSalesforce struct {
	*fakevendor.Connector
	hub *bridge.Hub
}

func (b bridgedSalesforce) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	return b.hub.Send(ctx, account, statusID)
}

// TestOmniChannelBridge runs the engine with the bridge mounted on the real server; the test
// plays the agent's browser bridge over HTTP. A Genesys change reaches Omni-Channel as a command
// whose applied echo does not bounce back, and a change the agent makes in Omni-Channel reaches
// Genesys.
func TestOmniChannelBridge(t *testing.T) {
	const (
		ana    = "ana@example.com"
		sfUser = "005000000000001AAA"
		onQ    = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
		meal   = "3fd96123-badb-4f69-bc03-1b1ccc6d8014"
	)
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(bridgePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hub := bridge.NewHub(map[string]string{"0N5000000000001CAA": "AvailableforVoice", "0N5000000000003CAA": "Lunch"})
	sf := bridgedSalesforce{fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), []presence.Account{{ID: sfUser, Email: ana}}), hub}
	gc := fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(), []presence.Account{{ID: ana, Email: ana}})
	eng, err := engine.New(engine.Config{Policy: cfg, Store: memory.New(),
		Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
		Machine:    engine.Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBridged(t, eng, bridge.Options{Hub: hub})
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		hub.Close()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "engine ready", func() bool { return eng.Ready() == nil })

	tok := orgToken(t, sfUser, time.Now())
	post := func(path string, body any, want int) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+bridge.Prefix+path, strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("POST %s answered %s %s", path, resp.Status, out)
		}
	}
	commands := openCommandStream(t, srv.URL, tok)
	defer commands.close()
	waitFor(t, "the bridge stream", func() bool { return hub.Connected(sfUser) })

	// Genesys On Queue → the engine writes Salesforce AvailableforVoice through the bridge.
	gc.Act(ana, onQ)
	var cmd bridge.Command
	select {
	case cmd = <-commands.ch:
	case <-time.After(15 * time.Second):
		t.Fatal("no command reached the bridge")
	}
	if cmd.Action != bridge.ActionSetStatus || cmd.StatusID != "0N5000000000001" || cmd.StatusAPIName != "AvailableforVoice" {
		t.Fatalf("command = %+v", cmd)
	}
	echoes := eng.Stats().Echoes.Load()
	post("events", map[string]any{"events": []map[string]any{{"id": "ev-1", "type": "status_changed",
		"at": time.Now().UTC().Format(time.RFC3339Nano), "statusId": "0N5000000000001", "statusApiName": "AvailableforVoice",
		"reason": "OmniToolkitStatusChange", "commandId": cmd.ID}}}, http.StatusOK)
	post("ack", map[string]string{"id": cmd.ID, "result": "applied"}, http.StatusNoContent)
	waitFor(t, "the applied write's echo", func() bool { return eng.Stats().Echoes.Load() > echoes })
	waitFor(t, "the engine to see Salesforce AvailableforVoice", func() bool {
		v, ok, _ := eng.Agent(ctx, ana)
		return ok && v.Systems["sf"].Observed == "AvailableforVoice" && v.Systems["sf"].InSync
	})
	if w := gc.Writes(); len(w) != 0 {
		t.Fatalf("Genesys got writes %+v; the echo must not bounce back", w)
	}

	// The agent picks Lunch in Omni-Channel → Genesys Meal.
	post("events", map[string]any{"events": []map[string]any{{"id": "ev-2", "type": "status_changed",
		"at": time.Now().UTC().Format(time.RFC3339Nano), "statusId": "0N5000000000003", "statusApiName": "Lunch",
		"reason": "OmniManualStatusChange"}}}, http.StatusOK)
	waitFor(t, "Genesys Meal", func() bool { return gc.Status(ana) == meal })
	if w := gc.Writes(); len(w) != 1 || w[0].StatusID != meal {
		t.Errorf("Genesys writes = %+v, want one Meal", w)
	}
	select {
	case c := <-commands.ch:
		t.Errorf("the bridge got an unexpected command %+v", c)
	default:
	}

	// Omni-Channel moves to another window of the agent: no status changes anywhere.
	post("events", map[string]any{"events": []map[string]any{{"id": "ev-3", "type": "logout",
		"at": time.Now().UTC().Format(time.RFC3339Nano), "reason": "DuplicateLogin"}}}, http.StatusOK)
	// A supervisor logs the agent out: a person's change, which Genesys follows, explained.
	post("events", map[string]any{"events": []map[string]any{{"id": "ev-4", "type": "logout",
		"at": time.Now().UTC().Format(time.RFC3339Nano), "reason": "OmniSupervisorLogout"}}}, http.StatusOK)
	waitFor(t, "Genesys Offline", func() bool { return gc.Status(ana) == "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5" })
	steps, err := eng.Explain(ctx, ana, 100)
	if err != nil {
		t.Fatal(err)
	}
	var causes []string
	for _, s := range steps {
		causes = append(causes, s.Cause)
	}
	all := strings.Join(causes, "\n")
	if !strings.Contains(all, "sf session_moved (DuplicateLogin)") || !strings.Contains(all, "sf logout (OmniSupervisorLogout)") {
		t.Errorf("explain does not name the logout reasons:\n%s", all)
	}
	if w := gc.Writes(); len(w) != 2 {
		t.Errorf("Genesys writes = %+v, want Meal then Offline (the moved session changes nothing)", w)
	}
}

// fixtures holds the bridge's test key pair: the org's certificate and its private key.
const fixtures = "../../bridge/salesforce/test/fixtures/"

// serveBridged serves the service's API for eng with the Salesforce bridge of system "sf",
// which checks the org's tokens and ingests into eng, with o's other options.
func serveBridged(t *testing.T, eng *engine.Engine, o bridge.Options) *httptest.Server {
	t.Helper()
	o.Verifier, o.System, o.Ingest = orgVerifier(t), "sf", eng.Ingest
	h, err := bridge.NewHandler(o)
	if err != nil {
		t.Fatal(err)
	}
	return httptest.NewServer(server.New(server.Options{Engine: eng, Bridge: h}).Handler())
}

func orgVerifier(t *testing.T) *bridgetoken.Verifier {
	t.Helper()
	b, err := os.ReadFile(fixtures + "test-cert.pem")
	if err != nil {
		t.Fatal(err)
	}
	certs, err := bridgetoken.ParseCertificates(b)
	if err != nil {
		t.Fatal(err)
	}
	v, err := bridgetoken.NewVerifier(certs, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// orgToken signs a token for user as the org's Apex controller does, issued at iat.
func orgToken(t *testing.T, user string, iat time.Time) string {
	t.Helper()
	b, err := os.ReadFile(fixtures + "test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	s, err := bridgetoken.ParseSigner(b)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := s.Sign(bridgetoken.Claims{Iss: "00D000000000001EAA", Sub: user, Aud: bridgetoken.Audience,
		Iat: iat.Unix(), Exp: iat.Add(10 * time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// commandStream reads the bridge's command stream as the browser bridge would.
type commandStream struct {
	ch     chan bridge.Command
	cancel context.CancelFunc
	done   chan struct{}
}

func openCommandStream(t *testing.T, base, tok string) *commandStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+bridge.Prefix+"stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		resp.Body.Close()
		t.Fatalf("stream answered %s", resp.Status)
	}
	s := &commandStream{ch: make(chan bridge.Command, 16), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var c bridge.Command
				if err := json.Unmarshal([]byte(data), &c); err != nil {
					c.ID = fmt.Sprintf("malformed command %q: %v", data, err) // fails the test's checks
				}
				s.ch <- c
			}
		}
	}()
	return s
}

func (s *commandStream) close() {
	s.cancel()
	<-s.done
}
