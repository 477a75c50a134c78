package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/examples"
	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// TestDemoBridgeInChromium runs `omnipresence demo` and test/browser/bridge.mjs against it in
// Debian's Chromium, with the bridge loaded as Lightning Web Security and as Locker load it: a
// click in the Salesforce console reaches Genesys and back, no echo bounces, two tabs make one
// bridge, a frozen leading tab neither applies a change twice nor loses one, a dropped push
// channel still delivers its pending command. It skips when node, Chromium or the installed
// playwright-core is missing.
func TestDemoBridgeInChromium(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node, dir := nodetest.Require(t, "../../test/browser", "playwright-core")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	demo := exec.CommandContext(ctx, binary, "demo", "--no-traffic", "--addr", "127.0.0.1:0")
	stdout, err := demo.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = demo.Process.Signal(os.Interrupt)
		_ = demo.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("demo printed no line: %v", err)
	}
	var info struct {
		URL        string `json:"url"`
		Simulators map[string]struct {
			URL string `json:"url"`
		} `json:"simulators"`
	}
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("demo line %q: %v", line, err)
	}
	// Under Lightning Web Security (Web Locks, BroadcastChannel) and under Locker (a lease and
	// storage events), one after the other against the same demo.
	for _, run := range []struct{ security, rounds string }{{"lws", "10"}, {"locker", "4"}} {
		out := nodetest.Run(t, ctx, node, dir, []string{"CHROMIUM=" + chromium}, "bridge.mjs", "--service", info.URL,
			"--salesforce", info.Simulators["salesforce"].URL, "--genesys", info.Simulators["genesys"].URL,
			"--rounds", run.rounds, "--security", run.security)
		t.Logf("%s", out)
	}
}

// TestStandaloneBridgeInChromium wires `sim salesforce --bridge-key-file`, `sim genesys`,
// `sim amazonconnect` and `serve --bridge-cert-file` as an operator would, with the demo policy
// plus an on_disconnect of 30 s, and runs test/browser/console-gone.mjs: a closed console sets
// the agent Offline in Genesys after 30 s, a reload does not, two users in one browser keep their
// state apart. It skips when node, Chromium or the installed playwright-core is missing.
func TestStandaloneBridgeInChromium(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node, dir := nodetest.Require(t, "../../test/browser", "playwright-core")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const fixtures = "../../bridge/salesforce/test/fixtures/"
	var sf, gc struct {
		URL          string `json:"url"`
		PubSubURL    string `json:"pubsub_url"`
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	startLine(t, ctx, nil, &sf, "sim", "salesforce", "--addr", "127.0.0.1:0", "--bridge-key-file", fixtures+"test-key.pem")
	startLine(t, ctx, nil, &gc, "sim", "genesys", "--addr", "127.0.0.1:0")
	var ac map[string]string
	startLine(t, ctx, nil, &ac, "sim", "amazonconnect", "--addr", "127.0.0.1:0")
	var cx map[string]any
	startLine(t, ctx, nil, &cx, "sim", "cxone", "--addr", "127.0.0.1:0")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	text := string(examples.DemoPolicy) + "    on_disconnect:\n      of: sf\n      after: 30s\n      set: {gc: Offline}\n"
	if err := os.WriteFile(policy, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"DEMO_SALESFORCE_URL=" + sf.URL, "DEMO_SALESFORCE_PUBSUB_URL=" + sf.PubSubURL,
		"DEMO_SALESFORCE_CLIENT_ID=" + sf.ClientID, "DEMO_SALESFORCE_CLIENT_SECRET=" + sf.ClientSecret,
		"DEMO_GENESYS_URL=" + gc.URL, "DEMO_GENESYS_CLIENT_ID=" + gc.ClientID, "DEMO_GENESYS_CLIENT_SECRET=" + gc.ClientSecret}
	for k, v := range ac {
		env = append(env, "DEMO_AMAZONCONNECT_"+strings.ToUpper(k)+"="+v)
	}
	for k, v := range cx {
		env = append(env, fmt.Sprintf("DEMO_CXONE_%s=%v", strings.ToUpper(k), v))
	}
	var svc struct {
		URL string `json:"url"`
	}
	startLine(t, ctx, env, &svc, "serve", "--config", policy, "--store", "memory:", "--addr", "127.0.0.1:0",
		"--bridge-cert-file", fixtures+"test-cert.pem", "--bridge-origin", sf.URL)
	out := nodetest.Run(t, ctx, node, dir, []string{"CHROMIUM=" + chromium}, "console-gone.mjs", "--service", svc.URL,
		"--salesforce", sf.URL, "--genesys", gc.URL)
	t.Logf("%s", out)
}

// startLine starts the command with extra environment, decodes the JSON line it prints into v,
// and stops it (interrupt) when the test ends.
func startLine(t *testing.T, ctx context.Context, env []string, v any, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", args[0], stderr.String())
		}
	})
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		t.Fatalf("%v printed no line: %v\n%s", args, err, stderr.String())
	}
	if err := json.Unmarshal(line, v); err != nil {
		t.Fatalf("%v line %q: %v", args, line, err)
	}
}
