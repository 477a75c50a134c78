package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// TestAdminConsoleInChromium runs `omnipresence demo` and test/browser/admin.mjs against it in
// Debian's Chromium: every view of the admin console renders, rows update in place as changes
// flow, filter and group work, a failed write shows and Retry lands it, Resync reads an agent
// again, explained decisions link to the policy, and keys move between views. With
// OMNIPRESENCE_SHOTS=DIR it leaves a screenshot of each view there. It skips when node,
// Chromium or the installed playwright-core is missing.
func TestAdminConsoleInChromium(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node, dir := nodetest.Require(t, "../../test/browser", "playwright-core")
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
	args := []string{"admin.mjs", "--service", info.URL,
		"--salesforce", info.Simulators["salesforce"].URL, "--genesys", info.Simulators["genesys"].URL}
	if dir := os.Getenv("OMNIPRESENCE_SHOTS"); dir != "" {
		args = append(args, "--shots", dir)
	}
	out := nodetest.Run(t, ctx, node, dir, []string{"CHROMIUM=" + chromium}, args...)
	t.Logf("%s", out)
}
