package policy

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

var (
	topKeys     = []string{"version", "systems", "agents", "policies"}
	catalogKeys = []string{"id", "name", "label", "category", "settable", "system_presence"}
	accountKeys = []string{"id", "email", "name"}
	agentKeys   = []string{"email", "teams"}
	systemBase  = []string{"kind", "catalog", "accounts"}
)

// identifier is the shape of a system name: it appears in operands and CEL expressions.
var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// reservedNames cannot name a system: CEL keywords and the event variable.
var reservedNames = []string{"event", "in", "as", "break", "const", "continue", "else", "for", "function",
	"if", "import", "let", "loop", "package", "namespace", "return", "var", "void", "while", "true",
	"false", "null"}

// origin remembers where something was first defined, for "defined twice" messages.
type origin struct {
	file string
	line int
}

func (o origin) String() string { return fmt.Sprintf("%s:%d", o.file, o.line) }

type rawPolicy struct {
	file string
	node *yaml.Node
}

// build merges the parsed files into a Config, reporting every problem on the way.
func (l *loader) build(files []string, docs []fileDoc) *Config {
	cfg := &Config{Files: files, Systems: map[string]*System{}}
	sysOrigin := map[string]origin{}
	sysFile := map[string]string{}
	sysNode := map[string]*yaml.Node{}
	agentOrigin := map[string]origin{}
	var policies []rawPolicy
	for _, d := range docs {
		l.file = d.file
		top := l.mapping(d.root, "the policy file", topKeys)
		if top == nil {
			continue
		}
		l.version(top)
		if v := top.val("systems"); v != nil {
			if systems := l.mapping(v, "systems", nil); systems != nil {
				for _, e := range systems.entries {
					if first, dup := sysOrigin[e.key]; dup {
						l.errf(e.kn, "system %q is defined twice (first at %s)", e.key, first)
						continue
					}
					sysOrigin[e.key] = origin{l.file, e.kn.Line}
					if sys := l.system(e.key, e.kn, e.val); sys != nil {
						cfg.Systems[e.key] = sys
						sysFile[e.key], sysNode[e.key] = l.file, e.kn
					}
				}
			}
		}
		if v := top.val("agents"); v != nil {
			if cfg.Agents == nil {
				cfg.Agents = []Agent{}
			}
			items, _ := l.list(v, "agents")
			for _, it := range items {
				o := l.mapping(it, "agent", agentKeys)
				if o == nil {
					continue
				}
				email, ok := l.email(o, "agent")
				if !ok {
					continue
				}
				key := strings.ToLower(email)
				if first, dup := agentOrigin[key]; dup {
					l.errf(o.val("email"), "agent %s is listed twice (first at %s)", email, first)
					continue
				}
				agentOrigin[key] = origin{l.file, o.val("email").Line}
				a := Agent{Email: email}
				if t := o.val("teams"); t != nil {
					a.Teams = l.strList(t, "teams of agent "+email)
				}
				cfg.Agents = append(cfg.Agents, a)
			}
		}
		if v := top.val("policies"); v != nil {
			items, _ := l.list(v, "policies")
			for _, it := range items {
				policies = append(policies, rawPolicy{file: l.file, node: it})
			}
		}
	}
	for name := range cfg.Systems {
		cfg.SystemNames = append(cfg.SystemNames, name)
	}
	sortStrings(cfg.SystemNames)
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		if sys.Catalog != nil || l.opts.Catalog == nil || !contains(Kinds, sys.Kind) {
			continue
		}
		l.file = sysFile[name]
		statuses, err := l.opts.Catalog(sys)
		if err != nil {
			l.errf(sysNode[name], "cannot fetch the catalog of system %s: %v", name, err)
			continue
		}
		if statuses != nil {
			sys.Catalog = withOffline(sys.Kind, statuses)
		}
	}
	env, err := newEvalEnv(cfg)
	if err != nil {
		l.file = files[0]
		l.errAt(1, 1, "cannot prepare CEL expressions: %v", err)
		return nil
	}
	c := &compiler{loader: l, cfg: cfg, env: env, policyOrigin: map[string]origin{}}
	for _, rp := range policies {
		l.file = rp.file
		if p := c.policy(rp.node); p != nil {
			cfg.Policies = append(cfg.Policies, p)
		}
	}
	c.index()
	return cfg
}

func (l *loader) version(top *object) {
	e := top.get("version")
	if e == nil {
		l.errf(top.node, "missing \"version: 1\" (the policy format version)")
		return
	}
	v := deref(e.val)
	if v == nil || v.Kind != yaml.ScalarNode || v.Value != "1" {
		l.errf(firstNonNil(v, e.val), "unsupported version %s; this release reads \"version: 1\"", kindName(v))
	}
}

// system reads one entry of systems.
func (l *loader) system(name string, kn, n *yaml.Node) *System {
	ok := true
	if !identifier.MatchString(name) {
		l.errf(kn, "system name %q must be letters, digits and _ (it is used in operands and CEL expressions); try %q",
			name, identifierLike(name))
		ok = false
	} else if contains(reservedNames, name) {
		l.errf(kn, "system name %q is reserved in CEL expressions; pick another name", name)
		ok = false
	}
	what := "system " + name
	o := l.mapping(n, what, nil)
	if o == nil {
		return nil
	}
	sys := &System{Name: name, Settings: settings.Settings{}}
	if e := o.get("kind"); e == nil {
		l.errf(kn, "system %s has no kind; add kind: %s", name, strings.Join(Kinds, " | "))
		ok = false
	} else if k, good := l.str(e.val, "kind of "+what); good {
		if !contains(Kinds, k) {
			l.errf(e.val, "unknown system kind %q%s", k, hint(k, Kinds))
			ok = false
		} else {
			sys.Kind = k
		}
	} else {
		ok = false
	}
	for _, e := range o.entries {
		switch e.key {
		case "kind":
		case "catalog":
			sys.Catalog = l.catalog(sys, e.val)
		case "accounts":
			sys.Accounts = l.accounts(name, e.val)
		default:
			if sys.Kind == "" {
				continue // the kind is wrong; its keys cannot be checked
			}
			known := connectionKeys[sys.Kind]
			if !contains(known, e.key) {
				l.errf(e.kn, "unknown key %q in %s (kind %s)%s", e.key, what, sys.Kind,
					hint(e.key, append(append([]string{}, systemBase...), known...)))
				continue
			}
			if e.key == "auth" {
				if auth := l.auth(name, e.val); auth != nil {
					sys.Settings[e.key] = auth
				}
				continue
			}
			if v, good := l.setting(e.val, e.key+" of "+what); good {
				sys.Settings[e.key] = v
			}
		}
	}
	if !ok {
		return nil
	}
	return sys
}

func identifierLike(name string) string {
	var b strings.Builder
	for i, r := range name {
		switch {
		case r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || (i > 0 && r >= '0' && r <= '9'):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// setting reads one scalar connection setting, checking its ${ENV} references are well formed.
func (l *loader) setting(n *yaml.Node, what string) (string, bool) {
	v, ok := l.str(n, what)
	if !ok {
		return "", false
	}
	rest := v
	for _, ref := range settings.EnvRefs(v) {
		rest = strings.Replace(rest, "${"+ref+"}", "", 1)
	}
	if strings.Contains(rest, "${") {
		l.errf(deref(n), "%s has a malformed environment reference; write ${NAME} with letters, digits and _", what)
		return "", false
	}
	return v, true
}

// auth reads salesforce auth: {flow, …}.
func (l *loader) auth(system string, n *yaml.Node) settings.Settings {
	what := "auth of system " + system
	o := l.mapping(n, what, nil)
	if o == nil {
		return nil
	}
	flows := sortedKeys(authFlows)
	fe := o.get("flow")
	if fe == nil {
		l.errf(o.node, "%s has no flow; add flow: %s", what, strings.Join(flows, " | "))
		all := []string{"flow"}
		for _, f := range flows {
			for _, k := range authFlows[f] {
				if !contains(all, k) {
					all = append(all, k)
				}
			}
		}
		for _, e := range o.entries {
			if !contains(all, e.key) {
				l.errf(e.kn, "unknown key %q in %s%s", e.key, what, hint(e.key, all))
			}
		}
		return nil
	}
	flow, ok := l.str(fe.val, "flow of "+what)
	if !ok {
		return nil
	}
	keys, ok := authFlows[flow]
	if !ok {
		l.errf(deref(fe.val), "unknown auth flow %q%s", flow, hint(flow, flows))
		return nil
	}
	out := settings.Settings{"flow": flow}
	known := append([]string{"flow"}, keys...)
	for _, e := range o.entries {
		if e.key == "flow" {
			continue
		}
		if !contains(known, e.key) {
			l.errf(e.kn, "unknown key %q in %s (flow %s)%s", e.key, what, flow, hint(e.key, known))
			continue
		}
		if v, good := l.setting(e.val, e.key+" of "+what); good {
			out[e.key] = v
		}
	}
	for _, k := range keys {
		if o.get(k) == nil {
			l.errf(o.node, "%s (flow %s) is missing %s", what, flow, k)
		}
	}
	return out
}

// catalog reads an inline catalog.
func (l *loader) catalog(sys *System, n *yaml.Node) *Catalog {
	items, ok := l.list(n, "catalog of system "+sys.Name)
	if !ok {
		return nil
	}
	var statuses []presence.Status
	ids, names := map[string]int{}, map[string]int{}
	for _, it := range items {
		o := l.mapping(it, "catalog entry", catalogKeys)
		if o == nil {
			continue
		}
		var st presence.Status
		nameNode := o.val("name")
		if nameNode == nil {
			l.errf(o.node, "catalog entry of system %s has no name", sys.Name)
			continue
		}
		name, good := l.str(nameNode, "status name")
		if !good {
			continue
		}
		st.Name, st.ID, st.Label = name, name, name
		idNode := nameNode
		if v := o.val("id"); v != nil {
			if id, good := l.str(v, "status id"); good {
				st.ID, idNode = id, deref(v)
			}
		}
		if v := o.val("label"); v != nil {
			if lbl, good := l.str(v, "status label"); good {
				st.Label = lbl
			}
		}
		if v := o.val("category"); v != nil {
			if c, good := l.str(v, "status category"); good {
				if !presence.Category(c).Valid() {
					l.errf(deref(v), "unknown category %q for status %s%s", c, name, hint(c, categoryNames()))
				}
				st.Category = presence.Category(c)
			}
		}
		if v := o.val("system_presence"); v != nil {
			if sp, good := l.str(v, "system presence"); good {
				if sys.Kind != KindGenesys {
					l.errf(deref(v), "system_presence applies to genesys statuses only, not to %s's", sys.Kind)
				}
				st.SystemPresence = sp
			}
		}
		st.Settable = st.Category != presence.CategorySystem
		if v := o.val("settable"); v != nil {
			if d := deref(v); d == nil || d.Kind != yaml.ScalarNode || (d.Value != "true" && d.Value != "false") {
				l.errf(firstNonNil(d, v), "settable of status %s must be true or false, got %s", name, kindName(d))
			} else {
				st.Settable = d.Value == "true"
			}
		}
		if sys.Kind == KindSalesforce {
			if st.ID == salesforceOffline.ID && st.Name != salesforceOffline.Name {
				l.errf(idNode, "status id \"0\" is Salesforce's Offline; name it Offline")
				continue
			}
			if st.Name == salesforceOffline.Name && st.ID != salesforceOffline.ID && o.val("id") != nil {
				l.errf(idNode, "Salesforce's Offline status has id \"0\"")
				continue
			}
			if st.Name == salesforceOffline.Name {
				st.ID = salesforceOffline.ID
			}
		}
		if line, dup := ids[st.ID]; dup {
			l.errf(idNode, "status id %q appears twice in the catalog of system %s (first on line %d)", st.ID, sys.Name, line)
			continue
		}
		if line, dup := names[st.Name]; dup {
			l.errf(deref(nameNode), "status %q appears twice in the catalog of system %s (first on line %d)", st.Name, sys.Name, line)
			continue
		}
		ids[st.ID], names[st.Name] = idNode.Line, deref(nameNode).Line
		statuses = append(statuses, st)
	}
	return withOffline(sys.Kind, statuses)
}

// withOffline indexes statuses, adding Salesforce's reserved Offline when it is missing.
func withOffline(kind string, statuses []presence.Status) *Catalog {
	if kind == KindSalesforce {
		found := false
		for _, s := range statuses {
			found = found || s.ID == salesforceOffline.ID
		}
		if !found {
			statuses = append(statuses, salesforceOffline)
		}
	}
	return NewCatalog(statuses)
}

func categoryNames() []string {
	out := make([]string, len(presence.Categories))
	for i, c := range presence.Categories {
		out[i] = string(c)
	}
	return out
}

// accounts reads inline accounts.
func (l *loader) accounts(system string, n *yaml.Node) []presence.Account {
	items, ok := l.list(n, "accounts of system "+system)
	if !ok {
		return nil
	}
	out := []presence.Account{}
	ids, emails := map[string]int{}, map[string]int{}
	for _, it := range items {
		o := l.mapping(it, "account", accountKeys)
		if o == nil {
			continue
		}
		email, ok := l.email(o, "account")
		idNode := o.val("id")
		if idNode == nil {
			l.errf(o.node, "account of system %s has no id", system)
			continue
		}
		id, good := l.str(idNode, "account id")
		if !ok || !good {
			continue
		}
		a := presence.Account{ID: id, Email: email}
		if v := o.val("name"); v != nil {
			a.Name, _ = l.str(v, "account name")
		}
		if line, dup := ids[id]; dup {
			l.errf(deref(idNode), "account id %q appears twice in system %s (first on line %d)", id, system, line)
			continue
		}
		key := strings.ToLower(email)
		if line, dup := emails[key]; dup {
			l.errf(deref(o.val("email")), "account email %s appears twice in system %s (first on line %d)", email, system, line)
			continue
		}
		ids[id], emails[key] = deref(idNode).Line, deref(o.val("email")).Line
		out = append(out, a)
	}
	return out
}

// email reads and checks the email key of o.
func (l *loader) email(o *object, what string) (string, bool) {
	v := o.val("email")
	if v == nil {
		l.errf(o.node, "%s has no email", what)
		return "", false
	}
	s, ok := l.str(v, what+" email")
	if !ok {
		return "", false
	}
	if at := strings.IndexByte(s, '@'); at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t") {
		l.errf(deref(v), "%q is not an email address", s)
		return "", false
	}
	return s, true
}

func sortStrings(s []string) { sort.Strings(s) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
