package salesforce

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// memCheckpoints is an in-memory connector.Checkpoints.
type memCheckpoints struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *memCheckpoints) Checkpoint(_ context.Context, name string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[name], nil
}

func (c *memCheckpoints) SetCheckpoint(_ context.Context, name, value string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[name] = value
	return nil
}

// fromStart is the checkpoint of an empty bus: replay id 0, so a subscription starts with the
// first event ever published and tests need not wait for the subscription to be in place.
var fromStart = base64.StdEncoding.EncodeToString(make([]byte, 8))

type org struct {
	sim    *sfsim.Server
	url    string
	tokens atomic.Int32
	cps    *memCheckpoints
}

// startOrg runs a simulator with its Pub/Sub port; token requests are counted.
func startOrg(t *testing.T, cfg sfsim.Config) *org {
	t.Helper()
	s, err := sfsim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return &org{sim: s, url: u, cps: &memCheckpoints{m: map[string]string{}}}
}

// countingTransport counts token requests.
type countingTransport struct{ o *org }

func (c countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if strings.HasSuffix(r.URL.Path, "/services/oauth2/token") {
		c.o.tokens.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (o *org) settings() settings.Settings {
	info := o.sim.Info()
	return settings.Settings{"login_url": o.url, "pubsub_url": info["pubsub_url"],
		"auth": map[string]any{"flow": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}}
}

func (o *org) open(t *testing.T, s settings.Settings) *Connector {
	t.Helper()
	c, err := Vendor.Connect(context.Background(), "sf", s, connector.Deps{
		HTTPClient: &http.Client{Transport: countingTransport{o}}, Checkpoints: o.cps})
	if err != nil {
		t.Fatal(err)
	}
	return c.(*Connector)
}

func TestSettingsErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    settings.Settings
		want string
	}{
		{"no auth", settings.Settings{}, "missing auth"},
		{"bad flow", settings.Settings{"auth": map[string]any{"flow": "password", "client_id": "x"}}, "not supported"},
		{"no secret", settings.Settings{"auth": map[string]any{"flow": "client_credentials", "client_id": "x"}}, "missing client_secret"},
		{"empty secret", settings.Settings{"auth": map[string]any{"flow": "client_credentials", "client_id": "x", "client_secret": ""}}, "missing client_secret"},
		{"jwt without key", settings.Settings{"auth": map[string]any{"flow": "jwt", "client_id": "x", "username": "u"}}, "missing private_key_file"},
		{"unreadable key", settings.Settings{"auth": map[string]any{"flow": "jwt", "client_id": "x", "username": "u", "private_key_file": "/nonexistent/key.pem"}}, "private_key_file"},
		{"unset secret", settings.Settings{"auth": map[string]any{"flow": "client_credentials", "client_id": "x", "client_secret": "${OMNI_TEST_UNSET_SECRET}"}}, "OMNI_TEST_UNSET_SECRET"},
		{"bad login url", settings.Settings{"login_url": "login.salesforce.com", "auth": map[string]any{"flow": "client_credentials", "client_id": "x", "client_secret": "y"}}, "must be an http(s) URL"},
		{"bad channel", settings.Settings{"channel": "UserServicePresenceChangeEvent", "auth": map[string]any{"flow": "client_credentials", "client_id": "x", "client_secret": "y"}}, "change event channel"},
	} {
		_, err := Vendor.Connect(context.Background(), "sf", tc.s, connector.Deps{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "system sf: ") {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
}

func TestCatalogAccountsCurrent(t *testing.T) {
	o := startOrg(t, sfsim.Config{BatchSize: 7})
	c := o.open(t, o.settings())
	ctx := context.Background()
	cat, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]presence.Status{}
	for _, st := range cat {
		got[st.Name] = st
	}
	for name, cat := range map[string]presence.Category{"AvailableforVoice": presence.CategoryAvailable,
		"Online": presence.CategoryAvailable, "Busy": presence.CategoryBusy, "Lunch": presence.CategoryMeal,
		"Break": presence.CategoryBreak, "Training": presence.CategoryTraining, "Offline": presence.CategoryOffline} {
		if got[name].Category != cat {
			t.Errorf("%s: category %q, want %q", name, got[name].Category, cat)
		}
	}
	if v := got["AvailableforVoice"].ID; len(v) != 18 || !strings.HasPrefix(v, "0N5") {
		t.Errorf("status id %q", v)
	}
	if got["Offline"].ID != OfflineID || len(cat) != 9 {
		t.Errorf("catalog has %d statuses, Offline id %q", len(cat), got["Offline"].ID)
	}
	accts, err := c.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 51 {
		t.Fatalf("%d accounts across pages of 7, want 51", len(accts))
	}
	ana, _ := o.sim.UserID("ana@example.com")
	bo, _ := o.sim.UserID("bo@example.com")
	if _, err := o.sim.Login("ana@example.com", "AvailableforVoice"); err != nil {
		t.Fatal(err)
	}
	cur, err := c.CurrentStatuses(ctx, []string{ana[:15], bo})
	if err != nil {
		t.Fatal(err)
	}
	if cur[ana[:15]].StatusID != got["AvailableforVoice"].ID || cur[bo].StatusID != OfflineID || len(cur) != 2 {
		t.Fatalf("current statuses %v", cur)
	}
	all, err := c.CurrentStatuses(ctx, nil)
	if err != nil || len(all) != 51 || all[ana].StatusID != got["AvailableforVoice"].ID {
		t.Fatalf("all current statuses: %d, %v", len(all), err)
	}
	if _, err := c.CurrentStatuses(ctx, []string{"x' OR Id != '"}); !connector.IsPermanent(err) {
		t.Fatalf("bad id: %v", err)
	}
	if o.tokens.Load() != 1 {
		t.Errorf("%d logins, want 1", o.tokens.Load())
	}
}

func TestTokenExpiryReauth(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := startOrg(t, sfsim.Config{SessionTimeout: time.Hour, Now: clock})
	c := o.open(t, o.settings())
	ctx := context.Background()
	if _, err := c.Accounts(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	if _, err := c.Accounts(ctx); err != nil {
		t.Fatalf("after the session timed out: %v", err)
	}
	o.sim.ExpireTokens()
	if err := c.Healthy(ctx); err != nil {
		t.Fatalf("after the tokens were revoked: %v", err)
	}
	if n := o.tokens.Load(); n != 3 {
		t.Fatalf("%d logins, want 3", n)
	}
	// A revoked token also makes the Pub/Sub API refuse; Watch logs in again and subscribes.
	o.sim.ExpireTokens()
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	w := watch(t, c)
	login(t, o, "ana@example.com", "AvailableforVoice")
	if ev := w.next(t); ev.Type != presence.StatusChanged {
		t.Fatalf("event %+v", ev)
	}
	w.stop(t)
	if n := o.tokens.Load(); n != 4 {
		t.Fatalf("%d logins, want 4", n)
	}
}

func TestLoginRefused(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	s := o.settings()
	s["auth"] = map[string]any{"flow": "client_credentials", "client_id": "demo-client", "client_secret": "wrong"}
	c := o.open(t, s)
	_, err := c.Catalog(context.Background())
	if err == nil || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("error %v: want invalid_client without the secret", err)
	}
}

func TestJWTBearer(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "omnipresence"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyFile := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		t.Fatal(err)
	}
	o := startOrg(t, sfsim.Config{JWTCertificate: cert})
	for _, tc := range []struct {
		user string
		ok   bool
	}{{"ana@example.com", true}, {"nobody@example.com", false}} {
		s := o.settings()
		s["auth"] = map[string]any{"flow": "jwt", "client_id": "demo-client", "username": tc.user, "private_key_file": keyFile}
		c := o.open(t, s)
		_, err := c.Accounts(context.Background())
		if tc.ok != (err == nil) {
			t.Errorf("jwt as %s: %v", tc.user, err)
		}
		if !tc.ok && !strings.Contains(fmt.Sprint(err), "invalid_grant") {
			t.Errorf("jwt as %s: %v, want invalid_grant", tc.user, err)
		}
	}
}

func TestSetStatusBridge(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	c := o.open(t, o.settings())
	_, err := c.SetStatus(context.Background(), "005", "0N5")
	if d, ok := connector.IsDeferred(err); !ok || !strings.Contains(d.Reason, "bridge") {
		t.Fatalf("without a bridge: %v", err)
	}
	b := &fakeBridge{}
	c.AttachBridge(b)
	if r, err := c.SetStatus(context.Background(), "005x", "0N5y"); err != nil || b.got != "005x=0N5y" || r.Version != "cmd-1" {
		t.Fatalf("with a bridge: %v, %q, receipt %+v", err, b.got, r)
	}
}

type fakeBridge struct{ got string }

func (b *fakeBridge) Send(_ context.Context, user, status string) (connector.Receipt, error) {
	b.got = user + "=" + status
	return connector.Receipt{Version: "cmd-1"}, nil
}

// watcher runs Watch in the background and collects its events.
type watcher struct {
	cancel context.CancelFunc
	events chan presence.Event
	done   chan error
}

func watchWith(t *testing.T, c *Connector, emit connector.Emit) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{cancel: cancel, events: make(chan presence.Event, 100), done: make(chan error, 1)}
	if emit == nil {
		emit = func(_ context.Context, ev presence.Event) error { w.events <- ev; return nil }
	}
	go func() { w.done <- c.Watch(ctx, emit) }()
	return w
}

func watch(t *testing.T, c *Connector) *watcher { return watchWith(t, c, nil) }

// next returns the next event; the deadline only guards against a hung test.
func (w *watcher) next(t *testing.T) presence.Event {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case err := <-w.done:
		t.Fatalf("Watch returned: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatalf("no event; %d pending", len(w.events))
	}
	return presence.Event{}
}

func (w *watcher) stop(t *testing.T) {
	t.Helper()
	w.cancel()
	if err := <-w.done; err != nil {
		t.Fatalf("Watch: %v", err)
	}
}

func login(t *testing.T, o *org, user, status string) {
	t.Helper()
	if _, err := o.sim.SetStatus(user, status, "OmniManualStatusChange"); err != nil {
		t.Fatal(err)
	}
}

func statusID(t *testing.T, c *Connector, name string) string {
	t.Helper()
	cat, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cat {
		if s.Name == name {
			return s.ID
		}
	}
	t.Fatalf("no status %s", name)
	return ""
}

func describe(ev presence.Event) string { return string(ev.Type) + " " + ev.Agent + " " + ev.Status }

// TestWatchResume observes changes, stops, misses changes while stopped and resumes from the
// stored replay id: every change arrives once, none twice. A failed emit does not advance the
// checkpoint, so its event comes again with the same id.
func TestWatchResume(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	c := o.open(t, o.settings())
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	ana, _ := o.sim.UserID("ana@example.com")
	bo, _ := o.sim.UserID("bo@example.com")
	voice, lunch, brk := statusID(t, c, "AvailableforVoice"), statusID(t, c, "Lunch"), statusID(t, c, "Break")

	w := watch(t, c)
	login(t, o, "ana@example.com", "AvailableforVoice")
	login(t, o, "ana@example.com", "Lunch")
	login(t, o, "ana@example.com", sfsim.Offline)
	login(t, o, "bo@example.com", "Busy") // marker: nothing may come between
	var got []string
	for i := 0; i < 4; i++ {
		ev := w.next(t)
		got = append(got, describe(ev))
		if ev.ID == "" || ev.At.IsZero() || ev.System != "sf" {
			t.Errorf("event lacks id, time or system: %+v", ev)
		}
	}
	want := []string{"status_changed " + ana + " " + voice, "status_changed " + ana + " " + lunch,
		"logout " + ana + " " + OfflineID, "status_changed " + bo + " " + statusID(t, c, "Busy")}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	w.stop(t)

	// While stopped: two changes.
	login(t, o, "ana@example.com", "Break")
	login(t, o, "ana@example.com", sfsim.Offline)

	// A restarted connector (empty caches) whose first emit fails: the checkpoint stays put.
	c2 := o.open(t, o.settings())
	fail := errors.New("store down")
	var firstID string
	w2 := watchWith(t, c2, func(_ context.Context, ev presence.Event) error { firstID = ev.ID; return fail })
	if err := <-w2.done; !errors.Is(err, fail) {
		t.Fatalf("Watch with a failing emit: %v", err)
	}
	w2.cancel()

	c3 := o.open(t, o.settings())
	w3 := watch(t, c3)
	login(t, o, "bo@example.com", "Training") // marker
	first := w3.next(t)
	got = []string{describe(first), describe(w3.next(t)), describe(w3.next(t))}
	want = []string{"status_changed " + ana + " " + brk, "logout " + ana + " " + OfflineID,
		"status_changed " + bo + " " + statusID(t, c, "Training")}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("after restart:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if first.ID != firstID {
		t.Errorf("redelivered event id %q, first delivery had %q", first.ID, firstID)
	}
	w3.stop(t)
}

// TestPropertyOneEventPerChange drives random status changes through the simulator's control
// endpoint, as the console does, and checks that each effective change becomes exactly one
// engine event with the right type and status, in order.
func TestPropertyOneEventPerChange(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	c := o.open(t, o.settings())
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	ids := map[string]string{}
	cat, err := c.Catalog(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cat {
		ids[s.Name] = s.ID
	}
	users := []string{"ana@example.com", "chloe@example.com", "dev@example.com"}
	choices := []string{"AvailableforVoice", "AvailableforChat", "Busy", "Lunch", "Offline", "Offline"}
	rng := mrand.New(mrand.NewPCG(4, 2))
	w := watch(t, c)
	var want []string
	for i := 0; i < 60; i++ {
		user, st := users[rng.IntN(len(users))], choices[rng.IntN(len(choices))]
		body, _ := json.Marshal(map[string]string{"status": st, "reason": "OmniManualStatusChange"})
		resp, err := http.Post(o.url+"/_sim/users/"+user+"/status", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var ch sfsim.Change
		_ = json.NewDecoder(resp.Body).Decode(&ch)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("control endpoint: %d", resp.StatusCode)
		}
		if ch.From == ch.To {
			continue
		}
		if st == "Offline" {
			want = append(want, "logout "+ch.UserID+" "+OfflineID)
		} else {
			want = append(want, "status_changed "+ch.UserID+" "+ids[st])
		}
	}
	marker, _ := o.sim.UserID("bo@example.com")
	login(t, o, "bo@example.com", "Training")
	want = append(want, "status_changed "+marker+" "+ids["Training"])
	var got []string
	for range want {
		select {
		case ev := <-w.events:
			got = append(got, describe(ev))
			continue
		case <-time.After(3 * time.Second):
		}
		t.Logf("got %d of %d:\n%s\nwant:\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
		break
	}
	w.stop(t)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
