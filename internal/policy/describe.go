package policy

import (
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

// Teams returns the teams the agents directory gives an agent (nil without a directory or entry).
func (c *Config) Teams(email string) []string {
	if c == nil {
		return nil
	}
	return c.agentTeams[strings.ToLower(email)]
}
