package policy

import (
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// remoteSystems asks Options.Remote what every system holds at its vendor: a system without an
// inline catalog takes the remote one; an inline catalog and inline accounts are checked
// against the remote ones.
func (l *loader) remoteSystems(cfg *Config, sysFile map[string]string, sysNode map[string]*yaml.Node) {
	l.remote = map[string]Remote{}
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		l.file = sysFile[name]
		r, err := l.opts.Remote(sys)
		if err != nil {
			msg := err.Error()
			if !strings.HasPrefix(msg, "system "+name+": ") {
				msg = "system " + name + ": " + msg
			}
			l.errf(sysNode[name], "%s", msg)
			continue
		}
		l.remote[name] = r
		if r.Catalog != nil {
			if sys.Catalog == nil {
				sys.Catalog, sys.pulled = withOffline(sys.Vendor, r.Catalog), true
			} else {
				l.checkInlineCatalog(sys, withOffline(sys.Vendor, r.Catalog))
			}
		}
		if r.Accounts != nil && sys.Accounts != nil {
			l.checkInlineAccounts(sys, r.Accounts)
		}
	}
}

// checkInlineCatalog reports inline statuses the vendor does not have, has under another name,
// or does not let anyone set.
func (l *loader) checkInlineCatalog(sys *System, remote *Catalog) {
	var names []string
	for _, s := range remote.Statuses() {
		names = append(names, s.Name)
	}
	for _, p := range l.statusNodes[sys.Name] {
		l.file = p.file
		st, _ := sys.Catalog.ByID(p.what)
		got, ok := remote.ByID(st.ID)
		switch {
		case !ok:
			if byName, found := remote.ByName(st.Name); found {
				l.errf(p.node, "status %q of %s has id %q at the vendor, not %q", st.Name, sys.Name, byName.ID, st.ID)
			} else {
				l.errf(p.node, "status %q (id %q) is not in %s's catalog at the vendor%s", st.Name, st.ID, sys.Name, didYouMean(st.Name, names))
			}
		case got.Name != st.Name:
			l.errf(p.node, "status id %q of %s is named %q at the vendor, not %q", st.ID, sys.Name, got.Name, st.Name)
		case st.Settable && !got.Settable:
			l.errf(p.node, "status %q of %s cannot be set at the vendor; mark it settable: false or category: system", st.Name, sys.Name)
		}
	}
}

// checkInlineAccounts reports inline accounts the vendor does not have, or has with another
// email.
func (l *loader) checkInlineAccounts(sys *System, remote []presence.Account) {
	byID := map[string]presence.Account{}
	for _, a := range remote {
		byID[a.ID] = a
	}
	mine := map[string]presence.Account{}
	for _, a := range sys.Accounts {
		mine[a.ID] = a
	}
	for _, p := range l.accountNodes[sys.Name] {
		l.file = p.file
		a := mine[p.what]
		got, ok := byID[a.ID]
		switch {
		case !ok:
			l.errf(p.node, "account %q of %s does not exist at the vendor", a.ID, sys.Name)
		case got.Email != "" && !strings.EqualFold(got.Email, a.Email):
			l.errf(p.node, "account %q of %s belongs to %s at the vendor, not %s", a.ID, sys.Name, got.Email, a.Email)
		}
	}
}

// checkAgentsHaveAccounts reports agents of the directory, and agents named in applies_to,
// that have an account in no system, when every system's accounts are known.
func (l *loader) checkAgentsHaveAccounts(cfg *Config, applies []appliesAt) {
	known := map[string]bool{}
	for _, name := range cfg.SystemNames {
		accts := cfg.Systems[name].Accounts
		if accts == nil {
			accts = l.remote[name].Accounts
		}
		if accts == nil {
			return // some system's accounts are unknown: nothing can be concluded
		}
		for _, a := range accts {
			known[strings.ToLower(a.Email)] = true
		}
	}
	report := func(p placed) {
		if !known[strings.ToLower(p.what)] {
			l.file = p.file
			l.errf(p.node, "agent %s has an account in no system (%s)", p.what, strings.Join(cfg.SystemNames, ", "))
		}
	}
	for _, p := range l.agentNodes {
		report(p)
	}
	if cfg.Agents != nil {
		return // applies_to names only directory agents, checked above
	}
	for _, at := range applies {
		for email, n := range at.agents {
			report(placed{file: at.file, node: n, what: email})
		}
	}
}
