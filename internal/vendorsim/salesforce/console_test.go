package salesforce

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
)

func TestConsole(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	const ana = "ana@example.com"
	client := ts.Client()
	defer client.CloseIdleConnections()
	// get and post return the status, content type and body, closing the response.
	do := func(req *http.Request) (int, string, []byte) {
		t.Helper()
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, res.Header.Get("Content-Type"), b
	}
	get := func(path string) (int, string, []byte) {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		return do(req)
	}
	post := func(path, body string) int {
		req, _ := http.NewRequest(http.MethodPost, ts.URL+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		code, _, _ := do(req)
		return code
	}
	state := func() consoleState {
		t.Helper()
		_, _, b := get("/console/" + ana + "/state")
		var st consoleState
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return st
	}

	code, ctype, page := get("/console/" + ana)
	if code != 200 || !strings.HasPrefix(ctype, "text/html") || !strings.Contains(string(page), "data-omni-current") {
		t.Fatalf("page: %d %s", code, ctype)
	}
	if code, _, js := get("/console/assets/console.js"); code != 200 || !strings.Contains(string(js), "setServicePresenceStatus") {
		t.Fatalf("script: %d", code)
	}
	// The bridge's own files, as deployed, and the Aura stand-in that runs them.
	for asset, want := range map[string]string{"aura.js": "enqueueAction", "omnipresenceBridge.js": "createBridge",
		"omnipresenceBridge.cmp": "lightning:utilityItem", "omnipresenceBridgeController.js": "onOmniEvent",
		"omnipresenceBridgeHelper.js": "bridgeSettings"} {
		if code, _, b := get("/console/assets/" + asset); code != 200 || !strings.Contains(string(b), want) {
			t.Errorf("asset %s: %d", asset, code)
		}
	}
	if code, _, _ := get("/console/nobody@example.com"); code != 404 {
		t.Errorf("unknown user: %d, want 404", code)
	}

	st := state()
	if st.LoggedIn || len(st.Statuses) == 0 {
		t.Fatalf("initial state %+v", st)
	}
	var voice ConsoleStatus
	for _, c := range st.Statuses {
		if c.StatusAPIName == "AvailableforVoice" {
			voice = c
		}
	}
	if !strings.HasPrefix(voice.StatusID, "0N5") || len(voice.StatusID) != 15 || len(voice.Channels) != 1 || voice.Channels[0].DeveloperName != "sfdc_phone" {
		t.Fatalf("AvailableforVoice as the toolkit reports it: %+v", voice)
	}

	// The toolkit's setServicePresenceStatus logs the agent in with that status.
	if code := post("/console/"+ana+"/status", `{"statusId":"`+voice.StatusID+`","reason":"OmniToolkitStatusChange"}`); code != 200 {
		t.Fatalf("status: %d", code)
	}
	st = state()
	if !st.LoggedIn || st.Status.StatusAPIName != "AvailableforVoice" || st.Reason != "OmniToolkitStatusChange" {
		t.Fatalf("after the toolkit call: %+v", st)
	}
	if p, _ := s.Presence(ana); p != "AvailableforVoice" {
		t.Errorf("org presence = %q", p)
	}
	// A change made elsewhere (the control surface) is what the console reports next, with its reason.
	if _, err := s.SetStatus(ana, "Break", "OmniSupervisorStatusChange"); err != nil {
		t.Fatal(err)
	}
	if st = state(); st.Status.StatusAPIName != "Break" || st.Reason != "OmniSupervisorStatusChange" {
		t.Errorf("after a supervisor change: %+v", st)
	}
	if code := post("/console/"+ana+"/logout", `{}`); code != 204 {
		t.Fatalf("logout: %d", code)
	}
	if st = state(); st.LoggedIn || st.Reason != "OmniLoginStatusChange" {
		t.Errorf("after logout: %+v", st)
	}
	for _, bad := range []string{`{}`, `{"statusId":"0"}`, `{"statusId":"x","extra":1}`, `not json`} {
		if code := post("/console/"+ana+"/status", bad); code != 400 {
			t.Errorf("status %s: %d, want 400", bad, code)
		}
	}
}

// The console's emulation of the bridge's Apex controller, with and without a signing key.
func TestConsoleApex(t *testing.T) {
	keyPEM, err := os.ReadFile("../../../bridge/salesforce/test/fixtures/test-key.pem")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := bridgetoken.ParseSigner(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile("../../../bridge/salesforce/test/fixtures/test-cert.pem")
	certs, _ := bridgetoken.ParseCertificates(certPEM)
	verifier, _ := bridgetoken.NewVerifier(certs, nil)

	for _, withKey := range []bool{true, false} {
		cfg := Config{}
		if withKey {
			cfg.BridgeSigner = signer
		}
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s.Handler())
		call := func(method, query, params string) map[string]any {
			t.Helper()
			res, err := ts.Client().Post(ts.URL+"/console/ana@example.com/apex/"+method+query, "application/json",
				strings.NewReader(`{"params":`+params+`}`))
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var out map[string]any
			if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		anaID, _ := s.UserID("ana@example.com")
		settings := call("bridgeSettings", "?service="+url.QueryEscape("http://127.0.0.1:9"), "{}")
		if !withKey {
			errs, _ := settings["error"].([]any)
			if settings["state"] != "ERROR" || len(errs) != 1 || !strings.Contains(fmt.Sprint(errs[0]), "--bridge-key-file") {
				t.Errorf("settings without a key = %v", settings)
			}
			res, _ := ts.Client().Get(ts.URL + "/console/ana@example.com/bridge-token")
			if res.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("bridge-token without a key: %d", res.StatusCode)
			}
			res.Body.Close()
			ts.Close()
			s.Close()
			continue
		}
		rv, _ := settings["returnValue"].(map[string]any)
		if settings["state"] != "SUCCESS" || rv["serviceUrl"] != "http://127.0.0.1:9" || rv["userId"] != anaID || rv["orgId"] != s.Info()["org_id"] {
			t.Fatalf("settings = %v", settings)
		}
		c, err := verifier.Verify(rv["token"].(string), time.Now())
		if err != nil || c.Sub != anaID {
			t.Errorf("the settings' token: %+v, %v", c, err)
		}
		if tok := call("mintToken", "", "{}"); tok["state"] != "SUCCESS" {
			t.Errorf("mintToken = %v", tok)
		} else if _, err := verifier.Verify(tok["returnValue"].(string), time.Now()); err != nil {
			t.Error(err)
		}
		if got := call("bridgeSettings", "", "{}"); got["state"] != "ERROR" {
			t.Errorf("settings without a service URL = %v", got)
		}
		// serviceChannelOf answers for the user's own work only.
		if _, err := s.AcceptWork("ana@example.com", "sfdc_phone"); err == nil {
			t.Fatal("work accepted while offline")
		}
		if _, err := s.SetStatus("ana@example.com", "AvailableforVoice", "OmniManualStatusChange"); err != nil {
			t.Fatal(err)
		}
		w, err := s.AcceptWork("ana@example.com", "sfdc_phone")
		if err != nil {
			t.Fatal(err)
		}
		if got := call("serviceChannelOf", "", `{"workId":"`+w.ID[:15]+`"}`); got["returnValue"] != "sfdc_phone" {
			t.Errorf("serviceChannelOf(own work) = %v", got)
		}
		if got := call("serviceChannelOf", "", `{"workId":"0Bz000000000001"}`); got["state"] != "SUCCESS" || got["returnValue"] != nil {
			t.Errorf("serviceChannelOf(unknown) = %v", got)
		}
		if got := call("dance", "", "{}"); got["state"] != "ERROR" {
			t.Errorf("an unknown action = %v", got)
		}
		var st consoleState
		res, _ := ts.Client().Get(ts.URL + "/console/ana@example.com/state")
		_ = json.NewDecoder(res.Body).Decode(&st)
		res.Body.Close()
		if len(st.Works) != 1 || !st.Works[0].IsEngaged || st.Works[0].WorkID != w.ID[:15] {
			t.Errorf("works = %+v", st.Works)
		}
		if tok, err := s.MintBridgeToken("ana@example.com"); err != nil {
			t.Error(err)
		} else if _, err := verifier.Verify(tok, time.Now()); err != nil {
			t.Error(err)
		}
		ts.Close()
		s.Close()
	}
}
