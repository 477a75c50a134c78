package connector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Vendor is everything the rest of the program knows about one kind of system, in one value that
// the vendor's own package builds and internal/vendors registers: the connection settings and
// their checks, the fixed facts of the vendor's status catalog, the operands its events offer to
// rules, and how to connect. Policy loading, validation, the engine and the CLI ask the registry
// (Lookup) and never branch on a kind.
//
// A vendor package exports its Vendor (for example genesys.Vendor) and never registers itself;
// internal/vendors/vendors.go holds one registration line per vendor, with its simulator.
type Vendor struct {
	// Kind is how policy files name the vendor ("genesys"): lower-case letters.
	Kind string
	// Title is the vendor's name in messages ("Genesys Cloud").
	Title string
	// Settings are the connection keys a system of this kind accepts, in documentation order.
	// Loading a policy rejects other keys, reports missing required ones and fills defaults.
	Settings []Setting
	// Check validates the settings beyond what Settings declare (one of two keys, URL shapes,
	// the keys an auth flow needs), without the network. It sees the settings as written: a
	// value that references the environment or a file is checked only where Literal says it is
	// known. It runs again on the resolved settings before Open. Nil when Settings say it all.
	Check func(s settings.Settings) []Problem
	// Catalog holds the fixed facts of the vendor's status catalog.
	Catalog CatalogFacts
	// Operands are what the vendor's events offer to rule tests and CEL expressions besides
	// new_state and old_state, which every kind has.
	Operands []Operand
	// Extension, when not nil, is the side this vendor plays in a policy's extension webhook
	// (the Genesys CX Cloud status-sync contract).
	Extension *ExtensionSide
	// AgentConsole, when not empty, names the agent console whose connects and disconnects the
	// service sees (a policy's on_disconnect may watch it): "Omni-Channel bridge (the agent's
	// Salesforce console)".
	AgentConsole string
	// Open connects one system. Nil when this build describes the kind (policies naming it
	// validate and simulate) but cannot connect it.
	Open Factory
}

// Setting is one connection key of a vendor.
type Setting struct {
	// Key is the key in the policy file ("client_secret").
	Key string
	// Doc says what the value is, for the docs and messages.
	Doc string
	// Required settings must be present.
	Required bool
	// Secret values are never logged and should come from ${ENV} or file: references.
	Secret bool
	// Default is used when the key is absent (empty for none).
	Default string
	// Keys, when not nil, makes the setting a nested mapping of these keys (Salesforce auth).
	Keys []Setting
}

// Problem is one thing wrong with a system's settings.
type Problem struct {
	// Key is the setting at fault, dotted when nested ("auth.username"); empty for the system
	// as a whole. Diagnostics point at that key, or at its nearest parent that is present.
	Key string
	// Message is a sentence that names the setting and, where possible, the fix.
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// CatalogFacts are what holds for every catalog of a vendor.
type CatalogFacts struct {
	// SystemStates are statuses the vendor enters on its own and refuses to have set (Connect
	// AfterCallWork, Genesys Idle). Policies may test them but never target them.
	SystemStates []string
	// SystemStatePhrase names one of them in a diagnostic: "a Connect system state".
	SystemStatePhrase string
	// Offline, when the vendor reserves a status for "logged out" (Salesforce's id "0"), is that
	// status. Every catalog of the kind holds it, policies may name it without a catalog, a
	// logout event means the agent shows it, and setting it logs the agent out, which the
	// vendor reports as a logout. Nil otherwise: a logout then means the catalog's "Offline".
	Offline *presence.Status
	// StatusKeys are the catalog entry keys only this vendor has ("system_presence").
	StatusKeys []string
}

// IsSystemState reports whether name is one of the vendor's system states.
func (c CatalogFacts) IsSystemState(name string) bool { return slices.Contains(c.SystemStates, name) }

// OperandType is the type of an operand's value.
type OperandType int

// The operand types. Int and Double compare numerically, Text as strings.
const (
	Text OperandType = iota
	Int
	Double
)

// Operand is one value a vendor's events offer to rules: "<system>.<Name>" in structured tests
// and CEL expressions. For an event of another system it is "" or 0.
type Operand struct {
	// Name is lower_snake_case ("new_workload_pct").
	Name string
	// Type is the value's type.
	Type OperandType
	// Doc says what the value is.
	Doc string
	// Text reads a Text operand from an event; Number reads an Int or Double one.
	Text   func(ev presence.Event) string
	Number func(ev presence.Event) float64
}

// ExtensionSide is how a vendor appears in the extension webhook's JSON (the Genesys CX Cloud
// "enhanced status sync" contract): the request carries, per side, {"currentStatus": …,
// "targetStatus": …}; the answer carries {"targetStatus": {IDKey: "<id>"}}.
type ExtensionSide struct {
	// Key is the side's key in the request and the answer ("genesysCloudStatus").
	Key string
	// IDKey names the status id inside the answer's targetStatus ("id").
	IDKey string
	// Status renders one status of the vendor as the contract shows it; empty values are left
	// out.
	Status func(s presence.Status) map[string]string
}

var (
	regMu   sync.RWMutex
	vendors []*Vendor
)

// Register adds a vendor to the registry; internal/vendors calls it once per vendor. A kind
// registered twice, or a vendor without kind, panics: both are programming errors.
func Register(v Vendor) {
	regMu.Lock()
	defer regMu.Unlock()
	if v.Kind == "" {
		panic("connector: Register of a vendor without Kind")
	}
	for _, have := range vendors {
		if have.Kind == v.Kind {
			panic("connector: kind registered twice: " + v.Kind)
		}
	}
	vendors = append(vendors, &v)
}

// Lookup returns the registered vendor of kind.
func Lookup(kind string) (*Vendor, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	for _, v := range vendors {
		if v.Kind == kind {
			return v, true
		}
	}
	return nil, false
}

// Kinds lists the registered kinds in registration order.
func Kinds() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	out := make([]string, len(vendors))
	for i, v := range vendors {
		out[i] = v.Kind
	}
	return out
}

// Setting returns the setting of a dotted key ("auth.flow").
func (v *Vendor) Setting(key string) (Setting, bool) {
	list := v.Settings
	parts := strings.Split(key, ".")
	for i, p := range parts {
		j := slices.IndexFunc(list, func(s Setting) bool { return s.Key == p })
		if j < 0 {
			return Setting{}, false
		}
		if i == len(parts)-1 {
			return list[j], true
		}
		list = list[j].Keys
	}
	return Setting{}, false
}

// Problems checks settings against the vendor: unknown keys, missing required keys, nested
// mappings, then Check. Loading a policy makes the same checks with positions in the file.
func (v *Vendor) Problems(s settings.Settings) []Problem {
	out := structural(v.Settings, s, "")
	if len(out) == 0 && v.Check != nil {
		out = append(out, v.Check(s)...)
	}
	return out
}

func structural(decl []Setting, s settings.Settings, prefix string) []Problem {
	var out []Problem
	for key := range s {
		if !slices.ContainsFunc(decl, func(d Setting) bool { return d.Key == key }) {
			out = append(out, Problem{Key: prefix + key, Message: fmt.Sprintf("unknown key %q", key)})
		}
	}
	for _, d := range decl {
		raw, present := s[d.Key]
		if lit, known := s.Literal(d.Key); known && d.Keys == nil && strings.TrimSpace(lit) == "" {
			present = false
		}
		if !present || raw == nil {
			if d.Required {
				out = append(out, Problem{Key: strings.TrimSuffix(prefix, "."), Message: "missing " + prefix + d.Key})
			}
			continue
		}
		if d.Keys != nil {
			sub := s.Sub(d.Key)
			if sub == nil {
				out = append(out, Problem{Key: prefix + d.Key, Message: prefix + d.Key + " must be a mapping"})
				continue
			}
			out = append(out, structural(d.Keys, sub, prefix+d.Key+".")...)
		}
	}
	slices.SortFunc(out, func(a, b Problem) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// WithDefaults returns a copy of s with every absent setting that has a default filled in.
func (v *Vendor) WithDefaults(s settings.Settings) settings.Settings {
	return withDefaults(v.Settings, s)
}

func withDefaults(decl []Setting, s settings.Settings) settings.Settings {
	out := settings.Settings{}
	for k, val := range s {
		out[k] = val
	}
	for _, d := range decl {
		if _, ok := out[d.Key]; !ok && d.Default != "" {
			out[d.Key] = d.Default
		}
		if d.Keys != nil {
			if sub := s.Sub(d.Key); sub != nil {
				out[d.Key] = withDefaults(d.Keys, sub)
			}
		}
	}
	return out
}

// ErrNoConnector says this build describes a kind but cannot connect it.
var ErrNoConnector = errors.New("this build has no connector for the kind")

// Connect opens the system called name: it fills the vendor's defaults, resolves ${ENV} and
// file: references, checks the result (Problems) and calls Open. Every error names the system.
func (v *Vendor) Connect(ctx context.Context, name string, s settings.Settings, deps Deps) (Connector, error) {
	if v.Open == nil {
		return nil, fmt.Errorf("system %s: %w %s", name, ErrNoConnector, v.Kind)
	}
	resolved, err := v.WithDefaults(s).Resolve()
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", name, err)
	}
	if ps := v.Problems(resolved); len(ps) > 0 {
		msgs := make([]string, len(ps))
		for i, p := range ps {
			msgs[i] = p.String()
		}
		return nil, fmt.Errorf("system %s: %s", name, strings.Join(msgs, "; "))
	}
	c, err := v.Open(ctx, name, resolved, deps)
	if err != nil {
		return nil, fmt.Errorf("system %s: %w", name, err)
	}
	return c, nil
}
