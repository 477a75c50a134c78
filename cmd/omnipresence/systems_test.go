package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

// sims are the Salesforce and Genesys simulators, in this process.
type sims struct {
	sf *sfsim.Server
	gc *gcsim.Server
}

// startSims starts both simulators; Genesys only listens when startGC (else call its Start).
func startSims(t *testing.T, startGC bool) *sims {
	t.Helper()
	return startSimsWith(t, sfsim.Config{}, gcsim.Config{}, startGC)
}

// startSimsWith is startSims with the simulators configured by sfCfg and gcCfg.
func startSimsWith(t *testing.T, sfCfg sfsim.Config, gcCfg gcsim.Config, startGC bool) *sims {
	t.Helper()
	sf, err := sfsim.New(sfCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sf.Close() })
	gc, err := gcsim.New(gcCfg)
	if err != nil {
		t.Fatal(err)
	}
	if startGC {
		if _, err := gc.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { gc.Close() })
	return &sims{sf: sf, gc: gc}
}

// systemsYAML are the two systems' settings; gcURL may point where nothing answers.
func (s *sims) systemsYAML(gcURL string) string {
	info := s.sf.Info()
	return fmt.Sprintf(`version: 1
systems:
  sf:
    kind: salesforce
    login_url: %s
    pubsub_url: %s
    auth: {flow: client_credentials, client_id: %s, client_secret: "${TEST_SF_SECRET}"}
  gc:
    kind: genesys
    api_url: %s
    client_id: demo-client
    client_secret: ${TEST_GC_SECRET}
`, info["url"], info["pubsub_url"], info["client_id"], gcURL)
}

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// runEnv runs the command with extra environment variables.
func runEnv(t *testing.T, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}

const mapOffline = `policies:
  - name: p
    map:
      - {from: sf, to: gc, states: {AvailableforVoice: On Queue, Lunch: Meal, Offline: Offline}}
      - {from: gc, to: sf, states: {On Queue: AvailableforVoice, Meal: Lunch, Offline: Offline}}
`

// TestValidateOnline checks a policy against the simulators' catalogs and accounts, and that
// validate and serve agree: a map to Genesys Offline (which an administrator may set) passes
// both; a status the catalog lacks fails validate --online at its position.
func TestValidateOnline(t *testing.T) {
	s := startSims(t, true)
	env := []string{"TEST_SF_SECRET=demo-secret", "TEST_GC_SECRET=demo-secret"}
	good := writePolicy(t, s.systemsYAML(s.gc.Info()["url"].(string))+mapOffline)
	for _, args := range [][]string{{"validate", "--config", good}, {"validate", "--online", "--config", good}} {
		out, stderr, code := runEnv(t, env, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		if args[1] == "--online" && !strings.Contains(out, "online: gc 15 statuses, 50 accounts, sf 9 statuses, 51 accounts") {
			t.Errorf("%v: summary %q lacks what was pulled", args, out)
		}
	}
	serveUntilReady(t, env, good)

	bad := writePolicy(t, s.systemsYAML(s.gc.Info()["url"].(string))+`policies:
  - name: p
    map:
      - {from: sf, to: gc, states: {AvailableforVoice: On Queue, Lunch: Coffee Brake}}
`)
	if _, stderr, code := runEnv(t, env, "validate", "--config", bad); code != 0 {
		t.Fatalf("offline, a name only the catalog can check passes: exit %d %s", code, stderr)
	}
	_, stderr, code := runEnv(t, env, "validate", "--online", "--config", bad)
	want := bad + `:16:73: status "Coffee Brake" is not in gc's catalog; did you mean "Coffee Break"?`
	if code != 2 || strings.TrimSpace(stderr) != want {
		t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, want)
	}

	// A wrong secret is the problem of its system, at the system.
	_, stderr, code = runEnv(t, []string{"TEST_SF_SECRET=demo-secret", "TEST_GC_SECRET=wrong"}, "validate", "--online", "--config", good)
	if code != 2 || !strings.HasPrefix(stderr, good+":8:3: system gc: cannot load the catalog: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("wrong gc secret: exit %d, stderr %q", code, stderr)
	}
	// So is a secret missing from the environment: validate --online reads it, validate does not.
	_, stderr, code = runEnv(t, []string{"TEST_SF_SECRET=demo-secret"}, "validate", "--online", "--config", good)
	if code != 2 || !strings.Contains(stderr, good+":8:3: system gc: client_secret: environment variable TEST_GC_SECRET is not set") {
		t.Errorf("unset gc secret: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runEnv(t, nil, "validate", "--config", good); code != 0 {
		t.Errorf("offline validate needs no secrets: exit %d %s", code, stderr)
	}
}

// serveUntilReady runs serve on the policy and waits until /readyz answers ok.
func serveUntilReady(t *testing.T, env []string, policyPath string) {
	t.Helper()
	sv := startServe(t, env, policyPath)
	defer sv.stop(t)
	sv.waitFor(t, "readyz ok", func() bool {
		body, code := sv.get(t, "/readyz")
		return code == 200 && body == "ok\n"
	})
}

// served is a running `omnipresence serve`.
type served struct {
	cmd    *exec.Cmd
	url    string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan error
}

// startServe runs serve on the policy with a fresh SQLite store on a free port.
func startServe(t *testing.T, env []string, policyPath string) *served {
	t.Helper()
	return startServeOn(t, env, policyPath, "sqlite:"+filepath.Join(t.TempDir(), "db"), "127.0.0.1:0")
}

// startServeOn runs serve on the policy with the given store URL and listen address.
func startServeOn(t *testing.T, env []string, policyPath, store, addr string) *served {
	t.Helper()
	cmd := exec.Command(binary, "serve", "--config", policyPath, "--store", store, "--addr", addr)
	cmd.Env = append(os.Environ(), env...)
	sv := &served{cmd: cmd, done: make(chan error, 1)}
	stdout, stderr := startPiped(t, cmd)
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := stderr.Read(b)
			sv.mu.Lock()
			sv.stderr.Write(b[:n])
			sv.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("serve printed no line: %v\n%s", err, sv.log())
	}
	var info struct{ URL string }
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("serve line %q: %v", line, err)
	}
	sv.url = info.URL
	go func() { sv.done <- cmd.Wait() }()
	return sv
}

// startPiped starts cmd with its stdout and stderr piped to the test.
func startPiped(t *testing.T, cmd *exec.Cmd) (stdout, stderr io.ReadCloser) {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err = cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return stdout, stderr
}

func (sv *served) log() string {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.stderr.String()
}

func (sv *served) get(t *testing.T, path string) (string, int) {
	t.Helper()
	resp, err := http.Get(sv.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode
}

func (sv *served) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; serve's log:\n%s", what, sv.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop interrupts serve as Ctrl-C does and requires a clean exit.
func (sv *served) stop(t *testing.T) {
	t.Helper()
	_ = sv.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-sv.done:
		if err != nil {
			t.Errorf("serve exited with %v after an interrupt; log:\n%s", err, sv.log())
		}
	case <-time.After(30 * time.Second):
		sv.cmd.Process.Kill()
		t.Errorf("serve did not stop on an interrupt; log:\n%s", sv.log())
	}
}

// TestServeWithAVendorDown runs serve while Genesys cannot be reached: it serves at once, keeps
// Salesforce in sync, says which system it waits for and why (log, /readyz, /api/v1/systems),
// and picks Genesys up when it comes.
func TestServeWithAVendorDown(t *testing.T) {
	s := startSims(t, false)
	// An address where nothing listens yet; Genesys comes up there later.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gcAddr := ln.Addr().String()
	ln.Close()
	// Inline catalogs: the service needs nothing from Genesys to start.
	body := s.systemsYAML("http://"+gcAddr) + `    catalog:
      - {id: e08eaf1b-ee47-4fa9-a231-1200e284798f, name: On Queue, category: on_queue}
      - {id: 3fd96123-badb-4f69-bc03-1b1ccc6d8014, name: Meal, category: meal}
      - {id: ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5, name: Offline, category: offline}
` + mapOffline
	body = strings.Replace(body, "    auth:", `    catalog:
      - {id: 0N55g0000000001CAA, name: AvailableforVoice, category: available}
      - {id: 0N55g0000000006CAA, name: Lunch, category: meal}
    auth:`, 1)
	env := []string{"TEST_SF_SECRET=demo-secret", "TEST_GC_SECRET=demo-secret"}
	sv := startServe(t, env, writePolicy(t, body))
	defer sv.stop(t)

	sv.waitFor(t, "the log to name the system it waits for", func() bool {
		return strings.Contains(sv.log(), "waiting for system gc: loading accounts: ")
	})
	sv.waitFor(t, "sf connected, gc not", func() bool {
		var got struct {
			Systems []struct{ Name, State, Reason, LastError string }
		}
		b, _ := sv.get(t, "/api/v1/systems")
		if json.Unmarshal([]byte(b), &got) != nil || len(got.Systems) != 2 {
			return false
		}
		state := map[string]string{}
		for _, s := range got.Systems {
			state[s.Name] = s.State
			if s.Name == "gc" && !strings.Contains(s.Reason, "connection refused") {
				return false
			}
		}
		return state["sf"] == "connected" && state["gc"] == "disconnected"
	})
	if b, code := sv.get(t, "/readyz"); code != 200 || !strings.HasPrefix(b, "degraded\nsystem gc is not ready: loading accounts: ") {
		t.Errorf("readyz: %d %q", code, b)
	}
	if strings.Contains(sv.log(), "waiting for system sf") {
		t.Errorf("sf was reported waiting:\n%s", sv.log())
	}
	// Salesforce changes are still taken in while Genesys is down.
	if _, err := s.sf.SetStatus("ana@example.com", "Lunch", ""); err != nil {
		t.Fatal(err)
	}
	sv.waitFor(t, "ana's Lunch in Salesforce to be seen", func() bool {
		var got struct {
			Systems map[string]struct{ Observed, Desired string }
		}
		b, _ := sv.get(t, "/api/v1/agents/ana@example.com")
		return json.Unmarshal([]byte(b), &got) == nil && got.Systems["sf"].Observed == "Lunch" && got.Systems["gc"].Desired == "Meal"
	})

	// Genesys comes up: the write that waited goes out.
	if _, err := s.gc.Start(gcAddr); err != nil {
		t.Fatalf("starting Genesys on the address the policy names: %v", err)
	}
	sv.waitFor(t, "ana's Meal in Genesys", func() bool {
		u, ok := s.gc.UserByEmail("ana@example.com")
		return ok && u.Presence == "Meal"
	})
	sv.waitFor(t, "readyz ok", func() bool {
		b, code := sv.get(t, "/readyz")
		return code == 200 && b == "ok\n"
	})
}

// docPolicies returns every whole policy of the docs (YAML blocks with "version: 1") and of the
// examples, by where they are.
func docPolicies(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	docs, _ := filepath.Glob("../../docs/*.md")
	for _, f := range append(docs, "../../README.md") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		blocks := strings.Split(string(b), "```yaml\n")
		for i, blk := range blocks[1:] {
			body, _, _ := strings.Cut(blk, "```")
			if strings.HasPrefix(body, "version: 1") {
				out[fmt.Sprintf("%s block %d", f, i+1)] = body
			}
		}
	}
	examples, _ := filepath.Glob("../../examples/*/policy.yaml")
	for _, f := range examples {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = string(b)
	}
	return out
}

// TestDocPoliciesServeAgrees checks every policy of the docs and examples passes validate, and
// passes what serve checks once it has the catalogs, with the simulators' (the demo org's)
// catalogs for the systems that have no inline one.
func TestDocPoliciesServeAgrees(t *testing.T) {
	s := startSims(t, true)
	catalogs := map[string][]presence.Status{}
	for kind, sys := range map[string]map[string]any{
		"genesys": {"api_url": s.gc.Info()["url"], "client_id": "demo-client", "client_secret": "demo-secret"},
		"salesforce": {"login_url": s.sf.Info()["url"], "pubsub_url": s.sf.Info()["pubsub_url"],
			"auth": map[string]any{"flow": "client_credentials", "client_id": "demo-client", "client_secret": "demo-secret"}},
	} {
		v, _ := connector.Lookup(kind)
		c, err := v.Connect(context.Background(), kind, sys, connector.Deps{Checkpoints: memory.New()})
		if err != nil {
			t.Fatal(err)
		}
		if catalogs[kind], err = c.Catalog(context.Background()); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	policies := docPolicies(t)
	if len(policies) < 6 {
		t.Fatalf("found %d policies in the docs and examples", len(policies))
	}
	for where, body := range policies {
		path := writePolicy(t, body)
		if _, stderr, code := run(t, "validate", "--config", path); code != 0 {
			t.Errorf("%s: validate exit %d:\n%s", where, code, stderr)
			continue
		}
		_, err := policy.Load(path, policy.Options{Catalog: func(sys *policy.System) ([]presence.Status, error) {
			return catalogs[sys.Kind], nil
		}})
		if err != nil {
			t.Errorf("%s: passes validate, but not against the demo org's catalogs as serve checks it:\n%v", where, err)
		}
	}
}
