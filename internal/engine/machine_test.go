package engine

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const ana = "ana@example.com"

// rig drives a Machine by hand: events in any order, plans and outcomes when the test says.
type rig struct {
	t  *testing.T
	m  *Machine
	st store.Store
}

func newRig(t *testing.T, file string, opts Options) *rig {
	t.Helper()
	cfg, err := policy.Load(filepath.Join("testdata", file), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, m: NewMachine(cfg, opts), st: memory.New()}
}

func (r *rig) do(fn func(tx store.Tx) error) {
	r.t.Helper()
	err := r.st.Update(context.Background(), func(tx store.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := r.m.Flush(context.Background(), tx)
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) ingest(at time.Duration, system string, typ presence.EventType, status string, now time.Duration) {
	r.t.Helper()
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0.Add(at), System: system, Agent: ana, Type: typ, Status: status}, t0.Add(now))
		return err
	})
}

func (r *rig) plan(now time.Duration) ([]Write, time.Time) {
	r.t.Helper()
	var ws []Write
	var wake time.Time
	r.do(func(store.Tx) error { ws, wake = r.m.Plan(ana, t0.Add(now)); return nil })
	return ws, wake
}

func (r *rig) outcome(w Write, err error, now time.Duration) time.Time {
	r.t.Helper()
	var retry time.Time
	r.do(func(store.Tx) error { retry = r.m.Outcome(w, connector.Receipt{}, err, t0.Add(now)); return nil })
	return retry
}

func (r *rig) desired(system string) string {
	v, _ := r.m.View(ana)
	return v.Systems[system].Desired
}

func TestLateEventDoesNotOverrideNewerCause(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.ingest(10*time.Second, "sf", presence.StatusChanged, "Lunch", 10*time.Second)
	// gc's Break happened at 5s but arrives after sf's newer Lunch.
	r.ingest(5*time.Second, "gc", presence.StatusChanged, "Break", 11*time.Second)
	if got := r.desired("sf"); got != "Lunch" {
		t.Errorf("sf desired = %q, want Lunch: the older gc change must not override it", got)
	}
	if got := r.desired("gc"); got != "Meal" {
		t.Errorf("gc desired = %q, want Meal (sf's newer Lunch mapped)", got)
	}
	if got := r.m.Stats.Superseded.Load(); got == 0 {
		t.Error("the late intent should be counted as superseded")
	}
}

func TestMasterWinsSameInstant(t *testing.T) {
	for _, order := range []string{"sf first", "gc first"} {
		t.Run(order, func(t *testing.T) {
			r := newRig(t, "master.yaml", Options{})
			sf := func() { r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0) }
			gc := func() { r.ingest(0, "gc", presence.StatusChanged, "Break", 0) }
			if order == "sf first" {
				sf()
				gc()
			} else {
				gc()
				sf()
			}
			if got := r.desired("sf"); got != "Break" {
				t.Errorf("sf desired = %q, want Break (gc is master)", got)
			}
			if got := r.desired("gc"); got != "Break" {
				t.Errorf("gc desired = %q, want Break (gc is master)", got)
			}
		})
	}
}

func TestRetriesBackOffHonourRetryAfterThenFail(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{RetryBudget: 3, BackoffBase: time.Second, BackoffMax: time.Minute})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	if len(ws) != 1 || ws[0].System != "gc" {
		t.Fatalf("plan = %+v, want one gc write", ws)
	}
	retry := r.outcome(ws[0], &connector.RetryAfterError{After: 7 * time.Second, Err: errors.New("429")}, 0)
	if want := t0.Add(7 * time.Second); !retry.Equal(want) {
		t.Errorf("retry at %v, want %v (Retry-After)", retry, want)
	}
	if ws, wake := r.plan(3 * time.Second); len(ws) != 0 || !wake.Equal(t0.Add(7*time.Second)) {
		t.Errorf("plan before Retry-After = %v, wake %v; want nothing until 7s", ws, wake)
	}
	ws, _ = r.plan(7 * time.Second)
	if len(ws) != 1 || ws[0].Attempt != 2 {
		t.Fatalf("plan after Retry-After = %+v, want attempt 2", ws)
	}
	retry = r.outcome(ws[0], errors.New("503"), 7*time.Second)
	if d := retry.Sub(t0.Add(7 * time.Second)); d < 1600*time.Millisecond || d > 2400*time.Millisecond {
		t.Errorf("backoff after attempt 2 = %v, want 2s ± 20%%", d)
	}
	ws, _ = r.plan(time.Minute)
	r.outcome(ws[0], errors.New("503"), time.Minute)
	if got := r.m.Stats.Failed.Load(); got != 1 {
		t.Fatalf("failed = %d, want 1 after the retry budget", got)
	}
	v, _ := r.m.View(ana)
	if v.Systems["gc"].Failed == "" {
		t.Error("a failed write must be shown on the agent")
	}
	if ws, _ := r.plan(2 * time.Minute); len(ws) != 0 {
		t.Errorf("a failed write must wait for the next change, got %+v", ws)
	}
	// The next change retries.
	r.ingest(3*time.Minute, "sf", presence.StatusChanged, "Break", 3*time.Minute)
	if ws, _ := r.plan(3 * time.Minute); len(ws) != 1 || ws[0].Status != "Break" {
		t.Errorf("after a new change, plan = %+v, want gc Break", ws)
	}
}

func TestRateLimitAppliedBeforeWriting(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{Limits: map[string]Limit{"gc": {PerSecond: 1, Burst: 1}}})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	r.outcome(ws[0], nil, 0)
	r.ingest(100*time.Millisecond, "sf", presence.StatusChanged, "Break", 100*time.Millisecond)
	ws, wake := r.plan(100 * time.Millisecond)
	if len(ws) != 0 {
		t.Fatalf("second write within the budget window went out: %+v", ws)
	}
	if want := t0.Add(time.Second); !wake.Equal(want) {
		t.Errorf("wake = %v, want %v (1 write/s)", wake, want)
	}
	if ws, _ := r.plan(time.Second); len(ws) != 1 {
		t.Errorf("at 1s the write should go out, got %+v", ws)
	}
}

func TestUnknownAgentAndStatusAreCounted(t *testing.T) {
	r := newRig(t, "accounts.yaml", Options{})
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0, System: "gc", Agent: "no-such-user", Type: presence.StatusChanged, Status: "Break"}, t0)
		return err
	})
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0, System: "gc", Agent: "u-ana", Type: presence.StatusChanged, Status: "Nap"}, t0)
		return err
	})
	if got := r.m.Stats.UnknownAgent.Load(); got != 1 {
		t.Errorf("unknown agents = %d, want 1", got)
	}
	if got := r.m.Stats.UnknownStatus.Load(); got != 1 {
		t.Errorf("unknown statuses = %d, want 1", got)
	}
	recs, err := r.st.Audit(context.Background(), "no-such-user", 10)
	if err != nil || len(recs) == 0 || recs[0].Kind != "unknown_agent" {
		t.Errorf("unknown agent not recorded with a reason: %+v %v", recs, err)
	}
}

func TestRestoreKeepsInFlightWriteAsPending(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	if ws, _ := r.plan(0); len(ws) != 1 {
		t.Fatal("expected a write in flight")
	}
	// The process stops here; a new machine restores from the store.
	m2 := NewMachine(r.m.cfg, Options{})
	todo, err := m2.Restore(context.Background(), r.st)
	if err != nil {
		t.Fatal(err)
	}
	if len(todo) != 1 || todo[0] != ana {
		t.Fatalf("restore todo = %v, want [%s]", todo, ana)
	}
	r.m = m2
	ws, _ := r.plan(time.Second)
	if len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("the unanswered write must be planned again, got %+v", ws)
	}
	// The echo of the write made before the stop is still recognised.
	r.ingest(2*time.Second, "gc", presence.StatusChanged, "Meal", 2*time.Second)
	if r.m.Stats.Echoes.Load() != 1 {
		t.Error("the echo of the pre-restart write was not recognised")
	}
}

func TestEventDatedBeforeAnAcceptedWriteIsHistory(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.ingest(0, "gc", presence.StatusChanged, "On Queue", 0)
	r.ingest(time.Second, "sf", presence.StatusChanged, "Lunch", time.Second)
	ws, _ := r.plan(time.Second)
	if len(ws) != 1 || ws[0].System != "gc" {
		t.Fatalf("plan = %+v, want gc Meal", ws)
	}
	r.outcome(ws[0], nil, 2*time.Second)
	// A vendor event dated before the write went out (a routing change at call start, say)
	// arrives after the answer: it describes gc before our write and must not undo it.
	r.ingest(500*time.Millisecond, "gc", presence.StatusChanged, "On Queue", 3*time.Second)
	if got := r.desired("sf"); got != "Lunch" {
		t.Errorf("sf desired = %q, want Lunch", got)
	}
	if v, _ := r.m.View(ana); v.Systems["gc"].Observed != "Meal" {
		t.Errorf("gc observed = %q, want Meal (the older event is history)", v.Systems["gc"].Observed)
	}
	if ws, _ := r.plan(3 * time.Second); len(ws) != 0 {
		t.Errorf("nothing should be written, got %+v", ws)
	}
}

func TestRestoreAssumesUnansweredWriteMayHaveLanded(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.ingest(0, "gc", presence.StatusChanged, "Break", 0)
	r.ingest(time.Second, "sf", presence.StatusChanged, "Lunch", time.Second)
	if ws, _ := r.plan(time.Second); len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("want gc Meal in flight, got %+v", ws)
	}
	// The agent goes back to Break before the Meal write is answered, then the process dies.
	r.ingest(2*time.Second, "sf", presence.StatusChanged, "Break", 2*time.Second)
	m2 := NewMachine(r.m.cfg, Options{})
	if _, err := m2.Restore(context.Background(), r.st); err != nil {
		t.Fatal(err)
	}
	r.m = m2
	// gc may show Meal now, so Break must be written even though gc showed Break before.
	ws, _ := r.plan(3 * time.Second)
	if len(ws) != 1 || ws[0].Status != "Break" {
		t.Fatalf("after restart, plan = %+v, want gc Break", ws)
	}
}

func TestResyncReadIsAVendorDatedChange(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	resync := func(at time.Duration, status string) {
		r.do(func(tx store.Tx) error {
			_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0.Add(at), System: "gc", Agent: ana,
				Type: presence.StatusChanged, Status: status, Data: map[string]any{"source": presence.SourceResync}}, t0.Add(at))
			return err
		})
	}
	resync(0, "Break") // first reading: what gc shows, dated by the vendor, is the newest change known
	if got := r.desired("sf"); got != "Break" {
		t.Errorf("a first reading must bring the other systems into agreement, sf desired = %q, want Break", got)
	}
	ws, _ := r.plan(0)
	if len(ws) != 1 || ws[0].System != "sf" {
		t.Fatalf("plan = %+v, want sf Break", ws)
	}
	r.outcome(ws[0], nil, 0)
	resync(time.Second, "Break") // same again: no change
	if ws, _ := r.plan(time.Second); len(ws) != 0 {
		t.Errorf("an unchanged reading must write nothing, got %+v", ws)
	}
	resync(2*time.Second, "Meal") // changed while we were not watching: a missed change
	if got := r.desired("sf"); got != "Lunch" {
		t.Errorf("a missed change must be evaluated: sf desired = %q, want Lunch", got)
	}
}

func TestNothingIsWrittenBeforeTheAccountsAreKnown(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.m.AwaitAccounts("gc")
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	if ws, _ := r.plan(0); len(ws) != 0 {
		t.Fatalf("a write went out before gc's accounts were loaded: %+v", ws)
	}
	r.do(func(store.Tx) error {
		r.m.SetAccounts("gc", []presence.Account{{ID: "u-ana", Email: ana}})
		return nil
	})
	ws, _ := r.plan(time.Second)
	if len(ws) != 1 || ws[0].Account != "u-ana" {
		t.Fatalf("plan = %+v, want gc addressed by its account id u-ana", ws)
	}
}

func TestFutureDatedEventIsTakenAtItsReceiveTime(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	// A signed webhook dated 2099 must not freeze the agent.
	r.ingest(73*365*24*time.Hour, "gc", presence.StatusChanged, "Break", 0)
	r.ingest(time.Minute, "sf", presence.StatusChanged, "Lunch", time.Minute)
	if got := r.desired("gc"); got != "Meal" {
		t.Errorf("gc desired = %q, want Meal: a later real change must win over a future-dated one", got)
	}
	if r.m.Stats.FutureDated.Load() != 1 {
		t.Errorf("future-dated = %d, want 1", r.m.Stats.FutureDated.Load())
	}
}

func TestWakeRetriesADeferredWriteAtOnce(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{DeferredRecheck: time.Hour})
	r.do(func(store.Tx) error {
		r.m.SetAccounts("gc", []presence.Account{{ID: "u-ana", Email: ana}})
		return nil
	})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	if len(ws) != 1 || ws[0].System != "gc" {
		t.Fatalf("plan = %+v, want one gc write", ws)
	}
	r.outcome(ws[0], &connector.DeferredError{Reason: "no bridge connected"}, 0)
	if ws, _ := r.plan(time.Second); len(ws) != 0 {
		t.Fatalf("a deferred write went out again before its recheck: %+v", ws)
	}
	if got := r.m.Wake("gc", "nobody"); got != "" {
		t.Errorf("Wake for an unknown account = %q", got)
	}
	if got := r.m.Wake("gc", "u-ana"); got != ana {
		t.Fatalf("Wake = %q, want %s", got, ana)
	}
	if ws, _ := r.plan(2 * time.Second); len(ws) != 1 || ws[0].System != "gc" {
		t.Fatalf("after Wake, plan = %+v, want the gc write again", ws)
	}
}

// steps returns the agent's recorded steps of kind.
func (r *rig) steps(kind StepKind) []Step {
	r.t.Helper()
	recs, err := r.st.Audit(context.Background(), ana, 1<<20)
	if err != nil {
		r.t.Fatal(err)
	}
	all, err := DecodeSteps(recs)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []Step
	for _, s := range all {
		if s.Kind == kind {
			out = append(out, s)
		}
	}
	return out
}

func TestNotAppliedWriteOwesNoEcho(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Second})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	if len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("plan = %+v, want gc Meal", ws)
	}
	// A person picks Meal on gc while our write of Meal is on its way; the vendor then says it
	// did not apply the write: the event was the person's, and no echo is owed.
	r.ingest(100*time.Millisecond, "gc", presence.StatusChanged, "Meal", 100*time.Millisecond)
	retry := r.outcome(ws[0], &connector.NotAppliedError{Err: errors.New("503")}, 200*time.Millisecond)
	if retry.IsZero() {
		t.Fatal("a write that was not applied must be retried")
	}
	if n := len(r.m.agents[ana].Systems["gc"].Writes); n != 0 {
		t.Fatalf("%d writes still expect an echo", n)
	}
	if got := r.m.Stats.Echoes.Load(); got != 0 {
		t.Fatalf("echoes = %d, want 0", got)
	}
	if ws, _ := r.plan(time.Minute); len(ws) != 0 {
		t.Fatalf("gc shows Meal already (the person's pick), plan = %+v", ws)
	}
	// The person then picks Break: a change, not an echo of anything.
	r.ingest(2*time.Second, "gc", presence.StatusChanged, "Break", 2*time.Second)
	if got := r.desired("sf"); got != "Break" {
		t.Fatalf("sf desired = %q, want Break", got)
	}
}

func TestUnsureWriteMayStillEcho(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Minute})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	// The answer is lost (a timeout): the write may have landed, so its echo is still its echo.
	if retry := r.outcome(ws[0], errors.New("timeout"), time.Second); retry.IsZero() {
		t.Fatal("an unsure write must be retried")
	}
	r.ingest(500*time.Millisecond, "gc", presence.StatusChanged, "Meal", 2*time.Second)
	if got := r.m.Stats.Echoes.Load(); got != 1 {
		t.Fatalf("echoes = %d, want 1", got)
	}
	if ws, _ := r.plan(2 * time.Minute); len(ws) != 0 {
		t.Fatalf("the write landed, plan = %+v", ws)
	}
}

func TestEchoBeforeALostAnswerIsMatched(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Minute})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	r.ingest(50*time.Millisecond, "gc", presence.StatusChanged, "Meal", 50*time.Millisecond)
	if retry := r.outcome(ws[0], errors.New("timeout"), time.Second); !retry.IsZero() {
		t.Fatalf("the write's echo came before its lost answer: no retry, got one at %v", retry)
	}
	ok := r.steps(StepWriteOK)
	if len(ok) != 1 || len(ok[0].Details) != 1 || ok[0].Details[0] != "answer: timeout" {
		t.Fatalf("write_ok steps %+v, want one naming the lost answer", ok)
	}
	if ws, _ := r.plan(2 * time.Minute); len(ws) != 0 {
		t.Fatalf("the write landed, plan = %+v", ws)
	}
}

func TestUnsureWriteLandsWithinTheLandingWindowOrNever(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Minute, LandingWindow: time.Second})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	ws, _ := r.plan(0)
	r.outcome(ws[0], errors.New("timeout"), time.Second)
	// Meal shows on gc at 3s: later than our write could have landed, so a person's pick.
	r.ingest(3*time.Second, "gc", presence.StatusChanged, "Meal", 3*time.Second)
	if got := r.m.Stats.Echoes.Load(); got != 0 {
		t.Fatalf("echoes = %d, want 0: the event is dated after the landing window", got)
	}
	if n := len(r.steps(StepEcho)); n != 0 {
		t.Fatalf("%d echo steps, want none", n)
	}
	if got := r.steps(StepUnchanged); len(got) != 1 || got[0].System != "gc" {
		t.Fatalf("unchanged steps %+v, want the gc pick decided (Meal is what the policy wants already)", got)
	}
}

func TestReadingDatedAfterAllKnownIsAMissedChange(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Minute})
	r.ingest(0, "gc", presence.StatusChanged, "Break", 0)
	r.ingest(time.Second, "sf", presence.StatusChanged, "Lunch", time.Second)
	ws, _ := r.plan(time.Second)
	if len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("plan = %+v, want gc Meal", ws)
	}
	r.outcome(ws[0], &connector.NotAppliedError{Err: errors.New("503")}, time.Second)
	// At a reconnect gc reads Break, set at 2s by the vendor's marker: the agent picked Break
	// again after sf's Lunch, a change no event told of. It is the newest change.
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0.Add(2 * time.Second), System: "gc", Agent: ana,
			Type: presence.StatusChanged, Status: "Break", Version: "v7", Data: map[string]any{"source": presence.SourceResync}}, t0.Add(3*time.Second))
		return err
	})
	if got := r.steps(StepMissed); len(got) != 1 {
		t.Fatalf("missed steps %+v, want one", got)
	}
	if got := r.desired("gc"); got != "Break" {
		t.Errorf("gc desired = %q, want Break (the missed change is the newest)", got)
	}
	if got := r.desired("sf"); got != "Break" {
		t.Errorf("sf desired = %q, want Break", got)
	}
}

func TestGuessedLandingIsTakenBackAfterTheLandingWindow(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{LandingWindow: 5 * time.Second})
	r.ingest(0, "gc", presence.StatusChanged, "Break", 0)
	r.ingest(time.Second, "sf", presence.StatusChanged, "Lunch", time.Second)
	if ws, _ := r.plan(time.Second); len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("want gc Meal in flight, got %+v", ws)
	}
	// The agent goes back to Break before the Meal write is answered, then the process dies.
	r.ingest(2*time.Second, "sf", presence.StatusChanged, "Break", 2*time.Second)
	m2 := NewMachine(r.m.cfg, Options{LandingWindow: 5 * time.Second})
	if _, err := m2.Restore(context.Background(), r.st); err != nil {
		t.Fatal(err)
	}
	r.m = m2
	ws, _ := r.plan(3 * time.Second)
	if len(ws) != 1 || ws[0].Status != "Break" {
		t.Fatalf("after restart, plan = %+v, want gc Break (Meal may have landed)", ws)
	}
	r.outcome(ws[0], &connector.NotAppliedError{Err: errors.New("503")}, 3*time.Second)
	// The policy comes back to Meal: gc may show it, from the write the crash cut off.
	r.ingest(4*time.Second, "sf", presence.StatusChanged, "Lunch", 4*time.Second)
	if ws, wake := r.plan(4 * time.Second); len(ws) != 0 || wake.IsZero() || wake.After(t0.Add(6*time.Second+time.Millisecond)) {
		t.Fatalf("plan = %+v, wake %v; want nothing until the Meal write's landing window ends at 6s", ws, wake)
	}
	// No echo came within the window: the write did not land, and Meal is written.
	if ws, _ := r.plan(7 * time.Second); len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("after the landing window, plan = %+v, want gc Meal", ws)
	}
}

func TestEchoAfterAReadingThatToldOfItOwesNothing(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	if ws, _ := r.plan(0); len(ws) != 1 || ws[0].Status != "Meal" {
		t.Fatalf("want gc Meal in flight, got %+v", ws)
	}
	m2 := NewMachine(r.m.cfg, Options{})
	if _, err := m2.Restore(context.Background(), r.st); err != nil {
		t.Fatal(err)
	}
	r.m = m2
	// The reading at start finds Meal, set at 500ms: our write landed.
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{ID: "r1", At: t0.Add(500 * time.Millisecond), System: "gc", Agent: ana,
			Type: presence.StatusChanged, Status: "Meal", Data: map[string]any{"source": presence.SourceResync}}, t0.Add(time.Second))
		return err
	})
	if ws, _ := r.plan(time.Second); len(ws) != 0 {
		t.Fatalf("plan = %+v, want nothing: gc shows Meal", ws)
	}
	// The write's own event arrives after: the same landing, which must not take the echo of
	// a write still to come, nor count as a person's change.
	r.ingest(500*time.Millisecond, "gc", presence.StatusChanged, "Meal", 2*time.Second)
	echoes := r.steps(StepEcho)
	if len(echoes) != 2 {
		t.Fatalf("echo steps %+v, want the reading's and the event's", echoes)
	}
	if n := len(r.steps(StepEvent)); n != 1 {
		t.Fatalf("%d events decided, want only sf's", n)
	}
}

// TestRepeatedReportIsNoEcho: a vendor that reports one change twice (the same status, the same
// modifiedDate) must not have the repeat taken for the echo of a newer write of that status
// still in flight; that write's own echo, when it comes, is its echo, and nothing else is written.
func TestRepeatedReportIsNoEcho(t *testing.T) {
	r := newRig(t, "two-way.yaml", Options{BackoffBase: time.Minute, ClockTolerance: time.Second})
	versioned := func(at time.Duration, status, version string, now time.Duration) {
		t.Helper()
		r.do(func(tx store.Tx) error {
			_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0.Add(at), System: "gc", Agent: ana,
				Type: presence.StatusChanged, Status: status, Version: version}, t0.Add(now))
			return err
		})
	}
	answer := func(w Write, at time.Duration) {
		t.Helper()
		r.do(func(store.Tx) error {
			r.m.Outcome(w, connector.Receipt{Version: t0.Add(at).Format(time.RFC3339Nano), At: t0.Add(at)}, nil, t0.Add(at))
			return nil
		})
	}
	ms := time.Millisecond
	r.ingest(0, "sf", presence.StatusChanged, "AvailableforVoice", 0)
	ws, _ := r.plan(0)
	answer(ws[0], 10*ms)
	versioned(10*ms, "On Queue", t0.Add(10*ms).Format(time.RFC3339Nano), 20*ms)
	r.ingest(100*ms, "sf", presence.StatusChanged, "Lunch", 100*ms)
	ws, _ = r.plan(100 * ms)
	answer(ws[0], 110*ms)
	r.ingest(200*ms, "sf", presence.StatusChanged, "AvailableforVoice", 200*ms)
	w2, _ := r.plan(200 * ms)
	if len(w2) != 1 || w2[0].Status != "On Queue" {
		t.Fatalf("plan = %+v, want gc On Queue", w2)
	}
	// The first On Queue is reported again, with news of another kind (Genesys's routing status
	// rides on the presence it belongs to), while the new write is unanswered.
	r.do(func(tx store.Tx) error {
		_, err := r.m.Ingest(context.Background(), tx, presence.Event{At: t0.Add(10 * ms), System: "gc", Agent: ana,
			Type: presence.StatusChanged, Status: "On Queue", Version: t0.Add(10 * ms).Format(time.RFC3339Nano),
			Data: map[string]any{"routingStatus": "IDLE"}}, t0.Add(205*ms))
		return err
	})
	if got := r.steps(StepUnchanged); len(got) == 0 || !strings.Contains(got[len(got)-1].Summary, "again") {
		t.Fatalf("unchanged steps %+v, want the repeat's", got)
	}
	answer(w2[0], 220*ms)
	versioned(110*ms, "Meal", t0.Add(110*ms).Format(time.RFC3339Nano), 225*ms)
	versioned(220*ms, "On Queue", t0.Add(220*ms).Format(time.RFC3339Nano), 230*ms)
	if ws, _ := r.plan(time.Second); len(ws) != 0 {
		t.Fatalf("every write landed in order, plan = %+v", ws)
	}
	if got := r.m.Stats.Echoes.Load(); got != 3 {
		t.Errorf("echoes = %d, want 3: the repeat is none", got)
	}
	if got := r.desired("gc"); got != "On Queue" {
		t.Errorf("gc desired = %q, want On Queue", got)
	}
	if got := r.desired("sf"); got != "AvailableforVoice" {
		t.Errorf("sf desired = %q, want AvailableforVoice", got)
	}
}

// TestVendorTeamsPlaceAgentsUnderPolicies: teams that come with a vendor's accounts (CXone's)
// decide which policy an agent follows, from the moment the engine gets the accounts.
func TestVendorTeamsPlaceAgentsUnderPolicies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(`version: 1
systems:
  cx:
    kind: cxone
    catalog:
      - {id: "1", name: Available, category: available}
      - {id: "12", name: Lunch, category: meal}
  sf:
    kind: salesforce
    catalog:
      - {id: "0N5000000000001", name: Online, category: available}
      - {id: "0N5000000000003", name: Lunch, category: meal}
    accounts:
      - {id: "005000000000001", email: ana@example.com}
policies:
  - name: voice
    applies_to: {teams: [voice]}
    map:
      - {from: sf, to: cx, states: {Online: Available, Lunch: Lunch}}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, m: NewMachine(cfg, Options{}), st: memory.New()}
	r.m.SetAccounts("cx", []presence.Account{{ID: "100001", Email: ana, Teams: []string{"voice"}}})
	r.ingest(0, "sf", presence.StatusChanged, "Lunch", 0)
	if ws, _ := r.plan(0); len(ws) != 1 || ws[0].System != "cx" || ws[0].Status != "Lunch" {
		t.Fatalf("plan = %+v, want cx Lunch: Ana is in CXone team voice", ws)
	}
}
