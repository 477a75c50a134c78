package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

// The checkpoint test kills the service at every step between the vendor delivering an event
// and the service storing how far it has read, on SQLite and on PostgreSQL: the vendor's
// position must never be stored ahead of the events themselves, so that after a restart every
// change reaches the store exactly once. The service runs as a child process (this test binary
// again) against the Salesforce simulator, which lives in the parent and keeps publishing while
// the child is dead.

// checkpointSteps are the places the child dies at, in the order an event meets them.
var checkpointSteps = []string{"received", "inserted", "committed", "acknowledged", "checkpointing", "checkpointed"}

const (
	checkpointChildEnv = "OMNI_CHECKPOINT_CHILD"
	crashExit          = 97
)

func TestCheckpointNeverRunsAheadOfTheStore(t *testing.T) {
	if os.Getenv(checkpointChildEnv) != "" {
		t.Skip("child process")
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		for _, step := range checkpointSteps {
			t.Run(backend+"/"+step, func(t *testing.T) {
				storeURL := "sqlite:" + filepath.Join(t.TempDir(), "omni.db")
				if backend == "postgres" {
					storeURL = pgtest.FreshSchema(t)
				}
				checkpointRound(t, storeURL, step)
			})
		}
	}
}

func checkpointRound(t *testing.T, storeURL, step string) {
	// Keepalives often, so a subscription's position is offered to the client all the time.
	sim, err := sfsim.New(sfsim.Config{KeepAlive: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	people := demoorg.People()[:6]
	statuses := []string{"AvailableforVoice", "Break", "Lunch"}
	changes := 0
	change := func(n int) {
		for range n {
			p := people[changes%len(people)]
			// Each person's statuses cycle, so every change is a change.
			if _, err := sim.SetStatus(p.Email, statuses[(changes/len(people))%len(statuses)], "OmniManualStatusChange"); err != nil {
				t.Fatal(err)
			}
			changes++
			time.Sleep(2 * time.Millisecond)
		}
	}
	env := []string{checkpointChildEnv + "=1", "OMNI_CHECKPOINT_STORE=" + storeURL, "OMNI_CHECKPOINT_SF=" + url,
		"OMNI_CHECKPOINT_PUBSUB=" + fmt.Sprint(sim.Info()["pubsub_url"])}

	// The service starts, finds where the stream is, and dies at the step, on the fifth event.
	first := startCheckpointChild(t, append(env, "OMNI_CHECKPOINT_STEP="+step, "OMNI_CHECKPOINT_AT=5"))
	first.waitLine(t, "positioned")
	change(20)
	if code := first.wait(t); code != crashExit {
		t.Fatalf("the first service ended with exit code %d, want %d (killed at %s)", code, crashExit, step)
	}
	// People go on changing while it is down, more than the service asks for at once.
	change(150)
	// A new service catches up on the backlog, and dies at the step again on the way.
	second := startCheckpointChild(t, append(env, "OMNI_CHECKPOINT_STEP="+step, "OMNI_CHECKPOINT_AT=60"))
	if code := second.wait(t); code != crashExit {
		t.Fatalf("the second service ended with exit code %d, want %d (killed at %s)", code, crashExit, step)
	}
	// A third reads on until every change is stored.
	third := startCheckpointChild(t, append(env, "OMNI_CHECKPOINT_EXPECT="+strconv.Itoa(changes)))
	if code := third.wait(t); code != 0 {
		t.Fatalf("the restarted service ended with exit code %d", code)
	}
	st := openStore(t, storeURL)
	defer st.Close()
	n, err := storedChanges(st)
	if err != nil {
		t.Fatal(err)
	}
	if n != changes {
		t.Fatalf("%d of %d changes stored after the restart (killed at %s)", n, changes, step)
	}
}

// storedChanges counts the Salesforce change events in the store (the vendor's event ids make
// their dedupe keys, so each is there at most once).
func storedChanges(st store.Store) (int, error) {
	evs, err := st.Events(context.Background(), "", 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range evs {
		if strings.HasPrefix(e.DedupeKey, "sf:") && !strings.HasPrefix(e.DedupeKey, "sf:h:") {
			n++
		}
	}
	return n, nil
}

func openStore(t testing.TB, u string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	if path, ok := strings.CutPrefix(u, "sqlite:"); ok {
		st, err = sqlite.Open(path)
	} else {
		st, err = postgres.Open(context.Background(), u)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// checkpointChild is a running child service.
type checkpointChild struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan int
}

func startCheckpointChild(t *testing.T, env []string) *checkpointChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCheckpointChild$", "-test.v")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &checkpointChild{cmd: cmd, lines: make(chan string, 64), done: make(chan int, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case c.lines <- sc.Text():
			default:
			}
		}
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			code = -1
		}
		c.done <- code
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return c
}

func (c *checkpointChild) waitLine(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case l := <-c.lines:
			if l == want {
				return
			}
		case code := <-c.done:
			t.Fatalf("the service ended (exit code %d) before saying %q", code, want)
		case <-deadline:
			t.Fatalf("the service did not say %q within a minute", want)
		}
	}
}

func (c *checkpointChild) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-c.done:
		return code
	case <-time.After(120 * time.Second):
		t.Fatal("the service did not end within two minutes")
		return -1
	}
}

const checkpointPolicy = `version: 1
systems:
  sf:
    kind: salesforce
    login_url: ${OMNI_CHECKPOINT_SF}
    pubsub_url: ${OMNI_CHECKPOINT_PUBSUB}
    auth: {flow: client_credentials, client_id: demo-client, client_secret: demo-secret}
policies:
  - name: everyone
`

// TestCheckpointChild is the service side of TestCheckpointNeverRunsAheadOfTheStore; it runs
// only as a child. With OMNI_CHECKPOINT_STEP it exits at that step of the OMNI_CHECKPOINT_AT-th
// change event; with OMNI_CHECKPOINT_EXPECT it exits once that many changes are stored.
func TestCheckpointChild(t *testing.T) {
	if os.Getenv(checkpointChildEnv) == "" {
		t.Skip("runs only as a child of TestCheckpointNeverRunsAheadOfTheStore")
	}
	ctx := context.Background()
	st := openStore(t, os.Getenv("OMNI_CHECKPOINT_STORE"))
	at, _ := strconv.Atoi(os.Getenv("OMNI_CHECKPOINT_AT"))
	k := &killer{step: os.Getenv("OMNI_CHECKPOINT_STEP"), at: int64(at)}
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(checkpointPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cps := &killingCheckpoints{Checkpoints: st, k: k}
	cfg, conns := loadConnected(ctx, t, path, connector.Deps{HTTPClient: http.DefaultClient, Checkpoints: cps}, nil)
	for name, c := range conns {
		conns[name] = killingConnector{Connector: c, k: k}
	}
	eng, err := engine.New(engine.Config{Policy: cfg, Store: killingStore{Store: st, k: k}, Connectors: conns})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = eng.Run(ctx) }()
	name := "salesforce/sf/replay/data/UserServicePresenceChangeEvent"
	expect, _ := strconv.Atoi(os.Getenv("OMNI_CHECKPOINT_EXPECT"))
	positioned := false
	for deadline := time.Now().Add(90 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !positioned {
			if v, _ := st.Checkpoint(ctx, name); v != "" {
				positioned = true
				fmt.Println("positioned")
			}
		}
		if expect > 0 {
			if n, err := storedChanges(st); err == nil && n >= expect {
				fmt.Println("stored")
				os.Exit(0)
			}
		}
	}
	fmt.Println("timed out")
	os.Exit(1)
}

// killer ends the process, as kill -9 would, when its step is reached for the at-th time.
type killer struct {
	step string
	at   int64
	n    atomic.Int64
}

func (k *killer) reach(step string) {
	if k.step == step && k.n.Add(1) == k.at {
		os.Exit(crashExit)
	}
}

// isChange reports whether an event is a vendor change event (not a reading).
func isChange(ev presence.Event) bool { return ev.ID != "" }

type killingConnector struct {
	connector.Connector
	k *killer
}

func (c killingConnector) Watch(ctx context.Context, emit connector.Emit) error {
	return c.Connector.Watch(ctx, func(ctx context.Context, ev presence.Event) error {
		if isChange(ev) {
			c.k.reach("received")
		}
		if err := emit(ctx, ev); err != nil {
			return err
		}
		if isChange(ev) {
			c.k.reach("acknowledged")
		}
		return nil
	})
}

type killingStore struct {
	store.Store
	k *killer
}

func (s killingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	changes := 0
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		if err := fn(countingTx{Tx: tx, n: &changes}); err != nil {
			return err
		}
		for range changes {
			s.k.reach("inserted") // inside the transaction: nothing is committed yet
		}
		return nil
	})
	if err == nil {
		for range changes {
			s.k.reach("committed")
		}
	}
	return err
}

type countingTx struct {
	store.Tx
	n *int
}

func (t countingTx) InsertEvent(ctx context.Context, ev *store.Event) (bool, error) {
	ok, err := t.Tx.InsertEvent(ctx, ev)
	if ok && strings.HasPrefix(ev.DedupeKey, "sf:") && !strings.HasPrefix(ev.DedupeKey, "sf:h:") {
		*t.n++
	}
	return ok, err
}

type killingCheckpoints struct {
	connector.Checkpoints
	k *killer
}

func (c *killingCheckpoints) SetCheckpoint(ctx context.Context, name, value string) error {
	c.k.reach("checkpointing")
	if err := c.Checkpoints.SetCheckpoint(ctx, name, value); err != nil {
		return err
	}
	c.k.reach("checkpointed")
	return nil
}
