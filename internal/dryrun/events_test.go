package dryrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnipresence/omnipresence/internal/policy"
)

// TestParseEventsNamesTheField pins that every message about a bad line names the field and
// what it should hold in the user's words, suggests a near name, and never names a Go type.
func TestParseEventsNamesTheField(t *testing.T) {
	cfg := loadConfig(t, "two-way.yaml")
	cases := []struct {
		line string
		want []string
	}{
		{`{"at":123,"system":"sf","agent":"ana@example.com","type":"logout"}`,
			[]string{`"at" must be a string (an RFC 3339 time such as 2026-03-02T09:00:00Z), not a number`}},
		{`{"at":"yesterday","system":"sf","agent":"ana@example.com","type":"logout"}`,
			[]string{`"at" "yesterday" is not an RFC 3339 time`}},
		{`{"at":"2026-03-02T09:00:00Z","sytem":"sf","agent":"ana@example.com","type":"logout"}`,
			[]string{`unknown field "sytem"; did you mean "system"?`, `"system" is required (one of gc, sf)`}},
		{`{"at":"2026-03-02T09:00:00Z","system":"sf","agent":"ana@example.com","type":"status_changed","status":"Lnch"}`,
			[]string{`status "Lnch" is not in sf's catalog; did you mean "Lunch"?`}},
		{`{"at":"2026-03-02T09:00:00Z","system":"sf","agent":"005000000000001","type":"logout"}`,
			[]string{`agent "005000000000001" is not an email, and sf lists no accounts`}},
		{`{"at":"2026-03-02T09:00:00Z","system":"gc","agent":"ana@example.com","type":"logot"}`,
			[]string{`unknown type "logot"; did you mean "logout"?`}},
		{`{"at":"2026-03-02T09:00:00Z","system":"gc","agent":"ana@example.com","type":"logout","data":[1]}`,
			[]string{`"data" must be an object of the vendor's fields, not a list`}},
		{`[1,2]`, []string{`malformed event: each line must be one JSON object, not a list`}},
		{`{"at":`, []string{`malformed event: the JSON object is cut short`}},
		{`{"at" 1}`, []string{`malformed event: not valid JSON at column 7`}},
	}
	for _, c := range cases {
		_, err := ParseEvents("day.jsonl", strings.NewReader(c.line+"\n"), cfg)
		if err == nil {
			t.Errorf("%s: accepted", c.line)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "day.jsonl:1: ") {
			t.Errorf("%s: %q lacks FILE:LINE", c.line, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s:\n got %q\nwant it to contain %q", c.line, msg, w)
			}
		}
		for _, goWord := range []string{"eventLine", "Go struct", "time.Time", "json:"} {
			if strings.Contains(msg, goWord) {
				t.Errorf("%s: %q names Go internals (%s)", c.line, msg, goWord)
			}
		}
	}
}

// TestParseEventsChecksAgentsAgainstAccounts: with inline accounts or an agents directory, an
// agent nobody knows is reported, with the nearest known one.
func TestParseEventsChecksAgentsAgainstAccounts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	const doc = `version: 1
systems:
  sf:
    kind: salesforce
    accounts:
      - {id: "005000000000001", email: ana@example.com}
  gc:
    kind: genesys
agents:
  - {email: ana@example.com}
  - {email: bo@example.com}
policies:
  - name: p
    map:
      - {from: sf, to: gc, states: {Offline: Offline}}
`
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	line := func(sys, agent string) string {
		return `{"at":"2026-03-02T09:00:00Z","system":"` + sys + `","agent":"` + agent + `","type":"logout"}` + "\n"
	}
	bad := []struct{ line, want string }{
		{line("sf", "anna@example.com"), `agent "anna@example.com" is not among sf's accounts (by email); did you mean "ana@example.com"?`},
		{line("sf", "005000000000009"), `agent "005000000000009" is not among sf's accounts (by account id); did you mean "005000000000001"?`},
		{line("gc", "bob@example.com"), `agent "bob@example.com" is not in the policy's agents directory; did you mean "bo@example.com"?`},
	}
	for _, b := range bad {
		_, err := ParseEvents("day.jsonl", strings.NewReader(b.line), cfg)
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%s: got %v, want %q", strings.TrimSpace(b.line), err, b.want)
		}
	}
	for _, ok := range []string{line("sf", "ANA@example.com"), line("sf", "005000000000001"), line("gc", "bo@example.com")} {
		if _, err := ParseEvents("day.jsonl", strings.NewReader(ok), cfg); err != nil {
			t.Errorf("%s refused: %v", strings.TrimSpace(ok), err)
		}
	}
}
