package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
)

// TestStoreBatchDecidesAsOneByOne pins that storing a batch's events up front (as the engine's
// sequencer does) decides, records and stores exactly what ingesting them one by one does,
// duplicates within the batch and of earlier batches included.
func TestStoreBatchDecidesAsOneByOne(t *testing.T) {
	cfg := benchConfig(&testing.B{})
	ctx := context.Background()
	ev := func(i int, status string) presence.Event {
		return presence.Event{System: "sf", Agent: fmt.Sprintf("a%d@example.com", i%3), Type: presence.StatusChanged,
			Status: status, At: t0.Add(time.Duration(i) * time.Second)}
	}
	batches := [][]presence.Event{
		{ev(0, "Busy"), ev(1, "Lunch"), ev(0, "Busy"), ev(2, "Break")},
		{ev(1, "Lunch"), ev(3, "AvailableforVoice"), {System: "nosuch", Agent: "x", Type: presence.StatusChanged, Status: "s", At: t0}},
	}
	type outcome struct {
		Agents   []string
		Views    []AgentView
		Steps    []Step
		Events   int64
		Dups     int64
		Unknown  int64
		EventSeq []int64
	}
	run := func(t *testing.T, st store.Store, batched bool) outcome {
		m := NewMachine(cfg, Options{})
		var o outcome
		for _, b := range batches {
			err := st.Update(ctx, func(tx store.Tx) error {
				if batched {
					reqs := make([]*request, len(b))
					for i := range b {
						reqs[i] = &request{kind: opIngest, ev: b[i]}
					}
					stored, err := m.storeBatch(ctx, tx, reqs)
					if err != nil || len(stored) != len(b) {
						return fmt.Errorf("stored %d of %d: %v", len(stored), len(b), err)
					}
					for i := range stored {
						o.Agents = append(o.Agents, m.applyStored(&stored[i], t0))
					}
				} else {
					for _, e := range b {
						agent, err := m.Ingest(ctx, tx, e, t0)
						if err != nil {
							return err
						}
						o.Agents = append(o.Agents, agent)
					}
				}
				_, err := m.Flush(ctx, tx)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		o.Views = m.Views()
		recs, err := st.Audit(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		if o.Steps, err = DecodeSteps(recs); err != nil {
			t.Fatal(err)
		}
		evs, err := st.Events(ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			o.EventSeq = append(o.EventSeq, e.Seq)
		}
		o.Events, o.Dups, o.Unknown = m.Stats.Events.Load(), m.Stats.Duplicates.Load(), m.Stats.UnknownSystem.Load()
		return o
	}
	for name, open := range map[string]func(t *testing.T) store.Store{
		"memory": func(t *testing.T) store.Store { return memory.New() },
		"sqlite": func(t *testing.T) store.Store {
			s, err := sqlite.Open(filepath.Join(t.TempDir(), "b.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		},
	} {
		t.Run(name, func(t *testing.T) {
			one, all := run(t, open(t), false), run(t, open(t), true)
			if diff := cmp.Diff(one, all); diff != "" {
				t.Errorf("batched differs from one by one (-one +batched):\n%s", diff)
			}
			if one.Dups != 2 || one.Events != 7 {
				t.Errorf("events %d, duplicates %d; want 7 and 2", one.Events, one.Dups)
			}
		})
	}
}
