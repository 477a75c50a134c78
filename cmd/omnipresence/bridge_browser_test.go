package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestDemoBridgeInChromium runs `omnipresence demo` and test/browser/bridge.mjs against it in
// Debian's Chromium: a click in the Salesforce console reaches Genesys and back, no echo
// bounces, two tabs make one bridge, a dropped push channel still delivers its pending
// command. It skips when node, Chromium or the installed playwright-core is missing.
func TestDemoBridgeInChromium(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium, or set CHROMIUM)", chromium)
	}
	dir, err := filepath.Abs("../../test/browser")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Skipf("playwright-core is not installed in %s (npm ci there)", dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
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
	cmd := exec.CommandContext(ctx, node, "bridge.mjs", "--service", info.URL,
		"--salesforce", info.Simulators["salesforce"].URL, "--genesys", info.Simulators["genesys"].URL, "--rounds", "10")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bridge.mjs failed (%v):\n%s", err, out)
	}
	t.Logf("%s", out)
}
