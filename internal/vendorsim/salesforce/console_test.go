package salesforce

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
	if !strings.HasPrefix(voice.StatusID, "0N5") || len(voice.Channels) != 1 || voice.Channels[0].DeveloperName != "sfdc_phone" {
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
