package cxone

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

type client struct {
	t   *testing.T
	s   *Server
	url string
	tok string
}

func newClient(t *testing.T, cfg Config) *client {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	s.SetURL(ts.URL)
	t.Cleanup(func() { _ = s.Close(); ts.Close() })
	c := &client{t: t, s: s, url: ts.URL}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	c.form("/auth/token", url.Values{"grant_type": {"password"}, "username": {"demo-access-key"},
		"password": {"demo-access-secret"}, "client_id": {"demo-client"}, "client_secret": {"demo-secret"}}, http.StatusOK, &tok)
	c.tok = tok.AccessToken
	return c
}

func (c *client) form(path string, v url.Values, want int, out any) {
	c.t.Helper()
	resp, err := http.PostForm(c.url+path, v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.check(resp, want, out)
}

func (c *client) check(resp *http.Response, want int, out any) {
	c.t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		c.t.Fatalf("%s %s: %d %s, want %d", resp.Request.Method, resp.Request.URL.Path, resp.StatusCode, b, want)
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s: %v", b, err)
		}
	}
}

// do calls the API with the client's token; body is sent as is, with contentType.
func (c *client) do(method, path, contentType, body string, want int, out any) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.tok)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	c.check(resp, want, out)
	return resp
}

// TestSessionAPI: paths in any case, JSON bodies whatever their Content-Type, join, state,
// get-next-event with its 200, 304 and 409, and the refusals.
func TestSessionAPI(t *testing.T) {
	c := newClient(t, Config{MaxPoll: 200 * time.Millisecond})
	const v = "/InContactAPI/services/v23.0"
	// Ana is logged out: nothing to join.
	var e struct{ Error string }
	c.do("POST", v+"/agent-sessions/join", "", `{"asAgentId":"100001"}`, http.StatusConflict, &e)
	if e.Error != "AgentNotLoggedIn" {
		t.Errorf("join of a logged-out agent: %q", e.Error)
	}
	if err := c.s.SetStatus("ana@example.com", "Available"); err != nil {
		t.Fatal(err)
	}
	var sess struct{ SessionID string }
	c.do("POST", "/incontactapi/SERVICES/v23.0/Agent-Sessions/JOIN", "text/plain", `{"asAgentId":"100001"}`, http.StatusAccepted, &sess)
	var evs struct {
		Events []map[string]any
	}
	c.do("GET", v+"/agent-sessions/"+sess.SessionID+"/get-next-event?timeout=1", "", "", http.StatusOK, &evs)
	if len(evs.Events) != 1 || evs.Events[0]["Type"] != "AgentState" || evs.Events[0]["CurrentState"] != "Available" {
		t.Errorf("the join's snapshot: %v", evs.Events)
	}
	c.do("GET", v+"/agent-sessions/"+sess.SessionID+"/get-next-event?timeout=1", "", "", http.StatusNotModified, nil)
	// The state as a JSON body labelled as a form, and as query parameters.
	c.do("POST", v+"/agent-sessions/"+sess.SessionID+"/state", "application/x-www-form-urlencoded", `{"state":"Unavailable","reason":"Lunch"}`, http.StatusAccepted, nil)
	c.do("GET", v+"/agent-sessions/"+sess.SessionID+"/get-next-event?timeout=1", "", "", http.StatusOK, &evs)
	if ev := evs.Events[0]; ev["CurrentState"] != "Unavailable" || ev["CurrentOutReason"] != "Lunch" || ev["IsAcw"] != "False" {
		t.Errorf("AgentState after Lunch: %v", ev)
	}
	c.do("POST", v+"/agent-sessions/"+sess.SessionID+"/state?state=Available", "", "", http.StatusAccepted, nil)
	c.do("POST", v+"/agent-sessions/"+sess.SessionID+"/state", "", `{"state":"Unavailable","reason":"ACW"}`, http.StatusConflict, &e)
	c.do("POST", v+"/agent-sessions/"+sess.SessionID+"/state", "", `{"state":"Unavailable","reason":"Nope"}`, http.StatusBadRequest, &e)
	if e.Error != "InvalidUnavailableCode" {
		t.Errorf("an unknown code: %q", e.Error)
	}
	id, err := c.s.StartContact("ana@example.com", false, "")
	if err != nil {
		t.Fatal(err)
	}
	c.do("POST", v+"/agent-sessions/"+sess.SessionID+"/state", "", `{"state":"Available"}`, http.StatusConflict, &e)
	if e.Error != "AgentOnContact" {
		t.Errorf("a state change on a call: %q", e.Error)
	}
	if err := c.s.EndContact(id); err != nil {
		t.Fatal(err)
	}
	// The agent logs out: a waiting poll ends with 409.
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", c.url+v+"/agent-sessions/"+sess.SessionID+"/get-next-event?timeout=60", nil)
		req.Header.Set("Authorization", "Bearer "+c.tok)
		for {
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				done <- resp.StatusCode
				return
			}
		}
	}()
	if err := c.s.SetStatus("ana@example.com", LoggedOut); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got != http.StatusConflict {
		t.Errorf("polling an ended session: %d, want 409", got)
	}
}

// TestAgentStatesUpdatedSince: a poll brings the changes since the last one's lastPollTime.
func TestAgentStatesUpdatedSince(t *testing.T) {
	c := newClient(t, Config{})
	var r struct {
		LastPollTime string
		AgentStates  []struct {
			AgentID        int
			AgentStateName string
			OutStateID     int
			StartDate      string
		}
	}
	c.do("GET", "/inContactAPI/services/v27.0/agents/states", "", "", http.StatusOK, &r)
	if len(r.AgentStates) != 50 {
		t.Fatalf("%d agent states", len(r.AgentStates))
	}
	since := r.LastPollTime
	c.do("GET", "/inContactAPI/services/v27.0/agents/states?updatedSince="+url.QueryEscape(since), "", "", http.StatusOK, &r)
	if len(r.AgentStates) != 0 {
		t.Errorf("nothing changed, yet %d states came", len(r.AgentStates))
	}
	if err := c.s.SetStatus("bo@example.com", "Break"); err != nil {
		t.Fatal(err)
	}
	c.do("GET", "/inContactAPI/services/v27.0/agents/states?updatedSince="+url.QueryEscape(r.LastPollTime), "", "", http.StatusOK, &r)
	if len(r.AgentStates) != 1 || r.AgentStates[0].AgentID != DemoAgentID(2) || r.AgentStates[0].OutStateID != BreakCode {
		t.Errorf("after Bo's Break: %+v", r.AgentStates)
	}
}

// TestAuth: PKCE is checked, refresh and token exchange work, and expired or unknown tokens
// get 401; unknown tenants get 404.
func TestAuth(t *testing.T) {
	c := newClient(t, Config{})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := "a-verifier-of-enough-length-0123456789abcdef"
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {"demo-client"}, "redirect_uri": {"http://app.test/cb"}, "response_type": {"code"},
		"state": {"s1"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"login_hint": {"bo@example.com"}}
	code := func() string {
		resp, err := noRedirect.Get(c.url + "/auth/authorize?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || loc.Query().Get("state") != "s1" {
			t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
		}
		return loc.Query().Get("code")
	}
	c.form("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {"demo-client"},
		"code_verifier": {"wrong"}}, http.StatusBadRequest, nil)
	var tok struct {
		A string `json:"access_token"`
		R string `json:"refresh_token"`
		I string `json:"id_token"`
	}
	c.form("/auth/token", url.Values{"grant_type": {"authorization_code"}, "code": {code()}, "client_id": {"demo-client"},
		"code_verifier": {verifier}}, http.StatusOK, &tok)
	if strings.Count(tok.I, ".") != 2 {
		t.Fatalf("id_token %q", tok.I)
	}
	var who struct {
		AgentID int `json:"agent_id"`
	}
	c.form("/InContactAuthorizationServer/Token/whoami", url.Values{"token": {tok.A}}, http.StatusOK, &who)
	if who.AgentID != DemoAgentID(2) {
		t.Errorf("whoami = %d, want Bo", who.AgentID)
	}
	c.form("/auth/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.R}}, http.StatusOK, nil)
	c.form("/auth/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {tok.A}}, http.StatusOK, nil)
	c.s.ExpireTokens()
	c.do("GET", "/inContactAPI/services/v23.0/teams", "", "", http.StatusUnauthorized, nil)
	resp, err := http.Get(c.url + "/.well-known/cxone-configuration?tenantId=nope")
	if err != nil {
		t.Fatal(err)
	}
	c.check(resp, http.StatusNotFound, nil)
}

// TestLimits: a token's budget is enforced with 429 and Retry-After; faults use CXone's error
// shape.
func TestLimits(t *testing.T) {
	c := newClient(t, Config{RateLimit: 3, RateWindow: time.Minute})
	for range 3 {
		c.do("GET", "/inContactAPI/services/v23.0/teams", "", "", http.StatusOK, nil)
	}
	resp := c.do("GET", "/inContactAPI/services/v23.0/teams", "", "", http.StatusTooManyRequests, nil)
	if resp.Header.Get("Retry-After") == "" || c.s.Throttled() != 1 {
		t.Errorf("429 without Retry-After, or not counted (%d)", c.s.Throttled())
	}
	c2 := newClient(t, Config{})
	if err := c2.s.Faults().Apply(fault.Settings{ErrorRate: 1, ErrorStatus: 503}); err != nil {
		t.Fatal(err)
	}
	var e struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	c2.do("GET", "/inContactAPI/services/v23.0/teams", "", "", http.StatusServiceUnavailable, &e)
	if e.Error == "" || e.ErrorDescription == "" {
		t.Errorf("fault body %+v", e)
	}
}

// TestTLS: with TLS the simulator serves https with the certificate its Info carries.
func TestTLS(t *testing.T) {
	s, err := New(Config{TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pool := x509.NewCertPool()
	if !strings.HasPrefix(u, "https://") || !pool.AppendCertsFromPEM([]byte(s.Info()["ca_cert"].(string))) {
		t.Fatalf("url %s, ca_cert %v", u, s.Info()["ca_cert"])
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(u + "/.well-known/cxone-configuration?tenantId=" + DemoTenantID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("discovery over https: %d", resp.StatusCode)
	}
}
