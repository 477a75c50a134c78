package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
)

// TestBenchJSON runs a short bench on each store kind it can and checks the one JSON object
// CONTRACTS.md fixes.
func TestBenchJSON(t *testing.T) {
	for _, tc := range []struct{ name, store, against string }{
		{"temporary sqlite, fake", "", "fake"},
		{"memory, simulator", "memory:", "simulators"},
		{"sqlite file", "sqlite:" + filepath.Join(t.TempDir(), "b.db"), "fake"},
		{"postgres", "postgres", "fake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.store == "postgres" {
				tc.store = pgtest.FreshSchema(t)
			}
			args := []string{"bench", "--agents", "20", "--events", "200", "--against", tc.against, "--format", "json"}
			if tc.store != "" {
				args = append(args, "--store", tc.store)
			}
			stdout, stderr, code := run(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if strings.Count(stdout, "\n") != 1 {
				t.Errorf("want one line of JSON, got %q", stdout)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("%v: %s", err, stdout)
			}
			for _, k := range []string{"events_per_second", "ingest_p50_ms", "ingest_p99_ms", "vendor_call_p50_ms",
				"vendor_call_p99_ms", "allocs_per_event", "bytes_per_event"} {
				v, ok := got[k].(float64)
				if !ok || v < 0 {
					t.Errorf("%s = %v, want a number >= 0", k, got[k])
				}
			}
			for _, k := range []string{"events_per_second", "ingest_p50_ms", "allocs_per_event"} {
				if got[k].(float64) <= 0 {
					t.Errorf("%s = %v, want more than 0", k, got[k])
				}
			}
			if s, ok := got["store"].(string); !ok || s == "" {
				t.Errorf("store = %v, want its name", got["store"])
			}
			if n := got["events"].(float64); n < 200 {
				t.Errorf("events = %v, want at least the 200 status changes", n)
			}
			if stderr != "" {
				t.Errorf("stderr is not a terminal, so no progress bar; got %q", stderr)
			}
		})
	}
}

func TestBenchTableAndErrors(t *testing.T) {
	stdout, stderr, code := run(t, "bench", "--agents", "5", "--events", "20", "--store", "memory:")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, row := range []string{"store", "events/s", "ingest → decision p50 / p99", "event → vendor call p50 / p99",
		"allocations / event", "bytes / event"} {
		if !strings.Contains(stdout, row) {
			t.Errorf("table lacks %q:\n%s", row, stdout)
		}
	}
	for _, args := range [][]string{
		{"--format", "yaml"}, {"--against", "genesys"}, {"--agents", "0"}, {"--events", "-1"}, {"--store", "nosuch:x"},
	} {
		_, stderr, code := run(t, append([]string{"bench"}, args...)...)
		if code != 2 || stderr == "" {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and a reason", args, code, stderr)
		}
	}
	// A store that holds agents is refused, untouched.
	path := "sqlite:" + filepath.Join(t.TempDir(), "used.db")
	if _, stderr, code := run(t, "bench", "--agents", "3", "--events", "3", "--store", path); code != 0 {
		t.Fatalf("first run: exit %d: %s", code, stderr)
	}
	if _, stderr, code := run(t, "bench", "--agents", "3", "--events", "3", "--store", path); code != 2 || !strings.Contains(stderr, "empty") {
		t.Errorf("second run on the same store: exit %d, %q; want 2 saying it is not empty", code, stderr)
	}
}
