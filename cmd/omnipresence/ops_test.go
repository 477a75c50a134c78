package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestVersion(t *testing.T) {
	out, stderr, code := run(t, "version")
	if code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want one line", code, out, stderr)
	}
	if !regexp.MustCompile(`^omnipresence \S+ \(commit \S+, go\d`).MatchString(out) || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version line %q lacks version, commit or Go version", out)
	}
	out, _, code = run(t, "version", "--json")
	var v map[string]string
	if code != 0 || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" || v["commit"] == "" || v["go"] != runtime.Version() {
		t.Errorf("version --json: exit %d, %q", code, out)
	}
}

func TestFlagTypoSuggestsTheFlag(t *testing.T) {
	_, stderr, code := run(t, "validate", "--confg", "x.yaml")
	if code != 2 || !strings.Contains(stderr, "unknown flag: --confg; did you mean --config?") ||
		!strings.Contains(stderr, "omnipresence validate --help") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = run(t, "serve", "--config", "x.yaml", "--log-level", "loud")
	if code != 2 || !strings.Contains(stderr, "--log-level must be debug, info, warn or error") {
		t.Errorf("bad --log-level: exit %d, stderr %q", code, stderr)
	}
}

func TestMissingPolicyHasNoFakePosition(t *testing.T) {
	_, stderr, code := run(t, "validate", "--config", "nope.yaml")
	if code != 2 || strings.TrimSpace(stderr) != "nope.yaml: no such policy file or folder" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestExplainRefusesAMissingStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "typo.db")
	_, stderr, code := run(t, "explain", "--agent", "ana@example.com", "--store", "sqlite:"+path)
	if code != 2 || !strings.Contains(stderr, "no store at "+path) {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("explain created %s", path)
	}
}

func TestPortInUseNamesAddr(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, stderr, code := run(t, "serve", "--config", genesysPolicy(t), "--store", "memory:", "--addr", ln.Addr().String())
	if code != 2 || !strings.Contains(stderr, "already in use") || !strings.Contains(stderr, "--addr") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// TestServeJSONLogsAndBuildInfo runs serve with --log-format json: every stderr line is a JSON
// object, and /metrics carries omnipresence_build_info.
func TestServeJSONLogsAndBuildInfo(t *testing.T) {
	cmd := exec.Command(binary, "serve", "--config", genesysPolicy(t), "--store", "memory:", "--addr", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug")
	stdout, stderr := startPiped(t, cmd)
	logs := make(chan string, 1)
	go func() { b, _ := io.ReadAll(stderr); logs <- string(b) }()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("no start line: %v", err)
	}
	var start struct{ URL string }
	if err := json.Unmarshal(line, &start); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	res, err := client.Get(start.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !regexp.MustCompile(`omnipresence_build_info\{commit="[^"]+",goversion="go[^"]+",version="[^"]+"\} 1`).Match(body) {
		t.Errorf("/metrics lacks omnipresence_build_info:\n%s", grepLines(string(body), "build_info"))
	}
	_ = cmd.Process.Signal(os.Interrupt)
	_ = cmd.Wait()
	text := <-logs
	if strings.TrimSpace(text) == "" {
		t.Fatal("serve logged nothing")
	}
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec["level"] == nil || rec["msg"] == nil {
			t.Errorf("log line is not a JSON record with level and msg: %q", l)
		}
	}
}

func grepLines(s, word string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, word) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// genesysPolicy starts `omnipresence sim genesys` for the test and returns a policy file whose
// one system is that simulator.
func genesysPolicy(t *testing.T) string {
	t.Helper()
	sim := exec.Command(binary, "sim", "genesys", "--addr", "127.0.0.1:0")
	out, err := sim.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Process.Signal(os.Interrupt); _ = sim.Wait() })
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("sim genesys printed no line: %v", err)
	}
	var info struct{ URL, ClientID, ClientSecret string }
	var raw map[string]string
	if err := json.Unmarshal(line, &raw); err != nil {
		t.Fatal(err)
	}
	info.URL, info.ClientID, info.ClientSecret = raw["url"], raw["client_id"], raw["client_secret"]
	doc := "version: 1\nsystems:\n  gc:\n    kind: genesys\n    api_url: " + info.URL + "\n    login_url: " + info.URL +
		"\n    client_id: " + info.ClientID + "\n    client_secret: " + info.ClientSecret +
		"\npolicies: []\n"
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
