package policy

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/omnipresence/omnipresence/internal/presence"
)

const teamsPolicy = `version: 1
systems:
  cx:
    kind: cxone
    catalog:
      - {id: Available, name: Available, category: available}
      - {id: "12", name: Lunch, category: meal}
    accounts:
      - {id: "100001", email: ana@example.com, teams: [voice]}
      - {id: "100002", email: bo@example.com, teams: [chat]}
  sf:
    kind: salesforce
    catalog:
      - {id: "0N5000000000001", name: Online, category: available}
      - {id: "0N5000000000003", name: Lunch, category: meal}
policies:
  - name: voice
    applies_to: {teams: [voice]}
    map:
      - {from: cx, to: sf, states: {Available: Online, Lunch: Lunch}}
  - name: dee
    applies_to: {agents: [dee@example.com]}
    map:
      - {from: sf, to: cx, states: {Online: Available}}
`

// TestAccountTeams: applies_to.teams names the teams systems' accounts carry, inline or set
// later from the vendor's accounts; an agent named by a policy keeps it.
func TestAccountTeams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(teamsPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.PolicyFor("Ana@example.com"); p == nil || p.Name != "voice" {
		t.Errorf("Ana (inline account of team voice) gets %v, want voice", p)
	}
	if p := cfg.PolicyFor("bo@example.com"); p != nil {
		t.Errorf("Bo (team chat) gets %s, want none", p.Name)
	}
	if got := cfg.Teams("ana@example.com"); len(got) != 1 || got[0] != "voice" {
		t.Errorf("Teams(ana) = %v", got)
	}
	// The vendor moves Bo to voice, and puts Dee there too; Dee keeps the policy naming her.
	cfg.SetAccountTeams("cx", []presence.Account{{ID: "100002", Email: "bo@example.com", Teams: []string{"voice"}},
		{ID: "100004", Email: "dee@example.com", Teams: []string{"voice"}}})
	if p := cfg.PolicyFor("bo@example.com"); p == nil || p.Name != "voice" {
		t.Errorf("Bo moved to voice gets %v, want voice", p)
	}
	if p := cfg.PolicyFor("dee@example.com"); p == nil || p.Name != "dee" {
		t.Errorf("Dee gets %v, want the policy naming her", p)
	}
	if p := cfg.PolicyFor("ana@example.com"); p != nil {
		t.Errorf("Ana, no longer in the vendor's accounts of voice, gets %s", p.Name)
	}
}
