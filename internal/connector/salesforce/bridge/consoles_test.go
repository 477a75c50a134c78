package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

// consoleEnv is a bridge handler on a virtual clock, recording what it ingests; checks run
// when the test says, at the virtual time.
type consoleEnv struct {
	*env
	h   *Handler
	reg *prometheus.Registry
	cps connector.Checkpoints

	clockMu sync.Mutex
	now     time.Time
}

func newConsoleEnv(t *testing.T, cps connector.Checkpoints, afters ...time.Duration) *consoleEnv {
	t.Helper()
	ce := &consoleEnv{env: &env{t: t, hub: NewHub(nil)}, reg: prometheus.NewRegistry(), cps: cps, now: time.Now().Truncate(time.Second)}
	h, err := NewHandler(Options{Verifier: testVerifier, System: "sf", Hub: ce.hub, Logger: slog.New(slog.DiscardHandler),
		DisconnectAfter: afters, Checkpoints: cps, Registerer: ce.reg, Now: ce.clock,
		Ingest: func(_ context.Context, ev presence.Event) error {
			ce.mu.Lock()
			defer ce.mu.Unlock()
			if ce.fail != nil {
				return ce.fail
			}
			ce.stored = append(ce.stored, ev)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ce.h = h
	if err := h.consoles.restore(context.Background(), ce.clock()); err != nil {
		t.Fatal(err)
	}
	ce.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		ce.hub.Close()
		ce.srv.Close()
	})
	return ce
}

func (ce *consoleEnv) clock() time.Time {
	ce.clockMu.Lock()
	defer ce.clockMu.Unlock()
	return ce.now
}

// at moves the virtual clock to base+d and runs a check there.
func (ce *consoleEnv) at(base time.Time, d time.Duration) {
	ce.clockMu.Lock()
	ce.now = base.Add(d)
	ce.clockMu.Unlock()
	ce.h.consoles.check(context.Background(), base.Add(d))
}

// console is one stored console event, as the tests compare them.
type consoleEvent struct {
	Type   presence.EventType
	At     time.Time
	After  string
	Since  time.Time
	Reason string
}

func (ce *consoleEnv) consoleEvents() []consoleEvent {
	var out []consoleEvent
	for _, ev := range ce.events() {
		ce := consoleEvent{Type: ev.Type, At: ev.At}
		if ev.Type == presence.ConsoleDisconnected {
			ce.After, _ = ev.Data["after"].(string)
			ce.Reason, _ = ev.Data["reason"].(string)
			ce.Since, _ = time.Parse(time.RFC3339Nano, ev.Data["since"].(string))
		}
		if ev.System != "sf" || ev.Agent != testUser {
			continue
		}
		out = append(out, ce)
	}
	return out
}

// metrics reads the registry: one value per metric, each with the system label.
func (ce *consoleEnv) metrics() map[string]float64 {
	ce.t.Helper()
	mfs, err := ce.reg.Gather()
	if err != nil {
		ce.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if l := m.GetLabel(); len(l) != 1 || l[0].GetName() != "system" || l[0].GetValue() != "sf" {
			ce.t.Errorf("%s has labels %v", mf.GetName(), l)
		}
		out[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	return out
}

func (ce *consoleEnv) heartbeat() {
	ce.t.Helper()
	if resp, body := ce.do("POST", Prefix+"heartbeat", userToken(ce.t), "", nil); resp.StatusCode != http.StatusNoContent {
		ce.t.Fatalf("heartbeat answered %s %s", resp.Status, body)
	}
}

// closeStream closes s at the virtual time and waits until the handler saw it.
func (ce *consoleEnv) closeStream(s *sse) {
	s.close()
	waitFor(ce.t, "the stream to close", func() bool { return !ce.hub.Connected(testUser) })
	waitFor(ce.t, "the close to be tracked", func() bool {
		ce.h.consoles.mu.Lock()
		defer ce.h.consoles.mu.Unlock()
		u := ce.h.consoles.users[testUser]
		return u != nil && u.streams == 0
	})
}

func TestConsoleReloadRecordsNothing(t *testing.T) {
	ce := newConsoleEnv(t, nil, 2*time.Minute)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	ce.at(t0, 0)
	// A reload: the page closes its stream and the new page opens one within seconds.
	ce.closeStream(s)
	ce.at(t0, 10*time.Second)
	s = ce.openStream(userToken(t))
	defer s.close()
	ce.at(t0, 10*time.Second+SilentAfter)
	want := []consoleEvent{{Type: presence.ConsoleConnected, At: t0.UTC()}}
	if d := cmp.Diff(want, ce.consoleEvents()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

func TestConsoleClosedThenBack(t *testing.T) {
	ce := newConsoleEnv(t, nil, 2*time.Minute)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	ce.at(t0, 0)
	ce.at(t0, time.Minute)
	ce.closeStream(s)
	closed := t0.Add(time.Minute)
	ce.at(closed, 29*time.Second)
	if n := len(ce.consoleEvents()); n != 1 {
		t.Fatalf("%d events before the grace period ended", n)
	}
	ce.at(closed, 30*time.Second)
	ce.at(closed, 119*time.Second)
	if n := len(ce.consoleEvents()); n != 2 {
		t.Fatalf("%d events before on_disconnect's after: %+v", n, ce.consoleEvents())
	}
	ce.at(closed, 2*time.Minute)
	ce.at(closed, 5*time.Minute)
	s = ce.openStream(userToken(t))
	defer s.close()
	back := closed.Add(5 * time.Minute)
	ce.at(closed, 5*time.Minute+time.Second)
	want := []consoleEvent{
		{Type: presence.ConsoleConnected, At: t0.UTC()},
		{Type: presence.ConsoleDisconnected, At: closed.Add(30 * time.Second).UTC(), After: "30s", Since: closed.UTC(), Reason: "closed"},
		{Type: presence.ConsoleDisconnected, At: closed.Add(2 * time.Minute).UTC(), After: "2m0s", Since: closed.UTC(), Reason: "closed"},
		{Type: presence.ConsoleConnected, At: back.UTC()},
	}
	if d := cmp.Diff(want, ce.consoleEvents()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	m := ce.metrics()
	if m["omnipresence_bridge_console_disconnects_total"] != 1 || m["omnipresence_bridge_console_connects_total"] != 2 ||
		m["omnipresence_bridge_consoles_connected"] != 1 {
		t.Errorf("metrics = %v, want 1 disconnect, 2 connects, 1 connected", m)
	}
}

func TestConsoleSilent(t *testing.T) {
	ce := newConsoleEnv(t, nil, 2*time.Minute)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	defer s.close()
	ce.at(t0, 0)
	// Heartbeats keep a console present however long it runs.
	for i := 1; i <= 5; i++ {
		ce.at(t0, time.Duration(i)*time.Minute)
		ce.heartbeat()
	}
	last := t0.Add(5 * time.Minute)
	ce.at(last, SilentAfter)
	if n := len(ce.consoleEvents()); n != 1 {
		t.Fatalf("%d events while the console still called within %s", n, SilentAfter)
	}
	// Then silence (a frozen tab; a network gone without a close): gone since its last call.
	ce.at(last, SilentAfter+time.Second)
	want := []consoleEvent{
		{Type: presence.ConsoleConnected, At: t0.UTC()},
		{Type: presence.ConsoleDisconnected, At: last.Add(30 * time.Second).UTC(), After: "30s", Since: last.UTC(), Reason: "silent"},
		{Type: presence.ConsoleDisconnected, At: last.Add(2 * time.Minute).UTC(), After: "2m0s", Since: last.UTC(), Reason: "silent"},
	}
	if d := cmp.Diff(want, ce.consoleEvents()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	ce.heartbeat()
	ce.at(last, SilentAfter+2*time.Second)
	if evs := ce.consoleEvents(); len(evs) != 4 || evs[3].Type != presence.ConsoleConnected {
		t.Errorf("after the console called again: %+v", evs)
	}
}

func TestConsoleIngestFailureIsRetried(t *testing.T) {
	ce := newConsoleEnv(t, nil)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	ce.closeStream(s)
	ce.fail = errors.New("store down")
	ce.at(t0, time.Minute)
	ce.fail = nil
	ce.at(t0, time.Minute+time.Second)
	ce.at(t0, time.Minute+2*time.Second)
	want := []consoleEvent{
		{Type: presence.ConsoleConnected, At: t0.UTC()},
		{Type: presence.ConsoleDisconnected, At: t0.Add(30 * time.Second).UTC(), After: "30s", Since: t0.UTC(), Reason: "closed"},
	}
	if d := cmp.Diff(want, ce.consoleEvents()); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
}

// A restart loses no disconnect timer: the state is saved and read back, and the events have
// ids that make a repeat a duplicate.
func TestConsoleStateSurvivesRestart(t *testing.T) {
	cps := memory.New()
	defer cps.Close()
	ce := newConsoleEnv(t, cps, 2*time.Minute)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	ce.closeStream(s)
	ce.at(t0, 40*time.Second)
	// A second user is connected when the service stops.
	other := ce.openStreamAs(mint(t, testSigner, "005000000000002", 10*time.Minute), "005000000000002AAA")
	ce.at(t0, 41*time.Second)
	if err := ce.h.consoles.save(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := ce.consoleEvents()
	ce.hub.Close()
	other.close()

	// The next process reads the state back and carries on.
	next := newConsoleEnv(t, cps, 2*time.Minute)
	start := next.clock()
	next.at(start, 0)
	next.at(t0, 2*time.Minute)
	want := append(first, consoleEvent{Type: presence.ConsoleDisconnected, At: t0.Add(2 * time.Minute).UTC(), After: "2m0s", Since: t0.UTC(), Reason: "closed"})
	got := append(first, next.consoleEvents()...)
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("events across the restart (-want +got):\n%s", d)
	}
	// The user who was connected counts as heard from at the restart: gone only if silent
	// from then on.
	next.at(start, SilentAfter+time.Second)
	var otherEvents []presence.Event
	for _, ev := range next.events() {
		if ev.Agent == "005000000000002AAA" {
			otherEvents = append(otherEvents, ev)
		}
	}
	if len(otherEvents) != 2 || otherEvents[0].Data["since"] != start.UTC().Format(time.RFC3339Nano) {
		t.Errorf("the connected user after the restart: %+v", otherEvents)
	}
}

func TestConsoleShutdownIsNotADisconnect(t *testing.T) {
	cps := memory.New()
	defer cps.Close()
	ce := newConsoleEnv(t, cps)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	ce.at(t0, 0)
	ce.h.consoles.shutdown()
	ce.hub.Close()
	<-s.done
	ce.at(t0, 10*time.Minute)
	if evs := ce.consoleEvents(); len(evs) != 1 {
		t.Errorf("events after a shutdown: %+v", evs)
	}
	ce.h.consoles.dirty = true
	if err := ce.h.consoles.save(context.Background()); err != nil {
		t.Fatal(err)
	}
	raw, _ := cps.Checkpoint(context.Background(), checkpointPrefix+"sf")
	if raw != `{"005000000000001AAA":{"connected":true}}` {
		t.Errorf("saved %s", raw)
	}
}

func TestConsolesView(t *testing.T) {
	ce := newConsoleEnv(t, nil, 2*time.Minute)
	t0 := ce.clock()
	s := ce.openStream(userToken(t))
	defer s.close()
	closedStream := ce.openStreamAs(mint(t, testSigner, "005000000000002", 10*time.Minute), "005000000000002AAA")
	closedStream.close()
	waitFor(t, "the second stream to close", func() bool { return !ce.hub.Connected("005000000000002AAA") })
	ce.at(t0, time.Minute)
	rec := httptest.NewRecorder()
	ce.h.ConsolesHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/consoles", nil))
	var body struct {
		Systems []ConsolesView `json:"systems"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || len(body.Systems) != 1 {
		t.Fatalf("body %s: %v", rec.Body, err)
	}
	v := body.Systems[0]
	if v.System != "sf" || strings.Join(v.DisconnectAfter, ",") != "30s,2m0s" || len(v.Consoles) != 2 {
		t.Fatalf("view = %s", rec.Body)
	}
	if c := v.Consoles[0]; c.User != testUser || !c.Connected || c.Streams != 1 || !c.Since.IsZero() {
		t.Errorf("connected console = %+v", c)
	}
	if c := v.Consoles[1]; c.User != "005000000000002AAA" || c.Connected || c.Reason != "closed" || c.Since.IsZero() {
		t.Errorf("closed console = %+v", c)
	}
}

func TestConsoleMetricsRegistered(t *testing.T) {
	ce := newConsoleEnv(t, nil)
	s := ce.openStream(userToken(t))
	defer s.close()
	ce.heartbeat()
	want := map[string]float64{"omnipresence_bridge_consoles_connected": 1, "omnipresence_bridge_streams": 1,
		"omnipresence_bridge_heartbeats_total": 1, "omnipresence_bridge_console_connects_total": 0,
		"omnipresence_bridge_console_disconnects_total": 0}
	if d := cmp.Diff(want, ce.metrics()); d != "" {
		t.Errorf("metrics (-want +got):\n%s", d)
	}
}
