package policy

import (
	"slices"
	"strings"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// MapEntry is one line of a map: a source status and the status it means on the other side.
type MapEntry struct {
	From, To presence.Status
}

// Entries lists the map's lines whose source is in the from system's catalog, in catalog order
// (a map of a system without a known catalog lists nothing).
func (m *Map) Entries(cfg *Config) []MapEntry {
	sys := cfg.Systems[m.From]
	if sys == nil || sys.Catalog == nil {
		return nil
	}
	var out []MapEntry
	for _, s := range sys.Catalog.Statuses() {
		if to, ok := m.Lookup(s); ok {
			out = append(out, MapEntry{From: s, To: to})
		}
	}
	return out
}

// MatchTests describes the activity's match tests in plain words ("queueId is absent").
func (a *Activity) MatchTests() []string {
	out := make([]string, 0, len(a.match))
	for _, t := range a.match {
		vals := make([]string, len(t.values))
		for i, v := range t.values {
			vals[i] = v.String()
		}
		var s string
		switch t.op {
		case "exists":
			s = t.path + " is present"
		case "not_exists":
			s = t.path + " is absent"
		case "eq":
			s = t.path + " is " + strings.Join(vals, "")
		case "ne":
			s = t.path + " is not " + strings.Join(vals, "")
		case "in":
			s = t.path + " is one of " + strings.Join(vals, ", ")
		default:
			s = t.path + " " + t.op + " " + strings.Join(vals, ", ")
		}
		out = append(out, s)
	}
	return out
}

// Teams returns the teams of an agent: those the agents directory gives them, then those their
// accounts carry (CXone's teams), each once; nil when none.
func (c *Config) Teams(email string) []string {
	if c == nil {
		return nil
	}
	key := strings.ToLower(email)
	out := c.agentTeams[key]
	c.teamsMu.RLock()
	defer c.teamsMu.RUnlock()
	if len(c.accountTeams) == 0 {
		return out
	}
	out = slices.Clone(out)
	for _, name := range c.SystemNames {
		for _, t := range c.accountTeams[name][key] {
			if !slices.Contains(out, t) {
				out = append(out, t)
			}
		}
	}
	return out
}

// SetAccountTeams records the teams a system's accounts carry (pulled from the vendor), so
// that policies whose applies_to names those teams apply to those agents. Safe for concurrent
// use with PolicyFor and Teams.
func (c *Config) SetAccountTeams(system string, accounts []presence.Account) {
	byEmail := map[string][]string{}
	for _, a := range accounts {
		if a.Email != "" && len(a.Teams) > 0 {
			byEmail[strings.ToLower(a.Email)] = slices.Clone(a.Teams)
		}
	}
	c.teamsMu.Lock()
	defer c.teamsMu.Unlock()
	if c.accountTeams == nil {
		c.accountTeams = map[string]map[string][]string{}
	}
	c.accountTeams[system] = byEmail
}

// UsesTeams reports whether a policy's applies_to names teams.
func (c *Config) UsesTeams() bool {
	return len(c.byTeam) > 0
}
