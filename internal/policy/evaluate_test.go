package policy

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// loadString loads a policy written inline in a test.
func loadString(t testing.TB, src string) *Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadValid(t, path, Options{})
}

func TestLoadFull(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/full.yaml", Options{})
	if want := []string{"connect", "gc", "nice", "sf"}; !reflect.DeepEqual(cfg.SystemNames, want) {
		t.Errorf("SystemNames = %v, want %v", cfg.SystemNames, want)
	}
	sf := cfg.Systems["sf"]
	if sf.Kind != "salesforce" || sf.Catalog == nil || len(sf.Accounts) != 2 {
		t.Fatalf("sf = %+v", sf)
	}
	if off, ok := sf.Catalog.ByID("0"); !ok || off.Name != "Offline" || !off.Settable {
		t.Errorf("sf Offline = %+v, %v", off, ok)
	}
	if s, _ := sf.Catalog.ByName("AvailableforVoice"); s.Label != "Available for Voice" || s.Category != presence.CategoryAvailable {
		t.Errorf("AvailableforVoice = %+v", s)
	}
	if auth := sf.Settings.Sub("auth"); auth["flow"] != "jwt" || auth["client_id"] != "${SF_CLIENT_ID}" {
		t.Errorf("sf auth = %v", auth)
	}
	if v := sf.Settings["api_version"]; v != "62.0" {
		t.Errorf("api_version = %#v, want the text 62.0", v)
	}
	if acw, _ := cfg.Systems["connect"].Catalog.ByName("AfterCallWork"); acw.Settable {
		t.Errorf("AfterCallWork settable")
	}
	if cfg.Systems["nice"].Catalog != nil || cfg.Systems["nice"].Accounts != nil {
		t.Errorf("nice has a catalog or accounts it was not given")
	}
	if len(cfg.Agents) != 3 || !reflect.DeepEqual(cfg.Agents[1], Agent{Email: "bo@example.com", Teams: []string{"voice", "chat"}}) {
		t.Errorf("Agents = %+v", cfg.Agents)
	}
	if got, want := cfg.Summary(), "4 systems, 3 policies, 6 rules, 1 activity, 3 agents"; got != want {
		t.Errorf("Summary() = %q, want %q", got, want)
	}
	if len(cfg.Policies) != 3 {
		t.Fatalf("%d policies", len(cfg.Policies))
	}
	p := cfg.Policies[0]
	if p.Name != "voice" || p.Master != "gc" || p.Debounce != 2*time.Second || len(p.Maps) != 3 ||
		len(p.Rules) != 6 || len(p.Activities) != 1 {
		t.Fatalf("voice = %+v", p)
	}
	if !reflect.DeepEqual(p.AppliesTo, AppliesTo{Teams: []string{"voice"}, Agents: []string{"bo@example.com"}}) {
		t.Errorf("AppliesTo = %+v", p.AppliesTo)
	}
	if p.Extension == nil || p.Extension.URL != "https://hooks.example.com/status" || p.Extension.Timeout != 500*time.Millisecond {
		t.Errorf("Extension = %+v", p.Extension)
	}
	m := p.Maps[0]
	if m.Name != "voice/map sf -> gc" || m.Len() != 4 {
		t.Errorf("map = %s with %d states", m.Name, m.Len())
	}
	if got, ok := m.Lookup(presence.Status{Name: "AvailableforVoice"}); !ok || got.ID != "e08eaf1b-ee47-4fa9-a231-1200e284798f" {
		t.Errorf("Lookup(AvailableforVoice) = %+v, %v", got, ok)
	}
	// A source written by id is found by id and by name.
	back := p.Maps[1]
	for _, src := range []presence.Status{{ID: "31fe3bac-dea6-44b7-bed7-47f91660a1a0"}, {Name: "Busy"}} {
		if got, ok := back.Lookup(src); !ok || got.Name != "Busy" || got.ID != "0N5000000000002" {
			t.Errorf("Lookup(%+v) = %+v, %v", src, got, ok)
		}
	}
	r := p.Rules[1]
	if r.Name != "voice/rule acw-busy" || r.On != (Trigger{System: "connect", Type: presence.StatusChanged}) ||
		r.Set["sf"].Name != "Busy" || r.When != "connect.new_state eq st-acw" {
		t.Errorf("rule = %+v", r)
	}
	a := p.Activities[0]
	if a.Name != "voice/activity communicate-call" || a.Start.String() != "gc.conversation_started" ||
		a.End.String() != "gc.conversation_ended" || a.Set["gc"].Name != "Busy" || len(a.match) != 3 {
		t.Errorf("activity = %+v", a)
	}
}

func TestLoadFolder(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/split", Options{})
	if len(cfg.Files) != 2 || !strings.HasSuffix(cfg.Files[1], "20-policies.yml") {
		t.Errorf("Files = %v", cfg.Files)
	}
	if cfg.Agents != nil {
		t.Errorf("Agents = %v, want nil without a directory", cfg.Agents)
	}
	def := cfg.Policies[0]
	// Without a catalog, Salesforce still knows Offline ("0").
	if got, ok := def.Maps[0].Lookup(presence.Status{Name: "Offline"}); !ok || got != *cfg.Systems["sf"].Vendor.Catalog.Offline {
		t.Errorf("gc Offline -> %+v, %v", got, ok)
	}
	if got, _ := def.Maps[1].Lookup(presence.Status{ID: "Available", Name: "Available"}); got != (presence.Status{ID: "On Queue", Name: "On Queue", Label: "On Queue", Settable: true}) {
		t.Errorf("sf Available -> %+v, want a status that names itself", got)
	}
	ana := cfg.Policies[1]
	if ana.Debounce != 0 || len(ana.Maps) != 2 || ana.Maps[0].Len() != 2 || ana.Maps[1].Len() != 1 || ana.Maps[1].From != "sf" {
		t.Errorf("ana = %+v (maps %+v)", ana, ana.Maps)
	}
}

func TestLoadCatalogOption(t *testing.T) {
	src := `version: 1
systems:
  sf: {kind: salesforce}
  gc: {kind: genesys, catalog: [{id: g1, name: Available, category: available}]}
policies:
  - name: p
    map:
      - {from: gc, to: sf, states: {Available: Avail}}
`
	path := filepath.Join(t.TempDir(), "p.yaml")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var asked []string
	pulled := func(sys *System) ([]presence.Status, error) {
		asked = append(asked, sys.Name)
		return []presence.Status{{ID: "0N51", Name: "Available", Settable: true}}, nil
	}
	_, err := Load(path, Options{Catalog: pulled})
	if err == nil || !strings.Contains(err.Error(), `status "Avail" is not in sf's catalog; did you mean "Available"?`) {
		t.Errorf("Load = %v, want the pulled catalog to be checked", err)
	}
	if !reflect.DeepEqual(asked, []string{"sf"}) {
		t.Errorf("asked for %v, want only the system without an inline catalog", asked)
	}
	failing := func(*System) ([]presence.Status, error) { return nil, fmt.Errorf("connection refused") }
	_, err = Load(path, Options{Catalog: failing})
	if err == nil || !strings.Contains(err.Error(), "p.yaml:3:3: cannot fetch the catalog of system sf: connection refused") {
		t.Errorf("Load = %v, want the fetch error positioned at the system", err)
	}
	fixed := strings.Replace(src, "Avail}", "Available}", 1)
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := loadValid(t, path, Options{Catalog: pulled})
	if off, ok := cfg.Systems["sf"].Catalog.ByID("0"); !ok || off.Name != "Offline" {
		t.Errorf("pulled Salesforce catalog lacks Offline: %+v", cfg.Systems["sf"].Catalog.Statuses())
	}
	if got, _ := cfg.Policies[0].Maps[0].Lookup(presence.Status{Name: "Available"}); got.ID != "0N51" {
		t.Errorf("target = %+v, want the pulled status", got)
	}
}

func TestPolicyFor(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/full.yaml", Options{})
	for email, want := range map[string]string{
		"ana@example.com": "voice",    // team voice
		"bo@example.com":  "voice",    // named, though in team chat too
		"BO@Example.com":  "voice",    // emails match without case
		"cy@example.com":  "chat",     // team chat
		"zed@example.com": "everyone", // not in the directory
	} {
		if p := cfg.PolicyFor(email); p == nil || p.Name != want {
			t.Errorf("PolicyFor(%s) = %v, want %s", email, p, want)
		}
	}
	// Without a directory, teams cannot be resolved: agent-level, then everyone.
	cfg = loadString(t, `version: 1
systems: {sf: {kind: salesforce}}
policies:
  - {name: team, applies_to: {teams: [voice]}}
  - {name: ana, applies_to: {agents: [ana@example.com]}}
`)
	if p := cfg.PolicyFor("ana@example.com"); p == nil || p.Name != "ana" {
		t.Errorf("PolicyFor(ana) = %v", p)
	}
	if p := cfg.PolicyFor("bo@example.com"); p != nil {
		t.Errorf("PolicyFor(bo) = %v, want nil", p.Name)
	}
	var none *Config
	if none.PolicyFor("x@example.com") != nil {
		t.Error("nil Config has a policy")
	}
}

func status(cat *Catalog, name string) presence.Status {
	s, ok := cat.ByName(name)
	if !ok {
		panic("no status " + name)
	}
	return s
}

type intentWant struct{ system, status, rule string }

func intentsOf(e Evaluation) []intentWant {
	var out []intentWant
	for _, in := range e.Intents {
		out = append(out, intentWant{in.System, in.Status.Name, in.Rule})
	}
	return out
}

func stepsOf(e Evaluation) []string {
	var out []string
	for _, s := range e.Steps {
		mark := "-"
		if s.Matched {
			mark = "+"
		}
		out = append(out, mark+" "+s.Rule+": "+s.Detail)
	}
	return out
}

func TestEvaluate(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/full.yaml", Options{})
	voice := cfg.Policies[0]
	sf, gc, connect := cfg.Systems["sf"].Catalog, cfg.Systems["gc"].Catalog, cfg.Systems["connect"].Catalog
	current := map[string]presence.Status{"connect": status(connect, "Lunch"), "sf": status(sf, "Busy")}
	ev := func(system string, typ presence.EventType, st string, data map[string]any) presence.Event {
		return presence.Event{System: system, Agent: "ana@example.com", Type: typ, Status: st, Data: data}
	}
	tests := []struct {
		name     string
		in       Input
		intents  []intentWant
		steps    []string
		unmapped bool
	}{{
		name:    "maps from the event's system, in order",
		in:      Input{Event: ev("sf", presence.StatusChanged, "AvailableforVoice", nil), New: status(sf, "AvailableforVoice")},
		intents: []intentWant{{"gc", "On Queue", "voice/map sf -> gc"}, {"nice", "Available", "voice/map sf -> nice"}},
		steps: []string{
			"+ voice/map sf -> gc: AvailableforVoice -> On Queue",
			"+ voice/map sf -> nice: AvailableforVoice -> Available",
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name:     "a status no map knows is unmapped",
		in:       Input{Event: ev("sf", presence.StatusChanged, "OmniBusy", nil), New: status(sf, "OmniBusy")},
		unmapped: true,
		steps: []string{
			"- voice/map sf -> gc: no mapping for OmniBusy",
			"- voice/map sf -> nice: no mapping for OmniBusy",
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name:    "a source written by id matches the status",
		in:      Input{Event: ev("gc", presence.StatusChanged, "31fe3bac-dea6-44b7-bed7-47f91660a1a0", nil), New: status(gc, "Busy")},
		intents: []intentWant{{"sf", "Busy", "voice/map gc -> sf"}},
		steps:   []string{"+ voice/map gc -> sf: Busy -> Busy"},
	}, {
		name:    "a rule's structured test",
		in:      Input{Event: ev("connect", presence.StatusChanged, "Lunch", nil), New: status(connect, "Lunch"), Current: current},
		intents: []intentWant{{"sf", "Lunch", "voice/rule lunch"}},
		steps: []string{
			"+ voice/rule lunch: when: connect.new_state (Lunch) eq Lunch is true",
			"- voice/rule acw-busy: when: connect.new_state (Lunch) eq st-acw is false",
		},
	}, {
		name: "a literal written as a status id compares by name",
		in: Input{Event: ev("connect", presence.StatusChanged, "st-acw", nil), New: status(connect, "AfterCallWork"),
			Old: status(connect, "Available")},
		intents: []intentWant{{"sf", "Busy", "voice/rule acw-busy"}},
		steps: []string{
			"- voice/rule lunch: when: connect.new_state (AfterCallWork) eq Lunch is false",
			"+ voice/rule acw-busy: when: connect.new_state (AfterCallWork) eq st-acw is true",
		},
	}, {
		name:     "no rule matches",
		in:       Input{Event: ev("connect", presence.StatusChanged, "Available", nil), New: status(connect, "Available")},
		unmapped: true,
		steps: []string{
			"- voice/rule lunch: when: connect.new_state (Available) eq Lunch is false",
			"- voice/rule acw-busy: when: connect.new_state (Available) eq st-acw is false",
		},
	}, {
		name:    "a logout means Offline: maps, then the logout rule, last match wins",
		in:      Input{Event: ev("sf", presence.Logout, "", nil), Old: status(sf, "Busy")},
		intents: []intentWant{{"gc", "Offline", "voice/rule logout"}, {"connect", "Offline", "voice/rule logout"}},
		steps: []string{
			"+ voice/map sf -> gc: Offline -> Offline",
			"- voice/map sf -> nice: no mapping for Offline",
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"+ voice/rule logout: when: sf.new_state (Offline) eq Offline is true",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name:    "a status change to Offline is no logout",
		in:      Input{Event: ev("sf", presence.StatusChanged, "0", nil), New: status(sf, "Offline")},
		intents: []intentWant{{"gc", "Offline", "voice/map sf -> gc"}},
		steps: []string{
			"+ voice/map sf -> gc: Offline -> Offline",
			"- voice/map sf -> nice: no mapping for Offline",
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name: "workload at capacity (CEL)",
		in: Input{Event: ev("sf", presence.WorkloadChanged, "", map[string]any{
			"previousWorkload": 0.0, "newWorkload": 100.0, "configuredCapacity": 100.0})},
		intents: []intentWant{{"connect", "OmniBusy", "voice/rule full"}},
		steps: []string{
			"+ voice/rule full: when: sf.new_workload_pct >= 100 is true",
			"- voice/rule not-full: when: sf.new_workload_pct (100) lt 100 is false",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name: "workload as a percentage of capacity",
		in: Input{Event: ev("sf", presence.WorkloadChanged, "", map[string]any{
			"previousWorkload": 100, "newWorkload": 50, "configuredCapacity": 200})},
		intents: []intentWant{{"connect", "Available", "voice/rule not-full"}},
		steps: []string{
			"- voice/rule full: when: sf.new_workload_pct >= 100 is false",
			"+ voice/rule not-full: when: sf.new_workload_pct (25) lt 100 is true",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name:    "no capacity means 0%",
		in:      Input{Event: ev("sf", presence.WorkloadChanged, "", map[string]any{"newWorkload": 5})},
		intents: []intentWant{{"connect", "Available", "voice/rule not-full"}},
		steps: []string{
			"- voice/rule full: when: sf.new_workload_pct >= 100 is false",
			"+ voice/rule not-full: when: sf.new_workload_pct (0) lt 100 is true",
			"- voice/rule logout: on sf.logout: the event is another type",
			"- voice/rule voice-work: on sf.work_accepted: the event is another type",
		},
	}, {
		name:    "work accepted on a channel (CEL with event data)",
		in:      Input{Event: ev("sf", presence.WorkAccepted, "", map[string]any{"channel": "sfdc_phone"})},
		intents: []intentWant{{"connect", "OmniBusy", "voice/rule voice-work"}},
		steps: []string{
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"- voice/rule logout: on sf.logout: the event is another type",
			`+ voice/rule voice-work: when: sf.channel == "sfdc_phone" && event.data.size() > 0 is true`,
		},
	}, {
		name:     "work accepted on another channel",
		in:       Input{Event: ev("sf", presence.WorkAccepted, "", map[string]any{"channel": "sfdc_chat"})},
		unmapped: true,
		steps: []string{
			"- voice/rule full: on sf.workload_changed: the event is another type",
			"- voice/rule not-full: on sf.workload_changed: the event is another type",
			"- voice/rule logout: on sf.logout: the event is another type",
			`- voice/rule voice-work: when: sf.channel == "sfdc_phone" && event.data.size() > 0 is false`,
		},
	}, {
		name: "a non-ACD call starts an activity",
		in: Input{Event: ev("gc", presence.ConversationStarted, "", map[string]any{
			"conversationId": "c1", "mediaType": "VOICE", "direction": "INBOUND"})},
		steps: []string{"+ voice/activity communicate-call: start gc.conversation_started: every match test holds"},
	}, {
		name: "an ACD call (queueId set) starts none",
		in: Input{Event: ev("gc", presence.ConversationStarted, "", map[string]any{
			"conversationId": "c2", "mediaType": "VOICE", "queueId": "q1"})},
		unmapped: true,
		steps:    []string{`- voice/activity communicate-call: match: queueId not_exists is false (queueId is "q1")`},
	}, {
		name: "a test on another field fails",
		in: Input{Event: ev("gc", presence.ConversationStarted, "", map[string]any{
			"conversationId": "c3", "mediaType": "EMAIL"})},
		unmapped: true,
		steps:    []string{`- voice/activity communicate-call: match: mediaType in [VOICE, CALLBACK] is false (mediaType is "EMAIL")`},
	}, {
		name: "the call ends",
		in: Input{Event: ev("gc", presence.ConversationEnded, "", map[string]any{
			"conversationId": "c1", "mediaType": "VOICE", "queueId": nil})},
		steps: []string{"+ voice/activity communicate-call: end gc.conversation_ended: every match test holds"},
	}, {
		name:     "an event of a system no policy part watches",
		in:       Input{Event: ev("nice", presence.StatusChanged, "Available", nil), New: presence.Status{Name: "Available"}},
		unmapped: true,
	}, {
		name:     "an event of an unknown system",
		in:       Input{Event: ev("zz", presence.Logout, "", nil)},
		unmapped: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := voice.Evaluate(tt.in)
			if got := intentsOf(e); !reflect.DeepEqual(got, tt.intents) {
				t.Errorf("intents = %v, want %v", got, tt.intents)
			}
			if got := stepsOf(e); !reflect.DeepEqual(got, tt.steps) {
				t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.steps, "\n"))
			}
			if e.Unmapped != tt.unmapped {
				t.Errorf("Unmapped = %v, want %v", e.Unmapped, tt.unmapped)
			}
		})
	}
}

func TestEvaluateActivityHits(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/full.yaml", Options{})
	voice := cfg.Policies[0]
	start := voice.Evaluate(Input{Event: presence.Event{System: "gc", Type: presence.ConversationStarted,
		Data: map[string]any{"conversationId": "c1", "mediaType": "CALLBACK"}}})
	if len(start.Starts) != 1 || start.Starts[0].Activity != voice.Activities[0] || start.Starts[0].Key != "c1" ||
		len(start.Ends) != 0 || len(start.Intents) != 0 || start.Unmapped {
		t.Errorf("start = %+v", start)
	}
	end := voice.Evaluate(Input{Event: presence.Event{System: "gc", Type: presence.ConversationEnded,
		Data: map[string]any{"mediaType": "VOICE"}}})
	if len(end.Ends) != 1 || end.Ends[0].Key != "" || len(end.Starts) != 0 || end.Unmapped {
		t.Errorf("end = %+v", end)
	}
}

func TestEvaluateCompare(t *testing.T) {
	cfg := loadString(t, `version: 1
systems:
  sf: {kind: salesforce}
  connect: {kind: amazonconnect}
policies:
  - name: p
    rules:
      - {name: num, on: connect.status_changed, when: {a: "10", op: gt, b: "9"}, set: {sf: Num}}
      - {name: str, on: connect.status_changed, when: {a: "10", op: gt, b: "9a"}, set: {sf: Str}}
      - {name: case, on: connect.status_changed, when: {a: connect.new_state, op: eq, b: lunch}, set: {sf: Case}}
      - {name: other, on: connect.status_changed, when: {a: sf.new_state, op: eq, b: Lunch}, set: {sf: Other, connect: Mine}}
      - {name: old, on: connect.status_changed, when: {a: connect.old_state, op: ne, b: Lunch}, set: {sf: Old}}
      - {name: order, on: connect.status_changed, when: {a: connect.new_state, op: ge, b: Lunch}, set: {sf: Order}}
      - {name: always, on: connect.status_changed, set: {connect: Always}}
      - {name: exact, on: sf.logout, when: {a: sf.new_state, op: eq, b: offline}, set: {connect: Exact}}
      - {name: old-sf, on: sf.logout, when: {a: sf.old_state, op: eq, b: Busy}, set: {connect: OldSf}}
      - {name: pct-elsewhere, on: sf.logout, when: {a: sf.new_workload_pct, op: eq, b: 0}, set: {connect: Zero}}
`)
	p := cfg.Policies[0]
	e := p.Evaluate(Input{
		Event:   presence.Event{System: "connect", Type: presence.StatusChanged, Status: "Lunch"},
		New:     presence.Status{Name: "Lunch"},
		Old:     presence.Status{Name: "Lunch"},
		Current: map[string]presence.Status{"sf": {Name: "Lunch"}},
	})
	want := []intentWant{{"sf", "Order", "p/rule order"}, {"connect", "Always", "p/rule always"}}
	if got := intentsOf(e); !reflect.DeepEqual(got, want) {
		t.Errorf("intents = %v, want %v\n%s", got, want, strings.Join(stepsOf(e), "\n"))
	}
	wantSteps := []string{
		"+ p/rule num: when: 10 gt 9 is true",
		"- p/rule str: when: 10 gt 9a is false",
		"- p/rule case: when: connect.new_state (Lunch) eq lunch is false",
		"+ p/rule other: when: sf.new_state (Lunch) eq Lunch is true",
		"- p/rule old: when: connect.old_state (Lunch) ne Lunch is false",
		"+ p/rule order: when: connect.new_state (Lunch) ge Lunch is true",
		"+ p/rule always: on connect.status_changed with no when: always matches",
	}
	if got := stepsOf(e); !reflect.DeepEqual(got, wantSteps) {
		t.Errorf("steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSteps, "\n"))
	}
	// Logout rules match "Offline" exactly; operands of the event's own system read New and Old.
	e = p.Evaluate(Input{Event: presence.Event{System: "sf", Type: presence.Logout}, Old: presence.Status{Name: "Busy"}})
	want = []intentWant{{"connect", "Zero", "p/rule pct-elsewhere"}}
	if got := intentsOf(e); !reflect.DeepEqual(got, want) {
		t.Errorf("logout intents = %v, want %v\n%s", got, want, strings.Join(stepsOf(e), "\n"))
	}
	if got := stepsOf(e)[0]; got != "- p/rule exact: when: sf.new_state (Offline) eq offline is false" {
		t.Errorf("exact-case step = %q", got)
	}
}

func TestEvaluateCELErrors(t *testing.T) {
	cfg := loadString(t, `version: 1
systems:
  sf: {kind: salesforce}
  gc: {kind: genesys}
policies:
  - name: p
    rules:
      - {name: missing-key, on: gc.conversation_started, when: "event.data.queueId == 'q'", set: {sf: A}}
      - {name: scan, on: gc.conversation_started, when: "event.data.all(k, k != '')", set: {sf: B}}
      - {name: states, on: gc.conversation_started, when: "gc.new_state == 'On Queue' && sf.new_state == 'Busy' && event.type == 'conversation_started'", set: {sf: C}}
`)
	p := cfg.Policies[0]
	big := map[string]any{}
	for i := range 20000 {
		big[fmt.Sprint("k", i)] = i
	}
	e := p.Evaluate(Input{
		Event:   presence.Event{System: "gc", Type: presence.ConversationStarted, Data: big},
		New:     presence.Status{Name: "On Queue"},
		Current: map[string]presence.Status{"gc": {Name: "Away"}, "sf": {Name: "Busy"}},
	})
	steps := stepsOf(e)
	if len(steps) != 3 || !strings.HasPrefix(steps[0], "- p/rule missing-key: cel error: no such key: queueId") ||
		!strings.HasPrefix(steps[1], "- p/rule scan: cel error: ") || !strings.Contains(steps[1], "cost limit exceeded") ||
		!strings.HasPrefix(steps[2], "+ p/rule states: when: ") {
		t.Errorf("steps:\n%s", strings.Join(steps, "\n"))
	}
	if got := intentsOf(e); !reflect.DeepEqual(got, []intentWant{{"sf", "C", "p/rule states"}}) {
		t.Errorf("intents = %v", got)
	}
}

func TestEvaluateNilPolicy(t *testing.T) {
	var p *Policy
	if e := p.Evaluate(Input{}); !e.Unmapped || len(e.Intents) != 0 {
		t.Errorf("nil policy evaluation = %+v", e)
	}
}

func BenchmarkEvaluateMap(b *testing.B) {
	cfg := loadValid(b, "testdata/valid/full.yaml", Options{})
	voice := cfg.Policies[0]
	sf := cfg.Systems["sf"].Catalog
	in := Input{
		Event: presence.Event{System: "sf", Agent: "ana@example.com", Type: presence.StatusChanged, Status: "AvailableforVoice"},
		New:   status(sf, "AvailableforVoice"),
		Old:   status(sf, "Busy"),
	}
	b.ReportAllocs()
	for b.Loop() {
		if e := voice.Evaluate(in); len(e.Intents) != 2 {
			b.Fatal(e)
		}
	}
}

func BenchmarkEvaluateCEL(b *testing.B) {
	cfg := loadValid(b, "testdata/valid/full.yaml", Options{})
	voice := cfg.Policies[0]
	in := Input{Event: presence.Event{System: "sf", Type: presence.WorkloadChanged,
		Data: map[string]any{"previousWorkload": 0.0, "newWorkload": 100.0, "configuredCapacity": 100.0}}}
	b.ReportAllocs()
	for b.Loop() {
		if e := voice.Evaluate(in); len(e.Intents) != 1 {
			b.Fatal(e)
		}
	}
}

// TestEvaluateConcurrent evaluates one compiled policy from several goroutines (run with -race).
func TestEvaluateConcurrent(t *testing.T) {
	cfg := loadValid(t, "testdata/valid/full.yaml", Options{})
	voice := cfg.Policies[0]
	done := make(chan Evaluation)
	for i := range 4 {
		go func() {
			var last Evaluation
			for j := range 50 {
				last = voice.Evaluate(Input{Event: presence.Event{System: "sf", Type: presence.WorkloadChanged,
					Data: map[string]any{"newWorkload": float64(i*50 + j), "configuredCapacity": 100.0}}})
			}
			done <- last
		}()
	}
	for range 4 {
		if e := <-done; len(e.Intents) != 1 {
			t.Errorf("intents = %v", e.Intents)
		}
	}
}

func TestEvaluateOnDisconnect(t *testing.T) {
	cfg := loadString(t, `version: 1
systems:
  sf: {kind: salesforce}
  gc: {kind: genesys, catalog: [{id: g-off, name: Offline, category: offline}, {id: g-q, name: On Queue, category: on_queue}]}
  connect: {kind: amazonconnect, catalog: [{id: c-off, name: Offline, category: offline}]}
policies:
  - name: voice
    map:
      - {from: gc, to: sf, states: {On Queue: Online}}
    on_disconnect:
      of: sf
      after: 2m
      set: {gc: Offline, connect: Offline}
`)
	p := cfg.Policies[0]
	if d := p.OnDisconnect; d == nil || d.Of != "sf" || d.After != 2*time.Minute || d.Set["gc"].ID != "g-off" || d.Set["connect"].ID != "c-off" {
		t.Fatalf("OnDisconnect = %+v", p.OnDisconnect)
	}
	since := time.Date(2026, 3, 2, 17, 0, 0, 0, time.UTC)
	event := func(system string, typ presence.EventType, after any) presence.Event {
		ev := presence.Event{System: system, Agent: "ana@example.com", Type: typ, At: since.Add(2 * time.Minute),
			Data: map[string]any{"since": since.Format(time.RFC3339)}}
		if after != nil {
			ev.Data["after"] = after
		}
		return ev
	}
	e := p.Evaluate(Input{Event: event("sf", presence.ConsoleDisconnected, "2m0s")})
	want := []Intent{{System: "gc", Status: p.OnDisconnect.Set["gc"], Rule: "voice/on_disconnect"},
		{System: "connect", Status: p.OnDisconnect.Set["connect"], Rule: "voice/on_disconnect"}}
	if !reflect.DeepEqual(e.Intents, want) || e.Unmapped {
		t.Fatalf("intents = %+v, want %+v", e.Intents, want)
	}
	if len(e.Steps) != 1 || !e.Steps[0].Matched || !strings.Contains(e.Steps[0].Detail, "has been gone 2m0s") {
		t.Errorf("steps = %+v", e.Steps)
	}
	// The informational disconnect (gone for the grace period) and other events set nothing.
	for _, ev := range []presence.Event{
		event("sf", presence.ConsoleDisconnected, "30s"),
		event("sf", presence.ConsoleDisconnected, nil),
		event("sf", presence.ConsoleDisconnected, "soon"),
		event("sf", presence.ConsoleConnected, nil),
		event("gc", presence.ConsoleDisconnected, "2m0s"),
	} {
		e := p.Evaluate(Input{Event: ev})
		if len(e.Intents) != 0 || !e.Unmapped {
			t.Errorf("%s %v: intents %+v", ev.Describe(), ev.Data["after"], e.Intents)
		}
	}
	e = p.Evaluate(Input{Event: event("sf", presence.ConsoleDisconnected, "30s")})
	if len(e.Steps) != 1 || e.Steps[0].Matched || !strings.Contains(e.Steps[0].Detail, "gone 30s; on_disconnect waits 2m0s") {
		t.Errorf("steps of a shorter disconnect = %+v", e.Steps)
	}
}
