package salesforce

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/nodetest"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// sdkDir is the Node project that runs jsforce against the simulator.
const sdkDir = "../../../test/sdk/salesforce"

// TestJSForce runs test/sdk/salesforce/check.mjs, which drives the simulator with the jsforce
// client library exactly as published: OAuth, SOQL with relationships (AgentWork too), paging,
// describe, retrieve, limits and the refused write. Every failure there is a fidelity bug here.
func TestJSForce(t *testing.T) {
	node, dir := nodetest.Require(t, sdkDir, "jsforce")
	const batch = 7
	s, err := New(Config{BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	url, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	people := demoorg.People()
	for i, status := range []string{"AvailableforVoice", "Break"} {
		if _, err := s.Login(people[i].Email, status); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AcceptWork(people[0].Email, "sfdc_phone"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out := nodetest.Run(t, ctx, node, dir, []string{"SF_LOGIN_URL=" + url, "SF_CLIENT_ID=demo-client",
		"SF_CLIENT_SECRET=demo-secret", "SF_BATCH_SIZE=" + strconv.Itoa(batch)}, "check.mjs")
	t.Logf("node check.mjs:\n%s", out)
}
