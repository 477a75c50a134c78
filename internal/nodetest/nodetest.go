// Package nodetest runs the project's Node.js checks (official client libraries, browser tests)
// from Go tests: it skips a test, saying why, when node, Chromium or a project's installed
// modules are missing, and fails it with the script's whole output when the script fails.
package nodetest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Require skips t unless node is on PATH and the Node project in dir (relative to the test's
// package) has module installed. It returns node's path and dir made absolute.
func Require(t testing.TB, dir, module string) (node, abs string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	abs, err = filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(abs, "node_modules", module)); err != nil {
		t.Skipf("%s is not installed in %s (npm ci there; .ci/run does)", module, abs)
	}
	return node, abs
}

// Chromium returns Debian's Chromium, or $CHROMIUM, skipping t when it is missing.
func Chromium(t testing.TB) string {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no Chromium at %s (apt-get install chromium, or set CHROMIUM)", path)
	}
	return path
}

// Run runs node with args in dir, adding env to the environment, and returns its output; a
// failure fails t with the whole output.
func Run(t testing.TB, ctx context.Context, node, dir string, env []string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %v failed (%v):\n%s", args, err, out)
	}
	return out
}
