package genesys

import (
	"context"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// sdkDir holds the Node project that runs Genesys's official JavaScript SDK
// (purecloud-platform-client-v2) against the simulator.
const sdkDir = "../../../test/sdk/genesys"

// TestOfficialJavaScriptSDK runs test/sdk/genesys/check.mjs, which drives the unmodified
// official SDK against a simulator started here and asserts every answer. It skips when node or
// the project's installed modules are absent (`npm ci` in test/sdk/genesys installs them).
func TestOfficialJavaScriptSDK(t *testing.T) {
	node, dir := nodetest.Require(t, sdkDir, "purecloud-platform-client-v2")

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
	// A HOME of its own keeps a developer's ~/.genesyscloudjavascript/config out of the check.
	out := nodetest.Run(t, ctx, node, dir, []string{
		"HOME=" + t.TempDir(),
		"GENESYS_URL=" + url,
		"GENESYS_CLIENT_ID=" + info["client_id"].(string),
		"GENESYS_CLIENT_SECRET=" + info["client_secret"].(string),
	}, "check.mjs")
	t.Logf("%s", out)
}
