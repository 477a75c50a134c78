package amazonconnect

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// sdkDir holds the Node project that runs AWS's JavaScript v3 SDK clients
// (@aws-sdk/client-connect, @aws-sdk/client-kinesis) against the simulator.
const sdkDir = "../../../test/sdk/amazonconnect"

// TestOfficialJavaScriptSDK runs test/sdk/amazonconnect/check.mjs, which drives AWS's unmodified
// JavaScript SDK against a simulator started here (list statuses, find users, put a status, read
// it back and read its agent event from Kinesis, see a throttle, an unknown key and a wrong
// secret refused) and asserts every answer. The Kinesis client must have spoken cleartext
// HTTP/2. It skips when node or the project's installed modules are absent (`npm ci` in
// test/sdk/amazonconnect installs them).
func TestOfficialJavaScriptSDK(t *testing.T) {
	node, dir := nodetest.Require(t, sdkDir, "@aws-sdk/client-connect")

	srv, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := []string{"HOME=" + t.TempDir(), "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
	for k, v := range srv.Info() {
		if s, ok := v.(string); ok && k != "kind" {
			env = append(env, "SIM_"+strings.ToUpper(k)+"="+s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := nodetest.Run(t, ctx, node, dir, env, "check.mjs")
	t.Logf("%s", out)
	if n := srv.Requests("HTTP/2.0"); n == 0 {
		t.Errorf("no request came over HTTP/2; the Kinesis client speaks it to http:// endpoints")
	}
}
