package policy

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

var (
	policyKeys     = []string{"name", "applies_to", "master", "debounce", "map", "rules", "activities", "extension", "on_disconnect"}
	appliesKeys    = []string{"teams", "agents"}
	mapKeys        = []string{"from", "to", "states"}
	ruleKeys       = []string{"name", "on", "when", "set"}
	testKeys       = []string{"a", "op", "b"}
	activityKeys   = []string{"name", "start", "end", "match", "set"}
	matchKeys      = []string{"path", "op", "value", "values"}
	extensionKeys  = []string{"url", "timeout"}
	disconnectKeys = []string{"of", "after", "set"}
	eventTypes     = func() []string {
		out := make([]string, len(presence.EventTypes))
		for i, t := range presence.EventTypes {
			out[i] = string(t)
		}
		return out
	}()
)

// DefaultExtensionTimeout is the extension timeout when a policy sets none.
const DefaultExtensionTimeout = 500 * time.Millisecond

// compiler turns policy nodes into compiled policies.
type compiler struct {
	*loader
	cfg          *Config
	env          *evalEnv
	policyOrigin map[string]origin
	applies      []appliesAt
}

// appliesAt remembers where a policy's applies_to named whom, for overlap diagnostics.
type appliesAt struct {
	p      *Policy
	file   string
	name   *yaml.Node
	agents map[string]*yaml.Node // lower-case email
	teams  map[string]*yaml.Node
	tnode  *yaml.Node
}

func (c *compiler) policy(n *yaml.Node) *Policy {
	o := c.mapping(n, "policy", policyKeys)
	if o == nil {
		return nil
	}
	p := &Policy{env: c.env}
	at := appliesAt{p: p, file: c.file, name: o.node}
	if v := o.val("name"); v == nil {
		c.errf(o.node, "policy has no name; add name: <a short name>")
		p.Name = fmt.Sprintf("policy@%d", o.node.Line)
	} else if name, ok := c.str(v, "policy name"); ok {
		p.Name, at.name = name, deref(v)
		if first, dup := c.policyOrigin[name]; dup {
			c.errf(deref(v), "policy %q is defined twice (first at %s)", name, first)
		} else {
			c.policyOrigin[name] = origin{c.file, deref(v).Line}
		}
	} else {
		p.Name = fmt.Sprintf("policy@%d", o.node.Line)
	}
	if v := o.val("applies_to"); v != nil {
		c.appliesTo(p, v, &at)
	}
	if v := o.val("master"); v != nil {
		if s, ok := c.systemRef(v, "master of policy "+p.Name); ok {
			p.Master = s.name
		}
	}
	if v := o.val("debounce"); v != nil {
		p.Debounce, _ = c.duration(v, "debounce of policy "+p.Name, true)
	}
	if v := o.val("map"); v != nil {
		c.maps(p, v)
	}
	if v := o.val("rules"); v != nil {
		c.rules(p, v)
	}
	if v := o.val("activities"); v != nil {
		c.activities(p, v)
	}
	if v := o.val("extension"); v != nil {
		p.Extension = c.extension(p, v)
	}
	if v := o.val("on_disconnect"); v != nil {
		p.OnDisconnect = c.onDisconnect(p, v)
	}
	c.applies = append(c.applies, at)
	p.steps = stepCounts(p)
	return p
}

// stepCounts sizes the explanation of an event of each system once, at load.
func stepCounts(p *Policy) map[string]int {
	n := map[string]int{}
	for _, m := range p.Maps {
		n[m.From]++
	}
	for _, r := range p.Rules {
		n[r.On.System]++
	}
	for _, a := range p.Activities {
		n[a.Start.System]++
		if a.End.System != a.Start.System {
			n[a.End.System]++
		}
	}
	if d := p.OnDisconnect; d != nil {
		n[d.Of]++
	}
	return n
}

func (c *compiler) appliesTo(p *Policy, n *yaml.Node, at *appliesAt) {
	what := "applies_to of policy " + p.Name
	o := c.mapping(n, what, appliesKeys)
	if o == nil {
		return
	}
	var knownAgents, knownTeams []string
	if c.cfg.Agents != nil {
		for _, a := range c.cfg.Agents {
			knownAgents = append(knownAgents, a.Email)
			for _, t := range a.Teams {
				if !contains(knownTeams, t) {
					knownTeams = append(knownTeams, t)
				}
			}
		}
		// Inline accounts' teams count too, for the agents the directory lists.
		for _, name := range c.cfg.SystemNames {
			for _, a := range c.cfg.Systems[name].Accounts {
				if !containsFold(knownAgents, a.Email) {
					continue
				}
				for _, t := range a.Teams {
					if !contains(knownTeams, t) {
						knownTeams = append(knownTeams, t)
					}
				}
			}
		}
	}
	at.agents, at.teams = map[string]*yaml.Node{}, map[string]*yaml.Node{}
	if v := o.val("agents"); v != nil {
		items, _ := c.list(v, "agents of "+what)
		for _, it := range items {
			email, ok := c.str(it, "agent of "+what)
			if !ok {
				continue
			}
			key := strings.ToLower(email)
			if _, dup := at.agents[key]; dup {
				c.errf(it, "agent %s is named twice in %s", email, what)
				continue
			}
			if c.cfg.Agents != nil && !containsFold(knownAgents, email) {
				c.errf(it, "agent %s is not in the agents directory%s", email, didYouMean(email, knownAgents))
				continue
			}
			at.agents[key] = it
			p.AppliesTo.Agents = append(p.AppliesTo.Agents, email)
		}
	}
	if v := o.val("teams"); v != nil {
		at.tnode = deref(v)
		items, _ := c.list(v, "teams of "+what)
		for _, it := range items {
			team, ok := c.str(it, "team of "+what)
			if !ok {
				continue
			}
			if _, dup := at.teams[team]; dup {
				c.errf(it, "team %s is named twice in %s", team, what)
				continue
			}
			if c.cfg.Agents != nil && !contains(knownTeams, team) {
				c.errf(it, "team %s has no agent in the agents directory%s", team, didYouMean(team, knownTeams))
				continue
			}
			at.teams[team] = it
			p.AppliesTo.Teams = append(p.AppliesTo.Teams, team)
		}
	}
	if len(o.entries) == 0 {
		c.errf(o.node, "%s names no teams and no agents; remove it to apply the policy to every agent", what)
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// systemRef reads a system name and checks it is configured.
func (c *compiler) systemRef(n *yaml.Node, what string) (*sysInfo, bool) {
	name, ok := c.str(n, what)
	if !ok {
		return nil, false
	}
	return c.lookupSystem(deref(n), name, what)
}

func (c *compiler) lookupSystem(n *yaml.Node, name, what string) (*sysInfo, bool) {
	if s, ok := c.env.systems[name]; ok {
		return s, true
	}
	c.errf(n, "%s: unknown system %q%s", what, name, hint(name, c.cfg.SystemNames))
	return nil, false
}

// duration reads a Go duration; zero is allowed only when allowZero.
func (c *compiler) duration(n *yaml.Node, what string, allowZero bool) (time.Duration, bool) {
	s, ok := c.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		suggestion := ""
		if _, numErr := time.ParseDuration(s + "s"); numErr == nil {
			suggestion = fmt.Sprintf("; did you mean %q?", s+"s")
		}
		c.errf(deref(n), "%s: %q is not a duration (write it like 500ms, 2s or 1m)%s", what, s, suggestion)
		return 0, false
	}
	if d < 0 || (d == 0 && !allowZero) {
		c.errf(deref(n), "%s must be greater than zero, got %s", what, s)
		return 0, false
	}
	return d, true
}

// status resolves a status named for a system. A target must be settable.
func (c *compiler) status(s *sysInfo, n *yaml.Node, text string, target bool) (presence.Status, bool) {
	var st presence.Status
	if cat := s.sys.Catalog; cat != nil {
		found, ok := cat.Resolve(text)
		if !ok {
			var names []string
			for _, x := range cat.Statuses() {
				names = append(names, x.Name)
			}
			c.errf(n, "status %q is not in %s's catalog%s", text, s.name, didYouMean(text, names))
			return st, false
		}
		st = found
	} else if off := s.vendor.Catalog.Offline; off != nil && (text == off.Name || text == off.ID) {
		st = *off
	} else {
		// Without a catalog a status names itself, as the engine names statuses it cannot resolve.
		st = presence.Status{ID: text, Name: text, Label: text, Settable: true}
	}
	if !target {
		return st, true
	}
	if facts := s.vendor.Catalog; facts.IsSystemState(st.Name) {
		c.errf(n, "%q is %s and cannot be set", st.Name, facts.SystemStatePhrase)
		return st, false
	}
	if !st.Settable {
		why := "it is marked settable: false"
		if s.sys.pulled {
			why = "the vendor does not let it be set"
		} else if st.Category == presence.CategorySystem {
			why = "its category is system"
		}
		c.errf(n, "status %q of %s cannot be set (%s); target a settable status", st.Name, s.name, why)
		return st, false
	}
	return st, true
}

func (c *compiler) maps(p *Policy, n *yaml.Node) {
	items, _ := c.list(n, "map of policy "+p.Name)
	seen := map[string]int{}
	for _, it := range items {
		o := c.mapping(it, "map of policy "+p.Name, mapKeys)
		if o == nil {
			continue
		}
		var from, to *sysInfo
		for _, k := range []string{"from", "to"} {
			v := o.val(k)
			if v == nil {
				c.errf(o.node, "map of policy %s has no %s; add %s: <system>", p.Name, k, k)
				continue
			}
			s, _ := c.systemRef(v, k+" of map")
			if k == "from" {
				from = s
			} else {
				to = s
			}
		}
		if from == nil || to == nil {
			continue
		}
		if from == to {
			c.errf(deref(o.val("to")), "map from %s to %s: a map connects two different systems", from.name, to.name)
			continue
		}
		dir := from.name + " -> " + to.name
		if line, dup := seen[dir]; dup {
			c.errf(o.node, "policy %s maps %s twice (first on line %d); merge the states", p.Name, dir, line)
			continue
		}
		seen[dir] = o.node.Line
		m := newMap(p.Name, from.name, to.name)
		sv := o.val("states")
		if sv == nil {
			c.errf(o.node, "map %s has no states; add states: {<%s status>: <%s status>}", dir, from.name, to.name)
			continue
		}
		states := c.mapping(sv, "states of map "+dir, nil)
		if states == nil {
			continue
		}
		sources := map[string]int{}
		for _, e := range states.entries {
			src, ok1 := c.status(from, e.kn, e.key, false)
			text, ok2 := c.str(e.val, fmt.Sprintf("target of %s in map %s", e.key, dir))
			if !ok1 || !ok2 {
				continue
			}
			dst, ok := c.status(to, deref(e.val), text, true)
			if !ok {
				continue
			}
			key := src.ID + "\x00" + src.Name
			if line, dup := sources[key]; dup {
				c.errf(e.kn, "status %q of %s is mapped twice in map %s (first on line %d)", src.Name, from.name, dir, line)
				continue
			}
			sources[key] = e.kn.Line
			m.add(src, dst)
		}
		p.Maps = append(p.Maps, m)
	}
}

// trigger reads "<system>.<event type>".
func (c *compiler) trigger(n *yaml.Node, what string) (Trigger, bool) {
	s, ok := c.str(n, what)
	if !ok {
		return Trigger{}, false
	}
	n = deref(n)
	sys, typ, found := strings.Cut(s, ".")
	if !found {
		c.errf(n, "%s: %q must be <system>.<event type>, e.g. %s.status_changed", what, s, firstOr(c.cfg.SystemNames, "sf"))
		return Trigger{}, false
	}
	si, ok := c.lookupSystem(n, sys, what)
	if !presence.EventType(typ).Valid() {
		c.errf(n, "%s: unknown event type %q%s", what, typ, hint(typ, eventTypes))
		return Trigger{}, false
	}
	if !ok {
		return Trigger{}, false
	}
	return Trigger{System: si.name, Type: presence.EventType(typ)}, true
}

func firstOr(list []string, def string) string {
	if len(list) > 0 {
		return list[0]
	}
	return def
}

// targets reads set: {system: status}, in file order.
func (c *compiler) targets(n *yaml.Node, what string) (map[string]presence.Status, []target) {
	o := c.mapping(n, what, nil)
	if o == nil {
		return nil, nil
	}
	set := map[string]presence.Status{}
	var order []target
	for _, e := range o.entries {
		s, ok := c.lookupSystem(e.kn, e.key, what)
		text, ok2 := c.str(e.val, fmt.Sprintf("status for %s in %s", e.key, what))
		if !ok || !ok2 {
			continue
		}
		st, ok := c.status(s, deref(e.val), text, true)
		if !ok {
			continue
		}
		set[s.name] = st
		order = append(order, target{system: s.name, status: st})
	}
	if len(o.entries) == 0 {
		c.errf(o.node, "%s is empty; name at least one system and status", what)
	}
	return set, order
}

func (c *compiler) rules(p *Policy, n *yaml.Node) {
	items, _ := c.list(n, "rules of policy "+p.Name)
	names := map[string]int{}
	for _, it := range items {
		o := c.mapping(it, "rule of policy "+p.Name, ruleKeys)
		if o == nil {
			continue
		}
		r := &Rule{}
		label := fmt.Sprintf("rule on line %d", o.node.Line)
		if v := o.val("name"); v == nil {
			c.errf(o.node, "rule of policy %s has no name; add name: <a short name>", p.Name)
		} else if name, ok := c.str(v, "rule name"); ok {
			if line, dup := names[name]; dup {
				c.errf(deref(v), "rule %q appears twice in policy %s (first on line %d)", name, p.Name, line)
			}
			names[name] = deref(v).Line
			label = "rule " + name
			r.Name = p.Name + "/rule " + name
		}
		ok := r.Name != ""
		if v := o.val("on"); v == nil {
			c.errf(o.node, "%s has no trigger; add on: <system>.<event type>", label)
			ok = false
		} else if t, good := c.trigger(v, "on of "+label); good {
			r.On = t
		} else {
			ok = false
		}
		if v := o.val("when"); v != nil {
			cond, text, good := c.when(v, label)
			r.cond, r.When = cond, text
			ok = ok && good
		}
		if v := o.val("set"); v == nil {
			c.errf(o.node, "%s has no set; add set: {<system>: <status>}", label)
			ok = false
		} else {
			r.Set, r.set = c.targets(v, "set of "+label)
			ok = ok && len(r.set) > 0
		}
		if ok {
			r.notOn = "on " + r.On.String() + ": the event is another type"
			r.always = "on " + r.On.String() + " with no when: always matches"
			p.Rules = append(p.Rules, r)
		}
	}
}

func (c *compiler) activities(p *Policy, n *yaml.Node) {
	items, _ := c.list(n, "activities of policy "+p.Name)
	names := map[string]int{}
	for _, it := range items {
		o := c.mapping(it, "activity of policy "+p.Name, activityKeys)
		if o == nil {
			continue
		}
		a := &Activity{}
		label := fmt.Sprintf("activity on line %d", o.node.Line)
		if v := o.val("name"); v == nil {
			c.errf(o.node, "activity of policy %s has no name; add name: <a short name>", p.Name)
		} else if name, ok := c.str(v, "activity name"); ok {
			if line, dup := names[name]; dup {
				c.errf(deref(v), "activity %q appears twice in policy %s (first on line %d)", name, p.Name, line)
			}
			names[name] = deref(v).Line
			label = "activity " + name
			a.Name = p.Name + "/activity " + name
		}
		ok := a.Name != ""
		for _, k := range []string{"start", "end"} {
			v := o.val(k)
			if v == nil {
				c.errf(o.node, "%s has no %s; add %s: <system>.<event type>", label, k, k)
				ok = false
				continue
			}
			t, good := c.trigger(v, k+" of "+label)
			ok = ok && good
			if k == "start" {
				a.Start = t
			} else {
				a.End = t
				if good && t == a.Start {
					c.errf(deref(v), "%s starts and ends on the same event %s", label, t)
					ok = false
				}
			}
		}
		if v := o.val("match"); v != nil {
			tests, good := c.matchTests(v, label)
			a.match, ok = tests, ok && good
		}
		if v := o.val("set"); v == nil {
			c.errf(o.node, "%s has no set; add set: {<system>: <overlay status>}", label)
			ok = false
		} else {
			var order []target
			a.Set, order = c.targets(v, "set of "+label)
			ok = ok && len(order) > 0
		}
		if ok {
			tests := "no match tests"
			if len(a.match) > 0 {
				tests = "every match test holds"
			}
			a.startDetail = "start " + a.Start.String() + ": " + tests
			a.endDetail = "end " + a.End.String() + ": " + tests
			p.Activities = append(p.Activities, a)
		}
	}
}

func (c *compiler) extension(p *Policy, n *yaml.Node) *Extension {
	what := "extension of policy " + p.Name
	o := c.mapping(n, what, extensionKeys)
	if o == nil {
		return nil
	}
	ext := &Extension{Timeout: DefaultExtensionTimeout}
	if v := o.val("url"); v == nil {
		c.errf(o.node, "%s has no url", what)
	} else if s, ok := c.setting(v, "url of "+what); ok {
		if !strings.Contains(s, "${") {
			u, err := url.Parse(s)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				c.errf(deref(v), "url of %s must be an http(s) URL, got %q", what, s)
			}
		}
		ext.URL = s
	}
	if v := o.val("timeout"); v != nil {
		if d, ok := c.duration(v, "timeout of "+what, false); ok {
			ext.Timeout = d
		}
	}
	return ext
}

func (c *compiler) onDisconnect(p *Policy, n *yaml.Node) *OnDisconnect {
	what := "on_disconnect of policy " + p.Name
	o := c.mapping(n, what, disconnectKeys)
	if o == nil {
		return nil
	}
	d := &OnDisconnect{Name: p.Name + "/on_disconnect"}
	ok := true
	if v := o.val("of"); v == nil {
		c.errf(o.node, "%s has no of; add of: <system whose agent console is watched>", what)
		ok = false
	} else if s, good := c.systemRef(v, what); !good {
		ok = false
	} else if console := s.vendor.AgentConsole; console == "" {
		var kinds []string
		for _, k := range connector.Kinds() {
			if v, _ := connector.Lookup(k); v.AgentConsole != "" {
				kinds = append(kinds, k)
			}
		}
		c.errf(deref(v), "%s: %s is a %s system, which has no agent console the service sees; of names a system of kind %s",
			what, s.name, s.kind, strings.Join(sortedStrings(kinds), " or "))
		ok = false
	} else {
		d.Of, d.console = s.name, console
	}
	if v := o.val("after"); v == nil {
		c.errf(o.node, "%s has no after; add after: <how long the console must be gone>, e.g. 2m", what)
		ok = false
	} else if after, good := c.duration(v, "after of "+what, false); !good {
		ok = false
	} else if after < MinDisconnectAfter {
		c.errf(deref(v), "after of %s is %s; it must be at least %s, so that a reload or a short network drop is not a disconnect",
			what, after, MinDisconnectAfter)
		ok = false
	} else {
		d.After = after
	}
	if v := o.val("set"); v == nil {
		c.errf(o.node, "%s has no set; add set: {<system>: <status>}", what)
		ok = false
	} else {
		d.Set, d.set = c.targets(v, "set of "+what)
		if d.Of != "" {
			if _, self := d.Set[d.Of]; self {
				c.errf(deref(v), "set of %s names %s, whose %s is what went away: the write would wait for it and land when the agent returns; set the other systems",
					what, d.Of, d.console)
				ok = false
			}
		}
		ok = ok && len(d.set) > 0
	}
	if !ok {
		return nil
	}
	return d
}

func sortedStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// index builds PolicyFor's lookups and reports policies that overlap with no winner.
func (c *compiler) index() {
	cfg := c.cfg
	cfg.byAgent, cfg.byTeam = map[string]*Policy{}, map[string]*Policy{}
	teamAt := map[string]appliesAt{}
	var everyone *appliesAt
	for i := range c.applies {
		at := &c.applies[i]
		c.file = at.file
		if at.agents == nil && at.teams == nil {
			if everyone != nil {
				c.errf(at.name, "policies %q and %q both apply to every agent; give one of them applies_to",
					everyone.p.Name, at.p.Name)
				continue
			}
			everyone = at
			cfg.everyone = at.p
			continue
		}
		for _, email := range at.p.AppliesTo.Agents {
			key := strings.ToLower(email)
			if prev, dup := cfg.byAgent[key]; dup {
				c.errf(at.agents[key], "policies %q and %q both name agent %s in applies_to; name an agent in one policy only",
					prev.Name, at.p.Name, email)
				continue
			}
			cfg.byAgent[key] = at.p
		}
		for _, team := range at.p.AppliesTo.Teams {
			if prev, dup := cfg.byTeam[team]; dup {
				c.errf(at.teams[team], "policies %q and %q both name team %s in applies_to; name a team in one policy only",
					prev.Name, at.p.Name, team)
				continue
			}
			cfg.byTeam[team] = at.p
			teamAt[team] = *at
		}
	}
	if cfg.Agents == nil {
		return
	}
	cfg.agentTeams = map[string][]string{}
	reported := map[[2]*Policy]bool{}
	rank := map[*Policy]int{}
	for i, p := range cfg.Policies {
		rank[p] = i
	}
	for _, a := range cfg.Agents {
		key := strings.ToLower(a.Email)
		cfg.agentTeams[key] = a.Teams
		if _, ok := cfg.byAgent[key]; ok {
			continue
		}
		var firstTeam string
		var first *Policy
		for _, t := range a.Teams {
			p, ok := cfg.byTeam[t]
			if !ok {
				continue
			}
			if first == nil {
				first, firstTeam = p, t
				continue
			}
			pair := [2]*Policy{first, p}
			if rank[p] < rank[first] {
				pair = [2]*Policy{p, first}
			}
			if p == first || reported[pair] {
				continue
			}
			reported[pair] = true
			at := teamAt[t]
			c.file = at.file
			c.errf(at.teams[t], "policies %q (team %s) and %q (team %s) both apply to agent %s and neither wins; "+
				"add a policy naming the agent, or change the teams", first.Name, firstTeam, p.Name, t, a.Email)
		}
	}
}
