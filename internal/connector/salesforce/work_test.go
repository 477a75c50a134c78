package salesforce

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/genesys"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

// workSettings are the org's settings with AgentWork watched.
func (o *org) workSettings() settings.Settings {
	s := o.settings()
	s["work_channel"] = sfsim.AgentWorkTopic
	return s
}

// nextWork returns the next work event (work_accepted or workload_changed), skipping status
// events.
func (w *watcher) nextWork(t *testing.T) presence.Event {
	t.Helper()
	for {
		switch ev := w.next(t); ev.Type {
		case presence.WorkAccepted, presence.WorkloadChanged:
			return ev
		case presence.StatusChanged:
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
}

// describeWork renders a work event for comparison.
func describeWork(ev presence.Event) string {
	s := string(ev.Type) + " " + ev.Agent + " " + ev.Data["workId"].(string)
	if ev.Type == presence.WorkloadChanged {
		s += fmt.Sprintf(" %v->%v/%v", ev.Data["previousWorkload"], ev.Data["newWorkload"], ev.Data["configuredCapacity"])
	}
	return s
}

// TestWorkAccepted routes, accepts and closes work in the simulator: the accept becomes
// work_accepted, with the channel a policy tests, and accept and close each change the workload;
// routing alone reports nothing. A restart resumes after the last event without repeating it.
func TestWorkAccepted(t *testing.T) {
	o := startOrg(t, sfsim.Config{})
	c := o.open(t, o.workSettings())
	o.cps.m[c.checkpointFor(c.channel)] = fromStart
	o.cps.m[c.checkpointFor(sfsim.AgentWorkTopic)] = fromStart
	login(t, o, "ana@example.com", "AvailableforVoice")
	login(t, o, "bo@example.com", "Online")

	w := watch(t, c)
	if _, err := o.sim.RouteWork("ana@example.com", "sfdc_phone"); err != nil {
		t.Fatal(err)
	}
	acc, err := o.sim.AcceptWork("ana@example.com", "sfdc_phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.sim.CloseWork("ana@example.com", "sfdc_phone"); err != nil {
		t.Fatal(err)
	}
	marker, err := o.sim.AcceptWork("bo@example.com", "sfdc_livemessage")
	if err != nil {
		t.Fatal(err)
	}
	ev := w.nextWork(t)
	got := []string{describeWork(ev)}
	for i := 0; i < 4; i++ {
		got = append(got, describeWork(w.nextWork(t)))
	}
	// The call takes the whole capacity, a messaging session a quarter (the simulator's weights).
	wantSeq := []string{
		"work_accepted " + acc.UserID + " " + acc.ID,
		"workload_changed " + acc.UserID + " " + acc.ID + " 0->100/100",
		"workload_changed " + acc.UserID + " " + acc.ID + " 100->0/100",
		"work_accepted " + marker.UserID + " " + marker.ID,
		"workload_changed " + marker.UserID + " " + marker.ID + " 0->25/100",
	}
	if strings.Join(got, "\n") != strings.Join(wantSeq, "\n") {
		t.Fatalf("work events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wantSeq, "\n"))
	}
	want := map[string]any{"channel": "sfdc_phone", "workItemId": acc.WorkItemID, "serviceChannelId": acc.ServiceChannelID,
		"workId": acc.ID, "changeType": "UPDATE"}
	if ev.Agent != acc.UserID || ev.System != "sf" || ev.ID == "" || !ev.At.Equal(acc.At) {
		t.Fatalf("work_accepted %+v, want agent %s at %s", ev, acc.UserID, acc.At)
	}
	for k, v := range want {
		if ev.Data[k] != v {
			t.Errorf("data %s = %v, want %v", k, ev.Data[k], v)
		}
	}
	w.stop(t)

	// While stopped: one more accept. A restarted connector reports it, and only it.
	missed, err := o.sim.AcceptWork("ana@example.com", "sfdc_phone")
	if err != nil {
		t.Fatal(err)
	}
	c2 := o.open(t, o.workSettings())
	w2 := watch(t, c2)
	if got := describeWork(w2.nextWork(t)); got != "work_accepted "+missed.UserID+" "+missed.ID {
		t.Fatalf("after restart: %s, want the missed accept %s", got, missed.ID)
	}
	if got := describeWork(w2.nextWork(t)); got != "workload_changed "+missed.UserID+" "+missed.ID+" 0->100/100" {
		t.Fatalf("after restart: %s", got)
	}
	marker2, err := o.sim.AcceptWork("bo@example.com", "sfdc_livemessage")
	if err != nil {
		t.Fatal(err)
	}
	if ev := w2.nextWork(t); ev.Type != presence.WorkAccepted || ev.Data["workId"] != marker2.ID {
		t.Fatalf("after restart, then: %+v, want %s", ev, marker2.ID)
	}
	w2.stop(t)

	checkPolicy(t, ev)
}

// checkPolicy evaluates a rule on sf.work_accepted testing sf.channel against the connector's
// event, as the engine would after resolving the agent's email.
func checkPolicy(t *testing.T, ev presence.Event) {
	t.Helper()
	src := `version: 1
systems:
  sf:
    kind: salesforce
    login_url: https://login.salesforce.com
    work_channel: /data/AgentWorkChangeEvent
    auth: {flow: client_credentials, client_id: x, client_secret: y}
    catalog:
      - {id: "0N5000000000001", name: AvailableforVoice, category: available}
      - {id: "0", name: Offline, category: offline}
    accounts:
      - {id: "005000000000001", email: ana@example.com}
  gc:
    kind: genesys
    region: mypurecloud.ie
    client_id: x
    client_secret: y
    catalog:
      - {id: "31fe3bac-dea6-44b7-bed7-47f91660a1a0", name: Busy, category: busy}
      - {id: "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5", name: Offline, category: offline}
agents:
  - {email: ana@example.com, teams: [voice]}
policies:
  - name: voice
    applies_to: {teams: [voice]}
    rules:
      - name: on-a-call
        on: sf.work_accepted
        when: 'sf.channel == "sfdc_phone"'
        set: {gc: Busy}
`
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	registerVendors()
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatalf("a policy with work_channel: %v", err)
	}
	p := cfg.PolicyFor("ana@example.com")
	ev.Agent = "ana@example.com"
	ev.Data["channel"] = "sfdc_phone"
	e := p.Evaluate(policy.Input{Event: ev})
	if len(e.Intents) != 1 || e.Intents[0].System != "gc" || e.Intents[0].Status.Name != "Busy" {
		t.Fatalf("sfdc_phone work: intents %+v, steps %+v", e.Intents, e.Steps)
	}
	ev.Data["channel"] = "sfdc_livemessage"
	if e := p.Evaluate(policy.Input{Event: ev}); len(e.Intents) != 0 {
		t.Fatalf("messaging work: intents %+v", e.Intents)
	}
}

func TestWorkChannelSetting(t *testing.T) {
	base := func(v string) settings.Settings {
		return settings.Settings{"work_channel": v, "auth": map[string]any{"flow": "client_credentials", "client_id": "x", "client_secret": "y"}}
	}
	for _, bad := range []string{"AgentWorkChangeEvent", DefaultChannel} {
		if _, err := Vendor.Connect(context.Background(), "sf", base(bad), connector.Deps{}); err == nil || !strings.Contains(err.Error(), "work_channel") {
			t.Errorf("work_channel %q: %v", bad, err)
		}
	}
	cc, err := Vendor.Connect(context.Background(), "sf", base("/data/AgentWorkChangeEvent"), connector.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if c := cc.(*Connector); c.checkpointFor(c.workChannel) == c.checkpointFor(c.channel) {
		t.Fatalf("work channel: %v", err)
	}
}

var registerOnce sync.Once

// registerVendors registers the vendors a test policy names (internal/vendors, which does it for
// the program, imports this package).
func registerVendors() {
	registerOnce.Do(func() {
		connector.Register(Vendor)
		connector.Register(genesys.Vendor)
	})
}
