// Package policy loads, validates, compiles and evaluates policy files (format version 1,
// CONTRACTS.md "Policy files"). Loading reports every problem at once with file, line and column;
// evaluation is pure: an event and the agent's current statuses in, intents and an explanation out.
// What a policy may say about a system of a kind (its settings, system states, operands) comes
// from the vendor registry (connector.Lookup); the package knows no vendor.
//
// Semantics the format leaves open are fixed here:
//   - a folder's files are read in name order and merged; every file says "version: 1";
//   - a catalog entry without id uses its name as id; the catalog of a vendor that reserves an
//     Offline status (Salesforce's id "0") always holds it, and a system without a catalog
//     still knows it;
//   - a logout means the system's status is Offline, so "<system>.new_state" is "Offline";
//   - structured tests compare numbers when both sides parse as numbers, otherwise text, exactly;
//   - CEL tests see one variable per system (new_state, old_state and the operands of its
//     vendor, connector.Vendor.Operands, typed as the vendor says) and "event" (type, system,
//     status, data); ints and doubles compare with each other;
//     a CEL error or an exceeded cost limit at run time means the rule does not match;
//   - activity match tests treat a JSON null like an absent field;
//   - an extension without timeout waits DefaultExtensionTimeout.
package policy

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Diagnostic is one problem found while loading, positioned in its file.
type Diagnostic struct {
	File    string
	Line    int
	Col     int
	Message string
}

// String is "FILE:LINE:COL: message", or "FILE: message" for a problem of the file as a whole
// (Line 0: it cannot be read), which has no position to point at.
func (d Diagnostic) String() string {
	if d.Line == 0 {
		return fmt.Sprintf("%s: %s", d.File, d.Message)
	}
	return fmt.Sprintf("%s:%d:%d: %s", d.File, d.Line, d.Col, d.Message)
}

// Diagnostics is every problem of a load; it is the error Load returns.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	lines := make([]string, len(ds))
	for i, d := range ds {
		lines[i] = d.String()
	}
	return strings.Join(lines, "\n")
}

// Options tune Load.
type Options struct {
	// Catalog is asked for the statuses of a system that has no inline catalog (serve pulls them
	// from the vendor). When nil, or when it returns nil, status names of that system are not
	// checked beyond the vendor's well-known unsettable states.
	Catalog func(sys *System) ([]presence.Status, error)
	// Remote, when set (validate --online), is asked what a system holds at its vendor. A
	// system without an inline catalog takes the remote one, as with Catalog; an inline catalog
	// and inline accounts are checked against the remote ones, and every agent of the agents
	// directory (or named in applies_to) must have an account somewhere. A nil Catalog or
	// Accounts of the answer is not checked.
	Remote func(sys *System) (Remote, error)
}

// Remote is what a system holds at its vendor.
type Remote struct {
	Catalog  []presence.Status
	Accounts []presence.Account
}

// Config is a loaded, valid policy configuration.
type Config struct {
	// Files are the files read, in load order.
	Files []string
	// Systems by name; SystemNames lists them sorted.
	Systems     map[string]*System
	SystemNames []string
	// Agents is the optional directory; nil when the files have none (accounts link by email).
	Agents []Agent
	// Policies in file order.
	Policies []*Policy
	// Who gets which policy (see PolicyFor); keys are lower-case emails.
	everyone   *Policy
	byAgent    map[string]*Policy
	byTeam     map[string]*Policy
	agentTeams map[string][]string
	// accountTeams are the teams systems' accounts carry (inline, or pulled from the vendor:
	// CXone's teams), by system and lower-case email; see SetAccountTeams.
	teamsMu      sync.RWMutex
	accountTeams map[string]map[string][]string
}

// System is one configured platform instance.
type System struct {
	Name string
	Kind string
	// Vendor is the registered vendor of Kind.
	Vendor *connector.Vendor
	// Settings are the connection settings as written (references unresolved); empty when the
	// policy gives none (see Connected).
	Settings settings.Settings
	// Catalog is the inline or pulled catalog; nil when neither exists.
	Catalog *Catalog
	// Accounts are the inline accounts; nil when absent (pulled from the vendor).
	Accounts []presence.Account
	// pulled is true when Catalog came from the vendor.
	pulled bool
}

// OfflineLogsOut reports whether showing Offline means the agent logged out of the system (its
// vendor reserves an Offline status, as Salesforce Omni-Channel does): then a reading of
// Offline is a logout.
func (s *System) OfflineLogsOut() bool { return s.Vendor != nil && s.Vendor.Catalog.Offline != nil }

// Connected reports whether the policy gives the system connection settings. A system without
// any is known only through its inline catalog and accounts: simulate runs it, and serve takes
// its events from the webhook and holds its writes.
func (s *System) Connected() bool { return len(s.Settings) > 0 }

// Agent is one entry of the agents directory.
type Agent struct {
	Email string
	Teams []string
}

// AppliesTo selects a policy's agents; empty means every agent.
type AppliesTo struct {
	Teams  []string
	Agents []string
}

// Policy is one compiled policy.
type Policy struct {
	Name      string
	AppliesTo AppliesTo
	// Master is the system whose cause wins a conflict inside the same instant; "" for none.
	Master string
	// Debounce is how long desired state must settle before it is written.
	Debounce   time.Duration
	Maps       []*Map
	Rules      []*Rule
	Activities []*Activity
	// Extension is the optional CX Cloud-style webhook; nil when absent.
	Extension *Extension
	// OnDisconnect says what to set when an agent's console has been gone a while; nil when
	// absent.
	OnDisconnect *OnDisconnect
	// env is what evaluation knows about the configured systems.
	env *evalEnv
	// steps is, per event system, how many steps an evaluation can explain at most.
	steps map[string]int
}

// Map is one per-direction state map.
type Map struct {
	From, To string
	// Name is how explain and simulate name it: "<policy>/map <from> -> <to>".
	Name string
	// byID and byName index a source status (by id, then by name) into targets.
	byID, byName map[string]int
	targets      []mapTarget
}

// mapTarget is one target of a map with its precomputed explanation.
type mapTarget struct {
	status presence.Status
	detail string
}

func newMap(policy, from, to string) *Map {
	return &Map{From: from, To: to, Name: policy + "/map " + from + " -> " + to,
		byID: map[string]int{}, byName: map[string]int{}}
}

// add maps src to dst; a source status without id is found by name only.
func (m *Map) add(src, dst presence.Status) {
	i := len(m.targets)
	m.targets = append(m.targets, mapTarget{status: dst, detail: src.Name + " -> " + dst.Name})
	if src.ID != "" {
		m.byID[src.ID] = i
	}
	m.byName[src.Name] = i
}

// Lookup returns the target for a source status.
func (m *Map) Lookup(src presence.Status) (presence.Status, bool) {
	if i, ok := m.find(src); ok {
		return m.targets[i].status, true
	}
	return presence.Status{}, false
}

// Len is the number of source statuses the map knows.
func (m *Map) Len() int { return len(m.targets) }

func (m *Map) find(src presence.Status) (int, bool) {
	if src.ID != "" {
		if i, ok := m.byID[src.ID]; ok {
			return i, true
		}
	}
	i, ok := m.byName[src.Name]
	return i, ok
}

// Trigger is "<system>.<event type>".
type Trigger struct {
	System string
	Type   presence.EventType
}

func (t Trigger) String() string { return t.System + "." + string(t.Type) }

// Rule is one compiled conditional rule (Amazon Connect CTI model).
type Rule struct {
	// Name is "<policy>/rule <name>".
	Name string
	On   Trigger
	// Set maps target systems to statuses.
	Set map[string]presence.Status
	// When is the test as written ("" when the rule has none and always matches).
	When string
	cond *condition
	// set is Set in file order.
	set []target
	// notOn and always are the precomputed explanations of a rule whose trigger does not
	// match the event and of a rule without a test.
	notOn, always string
}

// Activity is one compiled activity rule (Genesys Communicate model).
type Activity struct {
	// Name is "<policy>/activity <name>".
	Name       string
	Start, End Trigger
	// Set maps target systems to overlay statuses.
	Set   map[string]presence.Status
	match []matchTest
	// startDetail and endDetail explain a hit.
	startDetail, endDetail string
}

// Extension is the CX Cloud-style status webhook of a policy.
type Extension struct {
	URL     string
	Timeout time.Duration
}

// MinDisconnectAfter is the shortest on_disconnect after: a reload, or a network drop the
// bridge recovers from, must not count as the console going away.
const MinDisconnectAfter = 30 * time.Second

// OnDisconnect is what a policy sets once an agent's console of system Of has been gone for
// After. The service reports that as a console_disconnected event of Of whose data "after" is
// the duration gone (and "since" when it went away); the intents' cause time is since + after.
type OnDisconnect struct {
	// Name is "<policy>/on_disconnect".
	Name  string
	Of    string
	After time.Duration
	// Set maps target systems to statuses.
	Set map[string]presence.Status
	// set is Set in file order; console names what went away, for explanations.
	set     []target
	console string
}

// Input is what Evaluate looks at for one event.
type Input struct {
	// Event is the normalized event; its Agent is the agent's email.
	Event presence.Event
	// New is the event system's status after the event, Old before it (zero when unknown or
	// when the event does not change status).
	New, Old presence.Status
	// Current is every system's observed status before the event (zero value when unknown).
	Current map[string]presence.Status
}

// Evaluation is the outcome of one event under one policy.
type Evaluation struct {
	// Intents hold at most one entry per target system (the last match wins), ordered by
	// the position of their first match.
	Intents []Intent
	// Starts and Ends are activities this event starts or ends.
	Starts, Ends []ActivityHit
	// Steps explain every map, rule and activity looked at, matched or not.
	Steps []Step
	// Unmapped is true when the event produced no intent and touched no activity.
	Unmapped bool
}

// Intent is "system should show status", with the rule that said so.
type Intent struct {
	System string
	Status presence.Status
	Rule   string
}

// ActivityHit is one activity started or ended by an event; Key correlates start and end
// (the event's conversationId, or "" when it has none).
type ActivityHit struct {
	Activity *Activity
	Key      string
}

// Step is one line of an explanation.
type Step struct {
	Rule    string `json:"rule"`
	Matched bool   `json:"matched"`
	Detail  string `json:"detail"`
}
