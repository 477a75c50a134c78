package salesforce

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/nodetest"
)

// TestConsoleInChromium drives the agent console in Debian's Chromium (test/browser/console.mjs,
// playwright-core): a click changes the org's status and fires the Omni events, the toolkit
// works, and a change made elsewhere reaches the widget. It skips when node, Chromium or the
// installed playwright-core is missing.
func TestConsoleInChromium(t *testing.T) {
	chromium := nodetest.Chromium(t)
	node, dir := nodetest.Require(t, "../../../test/browser", "playwright-core")
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
	// A second org, with the bridge's key, shows the panel when the service cannot be reached.
	key, err := os.ReadFile("../../../bridge/salesforce/test/fixtures/test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bridgetoken.ParseSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := New(Config{BridgeSigner: signer})
	if err != nil {
		t.Fatal(err)
	}
	keyedURL, err := keyed.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer keyed.Close()
	out := nodetest.Run(t, ctx, node, dir, []string{"CHROMIUM=" + chromium}, "console.mjs", "--url", url, "--user", "chloe@example.com",
		"--keyed", keyedURL)
	t.Logf("%s", out)
}
