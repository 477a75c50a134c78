// Package storetest is the conformance suite every store backend passes. A backend's test calls
// Run with a function that opens a fresh, empty store for each subtest.
//
// Beyond the store package's doc comments, the suite pins these behaviours of every backend:
//   - Events and Audit return everything when limit <= 0; agent "" means every agent for both.
//   - RecentDedupeKeys returns nothing for n <= 0.
//   - InsertEvent of a known key sets ev.Seq to the stored event's Seq and changes nothing.
//   - InsertEvent with an empty DedupeKey and PutAgent with an empty Key are errors.
//   - Times come back in UTC with nanoseconds intact; the zero time stays zero.
//   - Bodies and states are copied in and out: neither side's later writes leak to the other.
//   - Update rolls back when fn returns an error, panics (the panic goes on), or ctx ends
//     before the commit (the error wraps ctx.Err()).
//   - Every method returns an error wrapping store.ErrClosed after Close.
//
// fn must not call Update or SetCheckpoint on its own store: Updates are serialized, so that
// would wait for itself.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
)

// Run runs every conformance check against stores made by open. open must return a new, empty
// store for each call; Run closes it when the subtest ends (a second Close must be harmless).
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"AgentsOrderedByKey", testAgentsOrderedByKey},
		{"AuditNewestFirst", testAuditNewestFirst},
		{"AuditRunsOneByOne", testAuditRunsOneByOne},
		{"BodiesNotAliased", testBodiesNotAliased},
		{"CheckpointInsideTx", testCheckpointInsideTx},
		{"CheckpointOutsideTx", testCheckpointOutsideTx},
		{"CloseThenErrClosed", testCloseThenErrClosed},
		{"ConcurrentReadersDuringUpdate", testConcurrentReaders},
		{"ContextCanceledBeforeUpdate", testContextCanceled},
		{"ContextCanceledDuringUpdate", testContextCanceledDuring},
		{"DedupeKeepsFirst", testDedupeKeepsFirst},
		{"DedupeWithinOneTx", testDedupeWithinOneTx},
		{"EmptyDedupeKeyRejected", testEmptyDedupeKey},
		{"EventsInBatches", testEventsInBatches},
		{"EventsNewestFirst", testEventsNewestFirst},
		{"LargeBodies", testLargeBodies},
		{"PanicRollsBack", testPanicRollsBack},
		{"PutAgentReplaces", testPutAgentReplaces},
		{"RecentDedupeKeys", testRecentDedupeKeys},
		{"RollbackLeavesNothing", testRollbackLeavesNothing},
		{"SeqIncreasing", testSeqIncreasing},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"UpdateSerialized", testUpdateSerialized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// base is a fixed time with nanoseconds, in a zone other than UTC, so round trips are visible.
var base = time.Date(2026, 3, 14, 9, 26, 53, 589793238, time.FixedZone("X", 5*3600+1800))

func ev(key, agent string, i int) store.Event {
	return store.Event{
		DedupeKey: key,
		Agent:     agent,
		System:    "genesys",
		Type:      "status",
		At:        base.Add(time.Duration(i) * time.Second),
		Body:      []byte(fmt.Sprintf(`{"key":%q,"i":%d}`, key, i)),
	}
}

func update(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func insert(t *testing.T, s store.Store, evs ...store.Event) []store.Event {
	t.Helper()
	out := make([]store.Event, len(evs))
	copy(out, evs)
	update(t, s, func(tx store.Tx) error {
		for i := range out {
			if _, err := tx.InsertEvent(context.Background(), &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	return out
}

func events(t *testing.T, s store.Store, agent string, limit int) []store.Event {
	t.Helper()
	got, err := s.Events(context.Background(), agent, limit)
	if err != nil {
		t.Fatalf("Events(%q, %d): %v", agent, limit, err)
	}
	return got
}

func audit(t *testing.T, s store.Store, agent string, limit int) []store.AuditRecord {
	t.Helper()
	got, err := s.Audit(context.Background(), agent, limit)
	if err != nil {
		t.Fatalf("Audit(%q, %d): %v", agent, limit, err)
	}
	return got
}

func eventKeys(evs []store.Event) string {
	keys := make([]string, len(evs))
	for i, e := range evs {
		keys[i] = e.DedupeKey
	}
	return strings.Join(keys, ",")
}

func sameEvent(t *testing.T, got, want store.Event) {
	t.Helper()
	if got.Seq != want.Seq || got.DedupeKey != want.DedupeKey || got.Agent != want.Agent ||
		got.System != want.System || got.Type != want.Type || !bytes.Equal(got.Body, want.Body) {
		t.Errorf("event = %+v (body %q), want %+v (body %q)", got, got.Body, want, want.Body)
	}
	sameTime(t, "event At", got.At, want.At)
}

func sameTime(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if !got.Equal(want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
	if !want.IsZero() && got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", what, got.Location())
	}
}

func testDedupeKeepsFirst(t *testing.T, s store.Store) {
	first := insert(t, s, ev("k1", "a@x", 1))[0]
	if first.Seq <= 0 {
		t.Fatalf("first Seq = %d, want > 0", first.Seq)
	}
	dup := ev("k1", "b@x", 2)
	dup.Body = []byte(`{"overwritten":true}`)
	var inserted bool
	update(t, s, func(tx store.Tx) error {
		var err error
		inserted, err = tx.InsertEvent(context.Background(), &dup)
		return err
	})
	if inserted {
		t.Error("second insert with the same key reported inserted")
	}
	if dup.Seq != first.Seq {
		t.Errorf("duplicate Seq = %d, want the first event's %d", dup.Seq, first.Seq)
	}
	got := events(t, s, "", 0)
	if len(got) != 1 {
		t.Fatalf("Events = %d events, want 1", len(got))
	}
	sameEvent(t, got[0], first)
	if n := len(events(t, s, "b@x", 0)); n != 0 {
		t.Errorf("duplicate's agent has %d events, want 0", n)
	}
}

func testDedupeWithinOneTx(t *testing.T, s store.Store) {
	a, b := ev("same", "a@x", 1), ev("same", "a@x", 2)
	var ins [2]bool
	update(t, s, func(tx store.Tx) error {
		var err error
		if ins[0], err = tx.InsertEvent(context.Background(), &a); err != nil {
			return err
		}
		ins[1], err = tx.InsertEvent(context.Background(), &b)
		return err
	})
	if !ins[0] || ins[1] {
		t.Errorf("inserted = %v, want [true false]", ins)
	}
	if b.Seq != a.Seq {
		t.Errorf("duplicate Seq = %d, want %d", b.Seq, a.Seq)
	}
	if got := events(t, s, "", 0); len(got) != 1 {
		t.Errorf("Events = %d events, want 1", len(got))
	}
}

func testEmptyDedupeKey(t *testing.T, s store.Store) {
	e := ev("", "a@x", 1)
	err := s.Update(context.Background(), func(tx store.Tx) error {
		_, err := tx.InsertEvent(context.Background(), &e)
		return err
	})
	if err == nil {
		t.Fatal("InsertEvent with an empty dedupe key succeeded, want an error")
	}
	if got := events(t, s, "", 0); len(got) != 0 {
		t.Errorf("Events = %d events, want 0", len(got))
	}
}

func testSeqIncreasing(t *testing.T, s store.Store) {
	var last int64
	for round := 0; round < 3; round++ {
		evs := make([]store.Event, 5)
		for i := range evs {
			evs[i] = ev(fmt.Sprintf("r%d-%d", round, i), "a@x", i)
		}
		for _, e := range insert(t, s, evs...) {
			if e.Seq <= last {
				t.Fatalf("Seq %d after %d, want increasing", e.Seq, last)
			}
			last = e.Seq
		}
	}
	recs := []store.AuditRecord{{Agent: "a@x", Kind: "event", At: base}, {Agent: "a@x", Kind: "intent", At: base}}
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(context.Background(), recs) })
	more := []store.AuditRecord{{Agent: "a@x", Kind: "write", At: base}}
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(context.Background(), more) })
	if recs[0].Seq <= 0 || recs[1].Seq <= recs[0].Seq || more[0].Seq <= recs[1].Seq {
		t.Errorf("audit Seqs = %d, %d, %d, want positive and increasing", recs[0].Seq, recs[1].Seq, more[0].Seq)
	}
}

func testRollbackLeavesNothing(t *testing.T, s store.Store) {
	ctx := context.Background()
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":1}`), UpdatedAt: base}); err != nil {
			return err
		}
		return tx.SetCheckpoint(ctx, "genesys", "pos-1")
	})
	boom := errors.New("boom")
	e := ev("k1", "a@x", 1)
	err := s.Update(ctx, func(tx store.Tx) error {
		if _, err := tx.InsertEvent(ctx, &e); err != nil {
			return err
		}
		if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":2}`), UpdatedAt: base}); err != nil {
			return err
		}
		if err := tx.PutAgent(ctx, store.Agent{Key: "b@x", State: []byte(`{"v":1}`), UpdatedAt: base}); err != nil {
			return err
		}
		if err := tx.AppendAudit(ctx, []store.AuditRecord{{Agent: "a@x", Kind: "event", At: base}}); err != nil {
			return err
		}
		if err := tx.SetCheckpoint(ctx, "genesys", "pos-2"); err != nil {
			return err
		}
		if err := tx.SetCheckpoint(ctx, "connect", "pos-1"); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want the error fn returned", err)
	}
	if got := events(t, s, "", 0); len(got) != 0 {
		t.Errorf("Events after rollback = %d, want 0", len(got))
	}
	if got := audit(t, s, "", 0); len(got) != 0 {
		t.Errorf("Audit after rollback = %d, want 0", len(got))
	}
	agents, err := s.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].Key != "a@x" || string(agents[0].State) != `{"v":1}` {
		t.Errorf("Agents after rollback = %+v, want only a@x with v=1", agents)
	}
	for name, want := range map[string]string{"genesys": "pos-1", "connect": ""} {
		got, err := s.Checkpoint(ctx, name)
		if err != nil || got != want {
			t.Errorf("Checkpoint(%q) = %q, %v, want %q", name, got, err, want)
		}
	}
	// The key of the rolled-back event is free again.
	var inserted bool
	update(t, s, func(tx store.Tx) error {
		var err error
		inserted, err = tx.InsertEvent(ctx, &e)
		return err
	})
	if !inserted {
		t.Error("key of a rolled-back event is still taken")
	}
}

func testPutAgentReplaces(t *testing.T, s store.Store) {
	ctx := context.Background()
	t1, t2 := base, base.Add(time.Minute+7)
	update(t, s, func(tx store.Tx) error {
		return tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":1}`), UpdatedAt: t1})
	})
	update(t, s, func(tx store.Tx) error {
		return tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":2}`), UpdatedAt: t2})
	})
	got, ok, err := s.Agent(ctx, "a@x")
	if err != nil || !ok {
		t.Fatalf("Agent = %v, %v, want found", ok, err)
	}
	if got.Key != "a@x" || string(got.State) != `{"v":2}` {
		t.Errorf("Agent = %+v (state %s), want v=2", got, got.State)
	}
	sameTime(t, "UpdatedAt", got.UpdatedAt, t2)
	if _, ok, err := s.Agent(ctx, "nobody@x"); ok || err != nil {
		t.Errorf("Agent(unknown) = %v, %v, want not found and no error", ok, err)
	}
	// Twice in one transaction: the last put wins.
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":3}`), UpdatedAt: t1}); err != nil {
			return err
		}
		return tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{"v":4}`), UpdatedAt: t2})
	})
	if got, _, _ := s.Agent(ctx, "a@x"); string(got.State) != `{"v":4}` {
		t.Errorf("state after two puts in one tx = %s, want v=4", got.State)
	}
	err = s.Update(ctx, func(tx store.Tx) error { return tx.PutAgent(ctx, store.Agent{State: []byte(`{}`)}) })
	if err == nil {
		t.Error("PutAgent with an empty key succeeded, want an error")
	}
}

func testAgentsOrderedByKey(t *testing.T, s store.Store) {
	ctx := context.Background()
	keys := []string{"m@x", "b@x", "z@x", "a@x", "c@x"}
	update(t, s, func(tx store.Tx) error {
		for _, k := range keys {
			if err := tx.PutAgent(ctx, store.Agent{Key: k, State: []byte(`"` + k + `"`), UpdatedAt: base}); err != nil {
				return err
			}
		}
		return nil
	})
	got, err := s.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, a := range got {
		order = append(order, a.Key)
		if string(a.State) != `"`+a.Key+`"` {
			t.Errorf("agent %s state = %s", a.Key, a.State)
		}
	}
	if s := strings.Join(order, ","); s != "a@x,b@x,c@x,m@x,z@x" {
		t.Errorf("Agents order = %s, want a@x,b@x,c@x,m@x,z@x", s)
	}
}

func testEventsNewestFirst(t *testing.T, s store.Store) {
	insert(t, s, ev("1", "a@x", 1), ev("2", "b@x", 2), ev("3", "a@x", 3))
	insert(t, s, ev("4", "a@x", 4), ev("5", "b@x", 5))
	for _, tc := range []struct {
		agent string
		limit int
		want  string
	}{
		{"", 0, "5,4,3,2,1"},
		{"", 2, "5,4"},
		{"", 100, "5,4,3,2,1"},
		{"a@x", 0, "4,3,1"},
		{"a@x", 2, "4,3"},
		{"b@x", 1, "5"},
		{"nobody@x", 5, ""},
	} {
		if got := eventKeys(events(t, s, tc.agent, tc.limit)); got != tc.want {
			t.Errorf("Events(%q, %d) = [%s], want [%s]", tc.agent, tc.limit, got, tc.want)
		}
	}
}

func testAuditNewestFirst(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := insert(t, s, ev("k", "a@x", 1))[0]
	recs := []store.AuditRecord{
		{Agent: "a@x", At: base, Kind: "event", EventSeq: e.Seq, Body: []byte(`{"n":1}`)},
		{Agent: "b@x", At: base.Add(1), Kind: "event", Body: []byte(`{"n":2}`)},
		{Agent: "a@x", At: base.Add(2), Kind: "intent", EventSeq: e.Seq, Body: []byte(`{"n":3}`)},
	}
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(ctx, recs[:2]) })
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(ctx, recs[2:]) })
	for _, tc := range []struct {
		agent string
		limit int
		want  []int
	}{
		{"a@x", 0, []int{2, 0}},
		{"a@x", 1, []int{2}},
		{"b@x", 10, []int{1}},
		{"", 0, []int{2, 1, 0}},
		{"", 2, []int{2, 1}},
		{"nobody@x", 0, nil},
	} {
		got := audit(t, s, tc.agent, tc.limit)
		if len(got) != len(tc.want) {
			t.Errorf("Audit(%q, %d) = %d records, want %d", tc.agent, tc.limit, len(got), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			want := recs[w]
			g := got[i]
			if g.Seq != want.Seq || g.Agent != want.Agent || g.Kind != want.Kind || g.EventSeq != want.EventSeq ||
				!bytes.Equal(g.Body, want.Body) {
				t.Errorf("Audit(%q, %d)[%d] = %+v, want %+v", tc.agent, tc.limit, i, g, want)
			}
			sameTime(t, "audit At", g.At, want.At)
		}
	}
}

// testAuditRunsOneByOne appends runs of records of one agent and one event (which SQL backends
// keep in one row) around records of no event and of other agents, and reads every record back
// on its own, whatever limit cuts a run.
func testAuditRunsOneByOne(t *testing.T, s store.Store) {
	ctx := context.Background()
	e := insert(t, s, ev("k1", "a@x", 1), ev("k2", "b@x", 2))
	var recs []store.AuditRecord
	add := func(agent string, eventSeq int64, kind, body string) {
		recs = append(recs, store.AuditRecord{Agent: agent, At: base.Add(time.Duration(len(recs)) * time.Millisecond),
			Kind: kind, EventSeq: eventSeq, Body: []byte(body)})
	}
	add("a@x", e[0].Seq, "event", `{"n":0}`)
	add("a@x", e[0].Seq, "intent", `{"n":1}`)
	add("a@x", e[0].Seq, "intent", ``)
	add("a@x", 0, "write", `{"n":3}`)
	add("a@x", 0, "write", `{"n":4}`)
	add("b@x", e[1].Seq, "event", `{"n":5}`)
	add("b@x", e[1].Seq, "intent", `{"n":6}`)
	add("a@x", e[0].Seq, "echo", `{"n":7}`)
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(ctx, recs[:7]) })
	update(t, s, func(tx store.Tx) error { return tx.AppendAudit(ctx, recs[7:]) })
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			t.Fatalf("seq %d after %d", recs[i].Seq, recs[i-1].Seq)
		}
	}
	for _, tc := range []struct {
		agent string
		limit int
		want  []int
	}{
		{"", 0, []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{"", 3, []int{7, 6, 5}},
		{"a@x", 0, []int{7, 4, 3, 2, 1, 0}},
		{"a@x", 5, []int{7, 4, 3, 2, 1}},
		{"a@x", 4, []int{7, 4, 3, 2}},
		{"b@x", 1, []int{6}},
	} {
		got := audit(t, s, tc.agent, tc.limit)
		if len(got) != len(tc.want) {
			t.Errorf("Audit(%q, %d) = %d records, want %d", tc.agent, tc.limit, len(got), len(tc.want))
			continue
		}
		for i, w := range tc.want {
			want, g := recs[w], got[i]
			if g.Seq != want.Seq || g.Agent != want.Agent || g.Kind != want.Kind || g.EventSeq != want.EventSeq ||
				!bytes.Equal(g.Body, want.Body) {
				t.Errorf("Audit(%q, %d)[%d] = %+v, want %+v", tc.agent, tc.limit, i, g, want)
			}
			sameTime(t, "audit At", g.At, want.At)
		}
	}
}

// testEventsInBatches inserts several events at once (store.InsertEvents, in one statement
// where the backend can): new ones get increasing seqs, and a copy of an earlier event of the
// batch or of the store is a duplicate with its seq.
func testEventsInBatches(t *testing.T, s store.Store) {
	ctx := context.Background()
	old := insert(t, s, ev("old", "a@x", 0))[0]
	evs := []store.Event{ev("n1", "a@x", 1), ev("old", "a@x", 2), ev("n2", "b@x", 3), ev("n1", "a@x", 4), ev("n3", "a@x", 5)}
	inserted := make([]bool, len(evs))
	update(t, s, func(tx store.Tx) error { return store.InsertEvents(ctx, tx, evs, inserted) })
	if want := []bool{true, false, true, false, true}; !slices.Equal(inserted, want) {
		t.Fatalf("inserted = %v, want %v", inserted, want)
	}
	if evs[1].Seq != old.Seq || evs[3].Seq != evs[0].Seq {
		t.Errorf("duplicates got seqs %d and %d, want %d and %d", evs[1].Seq, evs[3].Seq, old.Seq, evs[0].Seq)
	}
	if !(old.Seq < evs[0].Seq && evs[0].Seq < evs[2].Seq && evs[2].Seq < evs[4].Seq) {
		t.Errorf("seqs %d, %d, %d, %d not increasing", old.Seq, evs[0].Seq, evs[2].Seq, evs[4].Seq)
	}
	got := events(t, s, "", 0)
	var keys []string
	for _, e := range got {
		keys = append(keys, e.DedupeKey)
	}
	if want := []string{"n3", "n2", "n1", "old"}; !slices.Equal(keys, want) {
		t.Errorf("stored keys = %v, want %v", keys, want)
	}
	if !bytes.Equal(got[2].Body, evs[0].Body) {
		t.Errorf("n1 body = %s, want the first copy's %s", got[2].Body, evs[0].Body)
	}
	// A failed batch leaves nothing.
	bad := []store.Event{ev("n4", "a@x", 6), {Agent: "a@x"}}
	if err := s.Update(ctx, func(tx store.Tx) error { return store.InsertEvents(ctx, tx, bad, make([]bool, 2)) }); err == nil {
		t.Fatal("a batch with an empty dedupe key was accepted")
	}
	if n := len(events(t, s, "", 0)); n != 4 {
		t.Errorf("%d events after the failed batch, want 4", n)
	}
}

func testRecentDedupeKeys(t *testing.T, s store.Store) {
	ctx := context.Background()
	got, err := s.RecentDedupeKeys(ctx, 10)
	if err != nil || len(got) != 0 {
		t.Fatalf("RecentDedupeKeys on empty store = %v, %v, want none", got, err)
	}
	insert(t, s, ev("1", "a@x", 1), ev("2", "b@x", 2), ev("3", "a@x", 3))
	for _, tc := range []struct {
		n    int
		want string
	}{{2, "3,2"}, {3, "3,2,1"}, {10, "3,2,1"}, {0, ""}} {
		got, err := s.RecentDedupeKeys(ctx, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(got, ","); g != tc.want {
			t.Errorf("RecentDedupeKeys(%d) = [%s], want [%s]", tc.n, g, tc.want)
		}
	}
}

func testCheckpointOutsideTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	if got, err := s.Checkpoint(ctx, "genesys"); err != nil || got != "" {
		t.Fatalf("Checkpoint before set = %q, %v, want empty", got, err)
	}
	for _, v := range []string{"pos-1", "pos-2"} {
		if err := s.SetCheckpoint(ctx, "genesys", v); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Checkpoint(ctx, "genesys"); err != nil || got != v {
			t.Errorf("Checkpoint = %q, %v, want %q", got, err, v)
		}
	}
	if got, _ := s.Checkpoint(ctx, "connect"); got != "" {
		t.Errorf("unrelated Checkpoint = %q, want empty", got)
	}
}

func testCheckpointInsideTx(t *testing.T, s store.Store) {
	ctx := context.Background()
	update(t, s, func(tx store.Tx) error {
		if err := tx.SetCheckpoint(ctx, "cxone", "a"); err != nil {
			return err
		}
		return tx.SetCheckpoint(ctx, "cxone", "b")
	})
	if got, err := s.Checkpoint(ctx, "cxone"); err != nil || got != "b" {
		t.Errorf("Checkpoint = %q, %v, want b", got, err)
	}
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	times := []time.Time{
		base,
		time.Date(1999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2030, 1, 1, 0, 0, 0, 1, time.FixedZone("Y", -8*3600)),
		time.Now(), // carries a monotonic reading, which must not matter
	}
	for i, at := range times {
		e := ev(fmt.Sprintf("t%d", i), fmt.Sprintf("a%d@x", i), 0)
		e.At = at
		update(t, s, func(tx store.Tx) error {
			if _, err := tx.InsertEvent(ctx, &e); err != nil {
				return err
			}
			if err := tx.PutAgent(ctx, store.Agent{Key: e.Agent, State: []byte(`{}`), UpdatedAt: at}); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, []store.AuditRecord{{Agent: e.Agent, At: at, Kind: "event"}})
		})
		got := events(t, s, e.Agent, 1)
		if len(got) != 1 {
			t.Fatalf("Events(%s) = %d events, want 1", e.Agent, len(got))
		}
		sameTime(t, "event At", got[0].At, at)
		a, _, err := s.Agent(ctx, e.Agent)
		if err != nil {
			t.Fatal(err)
		}
		sameTime(t, "agent UpdatedAt", a.UpdatedAt, at)
		recs := audit(t, s, e.Agent, 1)
		if len(recs) != 1 {
			t.Fatalf("Audit(%s) = %d records, want 1", e.Agent, len(recs))
		}
		sameTime(t, "audit At", recs[0].At, at)
	}
	// The zero time stays zero.
	e := ev("zero", "zero@x", 0)
	e.At = time.Time{}
	insert(t, s, e)
	if got := events(t, s, "zero@x", 1); len(got) != 1 || !got[0].At.IsZero() {
		t.Errorf("zero time round trip = %+v, want a zero At", got)
	}
}

func testConcurrentReaders(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, ev("seed", "a@x", 0))
	const writes = 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				got, err := s.Events(ctx, "a@x", 0)
				if err != nil {
					errs <- err
					return
				}
				// Each Update adds two events; a reader must never see half of one.
				if len(got)%2 != 1 {
					errs <- fmt.Errorf("reader saw %d events, a partial transaction", len(got))
					return
				}
				if _, err := s.Agents(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := 0; i < writes; i++ {
		a, b := ev(fmt.Sprintf("w%d-a", i), "a@x", i), ev(fmt.Sprintf("w%d-b", i), "a@x", i)
		update(t, s, func(tx store.Tx) error {
			if _, err := tx.InsertEvent(ctx, &a); err != nil {
				return err
			}
			if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{}`), UpdatedAt: base}); err != nil {
				return err
			}
			_, err := tx.InsertEvent(ctx, &b)
			return err
		})
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := events(t, s, "a@x", 0); len(got) != 1+2*writes {
		t.Errorf("Events = %d, want %d", len(got), 1+2*writes)
	}
}

func testUpdateSerialized(t *testing.T, s store.Store) {
	ctx := context.Background()
	const workers, per = 4, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				e := ev(fmt.Sprintf("w%d-%d", w, i), "a@x", i)
				err := s.Update(ctx, func(tx store.Tx) error {
					_, err := tx.InsertEvent(ctx, &e)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := events(t, s, "", 0)
	if len(got) != workers*per {
		t.Fatalf("Events = %d, want %d", len(got), workers*per)
	}
	for i := 1; i < len(got); i++ {
		if got[i].Seq >= got[i-1].Seq {
			t.Fatalf("Events not strictly newest first: seq %d then %d", got[i-1].Seq, got[i].Seq)
		}
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx store.Tx) error {
		e := ev("k", "a@x", 1)
		_, err := tx.InsertEvent(ctx, &e)
		return err
	})
	if err == nil {
		t.Fatal("Update with a canceled context succeeded, want an error")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Update error = %v, want context.Canceled", err)
	}
	if got := events(t, s, "", 0); len(got) != 0 {
		t.Errorf("Events = %d, want 0", len(got))
	}
}

func testCloseThenErrClosed(t *testing.T, s store.Store) {
	ctx := context.Background()
	insert(t, s, ev("k", "a@x", 1))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{
		"Update":        s.Update(ctx, func(store.Tx) error { return nil }),
		"SetCheckpoint": s.SetCheckpoint(ctx, "n", "v"),
	}
	_, _, checks["Agent"] = s.Agent(ctx, "a@x")
	_, checks["Agents"] = s.Agents(ctx)
	_, checks["Events"] = s.Events(ctx, "", 1)
	_, checks["Audit"] = s.Audit(ctx, "a@x", 1)
	_, checks["RecentDedupeKeys"] = s.RecentDedupeKeys(ctx, 1)
	_, checks["Checkpoint"] = s.Checkpoint(ctx, "n")
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func testLargeBodies(t *testing.T, s store.Store) {
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	big[0], big[len(big)-1] = '{', '}'
	e := ev("big", "a@x", 1)
	e.Body = big
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.InsertEvent(ctx, &e); err != nil {
			return err
		}
		if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: big, UpdatedAt: base}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, []store.AuditRecord{{Agent: "a@x", At: base, Kind: "event", Body: big}})
	})
	if got := events(t, s, "a@x", 1); len(got) != 1 || !bytes.Equal(got[0].Body, big) {
		t.Error("1 MiB event body did not round-trip")
	}
	if a, _, err := s.Agent(ctx, "a@x"); err != nil || !bytes.Equal(a.State, big) {
		t.Errorf("1 MiB agent state did not round-trip (err %v)", err)
	}
	if got := audit(t, s, "a@x", 1); len(got) != 1 || !bytes.Equal(got[0].Body, big) {
		t.Error("1 MiB audit body did not round-trip")
	}
}

func testBodiesNotAliased(t *testing.T, s store.Store) {
	ctx := context.Background()
	body, state := []byte(`{"a":1}`), []byte(`{"s":1}`)
	e := ev("k", "a@x", 1)
	e.Body = body
	update(t, s, func(tx store.Tx) error {
		if _, err := tx.InsertEvent(ctx, &e); err != nil {
			return err
		}
		if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: state, UpdatedAt: base}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, []store.AuditRecord{{Agent: "a@x", At: base, Kind: "event", Body: body}})
	})
	body[1], state[1] = 'X', 'X' // the caller reuses its buffers
	got := events(t, s, "a@x", 1)
	got[0].Body[1] = 'Y' // and scribbles on what it read
	if got := events(t, s, "a@x", 1); string(got[0].Body) != `{"a":1}` {
		t.Errorf("event body = %s, want {\"a\":1}", got[0].Body)
	}
	if a, _, _ := s.Agent(ctx, "a@x"); string(a.State) != `{"s":1}` {
		t.Errorf("agent state = %s, want {\"s\":1}", a.State)
	}
	if got := audit(t, s, "a@x", 1); string(got[0].Body) != `{"a":1}` {
		t.Errorf("audit body = %s, want {\"a\":1}", got[0].Body)
	}
}

func testContextCanceledDuring(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := s.Update(ctx, func(tx store.Tx) error {
		e := ev("k", "a@x", 1)
		if _, err := tx.InsertEvent(ctx, &e); err != nil {
			return err
		}
		cancel() // fn itself succeeds, but the caller gave up before the commit
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	if got := events(t, s, "", 0); len(got) != 0 {
		t.Errorf("Events = %d, want 0", len(got))
	}
	insert(t, s, ev("k", "a@x", 1)) // the key is free and the store still writable
}

func testPanicRollsBack(t *testing.T, s store.Store) {
	ctx := context.Background()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the panic of fn", r)
			}
		}()
		_ = s.Update(ctx, func(tx store.Tx) error {
			e := ev("k", "a@x", 1)
			if _, err := tx.InsertEvent(ctx, &e); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if got := events(t, s, "", 0); len(got) != 0 {
		t.Errorf("Events after a panic = %d, want 0", len(got))
	}
	// The store is still writable and the key is free.
	if got := insert(t, s, ev("k", "a@x", 1)); got[0].Seq <= 0 {
		t.Errorf("Seq after a panic = %d", got[0].Seq)
	}
	if got := events(t, s, "", 0); len(got) != 1 {
		t.Errorf("Events = %d, want 1", len(got))
	}
}
