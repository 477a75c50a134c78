package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/dryrun"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	cxsim "github.com/omnipresence/omnipresence/internal/vendorsim/cxone"
)

const cxoneExample = "../../examples/cxone-presence-sync/"

// exampleTenant is the CXone tenant the example describes: its agents (ids of the example's
// accounts), teams and unavailable codes.
func exampleTenant() cxsim.Seed {
	codes := []string{"Break", "Lunch", "Meeting", "Training", "Coaching"}
	s := cxsim.Seed{TenantID: "11eb0358-7c4b-4f5e-8a3e-0000000000aa", BusNo: 4600002,
		Integrator: cxsim.SeedUser{ID: 31040000, FirstName: "Presence", LastName: "Sync", Email: "integration@example.com"}}
	for i, n := range codes {
		s.Codes = append(s.Codes, cxsim.SeedCode{ID: 4471 + i, Name: n})
	}
	for i, t := range []string{"tier1", "tier2", "backoffice"} {
		s.Teams = append(s.Teams, cxsim.SeedTeam{ID: 301 + i, Name: t, Codes: codes})
	}
	for _, a := range []struct {
		id          int
		first, team string
	}{{31047211, "Ana", "tier1"}, {31047212, "Bo", "tier1"}, {31047213, "Chloe", "tier2"}, {31047214, "Rosa", "tier1"}, {31047215, "Dev", "backoffice"}} {
		s.Agents = append(s.Agents, cxsim.SeedUser{ID: a.id, FirstName: a.first, LastName: "Example",
			Email: strings.ToLower(a.first) + "@example.com", Team: a.team})
	}
	return s
}

// livePolicy is the example's policy facing the simulators: CXone's catalog, accounts and teams
// are pulled from the tenant (the agents directory goes: CXone's teams take its place), and
// Salesforce has no connection (its side is the bridge).
func livePolicy(t *testing.T, tenant, url string) string {
	t.Helper()
	b, err := os.ReadFile(cxoneExample + "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	cut := func(from, to string) {
		i, j := strings.Index(s, from), strings.Index(s, to)
		if i < 0 || j < i {
			t.Fatalf("the example no longer has %q before %q", from, to)
		}
		s = s[:i] + s[j:]
	}
	cut("    login_url:", "    catalog:")
	cut("    api_url: https://api-na1.niceincontact.com\n", "    access_key_id:")
	s = strings.Replace(s, "    access_key_id:", "    tenant_id: "+tenant+"\n    auth_url: "+url+"\n    access_key_id:", 1)
	cut("    # Available, Unavailable and the team", "# The directory")
	cut("# The directory", "policies:")
	s = regexp.MustCompile(`\$\{CXONE_[A-Z_]+\}`).ReplaceAllStringFunc(s, func(ref string) string {
		return map[string]string{"${CXONE_ACCESS_KEY_ID}": "demo-access-key", "${CXONE_ACCESS_KEY_SECRET}": "demo-access-secret",
			"${CXONE_CLIENT_ID}": "demo-client", "${CXONE_CLIENT_SECRET}": "demo-secret"}[ref]
	})
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// playedBridge plays the agents' Omni-Channel bridges: it applies every command at once, as
// the bridge in the console does, and reports what agents pick themselves.
type playedBridge struct {
	t    *testing.T
	url  string
	ids  map[string]string // email → Salesforce user id
	mu   sync.Mutex
	seq  int
	subs []*commandStream
}

func (b *playedBridge) post(user, path string, body any) {
	b.t.Helper()
	raw, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, b.url+bridge.Prefix+path, strings.NewReader(string(raw)))
	req.Header.Set("Authorization", "Bearer "+orgToken(b.t, user, time.Now()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Error(err)
		return
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		b.t.Errorf("POST %s answered %s %s", path, resp.Status, out)
	}
}

func (b *playedBridge) event(user string, ev map[string]any) {
	b.mu.Lock()
	b.seq++
	ev["id"] = "ev-" + time.Now().Format("150405.000000") + "-" + string(rune('a'+b.seq%26))
	b.mu.Unlock()
	ev["at"] = time.Now().UTC().Format(time.RFC3339Nano)
	b.post(user, "events", map[string]any{"events": []map[string]any{ev}})
}

// open connects the bridge of user and applies its commands until the test ends.
func (b *playedBridge) open(user string) {
	s := openCommandStream(b.t, b.url, orgToken(b.t, user, time.Now()))
	b.subs = append(b.subs, s)
	go func() {
		for {
			var cmd bridge.Command
			select {
			case cmd = <-s.ch:
			case <-s.done:
				return
			}
			if cmd.Action == bridge.ActionLogout {
				b.event(user, map[string]any{"type": "logout", "reason": "OmniToolkitLogout", "commandId": cmd.ID})
			} else {
				b.event(user, map[string]any{"type": "status_changed", "statusId": cmd.StatusID, "statusApiName": cmd.StatusAPIName,
					"reason": "OmniToolkitStatusChange", "commandId": cmd.ID})
			}
			b.post(user, "ack", map[string]string{"id": cmd.ID, "result": "applied"})
		}
	}()
}

// TestCXonePresenceSyncExample is seed 001 end to end: the example's policy runs against the
// CXone simulator (through the connector) and Salesforce through the Omni-Channel bridge, with
// the example's teams taken live from CXone. A selection of the example's day is played on the
// systems as people would make it, and every agent ends where simulate, run on the same events,
// says they end.
func TestCXonePresenceSyncExample(t *testing.T) {
	sim, err := cxsim.New(cxsim.Config{Seed: ptr(exampleTenant())})
	if err != nil {
		t.Fatal(err)
	}
	simURL, err := sim.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The day: the example's events that do not hinge on two systems' clocks agreeing to the
	// second (the same-instant conflict and the flapping are simulate's to show).
	raw, err := os.ReadFile(cxoneExample + "events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var day []string
	for _, i := range []int{0, 1, 3, 4, 5, 6, 8, 17, 22, 24} {
		day = append(day, lines[i])
	}
	inline, err := policy.Load(cxoneExample+"policy.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	events, err := dryrun.ParseEvents("day", strings.NewReader(strings.Join(day, "\n")+"\n"), inline)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dryrun.Run(ctx, inline, events, dryrun.Options{})
	if err != nil {
		t.Fatal(err)
	}

	// Agents who are at work in CXone before the day starts.
	for _, who := range []string{"bo@example.com", "chloe@example.com", "rosa@example.com", "dev@example.com"} {
		if err := sim.SetStatus(who, "Unavailable"); err != nil {
			t.Fatal(err)
		}
	}
	cfg, conns := loadConnected(ctx, t, livePolicy(t, exampleTenant().TenantID, simURL), connector.Deps{HTTPClient: http.DefaultClient},
		func(sys *policy.System) bool { return sys.Kind == "cxone" })
	accts, err := conns["cxone"].Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetAccountTeams("cxone", accts) // as serve does at start
	if p := cfg.PolicyFor("bo@example.com"); p == nil || p.Name != "service-desk" {
		t.Fatalf("Bo (CXone team tier1) gets %v, want service-desk", p)
	}
	sfAccounts := inline.Systems["sf"].Accounts
	names := map[string]string{}
	for _, s := range cfg.Systems["sf"].Catalog.Statuses() {
		names[s.ID] = s.Name
	}
	hub := bridge.NewHub(names)
	conns["sf"] = bridgedSalesforce{fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), sfAccounts), hub}
	eng, err := engine.New(engine.Config{Policy: cfg, Store: memory.New(), Connectors: conns,
		Machine: engine.Options{BackoffBase: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, DeferredRecheck: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	srv := serveBridged(t, eng, bridge.Options{Hub: hub})
	defer srv.Close()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	pb := &playedBridge{t: t, url: srv.URL, ids: map[string]string{}}
	defer func() {
		hub.Close()
		for _, s := range pb.subs {
			s.close()
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	waitFor(t, "engine ready", func() bool { return eng.Ready() == nil })
	for _, a := range sfAccounts {
		pb.ids[a.Email] = a.ID
		pb.open(a.ID)
		waitFor(t, "the bridge of "+a.Email, func() bool { return hub.Connected(a.ID) })
	}

	sfIDs := map[string]string{}
	for _, s := range inline.Systems["sf"].Catalog.Statuses() {
		sfIDs[s.Name] = s.ID
	}
	contacts := map[string]int64{}
	for i, ev := range events {
		email := ev.Agent
		if strings.HasPrefix(email, "3104721") {
			for _, a := range accts {
				if a.ID == email {
					email = a.Email
				}
			}
		}
		status := ev.Status
		if st, ok := inline.Systems[ev.System].Catalog.ByID(status); ok {
			status = st.Name
		}
		switch {
		case ev.System == "cxone" && (status == "InboundContact" || status == "OutboundContact"):
			id, err := sim.StartContact(email, status == "OutboundContact", "")
			if err != nil {
				t.Fatal(err)
			}
			contacts[email] = id
		case ev.System == "cxone" && contacts[email] != 0:
			if err := sim.EndContact(contacts[email]); err != nil {
				t.Fatal(err)
			}
			delete(contacts, email)
		case ev.System == "cxone":
			if err := sim.SetStatus(email, status); err != nil {
				t.Fatal(err)
			}
		case ev.Type == presence.Logout:
			pb.event(pb.ids[email], map[string]any{"type": "logout", "reason": "OmniManualLogout"})
		default:
			pb.event(pb.ids[email], map[string]any{"type": string(ev.Type), "statusId": sfIDs[status], "statusApiName": status,
				"reason": "OmniManualStatusChange"})
		}
		// The step is over once the engine has seen it and every write it caused is answered.
		waitFor(t, "step "+day[i], func() bool {
			v, ok, _ := eng.Agent(ctx, email)
			if !ok {
				return false
			}
			for _, sv := range v.Systems {
				if sv.Pending != "" || !sv.InSync && sv.Desired != "" {
					return false
				}
			}
			return v.Systems[ev.System].Observed == status || ev.Type == presence.Logout && v.Systems[ev.System].Observed == "Offline"
		})
	}
	for agent, systems := range want.Summary.Final {
		v, _, _ := eng.Agent(ctx, agent)
		for system, status := range systems {
			if got := v.Systems[system].Observed; got != status {
				t.Errorf("%s in %s ends on %q; simulate says %q", agent, system, got, status)
			}
		}
		if status, ok := systems["cxone"]; ok {
			if got, _, _ := sim.Status(agent); got != status {
				t.Errorf("the CXone simulator shows %s on %q; simulate says %q", agent, got, status)
			}
		}
	}
	t.Logf("simulate's final: %v", want.Summary.Final)
}

func ptr[T any](v T) *T { return &v }
