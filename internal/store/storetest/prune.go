package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
)

// RunPrune checks a store.Pruner: what is older than the cut goes, with the events its audit
// names; what is newer stays whole; the newest rows always stay, so seqs keep growing.
func RunPrune(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	t.Run("Prune", func(t *testing.T) {
		s := open(t)
		t.Cleanup(func() { _ = s.Close() })
		testPrune(t, s)
	})
}

func testPrune(t *testing.T, s store.Store) {
	ctx := context.Background()
	p, ok := s.(store.Pruner)
	if !ok {
		t.Fatalf("%T is not a store.Pruner", s)
	}
	hour := func(h int) time.Time { return base.Add(time.Duration(h) * time.Hour) }
	var evs []store.Event
	for i := range 4 {
		e := insert(t, s, ev(string(rune('a'+i)), "a@x", i))[0]
		evs = append(evs, e)
		update(t, s, func(tx store.Tx) error {
			return tx.AppendAudit(ctx, []store.AuditRecord{
				{Agent: "a@x", At: hour(i), Kind: "event", EventSeq: e.Seq, Body: []byte(`{}`)},
				{Agent: "a@x", At: hour(i), Kind: "intent", EventSeq: e.Seq, Body: []byte(`{}`)},
			})
		})
	}
	gotEvents, gotAudit, err := p.Prune(ctx, hour(2))
	if err != nil {
		t.Fatal(err)
	}
	if gotEvents != 2 || gotAudit != 4 {
		t.Errorf("Prune removed %d events and %d audit records, want 2 and 4", gotEvents, gotAudit)
	}
	if got := events(t, s, "", 0); len(got) != 2 || got[0].Seq != evs[3].Seq || got[1].Seq != evs[2].Seq {
		t.Errorf("events left: %+v, want the last two", got)
	}
	recs := audit(t, s, "a@x", 0)
	if len(recs) != 4 || recs[3].EventSeq != evs[2].Seq {
		t.Errorf("audit left: %d records (oldest of event %d), want 4 from event %d", len(recs), recs[len(recs)-1].EventSeq, evs[2].Seq)
	}
	// Pruning everything keeps the newest event and the newest audit row.
	if _, _, err := p.Prune(ctx, hour(100)); err != nil {
		t.Fatal(err)
	}
	if got := events(t, s, "", 0); len(got) != 1 || got[0].Seq != evs[3].Seq {
		t.Errorf("after pruning all: events %+v, want only the newest", got)
	}
	if recs := audit(t, s, "", 0); len(recs) != 2 || recs[0].EventSeq != evs[3].Seq {
		t.Errorf("after pruning all: %d audit records, want the newest event's 2", len(recs))
	}
	next := insert(t, s, ev("e", "a@x", 5))[0]
	if next.Seq <= evs[3].Seq {
		t.Errorf("seq after pruning = %d, want more than %d", next.Seq, evs[3].Seq)
	}
	var rec []store.AuditRecord
	update(t, s, func(tx store.Tx) error {
		rec = []store.AuditRecord{{Agent: "a@x", At: hour(5), Kind: "event", EventSeq: next.Seq, Body: []byte(`{}`)}}
		return tx.AppendAudit(ctx, rec)
	})
	if recs := audit(t, s, "", 1); len(recs) != 1 || recs[0].Seq != rec[0].Seq {
		t.Errorf("newest audit record after pruning = %+v, want seq %d", recs, rec[0].Seq)
	}
	// Nothing old: nothing goes.
	if e, a, err := p.Prune(ctx, hour(-10)); err != nil || e+a != 0 {
		t.Errorf("Prune of nothing old = %d, %d, %v", e, a, err)
	}
	if sz, ok := s.(store.Sizer); ok {
		if n, err := sz.Size(ctx); err != nil || n <= 0 {
			t.Errorf("Size = %d, %v", n, err)
		}
	}
}
