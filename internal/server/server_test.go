package server

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/engine"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func sampleEngine() *fakeEngine {
	f := newFakeEngine()
	f.agents["bob@example.com"] = engine.AgentView{
		Email: "bob@example.com", Policy: "default", UpdatedAt: t0,
		Systems: map[string]engine.SystemView{
			"sf": {Observed: "Busy", Desired: "Online", Pending: "Online"},
			"gc": {Observed: "Available", Desired: "Available", InSync: true},
		},
	}
	f.agents["alice+ops@example.com"] = engine.AgentView{
		Email: "alice+ops@example.com", UpdatedAt: t0,
		Systems: map[string]engine.SystemView{"sf": {Observed: "Online", Desired: "Online", InSync: true}},
	}
	f.steps["bob@example.com"] = []engine.Step{
		{Seq: 41, At: t0, Kind: "event", EventSeq: 7, System: "gc", Status: "Available",
			Summary: "gc status_changed Available"},
		{Seq: 42, At: t0.Add(time.Second), Kind: "desired", System: "sf", Status: "Online", Rule: "follow-gc",
			Summary: "sf should show Online", Details: []string{"rule on-break: status is not Break", "rule follow-gc matched"}},
		{Seq: 43, At: t0.Add(2 * time.Second), Kind: "write", System: "sf", Status: "Online", Cause: "rule follow-gc\nafter gc",
			Summary: "wrote Online to sf"},
	}
	return f
}

// errorOf decodes a JSON error body, failing the test when the body is not one.
func errorOf(t *testing.T, body []byte) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("body is not a JSON error: %q (%v)", body, err)
	}
	return e
}

func TestAuth(t *testing.T) {
	const token = "s3cret-token"
	tests := []struct {
		name   string
		token  string
		header string
		remote string
		host   string
		want   int
	}{
		{name: "token: correct bearer", token: token, header: "Bearer " + token, remote: "203.0.113.5:4000", want: 200},
		{name: "token: scheme is case-insensitive", token: token, header: "bearer " + token, remote: "203.0.113.5:4000", want: 200},
		{name: "token: wrong token", token: token, header: "Bearer nope", want: 401},
		{name: "token: prefix of the token", token: token, header: "Bearer s3cret", want: 401},
		{name: "token: missing header even from loopback", token: token, want: 401},
		{name: "token: basic scheme", token: token, header: "Basic " + token, want: 401},
		{name: "token: empty bearer", token: token, header: "Bearer ", want: 401},
		{name: "no token: loopback v4", remote: "127.0.0.1:4000", want: 200},
		{name: "no token: loopback v6", remote: "[::1]:4000", host: "[::1]:8080", want: 200},
		{name: "no token: localhost name", remote: "127.0.0.1:4000", host: "localhost:8080", want: 200},
		{name: "no token: v4-mapped loopback", remote: "[::ffff:127.0.0.1]:4000", want: 200},
		{name: "no token: remote client", remote: "203.0.113.5:4000", want: 401},
		{name: "no token: private network client", remote: "10.0.0.8:4000", want: 401},
		{name: "no token: loopback but foreign host name (DNS rebinding)", remote: "127.0.0.1:4000", host: "evil.example:8080", want: 401},
		{name: "no token: unparsable remote", remote: "pipe", want: 401},
		{name: "no token: a bearer header does not help a remote client", header: "Bearer x", remote: "203.0.113.5:4000", want: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := sampleEngine()
			s := New(Options{Engine: f, AdminToken: tt.token})
			hdr := map[string]string{}
			if tt.header != "" {
				hdr["Authorization"] = tt.header
			}
			w := do(t, s.Handler(), request{path: "/api/v1/agents", header: hdr, remote: tt.remote, host: tt.host})
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d; body %s", w.Code, tt.want, w.Body)
			}
			if tt.want == 401 {
				e := errorOf(t, w.Body.Bytes())
				if tt.token == "" && !strings.Contains(e.Detail.(string), "admin token") {
					t.Errorf("401 detail does not say how to set a token: %q", e.Detail)
				}
				if calls := f.Calls(); len(calls) != 0 {
					t.Errorf("engine called on a refused request: %v", calls)
				}
			}
		})
	}
}

func TestUnauthenticatedRoutes(t *testing.T) {
	// With a token configured, health, readiness, metrics, the API document and the UI shell stay
	// reachable without it (they carry no agent data).
	s := New(Options{Engine: sampleEngine(), AdminToken: "t"})
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/", "/ui/app.js"} {
		if w := do(t, s.Handler(), request{path: path, remote: "203.0.113.5:1"}); w.Code != 200 {
			t.Errorf("GET %s: status %d, want 200", path, w.Code)
		}
	}
}

func TestAgents(t *testing.T) {
	f := sampleEngine()
	s := New(Options{Engine: f})
	w := do(t, s.Handler(), request{path: "/api/v1/agents"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	var got agentList
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var emails []string
	for _, a := range got.Agents {
		emails = append(emails, a.Email)
	}
	if diff := cmp.Diff([]string{"alice+ops@example.com", "bob@example.com"}, emails); diff != "" {
		t.Errorf("agents not sorted by email (-want +got):\n%s", diff)
	}
	bob := got.Agents[1]
	want := f.agents["bob@example.com"]
	gotView := engine.AgentView{Email: bob.Email, Policy: bob.Policy, Activities: bob.Activities, UpdatedAt: bob.UpdatedAt,
		Systems: map[string]engine.SystemView{}}
	for name, c := range bob.Systems {
		gotView.Systems[name] = c.SystemView
	}
	if diff := cmp.Diff(want, gotView); diff != "" {
		t.Errorf("agent round trip (-want +got):\n%s", diff)
	}
	// The row adds the board's judgement: sf has a write in flight, gc agrees.
	if bob.State != StateDrifting || bob.Systems["sf"].State != StateDrifting || bob.Systems["gc"].State != StateInSync {
		t.Errorf("bob's states: row %s, sf %s, gc %s; want drifting, drifting, in_sync", bob.State, bob.Systems["sf"].State, bob.Systems["gc"].State)
	}

	empty := New(Options{Engine: newFakeEngine()})
	if w := do(t, empty.Handler(), request{path: "/api/v1/agents"}); strings.TrimSpace(w.Body.String()) != `{"agents":[]}` {
		t.Errorf("no agents: body %s, want an empty array", w.Body)
	}
}

func TestAgent(t *testing.T) {
	tests := []struct {
		name, path string
		want       int
		wantEmail  string
	}{
		{"known", "/api/v1/agents/bob@example.com", 200, "bob@example.com"},
		{"escaped at and plus", "/api/v1/agents/alice%2Bops%40example.com", 200, "alice+ops@example.com"},
		{"unknown", "/api/v1/agents/nobody@example.com", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Engine: sampleEngine()})
			w := do(t, s.Handler(), request{path: tt.path})
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if tt.want != 200 {
				if e := errorOf(t, w.Body.Bytes()); e.Error != "unknown agent" {
					t.Errorf("error %q", e.Error)
				}
				return
			}
			var got struct {
				Email   string `json:"email"`
				Systems map[string]struct {
					Observed string `json:"observed"`
					Desired  string `json:"desired"`
				} `json:"systems"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if got.Email != tt.wantEmail || got.Systems["sf"].Observed == "" {
				t.Errorf("body %s", w.Body)
			}
		})
	}
}

func TestEngineErrors(t *testing.T) {
	for _, path := range []string{"/api/v1/agents", "/api/v1/agents/bob@example.com", "/api/v1/agents/bob@example.com/explain"} {
		f := sampleEngine()
		f.err = errEngine
		s := New(Options{Engine: f})
		w := do(t, s.Handler(), request{path: path})
		if w.Code != 500 {
			t.Errorf("GET %s: status %d, want 500", path, w.Code)
			continue
		}
		if e := errorOf(t, w.Body.Bytes()); e.Detail != errEngine.Error() {
			t.Errorf("GET %s: detail %v", path, e.Detail)
		}
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, path string
		want         int
		wantAllow    string
	}{
		{"GET", "/nope", 404, ""},
		{"GET", "/api/v1/agents/bob@example.com/nope", 404, ""},
		{"GET", "/ui/secret.txt", 404, ""},
		{"POST", "/api/v1/agents", 405, "GET, HEAD"},
		{"DELETE", "/api/v1/agents/bob@example.com", 405, "GET, HEAD"},
		{"GET", "/api/v1/webhooks/events", 405, "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			s := New(Options{Engine: sampleEngine()})
			w := do(t, s.Handler(), request{method: tt.method, path: tt.path})
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d", w.Code, tt.want)
			}
			errorOf(t, w.Body.Bytes())
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if allow := w.Header().Get("Allow"); allow != tt.wantAllow {
				t.Errorf("Allow %q, want %q", allow, tt.wantAllow)
			}
		})
	}
}

func TestExplainJSON(t *testing.T) {
	f := sampleEngine()
	s := New(Options{Engine: f})
	w := do(t, s.Handler(), request{path: "/api/v1/agents/bob@example.com/explain?limit=2"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var got explainResponse
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.steps["bob@example.com"][1:], got.Steps); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if !slices.Contains(f.Calls(), "Explain bob@example.com 2") {
		t.Errorf("limit not passed to the engine: %v", f.Calls())
	}
	w = do(t, s.Handler(), request{path: "/api/v1/agents/alice+ops@example.com/explain"})
	if !strings.Contains(w.Body.String(), `"steps":[]`) {
		t.Errorf("agent without steps: body %s, want an empty array", w.Body)
	}
	if !slices.Contains(f.Calls(), "Explain alice+ops@example.com 100") {
		t.Errorf("default limit not 100: %v", f.Calls())
	}
}

func TestExplainText(t *testing.T) {
	s := New(Options{Engine: sampleEngine()})
	w := do(t, s.Handler(), request{path: "/api/v1/agents/bob@example.com/explain?format=text"})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	golden(t, "explain.txt", w.Body.Bytes())
}

func TestExplainBadRequests(t *testing.T) {
	tests := []struct {
		query string
		want  int
	}{
		{"?limit=0", 400},
		{"?limit=-3", 400},
		{"?limit=1001", 400},
		{"?limit=ten", 400},
		{"?format=xml", 400},
		{"?limit=1000&format=json", 200},
	}
	for _, tt := range tests {
		s := New(Options{Engine: sampleEngine()})
		w := do(t, s.Handler(), request{path: "/api/v1/agents/bob@example.com/explain" + tt.query})
		if w.Code != tt.want {
			t.Errorf("%s: status %d, want %d", tt.query, w.Code, tt.want)
		}
	}
	s := New(Options{Engine: sampleEngine()})
	if w := do(t, s.Handler(), request{path: "/api/v1/agents/nobody@example.com/explain?format=text"}); w.Code != 404 {
		t.Errorf("unknown agent: status %d, want 404", w.Code)
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s mismatch (-want +got):\n%s", path, diff)
	}
}

func TestHealthAndReady(t *testing.T) {
	f := newFakeEngine()
	s := New(Options{Engine: f})
	if w := do(t, s.Handler(), request{path: "/healthz"}); w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("healthz: %d %q", w.Code, w.Body)
	}
	if w := do(t, s.Handler(), request{path: "/readyz"}); w.Code != 200 || w.Body.String() != "ok\n" {
		t.Errorf("readyz when ready: %d %q", w.Code, w.Body)
	}
	f.readyErr = errors.New("store not migrated")
	if w := do(t, s.Handler(), request{path: "/readyz"}); w.Code != 503 || w.Body.String() != "not ready: store not migrated\n" {
		t.Errorf("readyz when not ready: %d %q", w.Code, w.Body)
	}
	// healthz does not depend on readiness.
	if w := do(t, s.Handler(), request{path: "/healthz"}); w.Code != 200 {
		t.Errorf("healthz when not ready: %d", w.Code)
	}
	// A system that is not ready degrades the service; it still serves.
	gc := engine.SystemHealth{Name: "gc", Kind: "genesys", State: engine.SystemWaiting, Reason: "loading accounts: connection refused"}
	f.readyErr = &engine.DegradedError{Systems: []engine.SystemHealth{gc}}
	want := "degraded\nsystem gc is not ready: loading accounts: connection refused\n"
	if w := do(t, s.Handler(), request{path: "/readyz"}); w.Code != 200 || w.Body.String() != want {
		t.Errorf("readyz when degraded: %d %q, want 200 %q", w.Code, w.Body, want)
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "omnipresence_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	s := New(Options{Engine: newFakeEngine(), Registry: reg})
	w := do(t, s.Handler(), request{path: "/metrics"})
	if w.Code != 200 || !strings.Contains(w.Body.String(), "omnipresence_test_total 3") {
		t.Errorf("metrics: %d %s", w.Code, w.Body)
	}
}

func TestSecurityHeaders(t *testing.T) {
	s := New(Options{Engine: sampleEngine()})
	for _, path := range []string{"/", "/api/v1/agents", "/nope", "/healthz"} {
		w := do(t, s.Handler(), request{path: path})
		if got := w.Header().Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", path, got)
		}
		csp := w.Header().Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
	}
}

func TestUI(t *testing.T) {
	s := New(Options{Engine: sampleEngine(), Version: "1.2.3-<test>"})
	w := do(t, s.Handler(), request{path: "/"})
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	for _, want := range []string{`<script src="/ui/app.js" defer>`, `href="/ui/style.css"`, "version 1.2.3-&lt;test&gt;"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, " onclick=") {
		t.Error("page has inline script, which the CSP forbids")
	}
	for file, ctype := range uiAssets {
		w := do(t, s.Handler(), request{path: "/ui/" + file})
		if w.Code != 200 || w.Header().Get("Content-Type") != ctype || w.Body.Len() == 0 {
			t.Errorf("GET /ui/%s: %d %q, %d bytes", file, w.Code, w.Header().Get("Content-Type"), w.Body.Len())
		}
	}
}

// TestOpenAPIMatchesRoutes checks the document against the route table both ways.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	s := New(Options{Engine: newFakeEngine(), Version: "9.9.9"})
	w := do(t, s.Handler(), request{path: "/api/v1/openapi.json"})
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Info    struct{ Version string }             `json:"info"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatalf("document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") || doc.Info.Version != "9.9.9" {
		t.Errorf("openapi %q, version %q", doc.OpenAPI, doc.Info.Version)
	}
	documented := map[string]bool{}
	for p, ops := range doc.Paths {
		for method := range ops {
			documented[strings.ToUpper(method)+" "+p] = true
		}
	}
	served := map[string]bool{}
	for _, r := range s.routeTable() {
		served[strings.Replace(r.pattern, "{$}", "", 1)] = true
	}
	for k := range served {
		if !documented[k] {
			t.Errorf("route %q is not in the OpenAPI document", k)
		}
	}
	for k := range documented {
		if !served[k] {
			t.Errorf("OpenAPI documents %q, which is not served", k)
		}
	}
}
