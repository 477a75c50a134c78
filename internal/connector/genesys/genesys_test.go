package genesys

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
	sim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wireSecond shrinks the simulator's rate window (60 wire seconds) so tests never sleep long.
const wireSecond = 10 * time.Millisecond

type counts struct {
	mu        sync.Mutex
	byKey     map[string]int
	tooMany   int
	patchesOK int
}

func (c *counts) applied() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.patchesOK
}

func (c *counts) throttled() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tooMany
}

func (c *counts) get(k string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byKey[k]
}

// statusRecorder reports a response's status once, before any of it reaches the client, so
// that counts are up to date when the client sees the answer.
type statusRecorder struct {
	http.ResponseWriter
	onStatus func(int)
	done     bool
}

func (r *statusRecorder) WriteHeader(s int) {
	if !r.done {
		r.done = true
		r.onStatus(s)
	}
	r.ResponseWriter.WriteHeader(s)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if !r.done {
		r.WriteHeader(http.StatusOK)
	}
	return r.ResponseWriter.Write(b)
}

// Hijack lets the WebSocket upgrade through the recorder.
func (r *statusRecorder) Hijack() (c interface{ Close() error }, err error) {
	return nil, errors.New("unused")
}

// waitCount waits (at most 5 s) until at least n requests with key were made, failing the test
// otherwise.
func (e *env) waitCount(key string, n int) {
	e.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for e.counts.get(key) < n {
		if time.Now().After(deadline) {
			e.t.Fatalf("%d %q requests after 5s, want at least %d", e.counts.get(key), key, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type env struct {
	t          testing.TB
	sim        *sim.Server
	url        string
	client     *Client
	counts     *counts
	faultClock *clock
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newEnv(t testing.TB, cfg sim.Config, opts Options) *env {
	t.Helper()
	fc := &clock{t: time.Now()}
	cfg.FaultOptions.Now = fc.now
	if cfg.RateWindow == 0 {
		cfg.RateWindow = 60 * wireSecond
	}
	s, err := sim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cnt := &counts{byKey: map[string]int{}}
	inner := s.Handler()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/channels/") {
			inner.ServeHTTP(w, r)
			return
		}
		key := r.Method + " " + r.URL.Path
		if strings.HasSuffix(r.URL.Path, "/presences/purecloud") && r.Method == "PATCH" {
			key = "PATCH presence"
		}
		cnt.mu.Lock()
		cnt.byKey[key]++
		cnt.mu.Unlock()
		rec := &statusRecorder{ResponseWriter: w, onStatus: func(status int) {
			cnt.mu.Lock()
			defer cnt.mu.Unlock()
			if status == http.StatusTooManyRequests {
				cnt.tooMany++
			}
			if key == "PATCH presence" && status == http.StatusOK {
				cnt.patchesOK++
			}
		}}
		inner.ServeHTTP(rec, r)
	}))
	t.Cleanup(func() {
		_ = s.Close()
		ts.Close()
	})
	opts.System = "gc"
	opts.APIURL = ts.URL
	opts.ClientID, opts.ClientSecret = "demo-client", "demo-secret"
	opts.WireSecond = wireSecond
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 5 * time.Millisecond
	}
	if opts.PingInterval == 0 {
		opts.PingInterval = time.Hour
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, sim: s, url: ts.URL, client: c, counts: cnt, faultClock: fc}
}

// watcher runs Watch and collects its events.
type watcher struct {
	events chan presence.Event
	cancel context.CancelFunc
	done   chan error
}

func (e *env) watch() *watcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{events: make(chan presence.Event, 1000), cancel: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- e.client.Watch(ctx, func(_ context.Context, ev presence.Event) error {
			w.events <- ev
			return nil
		})
	}()
	e.t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			e.t.Errorf("Watch returned %v", err)
		}
	})
	return w
}

// next returns the next event; the timeout only guards against a hung test.
func (w *watcher) next(t *testing.T) presence.Event {
	t.Helper()
	select {
	case ev := <-w.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
		return presence.Event{}
	}
}

// barrier changes user's presence until the watcher reports it, proving the watcher is
// subscribed and baselined, and returns the events seen before that one.
func (e *env) barrier(w *watcher, user string) []presence.Event {
	e.t.Helper()
	var before []presence.Event
	labels := []string{"Meeting", "Training"}
	ids := []string{sim.MeetingID, sim.TrainingID}
	for i := 0; ; i++ {
		if err := e.sim.SetPresence(user, labels[i%2]); err != nil {
			e.t.Fatal(err)
		}
		deadline := time.After(100 * time.Millisecond)
	wait:
		for {
			select {
			case ev := <-w.events:
				if ev.Agent == user {
					// Only the change just made ends the barrier: under load an earlier
					// attempt's event can come late, and it is the barrier's own, not an extra.
					if ev.Type == presence.StatusChanged && ev.Data["routingStatus"] == nil && ev.Status == ids[i%2] {
						return before
					}
					continue
				}
				before = append(before, ev)
			case <-deadline:
				break wait
			}
		}
		if i > 100 {
			e.t.Fatal("watcher never became ready")
		}
	}
}

func id(n int) string { return sim.DemoUserID(n) }

func TestSettings(t *testing.T) {
	tests := []struct {
		name       string
		s          settings.Settings
		api, login string
		err        string
	}{
		{"region", settings.Settings{"region": "mypurecloud.ie", "client_id": "a", "client_secret": "b"}, "https://api.mypurecloud.ie", "https://login.mypurecloud.ie", ""},
		{"api_url", settings.Settings{"api_url": "http://127.0.0.1:1", "client_id": "a", "client_secret": "b"}, "http://127.0.0.1:1", "http://127.0.0.1:1", ""},
		{"both urls", settings.Settings{"api_url": "http://a", "login_url": "http://l", "client_id": "a", "client_secret": "b"}, "http://a", "http://l", ""},
		{"no url", settings.Settings{"client_id": "a", "client_secret": "b"}, "", "", "region or api_url"},
		{"bad region", settings.Settings{"region": "https://x", "client_id": "a", "client_secret": "b"}, "", "", "region must be a domain"},
		{"bad api_url", settings.Settings{"api_url": "api.mypurecloud.com", "client_id": "a", "client_secret": "b"}, "", "", "api_url must be an http(s) URL"},
		{"no secret", settings.Settings{"region": "mypurecloud.com", "client_id": "a"}, "", "", "missing client_secret"},
		{"empty secret", settings.Settings{"region": "mypurecloud.com", "client_id": "a", "client_secret": " "}, "", "", "missing client_secret"},
		{"unknown key", settings.Settings{"region": "mypurecloud.com", "client_id": "a", "client_secret": "b", "regoin": "x"}, "", "", `unknown key "regoin"`},
		{"missing env", settings.Settings{"region": "mypurecloud.com", "client_id": "a", "client_secret": "${OMNI_TEST_UNSET_SECRET}"}, "", "", "OMNI_TEST_UNSET_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Vendor.Connect(context.Background(), "gc", tt.s, connector.Deps{})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) || !strings.HasPrefix(err.Error(), "system gc: ") {
					t.Fatalf("error %v, want one about system gc saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if o := c.(*Client).o; o.APIURL != tt.api || o.LoginURL != tt.login {
				t.Fatalf("got %+v", o)
			}
		})
	}
}

func TestCatalogAndAccounts(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	ctx := context.Background()
	cat, err := e.client.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]presence.Status{}
	for _, s := range cat {
		byName[s.Name] = s
	}
	want := []presence.Status{
		{ID: sim.OnQueueID, Name: "On Queue", Label: "On Queue", Category: presence.CategoryOnQueue, Settable: true, SystemPresence: "On Queue"},
		{ID: sim.IdleID, Name: "Idle", Label: "Idle", Category: presence.CategorySystem, Settable: false, SystemPresence: "Idle"},
		{ID: sim.OfflineID, Name: "Offline", Label: "Offline", Category: presence.CategoryOffline, Settable: true, SystemPresence: "Offline"}, // an administrator may set anyone Offline,
		{ID: sim.BusyID, Name: "Busy", Label: "Busy", Category: presence.CategoryBusy, Settable: true, SystemPresence: "Busy"},
		{ID: "a1f0c8e2-5b7d-4c11-9e0a-000000000001", Name: "Coffee Break", Label: "Coffee Break", Category: presence.CategoryBreak, Settable: true, SystemPresence: "Break"},
	}
	if len(cat) != 15 {
		t.Fatalf("%d statuses, want 15", len(cat))
	}
	for _, w := range want {
		if got := byName[w.Name]; got != w {
			t.Errorf("%s: got %+v, want %+v", w.Name, got, w)
		}
	}
	accts, err := e.client.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 50 || accts[0] != (presence.Account{ID: id(1), Email: "ana@example.com", Name: "Ana Alvarez"}) {
		t.Fatalf("%d accounts, first %+v", len(accts), accts[0])
	}
	if err := e.client.Healthy(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWrongSecretIsPermanent(t *testing.T) {
	e := newEnv(t, sim.Config{ClientSecret: "other"}, Options{})
	_, err := e.client.Catalog(context.Background())
	if !connector.IsPermanent(err) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("got %v", err)
	}
}

func TestSetStatusEchoAndHumanChange(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	ctx := context.Background()
	r, err := e.client.SetStatus(ctx, id(2), sim.BusyID)
	if err != nil {
		t.Fatal(err)
	}
	ev := w.next(t)
	// The engine matches the echo to its write by the receipt's version; the connector does
	// not guess which events are ours.
	if ev.Agent != id(2) || ev.Status != sim.BusyID || ev.Origin != "" || ev.System != "gc" || ev.Data["systemPresence"] != "BUSY" {
		t.Fatalf("echo event %+v", ev)
	}
	if r.Version == "" || ev.Version != r.Version || !ev.At.Equal(r.At) {
		t.Fatalf("echo version %q at %s, receipt %+v", ev.Version, ev.At, r)
	}
	if err := e.sim.SetPresence(id(2), "Coffee Break"); err != nil {
		t.Fatal(err)
	}
	ev = w.next(t)
	if ev.Status != "a1f0c8e2-5b7d-4c11-9e0a-000000000001" || ev.Origin != "" || ev.Data["systemPresence"] != "BREAK" {
		t.Fatalf("human change %+v", ev)
	}
	_, err = e.client.SetStatus(ctx, "ghost", sim.BusyID)
	if !connector.IsPermanent(err) {
		t.Fatalf("unknown user: %v", err)
	}
	_, err = e.client.SetStatus(ctx, id(2), sim.IdleID)
	var api *APIError
	if !connector.IsPermanent(err) || !errors.As(err, &api) || api.Status != 400 {
		t.Fatalf("Idle write: %v", err)
	}
}

func TestStorm429NoLossNoDuplicate(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	if err := e.sim.Faults().Apply(fault.Settings{StormFor: time.Hour, RetryAfter: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err := e.client.SetStatus(ctx, id(3), sim.MealID)
	after, ok := connector.RetryAfter(err)
	if !ok || after != 2*wireSecond {
		t.Fatalf("storm write: %v (after %v)", err, after)
	}
	if u, _ := e.sim.UserByEmail("chloe@example.com"); u.PresenceID == sim.MealID {
		t.Fatal("a refused write was applied")
	}
	e.faultClock.add(time.Hour)
	r, err := e.client.SetStatus(ctx, id(3), sim.MealID)
	if err != nil {
		t.Fatal(err)
	}
	ev := w.next(t)
	if ev.Agent != id(3) || ev.Status != sim.MealID || ev.Version != r.Version {
		t.Fatalf("event %+v, receipt %+v", ev, r)
	}
	if extra := e.barrier(w, id(50)); len(extra) != 0 {
		t.Fatalf("duplicate events %+v", extra)
	}
	if n := e.counts.applied(); n != 1 {
		t.Fatalf("%d presence writes applied, want 1", n)
	}
}

func TestRateLimitRespectedUpFront(t *testing.T) {
	e := newEnv(t, sim.Config{RateLimitPerMinute: 5}, Options{})
	ctx := context.Background()
	for i := range 12 {
		if _, err := e.client.SetStatus(ctx, id(1+i%3), []string{sim.BusyID, sim.AwayID}[i%2]); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if e.counts.throttled() != 0 {
		t.Fatalf("%d requests got 429; the limiter must keep within inin-ratelimit-allowed", e.counts.throttled())
	}
	if per, burst := e.client.WriteLimit(); per != 5.0/60/wireSecond.Seconds() || burst != 5 {
		t.Fatalf("WriteLimit %v %d", per, burst)
	}
}

func TestTokenExpiryReauthenticates(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	ctx := context.Background()
	if _, err := e.client.SetStatus(ctx, id(4), sim.BusyID); err != nil {
		t.Fatal(err)
	}
	e.sim.ExpireTokens()
	if _, err := e.client.SetStatus(ctx, id(4), sim.AwayID); err != nil {
		t.Fatal(err)
	}
	if n := e.counts.get("POST /oauth/token"); n != 2 {
		t.Fatalf("%d token requests, want 2", n)
	}
	if n := e.counts.applied(); n != 2 {
		t.Fatalf("%d writes applied, want 2", n)
	}
}

func TestDroppedSocketLosesNothing(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	e.sim.DropSockets()
	if err := e.sim.SetPresence(id(5), "Meal"); err != nil {
		t.Fatal(err)
	}
	ev := w.next(t)
	if ev.Agent != id(5) || ev.Status != sim.MealID || ev.Type != presence.StatusChanged {
		t.Fatalf("event %+v", ev)
	}
	// The simulator drops sockets asynchronously, so the change may still come on the old one:
	// wait (bounded) for the watcher to notice and open a new channel.
	e.waitCount("POST /api/v2/notifications/channels", 2)
	if extra := e.barrier(w, id(50)); len(extra) != 0 {
		t.Fatalf("duplicates after reconnect: %+v", extra)
	}
}

func TestSocketClosingHandover(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	e.sim.SocketClosing()
	if err := e.sim.SetPresence(id(6), "Break"); err != nil {
		t.Fatal(err)
	}
	ev := w.next(t)
	if ev.Agent != id(6) || ev.Status != sim.BreakID {
		t.Fatalf("event %+v", ev)
	}
	if extra := e.barrier(w, id(50)); len(extra) != 0 {
		t.Fatalf("duplicates across the handover: %+v", extra)
	}
	// The change may arrive on the old socket during its closing grace period, before the
	// replacement channel exists: wait for the replacement, then make sure there is just one.
	e.waitCount("POST /api/v2/notifications/channels", 2)
	if n := e.counts.get("POST /api/v2/notifications/channels"); n != 2 {
		t.Fatalf("%d channels created, want one replacement", n)
	}
}

func TestConversationEvents(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	conv, err := e.sim.StartCall("ana@example.com", false, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := w.next(t)
	if ev.Type != presence.ConversationStarted || ev.Agent != id(1) || ev.Data["conversationId"] != conv ||
		ev.Data["direction"] != "INBOUND" || ev.Data["mediaType"] != "VOICE" || ev.Data["queueId"] != nil || ev.ID == "" {
		t.Fatalf("non-ACD start %+v", ev)
	}
	if err := e.sim.EndCall(conv); err != nil {
		t.Fatal(err)
	}
	if ev = w.next(t); ev.Type != presence.ConversationEnded || ev.Data["conversationId"] != conv {
		t.Fatalf("end %+v", ev)
	}
	if err := e.sim.SetPresence(id(7), "On Queue"); err != nil {
		t.Fatal(err)
	}
	if ev = w.next(t); ev.Status != sim.OnQueueID || ev.Data["systemPresence"] != "ON_QUEUE" {
		t.Fatalf("on queue %+v", ev)
	}
	if ev = w.next(t); ev.Data["routingStatus"] != "IDLE" || ev.Status != sim.OnQueueID {
		t.Fatalf("routing %+v", ev)
	}
	if _, err := e.sim.StartCall(id(7), true, "q-9"); err != nil {
		t.Fatal(err)
	}
	got := []presence.Event{w.next(t), w.next(t)}
	if got[0].Type != presence.ConversationStarted || got[0].Data["queueId"] != "q-9" || got[0].Data["purpose"] != "agent" {
		t.Fatalf("ACD start %+v", got[0])
	}
	if got[1].Data["routingStatus"] != "INTERACTING" {
		t.Fatalf("ACD routing %+v", got[1])
	}
	if extra := e.barrier(w, id(50)); len(extra) != 0 {
		t.Fatalf("unexpected events %+v", extra)
	}
}

func TestBulkWrites(t *testing.T) {
	e := newEnv(t, sim.Config{Seed: seedOf(120)}, Options{})
	ctx := context.Background()
	var writes []connector.StatusWrite
	for n := 1; n <= 120; n++ {
		writes = append(writes, connector.StatusWrite{Account: id(n), StatusID: sim.TrainingID})
	}
	errs, err := e.client.SetStatuses(ctx, writes)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range errs {
		if r.Err != nil {
			t.Fatalf("write %d: %v", i, r.Err)
		}
	}
	if n := e.counts.get("PUT /api/v2/users/presences/bulk"); n != 3 {
		t.Fatalf("%d bulk calls for 120 writes, want 3", n)
	}
	cur, err := e.client.CurrentStatuses(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 120; n++ {
		if cur[id(n)].StatusID != sim.TrainingID {
			t.Fatalf("user %d shows %s", n, cur[id(n)].StatusID)
		}
		// The receipt's version is the one the presence carries, for the engine to match.
		if r := errs[n-1].Receipt; r.Version == "" || cur[id(n)].Version != r.Version {
			t.Fatalf("user %d: receipt %+v, presence version %q", n, r, cur[id(n)].Version)
		}
	}
	errs, err = e.client.SetStatuses(ctx, []connector.StatusWrite{{Account: id(1), StatusID: sim.BusyID}, {Account: "ghost", StatusID: sim.BusyID}, {Account: id(2), StatusID: sim.BusyID}})
	if err != nil || errs[0].Err != nil || !connector.IsPermanent(errs[1].Err) || errs[2].Err != nil {
		t.Fatalf("mixed batch: %v %v", errs, err)
	}
}

func seedOf(n int) *sim.Seed {
	s := &sim.Seed{}
	for i := 1; i <= n; i++ {
		s.Users = append(s.Users, sim.SeedUser{ID: id(i), Name: "Agent", Email: strings.ReplaceAll(id(i), "-", "") + "@example.com", Presence: "Available"})
	}
	return s
}

func TestShardsAcrossChannels(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{TopicsPerChannel: 20})
	w := e.watch()
	e.barrier(w, id(50))
	e.barrier(w, id(1))
	e.waitCount("POST /api/v2/notifications/channels", 5)
	if n := e.counts.get("POST /api/v2/notifications/channels"); n != 5 {
		t.Fatalf("%d channels for 50 users at 10 per channel, want 5", n)
	}
	e2 := newEnv(t, sim.Config{}, Options{TopicsPerChannel: 4})
	err := e2.client.Watch(context.Background(), func(context.Context, presence.Event) error { return nil })
	if !connector.IsPermanent(err) {
		t.Fatalf("25 channels needed: %v", err)
	}
}

func TestChannelRenewedBeforeExpiry(t *testing.T) {
	// Channels live 300ms here; the watcher must replace each before it expires and lose nothing.
	e := newEnv(t, sim.Config{ChannelTTL: 300 * time.Millisecond}, Options{})
	w := e.watch()
	e.barrier(w, id(50))
	for e.counts.get("POST /api/v2/notifications/channels") < 3 {
		select {
		case ev := <-w.events:
			t.Fatalf("unexpected event %+v", ev)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := e.sim.SetPresence(id(8), "Away"); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t); ev.Agent != id(8) || ev.Status != sim.AwayID {
		t.Fatalf("event %+v", ev)
	}
	if extra := e.barrier(w, id(50)); len(extra) != 0 {
		t.Fatalf("duplicates across renewals: %+v", extra)
	}
}

func TestSilentSocketDetectedByPing(t *testing.T) {
	e := newEnv(t, sim.Config{}, Options{PingInterval: 20 * time.Millisecond})
	w := e.watch()
	e.barrier(w, id(50))
	e.sim.MuteSockets()
	if err := e.sim.SetPresence(id(9), "Busy"); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t); ev.Agent != id(9) || ev.Status != sim.BusyID {
		t.Fatalf("event %+v", ev)
	}
	e.waitCount("POST /api/v2/notifications/channels", 2) // the silent socket is replaced
}
