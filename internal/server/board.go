package server

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// The states of a board row and of each of its system cells, worst first. A row takes the worst
// state of its cells.
const (
	StateFailed     = "failed"      // a write used up its retries
	StateDeferred   = "deferred"    // a write waits for the system (on a call, no console open)
	StateDrifting   = "drifting"    // the systems disagree and a write is due or the policy says they should not
	StateNotCovered = "not_covered" // no policy, or the policy has no map for the status shown
	StateInSync     = "in_sync"
	StateUnknown    = "unknown" // nothing observed yet
)

// stateRank orders states from worst to best.
var stateRank = map[string]int{StateFailed: 0, StateDeferred: 1, StateDrifting: 2, StateNotCovered: 3, StateUnknown: 4, StateInSync: 5}

// SystemInfo describes one configured system for the console: its name in the policy, its
// kind and the vendor's title ("Genesys Cloud").
type SystemInfo struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Title string `json:"title"`
}

// AgentRow is an agent as the console shows it: the engine's view plus what the policy says
// about it (teams, the category of each status, a state per system and for the row).
type AgentRow struct {
	Email      string                `json:"email"`
	Policy     string                `json:"policy,omitempty"`
	Teams      []string              `json:"teams,omitempty"`
	State      string                `json:"state"`
	Note       string                `json:"note,omitempty"`
	Systems    map[string]SystemCell `json:"systems"`
	Activities []engine.ActivityView `json:"activities,omitempty"`
	UpdatedAt  time.Time             `json:"updated_at,omitzero"`
}

// SystemCell is one agent on one system.
type SystemCell struct {
	engine.SystemView
	// Category is the category of the observed status ("" when unknown).
	Category presence.Category `json:"category,omitempty"`
	// State is the cell's board state; Note says why in a sentence.
	State string `json:"state"`
	Note  string `json:"note,omitempty"`
}

// Counts tallies rows (or cells) by state.
type Counts struct {
	Total      int `json:"total"`
	InSync     int `json:"in_sync"`
	Drifting   int `json:"drifting"`
	Deferred   int `json:"deferred"`
	Failed     int `json:"failed"`
	NotCovered int `json:"not_covered"`
	Unknown    int `json:"unknown"`
}

func (c *Counts) add(state string) {
	c.Total++
	switch state {
	case StateInSync:
		c.InSync++
	case StateDrifting:
		c.Drifting++
	case StateDeferred:
		c.Deferred++
	case StateFailed:
		c.Failed++
	case StateNotCovered:
		c.NotCovered++
	default:
		c.Unknown++
	}
}

// boardResponse is the body of GET /api/v1/board.
type boardResponse struct {
	Systems  []SystemInfo      `json:"systems"`
	Teams    []string          `json:"teams"`
	Policies []string          `json:"policies"`
	Counts   Counts            `json:"counts"`
	BySystem map[string]Counts `json:"by_system"`
	Agents   []AgentRow        `json:"agents"`
	At       time.Time         `json:"at"`
}

// systemInfos lists the configured systems in the policy's order, with vendor titles.
func (s *Server) systemInfos() []SystemInfo {
	if len(s.opts.Systems) > 0 {
		return s.opts.Systems
	}
	var out []SystemInfo
	if cfg := s.policy(); cfg != nil {
		for _, name := range cfg.SystemNames {
			k := cfg.Systems[name].Kind
			out = append(out, SystemInfo{Name: name, Kind: k, Title: k})
		}
	}
	return out
}

// row turns an engine view into a board row.
func (s *Server) row(v engine.AgentView) AgentRow {
	r := AgentRow{Email: v.Email, Policy: v.Policy, Activities: v.Activities, UpdatedAt: v.UpdatedAt,
		Systems: make(map[string]SystemCell, len(v.Systems))}
	cfg := s.policy()
	var pol *policy.Policy
	if cfg != nil {
		r.Teams = cfg.Teams(v.Email)
		pol = cfg.PolicyFor(v.Email)
	}
	for name, sv := range v.Systems {
		c := SystemCell{SystemView: sv}
		if st, ok := s.status(name, sv.ObservedID); ok {
			c.Category = st.Category
		}
		c.State, c.Note = cellState(sv)
		r.Systems[name] = c
	}
	if len(v.Activities) == 0 && pol != nil {
		s.crossCheck(pol, r.Systems)
	}
	if v.Policy == "" {
		for name, c := range r.Systems {
			if c.State == StateInSync {
				c.State, c.Note = StateNotCovered, "no policy applies to this agent"
				r.Systems[name] = c
			}
		}
	}
	r.State, r.Note = StateUnknown, "nothing observed yet"
	for _, name := range sortedKeys(r.Systems) {
		c := r.Systems[name]
		if stateRank[c.State] < stateRank[r.State] || r.State == StateUnknown && c.State == StateInSync {
			r.State, r.Note = c.State, c.Note
			if c.Note != "" && !strings.HasPrefix(c.Note, name) {
				r.Note = name + ": " + c.Note
			}
		}
	}
	if r.State == StateInSync {
		r.Note = ""
	}
	return r
}

// cellState is what the engine itself says about one system of an agent.
func cellState(sv engine.SystemView) (string, string) {
	switch {
	case sv.Failed != "":
		return StateFailed, "writing " + sv.Desired + " failed: " + sv.Failed
	case sv.Deferred != "":
		return StateDeferred, sv.Desired + " waits: " + sv.Deferred
	case !sv.InSync:
		if sv.Pending != "" {
			return StateDrifting, "writing " + sv.Pending
		}
		return StateDrifting, "should show " + sv.Desired
	case sv.ObservedID == "" && sv.Observed == "":
		return StateUnknown, ""
	}
	return StateInSync, ""
}

// crossCheck compares what each pair of systems joined by a map shows: they agree when either
// direction's map takes one's status to the other's. A pair the maps say nothing about is not
// covered; a pair that disagrees although the engine has nothing to write drifts (both were
// read at start, or changed while the service was down, and no event has decided yet).
func (s *Server) crossCheck(pol *policy.Policy, cells map[string]SystemCell) {
	type pair struct{ a, b string }
	maps := map[pair]*policy.Map{}
	var pairs []pair
	for _, m := range pol.Maps {
		maps[pair{m.From, m.To}] = m
		p := pair{min(m.From, m.To), max(m.From, m.To)}
		if !slices.Contains(pairs, p) {
			pairs = append(pairs, p)
		}
	}
	mark := func(name, state, note string) {
		c, ok := cells[name]
		if !ok || stateRank[c.State] <= stateRank[state] {
			return
		}
		c.State, c.Note = state, note
		cells[name] = c
	}
	for _, p := range pairs {
		ca, okA := cells[p.a]
		cb, okB := cells[p.b]
		if !okA || !okB || ca.ObservedID == "" || cb.ObservedID == "" || ca.State != StateInSync || cb.State != StateInSync {
			continue
		}
		stA, _ := s.status(p.a, ca.ObservedID)
		stB, _ := s.status(p.b, cb.ObservedID)
		var wantB, wantA presence.Status
		var knowB, knowA bool
		if m := maps[pair{p.a, p.b}]; m != nil {
			wantB, knowB = m.Lookup(stA)
		}
		if m := maps[pair{p.b, p.a}]; m != nil {
			wantA, knowA = m.Lookup(stB)
		}
		switch {
		case knowB && wantB.ID == stB.ID, knowA && wantA.ID == stA.ID:
			// They agree.
		case !knowA && !knowB:
			note := fmt.Sprintf("the policy maps neither %s %s nor %s %s", p.a, stA.Name, p.b, stB.Name)
			mark(p.a, StateNotCovered, note)
			mark(p.b, StateNotCovered, note)
		default:
			// The side seen later is the newer cause (newest cause wins): the other should follow
			// it. Seen at the same time, neither is known to be right.
			noteB := fmt.Sprintf("%s %s means %s %s, but %s shows %s", p.a, stA.Name, p.b, wantB.Name, p.b, stB.Name)
			noteA := fmt.Sprintf("%s %s means %s %s, but %s shows %s", p.b, stB.Name, p.a, wantA.Name, p.a, stA.Name)
			newerA, newerB := ca.ObservedSince.After(cb.ObservedSince), cb.ObservedSince.After(ca.ObservedSince)
			if knowB && !newerB {
				mark(p.b, StateDrifting, noteB)
			}
			if knowA && !newerA {
				mark(p.a, StateDrifting, noteA)
			}
			// The newer side shows a status the policy maps to nothing on the other: the other
			// keeps what it shows, as the policy says; the pair is not covered, not drifting.
			if knowB && newerB && !knowA {
				mark(p.b, StateNotCovered, fmt.Sprintf("the policy maps %s %s to nothing in %s, which keeps %s", p.b, stB.Name, p.a, stA.Name))
			}
			if knowA && newerA && !knowB {
				mark(p.a, StateNotCovered, fmt.Sprintf("the policy maps %s %s to nothing in %s, which keeps %s", p.a, stA.Name, p.b, stB.Name))
			}
		}
	}
}

// status finds a status of a system by id in its catalog.
func (s *Server) status(system, id string) (presence.Status, bool) {
	cfg := s.policy()
	if cfg == nil || id == "" {
		return presence.Status{}, false
	}
	sys := cfg.Systems[system]
	if sys == nil || sys.Catalog == nil {
		return presence.Status{}, false
	}
	return sys.Catalog.ByID(id)
}

func (s *Server) board(w http.ResponseWriter, r *http.Request) {
	views, err := s.opts.Engine.Agents(r.Context())
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	resp := boardResponse{Systems: s.systemInfos(), Teams: []string{}, Policies: []string{}, BySystem: map[string]Counts{},
		Agents: make([]AgentRow, 0, len(views)), At: time.Now().UTC()}
	teams := map[string]bool{}
	if cfg := s.policy(); cfg != nil {
		for _, p := range cfg.Policies {
			resp.Policies = append(resp.Policies, p.Name)
		}
	}
	for _, v := range views {
		row := s.row(v)
		resp.Agents = append(resp.Agents, row)
		resp.Counts.add(row.State)
		for name, c := range row.Systems {
			n := resp.BySystem[name]
			n.add(c.State)
			resp.BySystem[name] = n
		}
		for _, t := range row.Teams {
			teams[t] = true
		}
	}
	for _, si := range resp.Systems {
		if _, ok := resp.BySystem[si.Name]; !ok {
			resp.BySystem[si.Name] = Counts{}
		}
	}
	resp.Teams = sortedKeys(teams)
	slices.SortFunc(resp.Agents, func(a, b AgentRow) int { return strings.Compare(a.Email, b.Email) })
	writeJSON(w, http.StatusOK, resp)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
