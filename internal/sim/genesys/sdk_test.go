package genesys

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// sdkDir holds the Node project that runs Genesys's official JavaScript SDK
// (purecloud-platform-client-v2) against the simulator.
const sdkDir = "../../../test/sdk/genesys"

// TestOfficialJavaScriptSDK runs test/sdk/genesys/check.mjs, which drives the unmodified
// official SDK against a simulator started here and asserts every answer. It skips when node or
// the project's installed modules are absent (`npm ci` in test/sdk/genesys installs them).
func TestOfficialJavaScriptSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH; the official JavaScript SDK check needs Node.js")
	}
	dir, err := filepath.Abs(sdkDir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "purecloud-platform-client-v2")); err != nil {
		t.Skipf("the SDK is not installed in %s (run npm ci there): %v", dir, err)
	}

	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	url, err := srv.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	info := srv.Info()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "check.mjs")
	cmd.Dir = dir
	// A HOME of its own keeps a developer's ~/.genesyscloudjavascript/config out of the check.
	cmd.Env = append(os.Environ(),
		"HOME="+t.TempDir(),
		"GENESYS_URL="+url,
		"GENESYS_CLIENT_ID="+info["client_id"].(string),
		"GENESYS_CLIENT_SECRET="+info["client_secret"].(string),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("check.mjs failed (exit %d):\n%s", exit.ExitCode(), out)
		}
		t.Fatalf("check.mjs: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
