package server

import (
	"net/http"
	"sort"
	"strings"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// policyResponse is the body of GET /api/v1/policy: the loaded policy as the console shows it.
type policyResponse struct {
	Loaded bool     `json:"loaded"`
	Files  []string `json:"files"`
	// Valid is true for a loaded policy: serve refuses an invalid one. Summary counts what it
	// holds; Warnings are what validation accepts but an admin should know (statuses no map
	// covers).
	Valid    bool            `json:"valid"`
	Summary  string          `json:"summary"`
	Warnings []string        `json:"warnings"`
	Systems  []policySystem  `json:"systems"`
	Agents   int             `json:"agents"`
	Policies []policyDetails `json:"policies"`
}

type policySystem struct {
	SystemInfo
	Statuses []presence.Status `json:"statuses"`
	Accounts int               `json:"accounts,omitempty"`
}

type policyDetails struct {
	Name       string         `json:"name"`
	AppliesTo  string         `json:"applies_to"`
	Master     string         `json:"master,omitempty"`
	Debounce   string         `json:"debounce,omitempty"`
	Maps       []policyMap    `json:"maps"`
	Rules      []policyRule   `json:"rules"`
	Activities []policyActive `json:"activities"`
	Extension  string         `json:"extension,omitempty"`
}

type policyMap struct {
	// Name is how explain names the map ("demo/map sf -> gc").
	Name    string     `json:"name"`
	From    string     `json:"from"`
	To      string     `json:"to"`
	Entries []mapEntry `json:"entries"`
	// Unmapped are the from system's statuses this map says nothing about.
	Unmapped []string `json:"unmapped"`
}

type mapEntry struct {
	From       string            `json:"from"`
	To         string            `json:"to"`
	FromCat    presence.Category `json:"from_category,omitempty"`
	ToCategory presence.Category `json:"to_category,omitempty"`
}

type policyRule struct {
	Name string            `json:"name"`
	On   string            `json:"on"`
	When string            `json:"when,omitempty"`
	Set  map[string]string `json:"set"`
}

type policyActive struct {
	Name  string            `json:"name"`
	Start string            `json:"start"`
	End   string            `json:"end"`
	Match []string          `json:"match"`
	Set   map[string]string `json:"set"`
}

func (s *Server) policyView(w http.ResponseWriter, _ *http.Request) {
	cfg := s.policy()
	if cfg == nil {
		writeJSON(w, http.StatusOK, policyResponse{Files: []string{}, Warnings: []string{}, Systems: []policySystem{}, Policies: []policyDetails{}})
		return
	}
	resp := policyResponse{Loaded: true, Valid: true, Files: cfg.Files, Summary: cfg.Summary(), Warnings: []string{},
		Agents: len(cfg.Agents)}
	if resp.Files == nil {
		resp.Files = []string{}
	}
	for _, si := range s.systemInfos() {
		ps := policySystem{SystemInfo: si, Statuses: []presence.Status{}}
		if sys := cfg.Systems[si.Name]; sys != nil {
			if sys.Catalog != nil {
				ps.Statuses = sys.Catalog.Statuses()
			}
			ps.Accounts = len(sys.Accounts)
		}
		resp.Systems = append(resp.Systems, ps)
	}
	for _, p := range cfg.Policies {
		d := policyDetails{Name: p.Name, AppliesTo: appliesTo(p.AppliesTo), Master: p.Master,
			Maps: []policyMap{}, Rules: []policyRule{}, Activities: []policyActive{}}
		if p.Debounce > 0 {
			d.Debounce = p.Debounce.String()
		}
		if p.Extension != nil {
			d.Extension = p.Extension.URL
		}
		for _, m := range p.Maps {
			pm := policyMap{Name: m.Name, From: m.From, To: m.To, Entries: []mapEntry{}, Unmapped: []string{}}
			for _, e := range m.Entries(cfg) {
				pm.Entries = append(pm.Entries, mapEntry{From: e.From.Name, To: e.To.Name, FromCat: e.From.Category, ToCategory: e.To.Category})
			}
			if sys := cfg.Systems[m.From]; sys != nil && sys.Catalog != nil {
				for _, st := range sys.Catalog.Statuses() {
					if _, ok := m.Lookup(st); !ok {
						pm.Unmapped = append(pm.Unmapped, st.Name)
					}
				}
			}
			if len(pm.Unmapped) > 0 {
				resp.Warnings = append(resp.Warnings, m.Name+" says nothing about "+strings.Join(pm.Unmapped, ", ")+
					": an agent picking one of these in "+m.From+" leaves "+m.To+" as it is")
			}
			d.Maps = append(d.Maps, pm)
		}
		for _, r := range p.Rules {
			d.Rules = append(d.Rules, policyRule{Name: r.Name, On: r.On.String(), When: r.When, Set: statusNames(r.Set)})
		}
		for _, a := range p.Activities {
			d.Activities = append(d.Activities, policyActive{Name: a.Name, Start: a.Start.String(), End: a.End.String(),
				Match: a.MatchTests(), Set: statusNames(a.Set)})
		}
		resp.Policies = append(resp.Policies, d)
	}
	writeJSON(w, http.StatusOK, resp)
}

func appliesTo(a policy.AppliesTo) string {
	var parts []string
	if len(a.Teams) > 0 {
		parts = append(parts, "teams "+strings.Join(a.Teams, ", "))
	}
	if len(a.Agents) > 0 {
		as := append([]string(nil), a.Agents...)
		sort.Strings(as)
		parts = append(parts, "agents "+strings.Join(as, ", "))
	}
	if len(parts) == 0 {
		return "every agent"
	}
	return strings.Join(parts, "; ")
}

func statusNames(m map[string]presence.Status) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v.Name
	}
	return out
}
