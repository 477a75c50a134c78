package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

func TestMain(m *testing.M) {
	if os.Getenv("OMNI_CRASH_CHILD") != "" {
		os.Exit(m.Run())
	}
	goleak.VerifyTestMain(m)
}

// liveRig runs a real Engine with fake vendors for sf and gc.
type liveRig struct {
	eng    *Engine
	sf, gc *fakevendor.Connector
	stop   func()
}

func startLive(t *testing.T) *liveRig {
	t.Helper()
	cfg, err := policy.Load("testdata/two-way.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	accounts := []presence.Account{{ID: ana, Email: ana}}
	sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts)
	gc := fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(), accounts)
	eng, err := New(Config{Policy: cfg, Store: memory.New(),
		Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
		Machine:    Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	waitFor(t, "ready", func() bool { return eng.Ready() == nil })
	return &liveRig{eng: eng, sf: sf, gc: gc, stop: func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestEngineSyncsOnceAndStreamsDecisions(t *testing.T) {
	r := startLive(t)
	defer r.stop()
	decisions, cancel := r.eng.Subscribe(64)
	defer cancel()

	r.sf.Act(ana, "0N5000000000003") // Lunch, picked by the agent in Salesforce
	waitFor(t, "gc Meal", func() bool { return r.gc.Status(ana) == "3fd96123-badb-4f69-bc03-1b1ccc6d8014" })
	waitFor(t, "the echo", func() bool { return r.eng.Stats().Echoes.Load() == 1 })

	if got := len(r.gc.Writes()); got != 1 {
		t.Errorf("gc writes = %d, want 1", got)
	}
	if got := len(r.sf.Writes()); got != 0 {
		t.Errorf("sf writes = %d, want 0: the echo must not come back", got)
	}
	kinds := map[StepKind]bool{}
	for len(decisions) > 0 {
		d := <-decisions
		kinds[d.Kind] = true
	}
	for _, k := range []StepKind{StepEvent, StepIntent, StepWrite, StepWriteOK, StepEcho} {
		if !kinds[k] {
			t.Errorf("live stream lacks a %q decision (got %v)", k, kinds)
		}
	}
	steps, err := r.eng.Explain(context.Background(), ana, 50)
	if err != nil || len(steps) < 5 || steps[0].Kind != StepEvent {
		t.Errorf("explain = %+v, %v; want the chain, oldest first", steps, err)
	}
	v, ok, _ := r.eng.Agent(context.Background(), "ANA@example.com")
	if !ok || v.Systems["gc"].Observed != "Meal" || !v.Systems["gc"].InSync {
		t.Errorf("agent view = %+v", v)
	}
}

func TestEngineRetriesAFailedWrite(t *testing.T) {
	r := startLive(t)
	defer r.stop()
	r.gc.FailNext(errors.New("503 service unavailable"), &connector.RetryAfterError{After: 20 * time.Millisecond, Err: errors.New("429")})
	r.sf.Act(ana, "0N5000000000004") // Break
	waitFor(t, "gc Break after two refusals", func() bool { return r.gc.Status(ana) == "227b37e2-f1d0-4dd0-8f50-badd7cf6d158" })
	if got := r.eng.Stats().Retries.Load(); got != 2 {
		t.Errorf("retries = %d, want 2", got)
	}
}

func TestEngineIngestIsDurableAndDeduplicated(t *testing.T) {
	r := startLive(t)
	defer r.stop()
	ev := presence.Event{ID: "evt-1", System: "sf", Agent: ana, Type: presence.StatusChanged, Status: "Lunch", At: time.Now()}
	for range 3 {
		if err := r.eng.Ingest(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "gc Meal", func() bool { return r.gc.Status(ana) == "3fd96123-badb-4f69-bc03-1b1ccc6d8014" })
	if got := r.eng.Stats().Duplicates.Load(); got != 2 {
		t.Errorf("duplicates = %d, want 2", got)
	}
}

func TestEngineGathersDueWritesIntoBulkCalls(t *testing.T) {
	cfg, err := policy.Load("testdata/two-way.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var accounts []presence.Account
	for i := range 40 {
		email := fmt.Sprintf("agent%02d@example.com", i)
		accounts = append(accounts, presence.Account{ID: email, Email: email})
	}
	sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts)
	gc := fakevendor.NewBulk(fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(), accounts))
	gc.FailNext(errors.New("one write refused")) // inside the first batch: only that write retries
	eng, err := New(Config{Policy: cfg, Store: memory.New(), Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
		BulkWindow: 50 * time.Millisecond, Machine: Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "ready", func() bool { return eng.Ready() == nil })

	for _, a := range accounts { // shift start: everyone picks Lunch at once
		sf.Act(a.ID, "0N5000000000003")
	}
	waitFor(t, "all 40 on Meal in gc", func() bool {
		for _, a := range accounts {
			if gc.Status(a.ID) != "3fd96123-badb-4f69-bc03-1b1ccc6d8014" {
				return false
			}
		}
		return true
	})
	calls := gc.Calls()
	total := 0
	for _, n := range calls {
		total += n
	}
	if total != 41 {
		t.Errorf("bulk calls carried %d writes, want 41 (40 and the one retried): %v", total, calls)
	}
	if len(calls) > 8 {
		t.Errorf("%d bulk calls for 40 agents changing at once, want a few: %v", len(calls), calls)
	}
	if got := eng.Stats().Retries.Load(); got != 1 {
		t.Errorf("retries = %d, want 1", got)
	}
}
