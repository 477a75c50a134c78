package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
	"github.com/omnipresence/omnipresence/internal/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serverURL is the test server; OMNIPRESENCE_TEST_POSTGRES overrides it.
func serverURL() string {
	if u := os.Getenv("OMNIPRESENCE_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// reachable connects to the test server once per test binary.
var reachable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, serverURL())
	if err != nil {
		return err
	}
	return conn.Close(ctx)
})

// needServer skips t when the test server is unreachable.
func needServer(t testing.TB) {
	t.Helper()
	if err := reachable(); err != nil {
		t.Skipf("postgres test server unreachable at %s (set OMNIPRESENCE_TEST_POSTGRES to use another): %v", serverURL(), err)
	}
}

// freshSchema creates a schema with a random name, drops it when t ends, and returns a URL whose
// connections use it. It skips t when the server is unreachable.
func freshSchema(t testing.TB) string {
	t.Helper()
	needServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	base := serverURL()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to %s: %v", base, err)
	}
	defer conn.Close(context.Background())
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	schema := "omnitest_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("OMNIPRESENCE_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

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
	if count != 1 {
		t.Errorf("schema_migrations has %d rows, want 1", count)
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
