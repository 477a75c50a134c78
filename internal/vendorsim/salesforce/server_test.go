package salesforce

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/omnipresence/omnipresence/internal/pubsubapi"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestServer(t *testing.T, cfg Config) (*Server, *httptest.Server, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	if cfg.Now == nil {
		cfg.Now = clk.now
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs, clk
}

func login(t *testing.T, base string) map[string]string {
	t.Helper()
	resp, err := http.PostForm(base+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"},
		"client_id": {"demo-client"}, "client_secret": {"demo-secret"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %d %v %v", resp.StatusCode, out, err)
	}
	return out
}

func get(t *testing.T, base, tok, path string, q url.Values) (int, http.Header, []byte) {
	t.Helper()
	u := base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func TestOAuth(t *testing.T) {
	_, hs, _ := newTestServer(t, Config{RefreshToken: "rt"})
	tok := login(t, hs.URL)
	for _, k := range []string{"access_token", "instance_url", "id", "token_type", "issued_at", "signature"} {
		if tok[k] == "" {
			t.Errorf("token response lacks %s", k)
		}
	}
	if !strings.HasPrefix(tok["id"], hs.URL+"/id/00D") || !strings.Contains(tok["id"], "/005") {
		t.Errorf("identity URL %q", tok["id"])
	}
	for _, tc := range []struct {
		form url.Values
		code string
	}{
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {"nope"}, "client_secret": {"demo-secret"}}, "invalid_client_id"},
		{url.Values{"grant_type": {"client_credentials"}, "client_id": {"demo-client"}, "client_secret": {"bad"}}, "invalid_client"},
		{url.Values{"grant_type": {"password"}}, "unsupported_grant_type"},
		{url.Values{"grant_type": {"refresh_token"}, "client_id": {"demo-client"}, "refresh_token": {"other"}}, "invalid_grant"},
		{url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {"a.b.c"}}, "invalid_grant"},
	} {
		resp, err := http.PostForm(hs.URL+"/services/oauth2/token", tc.form)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 400 || body["error"] != tc.code {
			t.Errorf("%v: %d %v, want 400 %s", tc.form, resp.StatusCode, body, tc.code)
		}
	}
	resp, err := http.PostForm(hs.URL+"/services/oauth2/token", url.Values{"grant_type": {"refresh_token"},
		"client_id": {"demo-client"}, "refresh_token": {"rt"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("refresh token grant: %d", resp.StatusCode)
	}
}

func TestRESTQueryAndErrors(t *testing.T) {
	s, hs, clk := newTestServer(t, Config{BatchSize: 20, DailyAPIRequests: 12, SessionTimeout: time.Hour})
	tok := login(t, hs.URL)["access_token"]
	if _, err := s.SetStatus("ana@example.com", "AvailableforVoice", "OmniManualStatusChange"); err != nil {
		t.Fatal(err)
	}
	q := func(soql string) (int, http.Header, map[string]any, []map[string]any) {
		code, h, body := get(t, hs.URL, tok, "/services/data/v62.0/query", url.Values{"q": {soql}})
		var page map[string]any
		var errs []map[string]any
		if json.Unmarshal(body, &page) != nil {
			_ = json.Unmarshal(body, &errs)
		}
		return code, h, page, errs
	}
	code, h, page, _ := q("SELECT UserId, ServicePresenceStatus.DeveloperName FROM UserServicePresence WHERE IsCurrentState = true")
	if code != 200 || page["totalSize"].(float64) != 1 || h.Get("Sforce-Limit-Info") != "api-usage=1/12" {
		t.Fatalf("presence query: %d %v %q", code, page, h.Get("Sforce-Limit-Info"))
	}
	rec := page["records"].([]any)[0].(map[string]any)
	if rec["ServicePresenceStatus"].(map[string]any)["DeveloperName"] != "AvailableforVoice" {
		t.Errorf("relationship field: %v", rec)
	}
	// Paging: 51 users in pages of 20.
	code, _, page, _ = q("SELECT Id, Email FROM User ORDER BY Email")
	if code != 200 || page["done"] != false || page["totalSize"].(float64) != 51 || len(page["records"].([]any)) != 20 {
		t.Fatalf("first page: %d %v", code, page["nextRecordsUrl"])
	}
	seen := len(page["records"].([]any))
	for page["done"] == false {
		code, _, body := get(t, hs.URL, tok, page["nextRecordsUrl"].(string), nil)
		if code != 200 {
			t.Fatalf("next page: %d %s", code, body)
		}
		page = nil
		_ = json.Unmarshal(body, &page)
		seen += len(page["records"].([]any))
	}
	if seen != 51 {
		t.Errorf("paged %d users, want 51", seen)
	}
	for _, tc := range []struct {
		soql string
		code string
	}{
		{"SELECT Id FROM", "MALFORMED_QUERY"},
		{"SELECT Nope FROM User", "INVALID_FIELD"},
		{"SELECT Id FROM Nope", "INVALID_TYPE"},
		{"SELECT Id FROM User WHERE IsActive = 'yes'", "INVALID_FIELD"},
	} {
		code, _, _, errs := q(tc.soql)
		if code != 400 || len(errs) != 1 || errs[0]["errorCode"] != tc.code {
			t.Errorf("%s: %d %v, want %s", tc.soql, code, errs, tc.code)
		}
	}
	code, _, body := get(t, hs.URL, "bogus", "/services/data/v62.0/limits", nil)
	if code != 401 || !strings.Contains(string(body), "INVALID_SESSION_ID") {
		t.Errorf("bad token: %d %s", code, body)
	}
	// Create and update of UserServicePresence are refused.
	for _, m := range []string{http.MethodPost, http.MethodPatch} {
		path := "/services/data/v62.0/sobjects/UserServicePresence"
		if m == http.MethodPatch {
			path += "/" + rec["attributes"].(map[string]any)["url"].(string)[len("/services/data/v62.0/sobjects/UserServicePresence/"):]
		}
		req, _ := http.NewRequest(m, hs.URL+path, strings.NewReader(`{"ServicePresenceStatusId":"x"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var errs []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&errs)
		resp.Body.Close()
		if resp.StatusCode != 400 || len(errs) != 1 || errs[0]["errorCode"] != "INVALID_TYPE_FOR_OPERATION" {
			t.Errorf("%s UserServicePresence: %d %v", m, resp.StatusCode, errs)
		}
	}
	// The daily allocation runs out.
	var last int
	for i := 0; i < 12; i++ {
		last, _, body = get(t, hs.URL, tok, "/services/data/v62.0/limits", nil)
	}
	if last != 403 || !strings.Contains(string(body), "REQUEST_LIMIT_EXCEEDED") {
		t.Errorf("over the allocation: %d %s", last, body)
	}
	// Sessions time out.
	clk.add(time.Hour)
	if code, _, _ := get(t, hs.URL, tok, "/services/data/v62.0/limits", nil); code != 401 {
		t.Errorf("expired session: %d", code)
	}
}

func TestDescribeAndRetrieve(t *testing.T) {
	s, hs, _ := newTestServer(t, Config{})
	tok := login(t, hs.URL)["access_token"]
	code, _, body := get(t, hs.URL, tok, "/services/data/v62.0/sobjects/ServicePresenceStatus/describe", nil)
	var d map[string]any
	_ = json.Unmarshal(body, &d)
	if code != 200 || d["keyPrefix"] != "0N5" {
		t.Fatalf("describe: %d %v", code, d["keyPrefix"])
	}
	id, _ := s.UserID("ana@example.com")
	code, _, body = get(t, hs.URL, tok, "/services/data/v62.0/sobjects/User/"+id[:15], url.Values{"fields": {"Email,Name"}})
	var u map[string]any
	_ = json.Unmarshal(body, &u)
	if code != 200 || u["Email"] != "ana@example.com" {
		t.Fatalf("retrieve: %d %s", code, body)
	}
}

// TestPresenceRows checks the UserServicePresence periods one login, one change and one
// logout leave behind.
func TestPresenceRows(t *testing.T) {
	s, _, clk := newTestServer(t, Config{})
	if _, err := s.Login("bo@example.com", "AvailableforChat"); err != nil {
		t.Fatal(err)
	}
	clk.add(90 * time.Second)
	if _, err := s.SetStatus("bo@example.com", "Break", "OmniManualStatusChange"); err != nil {
		t.Fatal(err)
	}
	if ch, err := s.SetStatus("bo@example.com", "Break", ""); err != nil || ch.From != ch.To {
		t.Fatalf("same status again: %+v %v", ch, err)
	}
	clk.add(30 * time.Second)
	if _, err := s.Logout("bo@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetStatus("bo@example.com", "NoSuch", ""); err == nil {
		t.Fatal("unknown status accepted")
	}
	q, _ := ParseSOQL("SELECT ServicePresenceStatus.DeveloperName, IsCurrentState, StatusDuration, IsAway FROM UserServicePresence ORDER BY StatusStartDate")
	res, aerr := s.org.query(q, latestVersion)
	if aerr != nil {
		t.Fatal(aerr)
	}
	var got []string
	for _, r := range res.records {
		b, _ := json.Marshal(r)
		got = append(got, string(b))
	}
	if len(got) != 2 || !strings.Contains(got[0], `"DeveloperName":"AvailableforChat"},"IsCurrentState":false,"StatusDuration":90,"IsAway":false`) ||
		!strings.Contains(got[1], `"DeveloperName":"Break"},"IsCurrentState":false,"StatusDuration":30,"IsAway":true`) {
		t.Fatalf("rows:\n%s", strings.Join(got, "\n"))
	}
	if p, _ := s.Presence("bo@example.com"); p != Offline {
		t.Fatalf("presence after logout = %s", p)
	}
}

// TestPubSubAvroRoundTrip subscribes over gRPC, fetches the schema GetTopic names and decodes
// the events with it: CREATE on login, UPDATE + CREATE on a change, UPDATE only on logout.
func TestPubSubAvroRoundTrip(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := login(t, base)
	conn, err := grpc.NewClient(strings.TrimPrefix(s.Info()["pubsub_url"].(string), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pubsubapi.NewPubSubClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.GetTopic(ctx, &pubsubapi.TopicRequest{TopicName: UserServicePresenceTopic}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetTopic without token: %v", err)
	}
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("accesstoken", tok["access_token"], "instanceurl", tok["instance_url"], "tenantid", s.OrgID()))
	topic, err := client.GetTopic(ctx, &pubsubapi.TopicRequest{TopicName: UserServicePresenceTopic})
	if err != nil {
		t.Fatal(err)
	}
	info, err := client.GetSchema(ctx, &pubsubapi.SchemaRequest{SchemaId: topic.GetSchemaId()})
	if err != nil {
		t.Fatal(err)
	}
	schema, err := avro.Parse(info.GetSchemaJson())
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range [][2]string{{"ana@example.com", "AvailableforVoice"}, {"ana@example.com", "Lunch"}, {"ana@example.com", Offline}} {
		if _, err := s.SetStatus(step[0], step[1], "OmniManualStatusChange"); err != nil {
			t.Fatal(err)
		}
	}
	bad, err := client.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = bad.Send(&pubsubapi.FetchRequest{TopicName: UserServicePresenceTopic, NumRequested: 101})
	if _, err := bad.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("num_requested 101: %v", err)
	}
	stream, err := client.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pubsubapi.FetchRequest{TopicName: UserServicePresenceTopic, ReplayPreset: pubsubapi.ReplayPreset_EARLIEST, NumRequested: 3}); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 4 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ce := range resp.GetEvents() {
			var ev UserServicePresenceChangeEvent
			if err := avro.Unmarshal(schema, ce.GetEvent().GetPayload(), &ev); err != nil {
				t.Fatal(err)
			}
			h := ev.ChangeEventHeader
			line := h.ChangeType
			if ev.IsCurrentState != nil {
				line += " current=" + map[bool]string{true: "true", false: "false"}[*ev.IsCurrentState]
			}
			if ev.UserID != nil {
				line += " user"
			}
			got = append(got, line+" "+strings.Join(h.ChangedFields, ","))
		}
		if len(got) == 3 {
			if resp.GetPendingNumRequested() != 0 {
				t.Fatalf("pending after 3 of 3: %d", resp.GetPendingNumRequested())
			}
			if err := stream.Send(&pubsubapi.FetchRequest{NumRequested: 5}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The changedFields bitmap 0x1A20 sets the bits of the schema's fields 5 (LastModifiedDate),
	// 9 (IsCurrentState), 11 (StatusEndDate) and 12 (StatusDuration).
	want := []string{"CREATE current=true user ", "UPDATE current=false 0x1A20", "CREATE current=true user ", "UPDATE current=false 0x1A20"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	cancel()
}

// TestKeepAliveCarriesTheConsumedPosition pins what a subscriber may store from a keepalive:
// the replay id of the last event it was sent, never that of events flow control still holds
// back (a client storing the tip would skip them after a restart).
func TestKeepAliveCarriesTheConsumedPosition(t *testing.T) {
	s, err := New(Config{KeepAlive: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base, err := s.Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tok := login(t, base)
	conn, err := grpc.NewClient(strings.TrimPrefix(s.Info()["pubsub_url"].(string), "http://"),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs("accesstoken", tok["access_token"], "instanceurl", tok["instance_url"], "tenantid", s.OrgID()))
	for _, st := range []string{"AvailableforVoice", "Lunch", "Break", "Training"} {
		if _, err := s.SetStatus("ana@example.com", st, "OmniManualStatusChange"); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := pubsubapi.NewPubSubClient(conn).Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pubsubapi.FetchRequest{TopicName: UserServicePresenceTopic, ReplayPreset: pubsubapi.ReplayPreset_EARLIEST, NumRequested: 2}); err != nil {
		t.Fatal(err)
	}
	var last []byte
	for received := 0; ; {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ce := range resp.GetEvents() {
			received++
			last = ce.GetReplayId()
		}
		if len(resp.GetEvents()) == 0 {
			if received != 2 {
				t.Fatalf("a keepalive after %d events, want 2", received)
			}
			if got := resp.GetLatestReplayId(); !bytes.Equal(got, last) {
				t.Fatalf("keepalive latest replay id %x, want %x (the last event sent; more wait behind flow control)", got, last)
			}
			break
		}
	}
	cancel()
}
