package postgres_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
	"github.com/omnipresence/omnipresence/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freshSchema is pgtest.FreshSchema.
func freshSchema(t testing.TB) string { return pgtest.FreshSchema(t) }

// needServer is pgtest.NeedServer.
func needServer(t testing.TB) { pgtest.NeedServer(t) }

func open(t testing.TB, u string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), u)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	needServer(t)
	storetest.Run(t, func(t *testing.T) store.Store { return open(t, freshSchema(t)) })
	storetest.RunPrune(t, func(t *testing.T) store.Store { return open(t, freshSchema(t)) })
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	u := freshSchema(t)
	const n = 4
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(context.Background(), u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var count int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	migs, err := store.Migrations(os.DirFS("."), "migrations")
	if err != nil {
		t.Fatal(err)
	}
	if count != len(migs) {
		t.Errorf("schema_migrations has %d rows, want %d", count, len(migs))
	}
}

func TestReplicasDedupeAcrossProcesses(t *testing.T) {
	// Two Stores on one schema stand for two replicas: a key inserted by one is a duplicate
	// for the other.
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	ctx := context.Background()
	ins := func(s store.Store) (store.Event, bool) {
		e := store.Event{DedupeKey: "shared", Agent: "a@x"}
		var inserted bool
		if err := s.Update(ctx, func(tx store.Tx) error {
			var err error
			inserted, err = tx.InsertEvent(ctx, &e)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return e, inserted
	}
	ea, insA := ins(a)
	eb, insB := ins(b)
	if !insA || insB || ea.Seq != eb.Seq {
		t.Errorf("replica inserts = (%v, seq %d), (%v, seq %d), want the second a duplicate of the first",
			insA, ea.Seq, insB, eb.Seq)
	}
}

func TestOpenBadURL(t *testing.T) {
	if s, err := postgres.Open(context.Background(), "postgres://%zz"); err == nil {
		s.Close()
		t.Error("Open with a malformed URL succeeded, want an error")
	}
}

// BenchmarkUpdateBatch commits batches of 256 events (each with an agent put and an audit
// record) to the test server.
func BenchmarkUpdateBatch(b *testing.B) {
	storetest.BenchUpdateBatch(b, open(b, freshSchema(b)), 256)
}
