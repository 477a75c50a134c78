package engine

import (
	"sort"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Ideal returns the status id every system of an agent shows in the ideal world where each
// write lands the moment it is decided, after the given changes (none of them echoes, listed in
// the order they arrived; they are decided in the order they happened). It is the answer the
// engine must reach whatever the latencies, the order of delivery, restarts and echoes: the
// reference the property tests check the engine against.
func Ideal(cfg *policy.Config, email string, changes []presence.Event) map[string]string {
	m := NewMachine(cfg, Options{})
	st := &agentState{Email: email}
	for i, ev := range changes {
		c := change{Seq: int64(i + 1), Event: ev}
		c.Event.Agent = email
		if ev.ChangesStatus() {
			if sys := cfg.Systems[ev.System]; sys != nil {
				s, _ := m.resolveStatus(sys, ev)
				c.Event.Status = s.ID
			}
		}
		st.History = append(st.History, c)
	}
	pol := cfg.PolicyFor(email)
	sort.SliceStable(st.History, func(i, j int) bool { return historyLess(pol, &st.History[i], &st.History[j]) })
	m.refold(st)
	out := map[string]string{}
	for name := range st.fold.Systems {
		if s := st.fold.shows(name); s != "" {
			out[name] = s
		}
	}
	return out
}
