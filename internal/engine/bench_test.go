package engine

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
)

const benchAgents = 1000

var benchStatuses = []string{"AvailableforVoice", "Busy", "Lunch", "Break"}

// benchEvent is the i-th event of a stream spread over benchAgents agents, each agent changing
// status every 30 seconds (far more often than people do), so that the engine's history window
// (15 minutes) holds what it holds in service rather than growing with b.N.
func benchEvent(i int) presence.Event {
	return presence.Event{System: "sf", Agent: fmt.Sprintf("agent%04d@example.com", i%benchAgents), Type: presence.StatusChanged,
		Status: benchStatuses[(i/benchAgents+i)%len(benchStatuses)], At: benchTime(i)}
}

// benchTime is when the i-th event happened.
func benchTime(i int) time.Time {
	return t0.Add(time.Duration(i/benchAgents)*30*time.Second + time.Duration(i%benchAgents)*time.Microsecond)
}

func benchConfig(b *testing.B) *policy.Config {
	cfg, err := policy.Load("testdata/two-way.yaml", policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	return cfg
}

// benchMachine measures the sequencer's work: ingest, decide and commit, in batches of 256
// events per transaction, as the engine's group commit does under load.
func benchMachine(b *testing.B, st store.Store) {
	m := NewMachine(benchConfig(b), Options{})
	ctx := context.Background()
	const batch = 256
	evs := make([]presence.Event, batch)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		err := st.Update(ctx, func(tx store.Tx) error {
			for j := range n {
				evs[j] = benchEvent(i + j)
			}
			if err := ingestAll(ctx, m, tx, evs[:n], benchTime(i+n-1)); err != nil {
				return err
			}
			_, err := m.Flush(ctx, tx)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// ingestAll stores evs at once and applies them in order, as the engine does with a batch.
func ingestAll(ctx context.Context, m *Machine, tx store.Tx, evs []presence.Event, now time.Time) error {
	out := make([]storedEvent, len(evs))
	if err := m.storeEvents(ctx, tx, evs, out); err != nil {
		return err
	}
	for i := range out {
		m.applyStored(&out[i], now)
	}
	return nil
}

// BenchmarkDecideOnly is the decision alone: resolve, echo check, policy, intents, audit
// steps; nothing is encoded or stored.
func BenchmarkDecideOnly(b *testing.B) {
	m := NewMachine(benchConfig(b), Options{})
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := benchEvent(i)
		m.apply(ev, ev.Agent, true, int64(i+1), ev.At)
		if len(m.records) >= 256 {
			m.records = m.records[:0]
			clear(m.dirty)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecideInMemory is ingest, decision and commit to the memory store.
func BenchmarkDecideInMemory(b *testing.B) {
	benchMachine(b, memory.New(memory.WithMaxEvents(100_000), memory.WithMaxAudit(100_000)))
}

// BenchmarkDecidePostgres is ingest → decision → durable commit on PostgreSQL (the test
// server; skipped without one).
func BenchmarkDecidePostgres(b *testing.B) {
	st, err := postgres.Open(context.Background(), pgtest.FreshSchema(b))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchMachine(b, st)
}

// BenchmarkDecideSQLite is ingest → decision → durable commit on SQLite.
func BenchmarkDecideSQLite(b *testing.B) {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	benchMachine(b, st)
}

// BenchmarkBareSQLiteInsert is what the disk and driver allow: rows the size of an event's,
// into a table without secondary indexes, 1,000 per transaction, in WAL mode with
// synchronous=NORMAL as the store uses. The durable path is measured against it.
func BenchmarkBareSQLiteInsert(b *testing.B) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(b.TempDir(), "bare.db")+"?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE t (seq INTEGER PRIMARY KEY, agent TEXT NOT NULL, at INTEGER, body BLOB NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 120)
	const batch = 1000
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		tx, err := db.Begin()
		if err != nil {
			b.Fatal(err)
		}
		st, err := tx.Prepare(`INSERT INTO t (agent, at, body) VALUES (?, ?, ?)`)
		if err != nil {
			b.Fatal(err)
		}
		for j := range min(batch, b.N-i) {
			if _, err := st.Exec("agent0001@example.com", int64(i+j), body); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEngineIngestSQLite is the running engine: many concurrent callers of Ingest, each
// returning once its event and decision are committed (group commit), with no connectors.
func BenchmarkEngineIngestSQLite(b *testing.B) {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := runBenchEngine(b, st)
	var next int64
	var mu sync.Mutex
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu.Lock()
			i := int(next)
			next++
			mu.Unlock()
			if err := eng.Ingest(context.Background(), benchEvent(i)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkLatencyAt1000PerSecond paces events at 1,000/s into the running engine on SQLite
// and reports the time from Ingest to its durable decision, p50 and p99.
func BenchmarkLatencyAt1000PerSecond(b *testing.B) {
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	eng := runBenchEngine(b, st)
	n := max(b.N, 2000)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ResetTimer()
	for i := range n {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			if err := eng.Ingest(context.Background(), benchEvent(i)); err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[n/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[n*99/100].Microseconds()), "p99-µs")
}

func runBenchEngine(b *testing.B, st store.Store) *Engine {
	eng, err := New(Config{Policy: benchConfig(b), Store: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	for eng.Ready() != nil {
		time.Sleep(time.Millisecond)
	}
	b.Cleanup(func() {
		cancel()
		<-done
	})
	return eng
}
