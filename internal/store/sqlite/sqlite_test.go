package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
	"github.com/omnipresence/omnipresence/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func open(t testing.TB, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "omni.db"), opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
	storetest.RunPrune(t, func(t *testing.T) store.Store { return open(t) })
}

func TestReopenKeepsDataAndMigrationsAreIdempotent(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "omni.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	e := store.Event{DedupeKey: "k1", Agent: "a@x", At: time.Unix(1, 2)}
	if err := s.Update(ctx, func(tx store.Tx) error { _, err := tx.InsertEvent(ctx, &e); return err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		s, err := sqlite.Open(path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		got, err := s.Events(ctx, "", 0)
		if err != nil || len(got) != 1 || got[0].Seq != e.Seq {
			t.Errorf("reopen %d: Events = %+v, %v, want the one event", i, got, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if n, want := migrationRows(t, path), wantMigrations(t); n != want {
		t.Errorf("schema_migrations has %d rows after three opens, want %d", n, want)
	}
}

func TestConcurrentOpens(t *testing.T) {
	// Separate Stores have separate connections, as two processes would.
	path := filepath.Join(t.TempDir(), "omni.db")
	const n = 4
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := sqlite.Open(path)
			if err != nil {
				errs <- err
				return
			}
			errs <- s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n, want := migrationRows(t, path), wantMigrations(t); n != want {
		t.Errorf("schema_migrations has %d rows after concurrent opens, want %d", n, want)
	}
}

func TestTwoWritersShareAFile(t *testing.T) {
	// Two Stores on one file stand for two processes: immediate transactions and the busy
	// timeout must make them take turns instead of failing with SQLITE_BUSY.
	path := filepath.Join(t.TempDir(), "omni.db")
	ctx := context.Background()
	const writers, per = 2, 50
	stores := make([]*sqlite.Store, writers)
	for i := range stores {
		s, err := sqlite.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				e := store.Event{DedupeKey: fmt.Sprintf("w%d-%d", w, i), Agent: "a@x"}
				err := s.Update(ctx, func(tx store.Tx) error {
					if _, err := tx.InsertEvent(ctx, &e); err != nil {
						return err
					}
					return tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(`{}`)})
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
	got, err := stores[0].Events(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*per {
		t.Errorf("Events = %d, want %d", len(got), writers*per)
	}
}

func migrationRows(t *testing.T, path string) int {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBadInput(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db"} {
		if s, err := sqlite.Open(path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded, want an error", path)
		}
	}
	if _, err := sqlite.Open(filepath.Join(t.TempDir(), "x.db"), sqlite.WithReadConns(0)); err == nil {
		t.Error("Open with no read connections succeeded, want an error")
	}
	s := open(t)
	ctx := context.Background()
	far := time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)
	for name, fn := range map[string]func(store.Tx) error{
		"event": func(tx store.Tx) error {
			_, err := tx.InsertEvent(ctx, &store.Event{DedupeKey: "k", At: far})
			return err
		},
		"agent": func(tx store.Tx) error { return tx.PutAgent(ctx, store.Agent{Key: "a", UpdatedAt: far}) },
		"audit": func(tx store.Tx) error { return tx.AppendAudit(ctx, []store.AuditRecord{{At: far}}) },
	} {
		if err := s.Update(ctx, fn); err == nil || !strings.Contains(err.Error(), "storable range") {
			t.Errorf("%s with a time in 2300: err = %v, want a range error", name, err)
		}
	}
}

func TestPathWithURICharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a ?b#c%41.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database not at the given path: %v", err)
	}
}

func TestSynchronousFull(t *testing.T) {
	s := open(t, sqlite.WithSynchronousFull(), sqlite.WithBusyTimeout(time.Second), sqlite.WithReadConns(1))
	ctx := context.Background()
	if err := s.SetCheckpoint(ctx, "n", "v"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Checkpoint(ctx, "n"); err != nil || got != "v" {
		t.Errorf("Checkpoint = %q, %v", got, err)
	}
}

// BenchmarkUpdateBatch commits batches of 256 events (each with an agent put and an audit
// record) to a file in a temporary directory.
func BenchmarkUpdateBatch(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts []sqlite.Option
	}{
		{"normal", nil},
		{"full", []sqlite.Option{sqlite.WithSynchronousFull()}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			storetest.BenchUpdateBatch(b, open(b, tc.opts...), 256)
		})
	}
}

// wantMigrations is the number of migration files the store embeds.
func wantMigrations(t *testing.T) int {
	t.Helper()
	migs, err := store.Migrations(os.DirFS("."), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	return len(migs)
}

// TestUpgradeFromFirstSchema opens a file an earlier version wrote (migration 0001 only): its
// events still deduplicate, its audit records still read, and new ones follow them.
func TestUpgradeFromFirstSchema(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	first, err := os.ReadFile("migrations/0001_init.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(first),
		`CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES (1, '0001_init.sql', 0)`,
		`INSERT INTO events (dedupe_key, agent, system, type, at, body) VALUES ('gc:e1', 'a@x', 'gc', 'status_changed', 1, '{}'), ('gc:e2', 'a@x', 'gc', 'status_changed', 2, '{}')`,
		`INSERT INTO audit (agent, at, kind, event_seq, body) VALUES ('a@x', 1, 'event', 1, '{"n":1}'), ('a@x', 2, 'intent', 1, '{"n":2}')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	var seqs []int64
	var news []bool
	err = s.Update(ctx, func(tx store.Tx) error {
		for _, k := range []string{"gc:e2", "gc:e3", "gc:e1", "gc:e3"} {
			e := store.Event{DedupeKey: k, Agent: "a@x", System: "gc", Type: "status_changed", At: time.Unix(0, 3)}
			inserted, err := tx.InsertEvent(ctx, &e)
			if err != nil {
				return err
			}
			seqs, news = append(seqs, e.Seq), append(news, inserted)
		}
		return tx.AppendAudit(ctx, []store.AuditRecord{
			{Agent: "a@x", At: time.Unix(0, 3), Kind: "event", EventSeq: 3, Body: []byte(`{"n":3}`)},
			{Agent: "a@x", At: time.Unix(0, 3), Kind: "intent", EventSeq: 3, Body: []byte(`{"n":4}`)},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs, news) != "[2 3 1 3] [false true false false]" {
		t.Errorf("seqs and inserted = %v %v, want [2 3 1 3] [false true false false]", seqs, news)
	}
	recs, err := s.Audit(ctx, "a@x", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%d:%s:%s", r.Seq, r.Kind, r.Body))
	}
	if want := `4:intent:{"n":4} 3:event:{"n":3} 2:intent:{"n":2} 1:event:{"n":1}`; strings.Join(got, " ") != want {
		t.Errorf("audit = %s, want %s", strings.Join(got, " "), want)
	}
}

// TestDedupeHashCollision stores an event whose key's hash another key holds: it goes to the
// next probe, and its redelivery is still found there.
func TestDedupeHashCollision(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO events (dedupe_key, dedupe_hash, agent, system, type, body) VALUES ('other', ?, 'a@x', 'gc', 't', x'')`,
		store.DedupeHash("gc:e9", 0)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = sqlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var got []string
	err = s.Update(ctx, func(tx store.Tx) error {
		for range 2 {
			e := store.Event{DedupeKey: "gc:e9", Agent: "a@x", System: "gc", Type: "t"}
			inserted, err := tx.InsertEvent(ctx, &e)
			if err != nil {
				return err
			}
			got = append(got, fmt.Sprint(e.Seq, inserted))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "2 true 2 false" {
		t.Errorf("inserts of a colliding key = %v, want [2 true 2 false]", got)
	}
	if a, b := store.DedupeHash("k", 1), store.DedupeHash("k", 0); a == b {
		t.Error("probe 1 hashes like probe 0")
	}
}
