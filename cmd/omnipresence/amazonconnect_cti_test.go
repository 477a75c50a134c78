package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	acsim "github.com/omnipresence/omnipresence/internal/vendorsim/amazonconnect"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

// TestAmazonConnectCTIExampleLive is seed 003 end to end: the rules of
// examples/amazon-connect-cti, verbatim, run by `serve` against the Salesforce simulator (status
// changes and logouts from change events and the agents' headless Omni-Channel bridges, work
// accepted and workload from AgentWork) and the Amazon Connect simulator (agent events from
// Kinesis, contacts that pass through Busy and AfterCallWork, PutUserStatus held as NextStatus).
// The test plays the example's day (events.jsonl) as the people and telephony would, waiting
// for each rule's effect on the vendor, and ends where `simulate` says the day ends. The day's
// last event, a Salesforce status event naming Offline that is not a logout, is left out:
// Omni-Channel reports Offline only as a logout.
func TestAmazonConnectCTIExampleLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const fixtures = "../../bridge/salesforce/test/fixtures/"
	const example = "../../examples/amazon-connect-cti/"
	people := []string{"ana@example.com", "bo@example.com", "chloe@example.com"}

	pem, err := os.ReadFile(fixtures + "test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bridgetoken.ParseSigner(pem)
	if err != nil {
		t.Fatal(err)
	}
	sfSeed, err := sfsim.LoadSeed(example + "salesforce-seed.json")
	if err != nil {
		t.Fatal(err)
	}
	acSeed := acsim.Seed{Statuses: acsim.DemoSeed().Statuses}
	for _, p := range people {
		acSeed.Users = append(acSeed.Users, acsim.SeedUser{Email: p})
	}
	sf, err := sfsim.New(sfsim.Config{BridgeSigner: signer, Seed: &sfSeed})
	if err != nil {
		t.Fatal(err)
	}
	sfURL, err := sf.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	ac, err := acsim.New(acsim.Config{Seed: &acSeed, ShardReads: 20})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer ac.Close()

	// The example's rules, verbatim, with connection settings for the simulators instead of the
	// example's inline catalogs and accounts.
	body, err := os.ReadFile(example + "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := string(body)[strings.Index(string(body), "\npolicies:"):]
	// simulators.yaml, which the README runs against the simulators, has the same rules.
	simulators, err := os.ReadFile(example + "simulators.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(string(simulators), rules) {
		t.Error("the policies of simulators.yaml differ from policy.yaml's")
	}
	info := ac.Info()
	text := fmt.Sprintf(`version: 1
systems:
  sf:
    kind: salesforce
    login_url: %s
    pubsub_url: %s
    work_channel: /data/AgentWorkChangeEvent
    auth: {flow: client_credentials, client_id: demo-client, client_secret: demo-secret}
  connect:
    kind: amazonconnect
    region: %s
    instance_id: %s
    endpoint: %s
    kinesis_endpoint: %s
    agent_event_stream: %s
    access_key_id: %s
    secret_access_key: %s
`, sfURL, sf.Info()["pubsub_url"], info["region"], info["instance_id"], info["url"], info["kinesis_url"],
		info["agent_event_stream"], info["access_key_id"], info["secret_access_key"]) + rules
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	var svc struct {
		URL string `json:"url"`
	}
	startLine(t, ctx, nil, &svc, "serve", "--config", path, "--store", "memory:", "--addr", "127.0.0.1:0",
		"--bridge-cert-file", fixtures+"test-cert.pem", "--bridge-origin", sfURL)
	consoles, stop := context.WithCancel(ctx)
	wait, err := sf.StartHeadlessConsoles(consoles, sfsim.HeadlessOptions{Service: svc.URL, Users: people})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { stop(); wait() }()

	get := func(path string, v any) bool {
		resp, err := http.Get(svc.URL + path)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(v) == nil
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitUntil("the service ready with every bridge connected", func() bool {
		var s struct {
			Ready   bool `json:"ready"`
			Systems []struct {
				Name    string `json:"name"`
				State   string `json:"state"`
				Bridges *struct {
					Connected int `json:"connected"`
				} `json:"bridges"`
			} `json:"systems"`
		}
		if !get("/api/v1/systems", &s) || !s.Ready {
			return false
		}
		for _, sys := range s.Systems {
			if sys.State != "connected" || sys.Name == "sf" && (sys.Bridges == nil || sys.Bridges.Connected < len(people)) {
				return false
			}
		}
		return true
	})
	connectShows := func(email string) string {
		for _, u := range ac.Users() {
			if u.Email != email {
				continue
			}
			shows := u.Status
			for _, c := range u.Contacts {
				if c.State != "ENDED" {
					return "Busy"
				}
				shows = "AfterCallWork"
			}
			return shows
		}
		return ""
	}
	inConnect := func(email, want string) {
		t.Helper()
		waitUntil(email+" showing "+want+" in Connect", func() bool { return connectShows(email) == want })
	}
	inSalesforce := func(email, want string) {
		t.Helper()
		waitUntil(email+" showing "+want+" in Omni-Channel", func() bool { s, err := sf.Presence(email); return err == nil && s == want })
	}
	// observed waits until the service has seen what Connect shows.
	observed := func(email, want string) {
		t.Helper()
		waitUntil("the service to see "+email+" "+want+" in Connect", func() bool {
			var a struct {
				Systems map[string]struct {
					Observed string `json:"observed"`
				} `json:"systems"`
			}
			return get("/api/v1/agents/"+email, &a) && a.Systems["connect"].Observed == want
		})
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sfSet := func(email, status string) {
		t.Helper()
		_, err := sf.SetStatus(email, status, "OmniManualStatusChange")
		must(err)
	}
	const ana, bo, chloe = "ana@example.com", "bo@example.com", "chloe@example.com"

	// Before the day: everyone logged in, in statuses no rule looks at.
	for _, p := range people {
		_, err := sf.Login(p, "Busy")
		must(err)
		must(ac.SetStatus(p, "Training"))
		observed(p, "Training")
	}
	// 08:55–08:57: Ana Available in Omni-Channel; Bo and Chloe Available in the CCP.
	sfSet(ana, "Available")
	inConnect(ana, "Available")
	must(ac.SetStatus(bo, "Available"))
	inSalesforce(bo, "Available")
	must(ac.SetStatus(chloe, "Available"))
	inSalesforce(chloe, "Available")
	// 09:12–09:19: a call: Busy, AfterCallWork (Salesforce Busy throughout), then Available.
	call, err := ac.StartContact(acsim.ContactRequest{User: ana, Answer: true})
	must(err)
	inSalesforce(ana, "Busy")
	must(ac.EndContact(call))
	observed(ana, "AfterCallWork")
	must(ac.ClearContact(call))
	inSalesforce(ana, "Available")
	// 09:40: Ana accepts an escalated case: Connect Escalation.
	_, err = sf.AcceptWork(ana, "Escalated_Cases")
	must(err)
	inConnect(ana, "Escalation")
	// 10:05: Bo's workload reaches 100 %: Connect OmniBusy.
	_, err = sf.AcceptWork(bo, "sfdc_phone")
	must(err)
	inConnect(bo, "OmniBusy")
	// 10:20–10:35: Ana's break.
	sfSet(ana, "Break")
	inConnect(ana, "Break")
	sfSet(ana, "Available")
	inConnect(ana, "Available")
	// 10:21: Bo's workload drops below 100 %: Connect Available.
	_, err = sf.CloseWork(bo, "sfdc_phone")
	must(err)
	inConnect(bo, "Available")
	// 11:30–12:30: Chloe's Connect Lunch, then Available.
	must(ac.SetStatus(chloe, "Lunch"))
	inSalesforce(chloe, "Lunch")
	must(ac.SetStatus(chloe, "Available"))
	inSalesforce(chloe, "Available")
	// 14:00: Chloe flaps Break, Available, Break within the debounce: Connect gets Break.
	sfSet(chloe, "Break")
	time.Sleep(400 * time.Millisecond)
	sfSet(chloe, "Available")
	time.Sleep(400 * time.Millisecond)
	sfSet(chloe, "Break")
	inConnect(chloe, "Break")
	sfSet(chloe, "Available")
	inConnect(chloe, "Available")
	// 15:00–15:45: Bo's Training is unmapped; back to Available.
	must(ac.SetStatus(bo, "Training"))
	observed(bo, "Training")
	must(ac.SetStatus(bo, "Available"))
	observed(bo, "Available")
	// 16:55–16:59: Chloe's call; she logs out of Omni-Channel in AfterCallWork: Connect holds
	// Offline as her next status.
	call, err = ac.StartContact(acsim.ContactRequest{User: chloe, Answer: true})
	must(err)
	inSalesforce(chloe, "Busy")
	must(ac.EndContact(call))
	observed(chloe, "AfterCallWork")
	_, err = sf.Logout(chloe)
	must(err)
	waitUntil("Connect to hold Offline as Chloe's next status", func() bool {
		for _, u := range ac.Users() {
			if u.Email == chloe {
				return u.NextStatus == "Offline"
			}
		}
		return false
	})
	// 17:00: Ana's logout: Connect Offline.
	_, err = sf.Logout(ana)
	must(err)
	inConnect(ana, "Offline")

	// Where simulate says the same day ends.
	events, err := os.ReadFile(example + "events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(events)), "\n")
	day := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(day, []byte(strings.Join(lines[:len(lines)-1], "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run(t, "simulate", "--config", example+"policy.yaml", "--events", day)
	if code != 0 {
		t.Fatalf("simulate: exit %d: %s", code, stderr)
	}
	var want struct {
		Final map[string]map[string]string `json:"final"`
	}
	for sc := bufio.NewScanner(strings.NewReader(out)); sc.Scan(); {
		if strings.HasPrefix(sc.Text(), `{"final"`) {
			must(json.Unmarshal(sc.Bytes(), &want))
		}
	}
	got := map[string]map[string]string{}
	for _, p := range people {
		s, err := sf.Presence(p)
		must(err)
		got[p] = map[string]string{"sf": s, "connect": connectShows(p)}
	}
	if !reflect.DeepEqual(got, want.Final) {
		t.Errorf("the live day ends with %v; simulate ends it with %v", got, want.Final)
	}
	// When Chloe clears after-call work, Connect applies the held Offline.
	must(ac.ClearContact(call))
	inConnect(chloe, "Offline")
}
