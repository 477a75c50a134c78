package policy

import (
	"fmt"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// PolicyFor returns the most specific policy for an agent: one naming the agent, else one naming
// a team of the agent (Teams: the agents directory's first, then their accounts' teams), else
// the policy for every agent; nil when none applies.
func (c *Config) PolicyFor(email string) *Policy {
	if c == nil {
		return nil
	}
	key := strings.ToLower(email)
	if p := c.byAgent[key]; p != nil {
		return p
	}
	if len(c.byTeam) > 0 {
		for _, t := range c.Teams(email) {
			if p := c.byTeam[t]; p != nil {
				return p
			}
		}
	}
	return c.everyone
}

// Summary counts what a configuration holds, for "validate": "4 systems, 3 policies, 6 rules,
// 1 activity, 3 agents".
func (c *Config) Summary() string {
	rules, activities := 0, 0
	for _, p := range c.Policies {
		rules += len(p.Rules)
		activities += len(p.Activities)
	}
	return fmt.Sprintf("%s, %s, %s, %s, %s", plural(len(c.Systems), "system"), plural(len(c.Policies), "policy"),
		plural(rules, "rule"), plural(activities, "activity"), plural(len(c.Agents), "agent"))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(word, "y"))
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// evalCtx is the state of one evaluation.
type evalCtx struct {
	// in is a copy so the context stays on the stack.
	in  Input
	env *evalEnv
	// newS is the event system's status after the event (Offline for a logout).
	newS presence.Status
	// cel holds the CEL variables once a CEL test needs them.
	cel *celVars
}

// celVars is kept behind a pointer so that building it does not move the evaluation onto the heap.
type celVars struct {
	act map[string]any
}

// Evaluate decides what one event means under the policy: the maps from the event's system
// (for a status change), then every rule triggered by the event in file order (for one target
// system the last match wins), then the activities it starts or ends. It never writes anything.
func (p *Policy) Evaluate(in Input) Evaluation {
	var e Evaluation
	if p == nil {
		e.Unmapped = true
		return e
	}
	x := evalCtx{in: in, env: p.env, newS: in.New}
	sys := in.Event.System
	if in.Event.Type == presence.Logout {
		x.newS = presence.Status{Name: presence.OfflineName, Label: presence.OfflineName, Category: presence.CategoryOffline, Settable: true}
		if si := p.env.systemInfo(sys); si != nil {
			x.newS = si.offline
		}
	}
	if n := p.steps[sys]; n > 0 {
		e.Steps = make([]Step, 0, n)
	}
	if in.Event.ChangesStatus() {
		for _, m := range p.Maps {
			if m.From != sys {
				continue
			}
			if i, ok := m.find(x.newS); ok {
				t := &m.targets[i]
				e.intend(m.To, t.status, m.Name)
				e.Steps = append(e.Steps, Step{Rule: m.Name, Matched: true, Detail: t.detail})
				continue
			}
			e.Steps = append(e.Steps, Step{Rule: m.Name, Detail: "no mapping for " + statusText(x.newS)})
		}
	}
	for _, r := range p.Rules {
		if r.On.System != sys {
			continue
		}
		if r.On.Type != in.Event.Type {
			e.Steps = append(e.Steps, Step{Rule: r.Name, Detail: r.notOn})
			continue
		}
		ok, detail := true, r.always
		if r.cond != nil {
			ok, detail = r.cond.eval(&x)
		}
		e.Steps = append(e.Steps, Step{Rule: r.Name, Matched: ok, Detail: detail})
		if ok {
			for _, t := range r.set {
				e.intend(t.system, t.status, r.Name)
			}
		}
	}
	for _, a := range p.Activities {
		start := a.Start.System == sys && a.Start.Type == in.Event.Type
		end := a.End.System == sys && a.End.Type == in.Event.Type
		if !start && !end {
			continue
		}
		ok, detail := true, a.startDetail
		if end {
			detail = a.endDetail
		}
		for i := range a.match {
			var d string
			if ok, d = a.match[i].eval(&in.Event); !ok {
				detail = d
				break
			}
		}
		e.Steps = append(e.Steps, Step{Rule: a.Name, Matched: ok, Detail: detail})
		if !ok {
			continue
		}
		key, _ := in.Event.Data["conversationId"].(string)
		if start {
			e.Starts = append(e.Starts, ActivityHit{Activity: a, Key: key})
		} else {
			e.Ends = append(e.Ends, ActivityHit{Activity: a, Key: key})
		}
	}
	if d := p.OnDisconnect; d != nil && d.Of == sys && in.Event.Type == presence.ConsoleDisconnected {
		gone, err := time.ParseDuration(fmt.Sprint(in.Event.Data["after"]))
		switch {
		case err != nil:
			e.Steps = append(e.Steps, Step{Rule: d.Name, Detail: "the event does not say how long the console has been gone"})
		case gone != d.After:
			e.Steps = append(e.Steps, Step{Rule: d.Name, Detail: fmt.Sprintf("the %s has been gone %s; on_disconnect waits %s", d.console, gone, d.After)})
		default:
			for _, t := range d.set {
				e.intend(t.system, t.status, d.Name)
			}
			e.Steps = append(e.Steps, Step{Rule: d.Name, Matched: true, Detail: fmt.Sprintf("the %s has been gone %s", d.console, gone)})
		}
	}
	e.Unmapped = len(e.Intents) == 0 && len(e.Starts) == 0 && len(e.Ends) == 0
	return e
}

func (env *evalEnv) systemInfo(name string) *sysInfo {
	if env == nil {
		return nil
	}
	return env.systems[name]
}

func statusText(s presence.Status) string {
	switch {
	case s.Name != "":
		return s.Name
	case s.ID != "":
		return "status id " + s.ID
	}
	return "an unknown status"
}

// intend records that system should show status because of rule; a later match for the same
// system replaces the earlier one but keeps its position.
func (e *Evaluation) intend(system string, status presence.Status, rule string) {
	for i := range e.Intents {
		if e.Intents[i].System == system {
			e.Intents[i].Status, e.Intents[i].Rule = status, rule
			return
		}
	}
	if e.Intents == nil {
		e.Intents = make([]Intent, 0, 2)
	}
	e.Intents = append(e.Intents, Intent{System: system, Status: status, Rule: rule})
}
