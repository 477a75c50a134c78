package policy

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

var (
	topKeys     = []string{"version", "systems", "agents", "policies"}
	catalogKeys = []string{"id", "name", "label", "category", "settable", "system_presence"}
	accountKeys = []string{"id", "email", "name", "teams"}
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
				l.agentNodes = append(l.agentNodes, placed{file: l.file, node: deref(o.val("email")), what: email})
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
	if l.opts.Remote != nil {
		l.remoteSystems(cfg, sysFile, sysNode)
	}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		if sys.Catalog != nil || l.opts.Catalog == nil {
			continue
		}
		l.file = sysFile[name]
		statuses, err := l.opts.Catalog(sys)
		if err != nil {
			l.errf(sysNode[name], "cannot fetch the catalog of system %s: %v", name, err)
			continue
		}
		if statuses != nil {
			sys.Catalog, sys.pulled = withOffline(sys.Vendor, statuses), true
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
	for _, name := range cfg.SystemNames {
		if accts := cfg.Systems[name].Accounts; accts != nil {
			cfg.SetAccountTeams(name, accts)
		}
	}
	if l.opts.Remote != nil {
		l.checkAgentsHaveAccounts(cfg, c.applies)
	}
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
	kinds := connector.Kinds()
	sys := &System{Name: name, Settings: settings.Settings{}}
	if e := o.get("kind"); e == nil {
		l.errf(kn, "system %s has no kind; add kind: %s", name, strings.Join(kinds, " | "))
		ok = false
	} else if k, good := l.str(e.val, "kind of "+what); good {
		if v, found := connector.Lookup(k); !found {
			l.errf(e.val, "unknown system kind %q%s", k, hint(k, kinds))
			ok = false
		} else {
			sys.Kind, sys.Vendor = k, v
		}
	} else {
		ok = false
	}
	// nodes remembers where each connection setting is, by dotted key, for the vendor's checks.
	nodes := map[string]*yaml.Node{}
	for _, e := range o.entries {
		switch e.key {
		case "kind":
		case "catalog":
			if sys.Vendor != nil {
				sys.Catalog = l.catalog(sys, e.val)
			}
		case "accounts":
			sys.Accounts = l.accounts(name, e.val)
		default:
			if sys.Vendor == nil {
				continue // the kind is wrong; its keys cannot be checked
			}
			if v, good := l.settingValue(sys, sys.Vendor.Settings, e, "", nodes); good {
				sys.Settings[e.key] = v
			}
		}
	}
	if !ok {
		return nil
	}
	if sys.Connected() {
		l.checkSettings(sys, kn, nodes)
	}
	return sys
}

// settingValue reads one connection setting of sys declared in decl (a scalar, or a nested
// mapping of further settings) and records its node under its dotted key.
func (l *loader) settingValue(sys *System, decl []connector.Setting, e *entry, prefix string, nodes map[string]*yaml.Node) (any, bool) {
	key := prefix + e.key
	where := "system " + sys.Name + " (kind " + sys.Kind + ")"
	if prefix != "" {
		where = strings.TrimSuffix(prefix, ".") + " of system " + sys.Name
	}
	var d *connector.Setting
	for i := range decl {
		if decl[i].Key == e.key {
			d = &decl[i]
		}
	}
	if d == nil {
		known := make([]string, 0, len(decl)+len(systemBase))
		if prefix == "" {
			known = append(known, systemBase...)
		}
		for _, x := range decl {
			known = append(known, x.Key)
		}
		l.errf(e.kn, "unknown key %q in %s%s", e.key, where, hint(e.key, known))
		return nil, false
	}
	nodes[key] = deref(e.val)
	if d.Keys == nil {
		return l.setting(e.val, key+" of system "+sys.Name)
	}
	o := l.mapping(e.val, key+" of system "+sys.Name, nil)
	if o == nil {
		return nil, false
	}
	out := settings.Settings{}
	good := true
	for _, sub := range o.entries {
		if v, ok := l.settingValue(sys, d.Keys, sub, key+".", nodes); ok {
			out[sub.key] = v
		} else {
			good = false
		}
	}
	for _, x := range d.Keys {
		if x.Required && o.get(x.Key) == nil {
			l.errf(o.node, "%s of system %s is missing %s%s", key, sys.Name, x.Key, docHint(x))
			good = false
		}
	}
	return out, good
}

func docHint(s connector.Setting) string {
	if s.Doc == "" {
		return ""
	}
	return ": " + s.Doc
}

// checkSettings reports the required settings sys lacks and what the vendor's own checks find,
// each at the setting it is about.
func (l *loader) checkSettings(sys *System, kn *yaml.Node, nodes map[string]*yaml.Node) {
	missing := false
	for _, d := range sys.Vendor.Settings {
		if d.Required && sys.Settings[d.Key] == nil && nodes[d.Key] == nil {
			l.errf(kn, "system %s (kind %s) is missing %s%s", sys.Name, sys.Kind, d.Key, docHint(d))
			missing = true
		}
	}
	if missing || sys.Vendor.Check == nil {
		return
	}
	for _, p := range sys.Vendor.Check(sys.Settings) {
		at := kn
		for key := p.Key; key != ""; {
			if n := nodes[key]; n != nil {
				at = n
				break
			}
			i := strings.LastIndexByte(key, '.')
			if i < 0 {
				break
			}
			key = key[:i]
		}
		l.errf(at, "system %s: %s", sys.Name, p.Message)
	}
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
				if !slices.Contains(sys.Vendor.Catalog.StatusKeys, "system_presence") {
					l.errf(deref(v), "system_presence does not apply to %s statuses", sys.Kind)
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
		if off := sys.Vendor.Catalog.Offline; off != nil {
			if st.ID == off.ID && st.Name != off.Name {
				l.errf(idNode, "status id %q is %s's %s; name it %s", off.ID, sys.Vendor.Title, off.Name, off.Name)
				continue
			}
			if st.Name == off.Name && st.ID != off.ID && o.val("id") != nil {
				l.errf(idNode, "%s's %s status has id %q", sys.Vendor.Title, off.Name, off.ID)
				continue
			}
			if st.Name == off.Name {
				st.ID = off.ID
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
		l.statusNodes[sys.Name] = append(l.statusNodes[sys.Name], placed{file: l.file, node: idNode, what: st.ID})
	}
	return withOffline(sys.Vendor, statuses)
}

// withOffline indexes statuses, adding the vendor's reserved Offline status when it is missing.
func withOffline(v *connector.Vendor, statuses []presence.Status) *Catalog {
	if off := v.Catalog.Offline; off != nil && !slices.ContainsFunc(statuses, func(s presence.Status) bool { return s.ID == off.ID }) {
		statuses = append(statuses, *off)
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
		if v := o.val("teams"); v != nil {
			a.Teams = l.strList(v, "teams of account "+id)
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
		l.accountNodes[system] = append(l.accountNodes[system], placed{file: l.file, node: deref(idNode), what: id})
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
