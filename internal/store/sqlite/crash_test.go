package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
)

// crashChildEnv, when set to a database path, turns TestCrashDurability into the child process
// that writes until it is killed.
const crashChildEnv = "OMNIPRESENCE_SQLITE_CRASH_CHILD"

// TestCrashDurability kills a writing process with SIGKILL and checks that every commit it
// reported survived and that the file opens cleanly afterwards.
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "omni.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	const killAfter = 300
	committed := map[int64]string{} // seq -> dedupe key
	var lastBatch int
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		// Lines read after the kill were written before it: they count too.
		var seq int64
		var key string
		var batch int
		if _, err := fmt.Sscanf(sc.Text(), "committed %d %s %d", &seq, &key, &batch); err != nil {
			t.Fatalf("child said %q: %v", sc.Text(), err)
		}
		committed[seq] = key
		lastBatch = batch
		if len(committed) >= killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d commits (%v): %s", len(committed), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended with %v, want killed by SIGKILL; stderr: %s", err, stderr.String())
	}

	if res := integrityCheck(t, path); res != "ok" {
		t.Fatalf("integrity_check after the crash = %q", res)
	}
	s, err := sqlite.Open(path)
	if err != nil {
		t.Fatalf("reopen after the crash: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	evs, err := s.Events(ctx, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	stored := make(map[int64]string, len(evs))
	for _, e := range evs {
		stored[e.Seq] = e.DedupeKey
	}
	for seq, key := range committed {
		if got, ok := stored[seq]; !ok || got != key {
			t.Errorf("reported commit seq %d (%s) is missing after the crash (found %q)", seq, key, got)
		}
	}
	cp, err := s.Checkpoint(ctx, "crash")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := strconv.Atoi(cp); err != nil || n < lastBatch {
		t.Errorf("checkpoint after the crash = %q, want at least the last reported batch %d", cp, lastBatch)
	}
	if n, want := migrationRows(t, path), wantMigrations(t); n != want {
		t.Errorf("schema_migrations has %d rows after reopening, want %d", n, want)
	}
}

// crashChild commits small batches forever, printing each committed event after Commit returns.
func crashChild(path string) {
	s, err := sqlite.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx := context.Background()
	w := bufio.NewWriter(os.Stdout)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for batch := 1; ; batch++ {
		evs := make([]store.Event, 1+batch%4)
		err := s.Update(ctx, func(tx store.Tx) error {
			for i := range evs {
				evs[i] = store.Event{DedupeKey: fmt.Sprintf("b%d-%d", batch, i), Agent: "a@x", At: at,
					Body: []byte(strings.Repeat("x", 100*i))}
				if _, err := tx.InsertEvent(ctx, &evs[i]); err != nil {
					return err
				}
				if err := tx.AppendAudit(ctx, []store.AuditRecord{{Agent: "a@x", Kind: "event", EventSeq: evs[i].Seq}}); err != nil {
					return err
				}
			}
			if err := tx.PutAgent(ctx, store.Agent{Key: "a@x", State: []byte(strconv.Itoa(batch)), UpdatedAt: at}); err != nil {
				return err
			}
			return tx.SetCheckpoint(ctx, "crash", strconv.Itoa(batch))
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, e := range evs {
			fmt.Fprintf(w, "committed %d %s %d\n", e.Seq, e.DedupeKey, batch)
		}
		if err := w.Flush(); err != nil {
			os.Exit(3) // the parent is gone
		}
	}
}

func integrityCheck(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil {
		t.Fatal(err)
	}
	return res
}
