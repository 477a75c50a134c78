package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	"github.com/omnipresence/omnipresence/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}

func TestConformanceWithRetention(t *testing.T) {
	// Caps above what the suite writes change nothing observable.
	storetest.Run(t, func(t *testing.T) store.Store {
		return memory.New(memory.WithMaxEvents(1000), memory.WithMaxAudit(1000))
	})
}

func TestRetentionDropsOldest(t *testing.T) {
	ctx := context.Background()
	s := memory.New(memory.WithMaxEvents(3), memory.WithMaxAudit(2))
	defer s.Close()
	for i := 0; i < 5; i++ {
		e := store.Event{DedupeKey: fmt.Sprint("k", i), Agent: fmt.Sprint("a", i%2), At: time.Unix(int64(i), 0)}
		err := s.Update(ctx, func(tx store.Tx) error {
			if _, err := tx.InsertEvent(ctx, &e); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, []store.AuditRecord{{Agent: e.Agent, Kind: fmt.Sprint(i)}})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	keys, _ := s.RecentDedupeKeys(ctx, 10)
	if fmt.Sprint(keys) != "[k4 k3 k2]" {
		t.Errorf("retained keys = %v, want [k4 k3 k2]", keys)
	}
	for agent, want := range map[string]int{"a0": 2, "a1": 1} { // k4,k2 and k3
		if got, _ := s.Events(ctx, agent, 0); len(got) != want {
			t.Errorf("Events(%s) = %d, want %d", agent, len(got), want)
		}
	}
	recs, _ := s.Audit(ctx, "", 0)
	if len(recs) != 2 || recs[0].Kind != "4" || recs[1].Kind != "3" {
		t.Errorf("retained audit = %+v, want kinds 4, 3", recs)
	}
	if got, _ := s.Audit(ctx, "a0", 0); len(got) != 1 || got[0].Kind != "4" {
		t.Errorf("Audit(a0) = %+v, want kind 4 only", got)
	}
	// A dropped event's key is still known for a while, and forgotten after at most 2×3 newer
	// events: then the same key is accepted again as new.
	insertKey := func(key string) (int64, bool) {
		e := store.Event{DedupeKey: key, Agent: "a0"}
		var inserted bool
		if err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			inserted, err = tx.InsertEvent(ctx, &e)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return e.Seq, inserted
	}
	if seq, inserted := insertKey("k0"); inserted || seq != 1 {
		t.Errorf("key of a just-dropped event: inserted %v, seq %d, want a duplicate of seq 1", inserted, seq)
	}
	for i := 5; i < 11; i++ {
		insertKey(fmt.Sprint("k", i))
	}
	if _, inserted := insertKey("k0"); !inserted {
		t.Error("key of an event dropped 6 events ago is still deduplicated")
	}
	if _, inserted := insertKey("k10"); inserted {
		t.Error("key of a retained event was accepted again")
	}
}

// BenchmarkUpdateBatch measures the engine's hot path: batches of 256 events, each with an
// agent put and one audit record.
func BenchmarkUpdateBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []memory.Option
	}{
		{"unlimited", nil},
		{"capped", []memory.Option{memory.WithMaxEvents(100_000), memory.WithMaxAudit(100_000)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := memory.New(tc.opts...)
			defer s.Close()
			storetest.BenchUpdateBatch(b, s, 256)
		})
	}
}
