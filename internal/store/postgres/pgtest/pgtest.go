// Package pgtest gives tests a PostgreSQL database of their own on the test server
// (127.0.0.1:5432 with trust auth, or OMNIPRESENCE_TEST_POSTGRES), and skips them cleanly,
// saying why, where there is none.
package pgtest

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
)

// ServerURL is the test server; OMNIPRESENCE_TEST_POSTGRES overrides it.
func ServerURL() string {
	if u := os.Getenv("OMNIPRESENCE_TEST_POSTGRES"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// reachable connects to the test server once per test binary.
var reachable = sync.OnceValue(func() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, ServerURL())
	if err != nil {
		return err
	}
	return conn.Close(ctx)
})

// NeedServer skips t when the test server is unreachable.
func NeedServer(t testing.TB) {
	t.Helper()
	if err := reachable(); err != nil {
		t.Skipf("postgres test server unreachable at %s (set OMNIPRESENCE_TEST_POSTGRES to use another): %v", ServerURL(), err)
	}
}

// FreshSchema creates a schema with a random name, drops it when t ends, and returns a URL whose
// connections use it. It skips t when the server is unreachable.
func FreshSchema(t testing.TB) string {
	t.Helper()
	NeedServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	base := ServerURL()
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
