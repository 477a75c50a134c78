package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestAmazonConnectOnline runs `sim amazonconnect` as an operator would and checks its start
// line (CONTRACTS.md), then `validate --online` and `catalog` against it: the instance's
// statuses with Connect's system states, its users, and a misspelled status found online.
func TestAmazonConnectOnline(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var info map[string]string
	startLine(t, ctx, nil, &info, "sim", "amazonconnect", "--addr", "127.0.0.1:0")
	for _, k := range []string{"kind", "url", "kinesis_url", "region", "instance_id", "agent_event_stream", "access_key_id", "secret_access_key"} {
		if info[k] == "" {
			t.Fatalf("the start line %v lacks %s", info, k)
		}
	}
	systems := fmt.Sprintf(`version: 1
systems:
  connect:
    kind: amazonconnect
    region: %s
    instance_id: %s
    endpoint: %s
    kinesis_endpoint: %s
    agent_event_stream: %s
    access_key_id: %s
    secret_access_key: ${TEST_AC_SECRET}
policies:
  - name: p
    rules:
`, info["region"], info["instance_id"], info["url"], info["kinesis_url"], info["agent_event_stream"], info["access_key_id"])
	env := []string{"TEST_AC_SECRET=" + info["secret_access_key"]}
	good := writePolicy(t, systems+`      - {name: acw, on: connect.status_changed, when: {a: connect.new_state, op: eq, b: AfterCallWork}, set: {connect: Break}}
`)
	out, stderr, code := runEnv(t, env, "validate", "--online", "--config", good)
	if code != 0 || !strings.Contains(out, "online: connect 12 statuses, 50 accounts") {
		t.Fatalf("validate --online: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	out, stderr, code = runEnv(t, env, "catalog", "connect", "--config", good)
	if code != 0 || !strings.Contains(out, "Lunch") || !strings.Contains(out, "AfterCallWork") {
		t.Fatalf("catalog: exit %d, stdout %q, stderr %s", code, out, stderr)
	}
	bad := writePolicy(t, systems+`      - {name: acw, on: connect.status_changed, when: {a: connect.new_state, op: eq, b: AfterCallWork}, set: {connect: Brake}}
`)
	if _, stderr, code := runEnv(t, env, "validate", "--online", "--config", bad); code != 2 || !strings.Contains(stderr, `"Brake" is not in connect's catalog`) {
		t.Errorf("a misspelled status: exit %d, stderr %q", code, stderr)
	}
	// A key the instance does not know is the problem of its system, at the system.
	stranger := writePolicy(t, strings.Replace(systems, "access_key_id: "+info["access_key_id"], "access_key_id: AKIAUNKNOWNKEY000000", 1)+
		`      - {name: acw, on: connect.status_changed, when: {a: connect.new_state, op: eq, b: AfterCallWork}, set: {connect: Break}}
`)
	if _, stderr, code := runEnv(t, env, "validate", "--online", "--config", stranger); code != 2 || !strings.Contains(stderr, "system connect: cannot load the catalog: ") ||
		!strings.Contains(stderr, "UnrecognizedClientException") {
		t.Errorf("an unknown access key: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runEnv(t, []string{"TEST_AC_SECRET=wrong"}, "validate", "--online", "--config", good); code != 2 ||
		!strings.Contains(stderr, "system connect: cannot load the catalog: ") || !strings.Contains(stderr, "InvalidSignatureException") {
		t.Errorf("a wrong secret: exit %d, stderr %q", code, stderr)
	}
}
