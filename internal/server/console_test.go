package server

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
)

const consolePolicy = `version: 1
systems:
  sf:
    kind: salesforce
    catalog:
      - {id: "0N5000000000001", name: AvailableforVoice, category: available}
      - {id: "0N5000000000002", name: Break, category: break}
      - {id: "0N5000000000003", name: Training, category: training}
  gc:
    kind: genesys
    catalog:
      - {id: "g-onq", name: On Queue, category: on_queue}
      - {id: "g-brk", name: Break, category: break}
      - {id: "g-idle", name: Idle, category: system}
agents:
  - {email: ana@example.com, teams: [voice]}
  - {email: bo@example.com, teams: [chat]}
policies:
  - name: sync
    map:
      - from: sf
        to: gc
        states: {AvailableforVoice: On Queue, Break: Break}
      - from: gc
        to: sf
        states: {On Queue: AvailableforVoice, Break: Break}
    activities:
      - name: call
        start: gc.conversation_started
        end: gc.conversation_ended
        match: [{path: queueId, op: not_exists}]
        set: {gc: Break}
`

func loadConsolePolicy(t *testing.T) *policy.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(consolePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func sv(name, id string, inSync bool) engine.SystemView {
	return engine.SystemView{Observed: name, ObservedID: id, Desired: name, DesiredID: id, InSync: inSync}
}

// TestBoardJudgesEveryRow pins the board's states: agreement by either map, disagreement the
// engine has nothing to write for, statuses no map covers, deferred and failed writes, and the
// counts overall and per system.
func TestBoardJudgesEveryRow(t *testing.T) {
	f := newFakeEngine()
	f.agents["ana@example.com"] = engine.AgentView{Email: "ana@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": sv("AvailableforVoice", "0N5000000000001", true), "gc": sv("On Queue", "g-onq", true)}}
	f.agents["bo@example.com"] = engine.AgentView{Email: "bo@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": sv("AvailableforVoice", "0N5000000000001", true), "gc": sv("Break", "g-brk", true)}}
	f.agents["cy@example.com"] = engine.AgentView{Email: "cy@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": sv("Training", "0N5000000000003", true), "gc": sv("Idle", "g-idle", true)}}
	deferred := sv("AvailableforVoice", "0N5000000000001", false)
	deferred.Desired, deferred.Deferred = "Break", "no Omni-Channel bridge connected"
	f.agents["di@example.com"] = engine.AgentView{Email: "di@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": deferred, "gc": sv("Break", "g-brk", true)}}
	failed := sv("On Queue", "g-onq", false)
	failed.Desired, failed.Failed = "Break", "HTTP 400"
	f.agents["ed@example.com"] = engine.AgentView{Email: "ed@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": sv("Break", "0N5000000000002", true), "gc": failed}}
	s := New(Options{Engine: f, Policy: loadConsolePolicy(t)})
	w := do(t, s.Handler(), request{path: "/api/v1/board"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var b boardResponse
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"ana@example.com": StateInSync, "bo@example.com": StateDrifting, "cy@example.com": StateNotCovered,
		"di@example.com": StateDeferred, "ed@example.com": StateFailed}
	for _, r := range b.Agents {
		if r.State != want[r.Email] {
			t.Errorf("%s: state %s (%s), want %s", r.Email, r.State, r.Note, want[r.Email])
		}
	}
	bo := b.Agents[1]
	if bo.Systems["gc"].State != StateDrifting || !strings.Contains(bo.Systems["gc"].Note, "sf AvailableforVoice means gc On Queue") {
		t.Errorf("bo's gc cell: %+v", bo.Systems["gc"])
	}
	if bo.Teams[0] != "chat" || bo.Systems["gc"].Category != "break" {
		t.Errorf("bo's teams %v, gc category %q", bo.Teams, bo.Systems["gc"].Category)
	}
	if c := b.Counts; c.Total != 5 || c.InSync != 1 || c.Drifting != 1 || c.NotCovered != 1 || c.Deferred != 1 || c.Failed != 1 {
		t.Errorf("counts %+v", c)
	}
	if c := b.BySystem["gc"]; c.Failed != 1 || c.Drifting != 1 || b.BySystem["sf"].Drifting != 1 {
		t.Errorf("gc counts %+v", c)
	}
	if len(b.Systems) != 2 || b.Systems[0].Name != "gc" || len(b.Teams) != 2 {
		t.Errorf("systems %+v, teams %v", b.Systems, b.Teams)
	}

	// The writes view lists the deferred and failed writes, worst first.
	w = do(t, s.Handler(), request{path: "/api/v1/writes"})
	var ws writesResponse
	if err := json.Unmarshal(w.Body.Bytes(), &ws); err != nil {
		t.Fatal(err)
	}
	if len(ws.Writes) != 2 || ws.Writes[0].Agent != "ed@example.com" || ws.Writes[0].Reason != "HTTP 400" ||
		ws.Writes[1].State != StateDeferred || ws.Counts.Failed != 1 || ws.Counts.Deferred != 1 {
		t.Errorf("writes %+v", ws)
	}
}

func TestPolicyView(t *testing.T) {
	s := New(Options{Engine: newFakeEngine(), Policy: loadConsolePolicy(t)})
	w := do(t, s.Handler(), request{path: "/api/v1/policy"})
	var p policyResponse
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if !p.Valid || len(p.Policies) != 1 || len(p.Policies[0].Maps) != 2 || len(p.Policies[0].Activities) != 1 {
		t.Fatalf("policy %+v", p)
	}
	m := p.Policies[0].Maps[0]
	if m.Name != "sync/map sf -> gc" || len(m.Entries) != 2 || m.Unmapped[0] != "Training" {
		t.Errorf("map %+v", m)
	}
	if a := p.Policies[0].Activities[0]; a.Match[0] != "queueId is absent" || a.Set["gc"] != "Break" {
		t.Errorf("activity %+v", a)
	}
	if len(p.Warnings) != 2 || !strings.Contains(p.Warnings[0], "says nothing about Training") {
		t.Errorf("warnings %v", p.Warnings)
	}
}

func TestHistorySegments(t *testing.T) {
	f := newFakeEngine()
	f.agents["ana@example.com"] = engine.AgentView{Email: "ana@example.com", Systems: map[string]engine.SystemView{}}
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	f.steps["ana@example.com"] = []engine.Step{
		{At: at(0), Kind: engine.StepEvent, System: "gc", Status: "On Queue"},
		{At: at(1), Kind: engine.StepIntent, System: "sf", Status: "Break"},
		{At: at(2), Kind: engine.StepEvent, System: "gc", Status: "Break"},
		{At: at(3), Kind: engine.StepUnchanged, System: "gc", Status: "Break"},
		{At: at(4), Kind: engine.StepWriteOK, System: "sf", Status: "Break"},
	}
	s := New(Options{Engine: f, Policy: loadConsolePolicy(t)})
	w := do(t, s.Handler(), request{path: "/api/v1/agents/ana@example.com/history"})
	var h historyResponse
	if err := json.Unmarshal(w.Body.Bytes(), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.Segments) != 3 {
		t.Fatalf("segments %+v", h.Segments)
	}
	if g := h.Segments[0]; g.System != "gc" || g.Status != "On Queue" || !g.To.Equal(at(2)) || g.Category != "on_queue" {
		t.Errorf("first segment %+v", g)
	}
	if g := h.Segments[2]; g.System != "sf" || !g.From.Equal(at(4)) || !g.To.IsZero() {
		t.Errorf("last segment %+v", g)
	}
}

// actionEngine adds the admin actions to the fake.
type actionEngine struct {
	*fakeEngine
	retried, resynced []string
}

func (a *actionEngine) Retry(_ context.Context, email, system string) (bool, error) {
	if email != "ana@example.com" {
		return false, engine.ErrUnknownAgent
	}
	a.retried = append(a.retried, email+"/"+system)
	return true, nil
}

func (a *actionEngine) Resync(_ context.Context, email string) ([]string, error) {
	a.resynced = append(a.resynced, email)
	return []string{"gc", "sf"}, nil
}

func TestActions(t *testing.T) {
	// Without actions, 501.
	plain := New(Options{Engine: newFakeEngine()})
	if w := do(t, plain.Handler(), request{method: "POST", path: "/api/v1/agents/ana@example.com/resync"}); w.Code != http.StatusNotImplemented {
		t.Errorf("no actions: status %d", w.Code)
	}
	a := &actionEngine{fakeEngine: newFakeEngine()}
	s := New(Options{Engine: a, Policy: loadConsolePolicy(t), AdminToken: "tok"})
	auth := map[string]string{"Authorization": "Bearer tok"}
	cases := []struct {
		req  request
		code int
	}{
		{request{method: "POST", path: "/api/v1/agents/ana@example.com/systems/gc/retry"}, http.StatusUnauthorized},
		{request{method: "POST", path: "/api/v1/agents/ana@example.com/systems/gc/retry", header: auth}, http.StatusOK},
		{request{method: "POST", path: "/api/v1/agents/ana@example.com/systems/zz/retry", header: auth}, http.StatusNotFound},
		{request{method: "POST", path: "/api/v1/agents/nobody@example.com/systems/gc/retry", header: auth}, http.StatusNotFound},
		{request{method: "POST", path: "/api/v1/agents/ana@example.com/resync", header: auth}, http.StatusOK},
		// A page of another site cannot post, even with the browser's help.
		{request{method: "POST", path: "/api/v1/agents/ana@example.com/resync",
			header: map[string]string{"Authorization": "Bearer tok", "Origin": "https://evil.example"}}, http.StatusForbidden},
	}
	for _, c := range cases {
		if w := do(t, s.Handler(), c.req); w.Code != c.code {
			t.Errorf("%s %s %v: status %d, want %d: %s", c.req.method, c.req.path, c.req.header, w.Code, c.code, w.Body)
		}
	}
	if len(a.retried) != 1 || len(a.resynced) != 1 {
		t.Errorf("retried %v, resynced %v", a.retried, a.resynced)
	}
}

func TestSystemsWithoutHealth(t *testing.T) {
	s := New(Options{Engine: newFakeEngine(), Systems: []SystemInfo{{Name: "gc", Kind: "genesys", Title: "Genesys Cloud"}}})
	w := do(t, s.Handler(), request{path: "/api/v1/systems"})
	var r systemsResponse
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Systems) != 1 || r.Systems[0].State != HealthUnknown || r.Systems[0].Title != "Genesys Cloud" || !r.Ready {
		t.Errorf("systems %+v", r)
	}
}

// TestBoardUsesTheLoadedCatalogs: serve starts the server with the policy as written, whose
// catalogs come from the vendors later; once SetPolicy gives the loaded one, the board checks
// maps with it, so agents whose systems agree are in sync, not "not covered".
func TestBoardUsesTheLoadedCatalogs(t *testing.T) {
	f := newFakeEngine()
	f.agents["ana@example.com"] = engine.AgentView{Email: "ana@example.com", Policy: "sync", Systems: map[string]engine.SystemView{
		"sf": sv("AvailableforVoice", "0N5000000000001", true), "gc": sv("On Queue", "g-onq", true)}}
	written := loadConsolePolicy(t)
	for _, sys := range written.Systems {
		sys.Catalog = nil
	}
	s := New(Options{Engine: f, Policy: written})
	state := func() string {
		var b boardResponse
		if err := json.Unmarshal(do(t, s.Handler(), request{path: "/api/v1/board"}).Body.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		return b.Agents[0].State
	}
	if got := state(); got == StateInSync {
		t.Fatalf("without catalogs the board cannot check the maps, yet says %s", got)
	}
	s.SetPolicy(loadConsolePolicy(t))
	if got := state(); got != StateInSync {
		t.Errorf("with the loaded catalogs: %s, want %s", got, StateInSync)
	}
}

// TestBoardNewerStatusTheMapIgnores: the newer side shows a status the policy maps to nothing
// on the other side, which keeps its own: what the policy says, so not covered, never drifting.
func TestBoardNewerStatusTheMapIgnores(t *testing.T) {
	f := newFakeEngine()
	gc := sv("Idle", "g-idle", true)
	gc.ObservedSince = t0.Add(time.Minute)
	sf := sv("Break", "0N5000000000002", true)
	sf.ObservedSince = t0
	f.agents["ana@example.com"] = engine.AgentView{Email: "ana@example.com", Policy: "sync", Systems: map[string]engine.SystemView{"sf": sf, "gc": gc}}
	s := New(Options{Engine: f, Policy: loadConsolePolicy(t)})
	var b boardResponse
	if err := json.Unmarshal(do(t, s.Handler(), request{path: "/api/v1/board"}).Body.Bytes(), &b); err != nil {
		t.Fatal(err)
	}
	if c := b.Agents[0].Systems["gc"]; c.State != StateNotCovered || c.Note != "the policy maps gc Idle to nothing in sf, which keeps Break" {
		t.Errorf("gc cell %s (%s), want not covered", c.State, c.Note)
	}
}
