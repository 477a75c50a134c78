package salesforce

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

func TestInjectedFaults(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	c := o.open(t, o.settings())
	ctx := context.Background()
	if _, err := c.Accounts(ctx); err != nil {
		t.Fatal(err)
	}
	if err := o.sim.Faults().Apply(fault.Settings{ExpireTokens: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Accounts(ctx); err != nil {
		t.Fatalf("after expire_tokens: %v", err)
	}
	if n := o.tokens.Load(); n != 2 {
		t.Errorf("%d logins, want 2", n)
	}
	// drop_sockets ends the Pub/Sub stream: Watch returns so the engine restarts it, and the
	// restarted Watch resumes after the last stored event.
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	w := watch(t, c)
	login(t, o, "ana@example.com", "AvailableforVoice")
	w.next(t)
	if err := o.sim.Faults().Apply(fault.Settings{DropSockets: true}); err != nil {
		t.Fatal(err)
	}
	if err := <-w.done; err == nil || !strings.Contains(err.Error(), "Unavailable") {
		t.Fatalf("Watch after a dropped socket: %v", err)
	}
	w.cancel()
	login(t, o, "ana@example.com", "Lunch")
	w = watch(t, c)
	if ev := w.next(t); ev.Type != presence.StatusChanged || ev.Status != statusID(t, c, "Lunch") {
		t.Fatalf("after restart: %+v", ev)
	}
	w.stop(t)
	// A 429 storm (which lasts past this test) becomes a RetryAfterError.
	if err := o.sim.Faults().Apply(fault.Settings{StormFor: time.Hour, RetryAfter: 7 * time.Second}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Accounts(ctx)
	if d, ok := connector.RetryAfter(err); !ok || d != 7*time.Second || !strings.Contains(err.Error(), "REQUEST_LIMIT_EXCEEDED") {
		t.Fatalf("during a 429 storm: %v", err)
	}
}

// TestReplayOutsideRetention: a stored replay id older than the 72-hour window falls back to
// the earliest retained event instead of failing forever.
func TestReplayOutsideRetention(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	o := startOrg(t, sfsim.Config{Now: clock, SessionTimeout: 1000 * time.Hour})
	c := o.open(t, o.settings())
	login(t, o, "ana@example.com", "AvailableforVoice") // replay 1
	mu.Lock()
	now = now.Add(73 * time.Hour)
	mu.Unlock()
	login(t, o, "ana@example.com", "Lunch") // replay 2 (UPDATE), 3 (CREATE); replay 1 is gone
	old := make([]byte, 8)
	binary.BigEndian.PutUint64(old, 0)
	o.cps.m[c.checkpointFor(c.channel)] = base64.StdEncoding.EncodeToString(old)
	w := watch(t, c)
	ev := w.next(t)
	if ev.Status != statusID(t, c, "Lunch") {
		t.Fatalf("first event after falling back: %+v", ev)
	}
	w.stop(t)
}

func TestCustomChannel(t *testing.T) {
	o := startOrg(t, sfsim.Config{Channels: []string{"/data/OmniPresence__chn"}})
	s := o.settings()
	s["channel"] = "/data/OmniPresence__chn"
	c := o.open(t, s)
	if !strings.HasSuffix(c.checkpointFor(c.channel), "/data/OmniPresence__chn") {
		t.Fatalf("checkpoint %q", c.checkpointFor(c.channel))
	}
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	w := watch(t, c)
	login(t, o, "bo@example.com", "AvailableforChat")
	if ev := w.next(t); ev.Type != presence.StatusChanged {
		t.Fatalf("event %+v", ev)
	}
	w.stop(t)
	s["channel"] = "/data/Nope__chn"
	c = o.open(t, s)
	if err := c.Watch(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("unknown channel: %v", err)
	}
}
