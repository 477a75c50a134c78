package amazonconnect

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// call makes one request to the simulator, signed (only the credential scope matters) for
// service unless auth is given.
func call(t *testing.T, h http.Handler, method, path, target, auth, body string, header ...string) (*http.Response, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if target != "" {
		r.Header.Set("X-Amz-Target", "Kinesis_20131202."+target)
		r.Header.Set("Content-Type", "application/x-amz-json-1.1")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	r.Header.Set("X-Amz-Date", "20261130T120000Z")
	if auth == "" {
		service := "connect"
		if target != "" {
			service = "kinesis"
		}
		scope := "20261130/us-east-1/" + service + "/aws4_request"
		sig, err := sigV4(r, DemoSecretAccessKey, scope, "host;x-amz-date")
		if err != nil {
			t.Fatal(err)
		}
		auth = "AWS4-HMAC-SHA256 Credential=" + DemoAccessKeyID + "/" + scope + ", SignedHeaders=host;x-amz-date, Signature=" + sig
	}
	if auth != "-" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	resp := w.Result()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp, out
}

func newServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSignatureScopeIsChecked refuses requests as AWS does: without a signature, with a key the
// instance does not know, for another region or service, with a wrong signature, with an
// expired session token.
func TestSignatureScopeIsChecked(t *testing.T) {
	s := newServer(t, Config{})
	path := "/agent-status/" + DemoInstanceID
	scope := func(key, region, service string) string {
		return "AWS4-HMAC-SHA256 Credential=" + key + "/20261130/" + region + "/" + service + "/aws4_request, SignedHeaders=host, Signature=abc"
	}
	for _, tt := range []struct {
		auth, typ string
		status    int
	}{
		{"-", "MissingAuthenticationTokenException", 403},
		{"Bearer x", "IncompleteSignatureException", 400},
		{scope("AKIAUNKNOWNKEY000000", "us-east-1", "connect"), "UnrecognizedClientException", 403},
		{scope(DemoAccessKeyID, "eu-west-2", "connect"), "InvalidSignatureException", 403},
		{scope(DemoAccessKeyID, "us-east-1", "kinesis"), "InvalidSignatureException", 403},
		{scope(DemoAccessKeyID, "us-east-1", "connect"), "InvalidSignatureException", 403},
	} {
		resp, body := call(t, s.Handler(), "GET", path, "", tt.auth, "")
		if resp.StatusCode != tt.status || resp.Header.Get("x-amzn-ErrorType") != tt.typ || body["message"] == "" {
			t.Errorf("%s: %d %q %v, want %d %s", tt.auth, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body, tt.status, tt.typ)
		}
	}
	if resp, _ := call(t, s.Handler(), "GET", path, "", "", "", "X-Amz-Security-Token", "tok"); resp.StatusCode != 200 {
		t.Fatalf("with a session token: %d", resp.StatusCode)
	}
	s.ExpireTokens()
	if resp, _ := call(t, s.Handler(), "GET", path, "", "", "", "X-Amz-Security-Token", "tok"); resp.Header.Get("x-amzn-ErrorType") != "ExpiredTokenException" {
		t.Errorf("expired session token: %d %s", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"))
	}
	if resp, _ := call(t, s.Handler(), "GET", path, "", "", ""); resp.StatusCode != 200 {
		t.Errorf("long-term key after tokens expired: %d", resp.StatusCode)
	}
}

// TestConnectOperations checks paging, status types, PutUserStatus's refusals and
// GetCurrentUserData's filters.
func TestConnectOperations(t *testing.T) {
	s := newServer(t, Config{RatePerSecond: 1000, Burst: 1000, UserDataRate: 1000, UserDataBurst: 1000})
	h := s.Handler()
	var names []string
	token := ""
	for pages := 0; ; pages++ {
		path := "/agent-status/" + DemoInstanceID + "?maxResults=3"
		if token != "" {
			path += "&nextToken=" + token
		}
		resp, body := call(t, h, "GET", path, "", "", "")
		if resp.StatusCode != 200 || pages > 5 {
			t.Fatalf("page %d: %d %v", pages, resp.StatusCode, body)
		}
		for _, st := range body["AgentStatusSummaryList"].([]any) {
			names = append(names, st.(map[string]any)["Name"].(string))
		}
		next, _ := body["NextToken"].(string)
		if next == "" {
			break
		}
		token = next
	}
	if len(names) != 7 {
		t.Errorf("paged statuses %v", names)
	}
	if _, body := call(t, h, "GET", "/agent-status/"+DemoInstanceID+"?AgentStatusTypes=OFFLINE&AgentStatusTypes=ROUTABLE", "", "", ""); len(body["AgentStatusSummaryList"].([]any)) != 2 {
		t.Errorf("ROUTABLE and OFFLINE: %v", body)
	}
	if resp, _ := call(t, h, "GET", "/agent-status/"+DemoInstanceID+"?maxResults=1001", "", "", ""); resp.Header.Get("x-amzn-ErrorType") != "InvalidParameterException" {
		t.Errorf("maxResults 1001: %d", resp.StatusCode)
	}
	if resp, _ := call(t, h, "GET", "/agent-status/other-instance", "", "", ""); resp.StatusCode != 404 || resp.Header.Get("x-amzn-ErrorType") != "ResourceNotFoundException" {
		t.Errorf("unknown instance: %d", resp.StatusCode)
	}
	ana := s.Users()[0].ID
	put := func(user, status string) *http.Response {
		resp, _ := call(t, h, "PUT", "/users/"+DemoInstanceID+"/"+user+"/status", "", "", `{"AgentStatusId":"`+status+`"}`)
		return resp
	}
	for _, tt := range []struct{ user, status, typ string }{{"nobody", LunchID, "ResourceNotFoundException"}, {ana, "AfterCallWork", "ResourceNotFoundException"}, {ana, "", "InvalidRequestException"}} {
		if resp := put(tt.user, tt.status); resp.Header.Get("x-amzn-ErrorType") != tt.typ {
			t.Errorf("PutUserStatus %s %s: %d %s, want %s", tt.user, tt.status, resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), tt.typ)
		}
	}
	if resp := put(ana, LunchID); resp.StatusCode != 200 {
		t.Fatalf("PutUserStatus: %d", resp.StatusCode)
	}
	userdata := "/metrics/userdata/" + DemoInstanceID
	for _, bad := range []string{`{}`, `{"Filters":{}}`, `{"Filters":{"Agents":["a"],"Queues":["q"]}}`} {
		if resp, _ := call(t, h, "POST", userdata, "", "", bad); resp.StatusCode != 400 {
			t.Errorf("GetCurrentUserData %s: %d", bad, resp.StatusCode)
		}
	}
	_, body := call(t, h, "POST", userdata, "", "", `{"Filters":{"Agents":["`+ana+`"]}}`)
	list := body["UserDataList"].([]any)
	if len(list) != 1 {
		t.Fatalf("user data %v", body)
	}
	st := list[0].(map[string]any)["Status"].(map[string]any)
	if st["StatusName"] != "Lunch" {
		t.Errorf("status %v", st)
	}
	if _, ok := st["StatusStartTimestamp"].(float64); !ok {
		t.Errorf("StatusStartTimestamp %v is not epoch seconds", st["StatusStartTimestamp"])
	}
	// Logged-out agents are not reported.
	_, body = call(t, h, "POST", userdata, "", "", `{"Filters":{"Agents":["`+s.Users()[1].ID+`"]}}`)
	if n := len(body["UserDataList"].([]any)); n != 0 {
		t.Errorf("a logged-out agent is reported: %v", body)
	}
	// NextStatus while on a contact.
	id, err := s.StartContact(ContactRequest{User: ana, Answer: true})
	if err != nil {
		t.Fatal(err)
	}
	put(ana, BreakID)
	_, body = call(t, h, "POST", userdata, "", "", `{"Filters":{"Agents":["`+ana+`"]}}`)
	d := body["UserDataList"].([]any)[0].(map[string]any)
	if d["NextStatus"] != "Break" || d["Status"].(map[string]any)["StatusName"] != "Lunch" || len(d["Contacts"].([]any)) != 1 {
		t.Errorf("on a contact: %v", d)
	}
	if err := s.Logout(ana); err == nil {
		t.Error("an agent with a contact logged out")
	}
	for _, step := range []func(string) error{s.EndContact, s.ClearContact} {
		if err := step(id); err != nil {
			t.Fatal(err)
		}
	}
	if u := s.Users()[0]; u.Status != "Break" || u.NextStatus != "" || len(u.Contacts) != 0 {
		t.Errorf("after the contact: %+v", u)
	}
}

// TestThrottling refuses what an operation's budget does not allow, with ThrottlingException.
func TestThrottling(t *testing.T) {
	s := newServer(t, Config{RatePerSecond: 1, Burst: 2, WireSecond: time.Hour})
	path := "/agent-status/" + DemoInstanceID
	for i := 0; i < 2; i++ {
		if resp, _ := call(t, s.Handler(), "GET", path, "", "", ""); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	resp, body := call(t, s.Handler(), "GET", path, "", "", "")
	if resp.StatusCode != 429 || resp.Header.Get("x-amzn-ErrorType") != "ThrottlingException" || body["message"] != "Rate exceeded" {
		t.Errorf("over budget: %d %s %v", resp.StatusCode, resp.Header.Get("x-amzn-ErrorType"), body)
	}
	if resp, _ := call(t, s.Handler(), "GET", "/users-summary/"+DemoInstanceID, "", "", ""); resp.StatusCode != 200 {
		t.Errorf("another operation has its own budget: %d", resp.StatusCode)
	}
	if s.Throttled() != 1 {
		t.Errorf("Throttled = %d", s.Throttled())
	}
}

// TestKinesisOperations reads the agent events with every iterator type and checks Kinesis's
// refusals.
func TestKinesisOperations(t *testing.T) {
	s := newServer(t, Config{Shards: 1, ShardReads: 1000})
	h := s.Handler()
	if err := s.SetStatus("ana@example.com", "Lunch"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetStatus("ana@example.com", "Break"); err != nil {
		t.Fatal(err)
	}
	resp, body := call(t, h, "POST", "/", "ListShards", "", `{"StreamName":"`+DemoStream+`"}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-amz-json-1.1" {
		t.Fatalf("ListShards %d %v", resp.StatusCode, body)
	}
	shard := body["Shards"].([]any)[0].(map[string]any)["ShardId"].(string)
	records := func(typ, seq string) []any {
		t.Helper()
		_, it := call(t, h, "POST", "/", "GetShardIterator", "", `{"StreamName":"`+DemoStream+`","ShardId":"`+shard+`","ShardIteratorType":"`+typ+`","StartingSequenceNumber":"`+seq+`"}`)
		_, got := call(t, h, "POST", "/", "GetRecords", "", `{"ShardIterator":"`+it["ShardIterator"].(string)+`"}`)
		return got["Records"].([]any)
	}
	all := records("TRIM_HORIZON", "")
	// LOGIN, STATE_CHANGE to Lunch, STATE_CHANGE to Break.
	if len(all) != 3 {
		t.Fatalf("%d records", len(all))
	}
	first := all[0].(map[string]any)["SequenceNumber"].(string)
	if n := len(records("AT_SEQUENCE_NUMBER", first)); n != 3 {
		t.Errorf("AT_SEQUENCE_NUMBER: %d", n)
	}
	if n := len(records("AFTER_SEQUENCE_NUMBER", first)); n != 2 {
		t.Errorf("AFTER_SEQUENCE_NUMBER: %d", n)
	}
	if n := len(records("LATEST", "")); n != 0 {
		t.Errorf("LATEST: %d", n)
	}
	for _, tt := range []struct{ target, body, typ string }{
		{"ListShards", `{"StreamName":"other"}`, "ResourceNotFoundException"},
		{"GetRecords", `{"ShardIterator":"garbage"}`, "InvalidArgumentException"},
		{"GetShardIterator", `{"StreamName":"` + DemoStream + `","ShardId":"shardId-000000000009","ShardIteratorType":"LATEST"}`, "ResourceNotFoundException"},
		{"PutRecord", `{"StreamName":"` + DemoStream + `"}`, "UnknownOperationException"},
	} {
		resp, body := call(t, h, "POST", "/", tt.target, "", tt.body)
		if resp.StatusCode != 400 || body["__type"] != tt.typ {
			t.Errorf("%s %s: %d %v, want %s", tt.target, tt.body, resp.StatusCode, body, tt.typ)
		}
	}
}

// TestControlEndpoints drives agents and contacts over /_sim/.
func TestControlEndpoints(t *testing.T) {
	s := newServer(t, Config{})
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	post := func(path, body string) int {
		resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := post("/_sim/users/ana@example.com/status", `{"status":"Lunch"}`); c != 204 {
		t.Errorf("status: %d", c)
	}
	if c := post("/_sim/users/nobody@example.com/status", `{"status":"Lunch"}`); c != 404 {
		t.Errorf("unknown user: %d", c)
	}
	if c := post("/_sim/users/ana@example.com/status", `{"status":"Lunchh"}`); c != 404 {
		t.Errorf("unknown status: %d", c)
	}
	if c := post("/_sim/contacts", `{"user":"bo@example.com"}`); c != 409 {
		t.Errorf("a contact for a logged-out agent: %d", c)
	}
	if c := post("/_sim/contacts", `{"user":"ana@example.com","channel":"FAX"}`); c != 409 {
		t.Errorf("unknown channel: %d", c)
	}
	resp, err := http.Post(srv.URL+"/_sim/contacts", "application/json", strings.NewReader(`{"user":"ana@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		ContactID string `json:"contactId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || c.ContactID == "" {
		t.Fatalf("contact: %v %+v", err, c)
	}
	resp.Body.Close()
	for _, action := range []string{"answer", "end", "clear"} {
		if code := post("/_sim/contacts/"+c.ContactID+"/"+action, ""); code != 204 {
			t.Errorf("%s: %d", action, code)
		}
	}
	if code := post("/_sim/contacts/"+c.ContactID+"/end", ""); code != 404 {
		t.Errorf("a cleared contact: %d", code)
	}
	resp, err = http.Get(srv.URL + "/_sim/users")
	if err != nil {
		t.Fatal(err)
	}
	var users []UserState
	if err := json.NewDecoder(resp.Body).Decode(&users); err != nil || len(users) != 50 || users[0].Status != "Lunch" || !users[0].LoggedIn {
		t.Errorf("users: %v %+v", err, users[:1])
	}
	resp.Body.Close()
}

// TestSeedIsChecked refuses seeds Connect could not have.
func TestSeedIsChecked(t *testing.T) {
	for _, seed := range []Seed{
		{Statuses: []SeedStatus{{Name: "Available", Type: "ROUTABLE"}}},
		{Statuses: []SeedStatus{{Name: "Offline", Type: "OFFLINE"}, {Name: "Odd", Type: "SYSTEM"}}},
		{Statuses: []SeedStatus{{Name: "Offline", Type: "OFFLINE"}}, Users: []SeedUser{{Email: "a@example.com"}, {Email: "A@example.com"}}},
	} {
		if _, err := New(Config{Seed: &seed}); err == nil {
			t.Errorf("seed %+v accepted", seed)
		}
	}
}
