package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
)

// The crash test runs the engine in a child process (this test binary again), feeds it events
// on stdin, and kills it with SIGKILL mid-stream while its writes go to a vendor living in the
// parent. A second child reopens the same SQLite file. Every event the first child
// acknowledged must have reached the vendor, and no agent's status may go back and forth.

const crashAgents = 8

// sfToGC is the map of testdata/crash.yaml.
var sfToGC = map[string]string{"Lunch": "gc-meal", "Break": "gc-break", "AvailableforVoice": "gc-onqueue", "Busy": "gc-busy"}

func TestCrashMidStreamLosesNothing(t *testing.T) {
	if os.Getenv("OMNI_CRASH_CHILD") != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	vendor := newRecordingVendor()
	srv := httptest.NewServer(vendor)
	defer srv.Close()
	db := filepath.Join(t.TempDir(), "crash.db")

	// A stream of changes: each agent cycles through statuses, one event every 1 ms of vendor time.
	names := []string{"Lunch", "Break", "AvailableforVoice", "Busy"}
	var events []presence.Event
	for i := range 600 {
		events = append(events, presence.Event{System: "sf", Agent: fmt.Sprintf("a%d@example.com", i%crashAgents),
			Type: presence.StatusChanged, Status: names[(i/crashAgents+i)%len(names)], At: t0.Add(time.Duration(i) * time.Millisecond)})
	}

	acked := runCrashChild(t, db, srv.URL, events, 250)
	if acked < 250 {
		t.Fatalf("child acknowledged only %d events before dying", acked)
	}
	// Writes the dead child had sent may still be in the socket buffers; let the vendor handle
	// them first. (Landing later, a real vendor's event for such a write would be recognised as
	// its echo and corrected; this vendor sends no events.)
	vendor.waitQuiet(300 * time.Millisecond)
	runCrashChild(t, db, srv.URL, nil, -1) // reopen, reconcile until in sync, exit

	st, err := sqlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	stored, err := st.Events(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	storedKeys := map[string]bool{}
	for _, e := range stored {
		storedKeys[e.DedupeKey] = true
	}
	latest := map[string]presence.Event{}
	for i, ev := range events {
		if i < acked && !storedKeys[ev.DedupeKey()] {
			t.Fatalf("event %d was acknowledged but is not in the store", i)
		}
		if storedKeys[ev.DedupeKey()] {
			latest[ev.Agent] = ev
		}
	}
	writes := vendor.writesByAccount()
	for agent, ev := range latest {
		want := sfToGC[ev.Status]
		seq := writes[agent]
		if len(seq) == 0 || seq[len(seq)-1] != want {
			t.Errorf("%s: vendor shows %v last, want %s (its newest stored change %s)", agent, seq, want, ev.Status)
			logChain(t, st, agent)
		}
		// Exactly once in effect: a write repeated after the crash is the same status again;
		// beyond that, no status may come back after the agent moved on.
		seen := map[string]bool{}
		prev := ""
		for _, s := range seq {
			if s == prev {
				continue
			}
			if seen[s] && !cyclesBack(agent, s, events, storedKeys) {
				t.Errorf("%s: vendor went back to %s: %v", agent, s, seq)
			}
			seen[s], prev = true, s
		}
	}
}

// cyclesBack reports whether the agent's own changes legitimately return to a status.
func cyclesBack(agent, gcStatus string, events []presence.Event, stored map[string]bool) bool {
	n := 0
	for _, ev := range events {
		if ev.Agent == agent && stored[ev.DedupeKey()] && sfToGC[ev.Status] == gcStatus {
			n++
		}
	}
	return n > 1
}

// runCrashChild starts the engine in a child process. With killAfter >= 0 it feeds events and
// kills the child with SIGKILL once that many were acknowledged, returning how many were; with
// killAfter < 0 it waits for the child to report every agent in sync.
func runCrashChild(t *testing.T, db, vendorURL string, events []presence.Event, killAfter int) int {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "OMNI_CRASH_CHILD=1", "OMNI_CRASH_DB="+db, "OMNI_CRASH_VENDOR="+vendorURL)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		enc := json.NewEncoder(stdin)
		for _, ev := range events {
			if enc.Encode(ev) != nil {
				return
			}
		}
		if killAfter < 0 {
			stdin.Close()
		}
	}()
	acked := 0
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ack ") {
			acked++
			if killAfter >= 0 && acked >= killAfter {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
		if line == "synced" {
			break
		}
	}
	go io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if killAfter < 0 && err != nil {
		t.Fatalf("second child: %v", err)
	}
	return acked
}

// TestCrashChild is the engine side of TestCrashMidStreamLosesNothing; it runs only as a child.
func TestCrashChild(t *testing.T) {
	if os.Getenv("OMNI_CRASH_CHILD") == "" {
		t.Skip("runs only as the crash test's child process")
	}
	cfg, err := policy.Load(filepath.Join("testdata", "crash.yaml"), policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(os.Getenv("OMNI_CRASH_DB"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := New(Config{Policy: cfg, Store: st, Workers: 4,
		Connectors: map[string]connector.Connector{"gc": &httpTarget{url: os.Getenv("OMNI_CRASH_VENDOR")}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	dec := json.NewDecoder(os.Stdin)
	n := 0
	for {
		var ev presence.Event
		if err := dec.Decode(&ev); err != nil {
			break
		}
		if err := eng.Ingest(ctx, ev); err != nil {
			t.Fatal(err)
		}
		n++
		fmt.Printf("ack %d\n", n)
	}
	for {
		agents, _ := eng.Agents(ctx)
		synced := eng.Ready() == nil
		for _, a := range agents {
			for _, s := range a.Systems {
				synced = synced && s.InSync && s.Pending == ""
			}
		}
		if synced {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	fmt.Println("synced")
}

// httpTarget is the child's connector: every write is a POST to the parent's vendor.
type httpTarget struct{ url string }

func (h *httpTarget) Catalog(context.Context) ([]presence.Status, error) { return nil, nil }
func (h *httpTarget) Accounts(context.Context) ([]presence.Account, error) {
	var out []presence.Account
	for i := range crashAgents {
		email := fmt.Sprintf("a%d@example.com", i)
		out = append(out, presence.Account{ID: email, Email: email})
	}
	return out, nil
}
func (h *httpTarget) Watch(ctx context.Context, _ connector.Emit) error {
	<-ctx.Done()
	return nil
}
func (h *httpTarget) Close() error { return nil }
func (h *httpTarget) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url+"?account="+account+"&status="+statusID, nil)
	if err != nil {
		return connector.Receipt{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return connector.Receipt{}, err
	}
	resp.Body.Close()
	return connector.Receipt{}, nil
}

// recordingVendor keeps every write it was sent, in order.
type recordingVendor struct {
	mu     sync.Mutex
	writes map[string][]string
	last   time.Time
}

func newRecordingVendor() *recordingVendor { return &recordingVendor{writes: map[string][]string{}} }

func (v *recordingVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a := r.URL.Query().Get("account")
	v.writes[a] = append(v.writes[a], r.URL.Query().Get("status"))
	v.last = time.Now()
}

// waitQuiet returns once no write arrived for d.
func (v *recordingVendor) waitQuiet(d time.Duration) {
	for {
		v.mu.Lock()
		last := v.last
		v.mu.Unlock()
		if time.Since(last) >= d {
			return
		}
		time.Sleep(d / 4)
	}
}

func (v *recordingVendor) writesByAccount() map[string][]string {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := map[string][]string{}
	for k, s := range v.writes {
		out[k] = append([]string(nil), s...)
	}
	return out
}

// logChain prints an agent's decision chain, to make a failure readable.
func logChain(t *testing.T, st interface {
	Audit(context.Context, string, int) ([]store.AuditRecord, error)
}, agent string) {
	recs, err := st.Audit(context.Background(), agent, 40)
	if err != nil {
		t.Log(err)
		return
	}
	steps, _ := DecodeSteps(recs)
	var b strings.Builder
	WriteExplain(&b, agent, steps)
	t.Log(b.String())
}
