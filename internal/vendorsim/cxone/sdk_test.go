package cxone

import (
	"context"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// TestAgentSDKInChromium runs NICE's CXone Agent SDK (test/sdk/cxone: agent-sdk, acd-sdk and
// auth-sdk bundled into a page with esbuild) in Debian's Chromium against the simulator: login
// with authorization code and PKCE, the id_token checked against the JWKS, discovery and whoami,
// a session started and one joined, Available and Unavailable with a reason set, and the
// AgentState events of those changes and of one made in the simulator received. It skips when
// node, Chromium or the installed SDK is missing.
func TestAgentSDKInChromium(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node, dir := nodetest.Require(t, "../../../test/sdk/cxone", "@nice-devone/agent-sdk")
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := nodetest.Run(t, ctx, node, dir, []string{"CHROMIUM=" + chromium}, "check.mjs", "--sim", url, "--agent", "ana@example.com")
	t.Logf("%s", out)
	if status, _, _ := s.Status("ana@example.com"); status != Available {
		t.Errorf("after the SDK's last change the simulator shows %s, want Available", status)
	}
}
