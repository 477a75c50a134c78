package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
)

// BenchUpdateBatch measures the engine's write path: Updates of batch events (inserted at once,
// store.InsertEvents), each with an agent put and one audit record, the way the engine commits
// a batch. It reports events/s.
func BenchUpdateBatch(b *testing.B, s store.Store, batch int) {
	ctx := context.Background()
	agents := make([]string, 1000)
	for i := range agents {
		agents[i] = fmt.Sprintf("agent%04d@example.com", i)
	}
	keys := make([]string, 0, batch)
	// Keys look like the engine's content hashes: random, as a vendor's event ids are too, so
	// that the dedupe index sees inserts all over it as in service.
	keyBuf := []byte("genesys:h:")
	body := []byte(`{"system":"genesys","status":"Available","category":"available","vendor_id":"6a3af858"}`)
	state := []byte(`{"observed":{"genesys":"Available"},"desired":"Available","pending":[]}`)
	now := time.Now()
	evs := make([]store.Event, batch)
	recs := make([]store.AuditRecord, batch)
	inserted := make([]bool, batch)
	n := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		keys = keys[:0]
		for i := 0; i < batch; i++ {
			h := sha256.Sum256(strconv.AppendInt(nil, int64(n+i), 10))
			keyBuf = hex.AppendEncode(keyBuf[:len("genesys:h:")], h[:16])
			keys = append(keys, string(keyBuf))
		}
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := range evs {
				agent := agents[(n+i)%len(agents)]
				evs[i] = store.Event{DedupeKey: keys[i], Agent: agent, System: "genesys", Type: "status", At: now, Body: body}
			}
			if err := store.InsertEvents(ctx, tx, evs, inserted); err != nil {
				return err
			}
			for i := range evs {
				agent := evs[i].Agent
				if err := tx.PutAgent(ctx, store.Agent{Key: agent, State: state, UpdatedAt: now}); err != nil {
					return err
				}
				recs[i] = store.AuditRecord{Agent: agent, At: now, Kind: "event", EventSeq: evs[i].Seq, Body: body}
			}
			return tx.AppendAudit(ctx, recs)
		})
		if err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
