package genesys

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type harness struct {
	t     *testing.T
	srv   *Server
	url   string
	token string
	clock *fakeClock
}

func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	clock := &fakeClock{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		_ = srv.Close()
		ts.Close()
	})
	h := &harness{t: t, srv: srv, url: ts.URL, clock: clock}
	h.token = h.getToken("demo-client", "demo-secret", http.StatusOK)["access_token"].(string)
	return h
}

func (h *harness) getToken(id, secret string, want int) map[string]any {
	h.t.Helper()
	req, _ := http.NewRequest("POST", h.url+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != want {
		h.t.Fatalf("token: status %d, want %d: %v", resp.StatusCode, want, out)
	}
	return out
}

// call makes an API call and decodes the JSON answer into out (when not nil).
func (h *harness) call(method, path, body string, want int, out any) http.Header {
	h.t.Helper()
	req, _ := http.NewRequest(method, h.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		h.t.Fatalf("%s %s: status %d, want %d: %s", method, path, resp.StatusCode, want, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			h.t.Fatalf("%s %s: %v: %s", method, path, err, data)
		}
	}
	return resp.Header
}

const ana = "9d1c3e2a-0001-4b5e-8f00-000000000001"

func TestOAuth(t *testing.T) {
	h := newHarness(t, Config{TokenTTL: time.Hour})
	tok := h.getToken("demo-client", "demo-secret", 200)
	if tok["expires_in"] != float64(3600) || tok["token_type"] != "bearer" {
		t.Fatalf("token response %v", tok)
	}
	bad := h.getToken("demo-client", "wrong", 401)
	if bad["error"] != "invalid_client" || bad["error_description"] != "authentication failed" {
		t.Fatalf("wrong secret answered %v", bad)
	}
	var e map[string]any
	h.call("GET", "/api/v2/users", "", 200, nil)
	h.clock.Add(time.Hour)
	h.call("GET", "/api/v2/users", "", 401, &e)
	if e["code"] != "bad.credentials" || e["status"] != float64(401) || e["contextId"] == "" {
		t.Fatalf("expired token answered %v", e)
	}
	h.token = ""
	h.call("GET", "/api/v2/users", "", 401, &e)
	if e["code"] != "authentication.required" {
		t.Fatalf("missing token answered %v", e)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, Config{RateLimitPerMinute: 3})
	for i := 1; i <= 3; i++ {
		hdr := h.call("GET", "/api/v2/systempresences", "", 200, nil)
		if hdr.Get("inin-ratelimit-allowed") != "3" || hdr.Get("inin-ratelimit-count") != fmt.Sprint(i) || hdr.Get("inin-ratelimit-reset") != "60" {
			t.Fatalf("request %d headers %v", i, hdr)
		}
	}
	h.clock.Add(20 * time.Second)
	var e map[string]any
	hdr := h.call("GET", "/api/v2/systempresences", "", 429, &e)
	if hdr.Get("Retry-After") != "40" || e["message"] != "Rate limit exceeded the maximum. Retry the request in [40] seconds" ||
		e["code"] != "too.many.requests.retry.after" {
		t.Fatalf("429: %v %v", hdr, e)
	}
	h.clock.Add(40 * time.Second)
	h.call("GET", "/api/v2/systempresences", "", 200, nil)
}

func TestPresenceDefinitionSpellings(t *testing.T) {
	h := newHarness(t, Config{})
	var newer struct {
		Total    int              `json:"total"`
		Entities []map[string]any `json:"entities"`
	}
	h.call("GET", "/api/v2/presence/definitions", "", 200, &newer)
	if newer.Total != 15 {
		t.Fatalf("%d definitions, want 10 primary + 5 secondary", newer.Total)
	}
	found := map[string]map[string]any{}
	for _, d := range newer.Entities {
		found[d["id"].(string)] = d
	}
	if d := found[OnQueueID]; d["systemPresence"] != "OnQueue" || d["type"] != "System" {
		t.Fatalf("new model On Queue: %v", d)
	}
	var legacy struct {
		Entities  []map[string]any `json:"entities"`
		PageCount int              `json:"pageCount"`
		NextURI   string           `json:"nextUri"`
	}
	h.call("GET", "/api/v2/presencedefinitions?pageSize=10", "", 200, &legacy)
	if len(legacy.Entities) != 10 || legacy.PageCount != 2 || legacy.NextURI == "" {
		t.Fatalf("legacy paging: %d entities, %d pages, next %q", len(legacy.Entities), legacy.PageCount, legacy.NextURI)
	}
	for _, d := range legacy.Entities {
		if d["id"] == OnQueueID && (d["systemPresence"] != "On Queue" || d["primary"] != true) {
			t.Fatalf("legacy On Queue: %v", d)
		}
	}
	h.call("GET", "/api/v2/presencedefinitions?pageSize=0", "", 400, nil)
}

func TestUserSearchAndExpand(t *testing.T) {
	h := newHarness(t, Config{})
	var res struct {
		Total   int              `json:"total"`
		Results []map[string]any `json:"results"`
	}
	h.call("POST", "/api/v2/users/search", `{"query":[{"type":"EXACT","fields":["email"],"value":"ANA@example.com"}],"expand":["presence","routingStatus"]}`, 200, &res)
	if res.Total != 1 || res.Results[0]["id"] != ana || res.Results[0]["presence"] == nil || res.Results[0]["routingStatus"] == nil {
		t.Fatalf("search: %+v", res)
	}
	h.call("POST", "/api/v2/users/search", `{"query":[{"type":"EXACT","fields":["email"],"value":"ana@example"}]}`, 200, &res)
	if res.Total != 0 {
		t.Fatalf("EXACT must not match a prefix: %+v", res)
	}
	h.call("POST", "/api/v2/users/search", `{"query":`, 400, nil)
	var page struct {
		Entities []map[string]any `json:"entities"`
		Total    int              `json:"total"`
	}
	h.call("GET", "/api/v2/users?pageSize=100&expand=presence", "", 200, &page)
	if page.Total != 50 || len(page.Entities) != 50 || page.Entities[0]["presence"] == nil {
		t.Fatalf("users: %d of %d", len(page.Entities), page.Total)
	}
}

func TestPresenceAndRoutingSemantics(t *testing.T) {
	h := newHarness(t, Config{})
	var rs map[string]any
	h.call("GET", "/api/v2/users/"+ana+"/routingstatus", "", 200, &rs)
	if rs["status"] != "OFF_QUEUE" {
		t.Fatalf("available user routing %v", rs)
	}
	h.call("PUT", "/api/v2/users/"+ana+"/routingstatus", `{"status":"IDLE"}`, 400, nil)
	h.call("PATCH", "/api/v2/users/"+ana+"/presences/purecloud", `{"presenceDefinition":{"id":"`+MeetingID+`"}}`, 200, nil)
	var p map[string]any
	h.call("PATCH", "/api/v2/users/"+ana+"/presences/purecloud", `{"presenceDefinition":{"id":"`+OnQueueID+`"},"primary":true}`, 200, &p)
	if p["presenceDefinition"].(map[string]any)["systemPresence"] != "On Queue" {
		t.Fatalf("patch answered %v", p)
	}
	h.call("GET", "/api/v2/users/"+ana+"/routingstatus", "", 200, &rs)
	if rs["status"] != "IDLE" {
		t.Fatalf("on-queue routing %v", rs)
	}
	h.call("PUT", "/api/v2/users/"+ana+"/routingstatus", `{"status":"OFF_QUEUE"}`, 200, nil)
	h.call("GET", "/api/v2/users/"+ana+"/presences/PURECLOUD", "", 200, &p)
	if p["presenceDefinition"].(map[string]any)["id"] != MeetingID {
		t.Fatalf("going off queue must restore Meeting, got %v", p)
	}
	h.call("GET", "/api/v2/users/nobody/routingstatus", "", 200, &rs)
	if rs["status"] != "OFF_QUEUE" {
		t.Fatalf("unknown user routing %v", rs)
	}
	h.call("PATCH", "/api/v2/users/"+ana+"/presences/purecloud", `{"presenceDefinition":{"id":"`+IdleID+`"}}`, 400, nil)
	h.call("PATCH", "/api/v2/users/"+ana+"/presences/purecloud", `{"presenceDefinition":{"id":"nope"}}`, 400, nil)
	h.call("PATCH", "/api/v2/users/nobody/presences/purecloud", `{"presenceDefinition":{"id":"`+BusyID+`"}}`, 404, nil)
}

func TestBulkPresence(t *testing.T) {
	h := newHarness(t, Config{})
	q := url.Values{}
	for n := 1; n <= 51; n++ {
		q.Add("id", DemoUserID(n))
	}
	h.call("GET", "/api/v2/users/presences/purecloud/bulk?"+q.Encode(), "", 400, nil)
	h.call("PUT", "/api/v2/users/presences/bulk", `[{"id":"`+DemoUserID(1)+`","presenceDefinition":{"id":"`+BusyID+`"}},{"id":"`+DemoUserID(2)+`","presenceDefinition":{"id":"`+BreakID+`"}}]`, 200, nil)
	h.call("PUT", "/api/v2/users/presences/bulk", `[{"id":"`+DemoUserID(3)+`","presenceDefinition":{"id":"`+BusyID+`"}},{"id":"ghost","presenceDefinition":{"id":"`+BreakID+`"}}]`, 400, nil)
	var got []map[string]any
	h.call("GET", "/api/v2/users/presences/purecloud/bulk?id="+DemoUserID(1)+"&id="+DemoUserID(2)+"&id="+DemoUserID(3), "", 200, &got)
	want := []string{BusyID, BreakID, AvailableID}
	for i, p := range got {
		if p["userId"] != DemoUserID(i+1) || p["presenceDefinition"].(map[string]any)["id"] != want[i] {
			t.Fatalf("bulk read %d: %v (a refused bulk write must change nothing)", i, p)
		}
	}
}

// TestSearchPages follows a search's q64 page links (GET /api/v2/users/search?q64=…) through
// every page and back.
func TestSearchPages(t *testing.T) {
	h := newHarness(t, Config{})
	var page map[string]any
	h.call("POST", "/api/v2/users/search", `{"query":[{"type":"CONTAINS","fields":["email"],"value":"@"}],"pageSize":20}`, 200, &page)
	total := int(page["total"].(float64))
	if total < 41 || page["previousPage"] != nil || page["currentPage"] == nil {
		t.Fatalf("first page %v", page)
	}
	seen := map[string]bool{}
	for n := 1; ; n++ {
		if int(page["pageNumber"].(float64)) != n {
			t.Fatalf("page %d says pageNumber %v", n, page["pageNumber"])
		}
		for _, r := range page["results"].([]any) {
			seen[r.(map[string]any)["id"].(string)] = true
		}
		next, ok := page["nextPage"].(string)
		if !ok {
			break
		}
		page = nil
		h.call("GET", next+"&expand=presence", "", 200, &page)
		if _, ok := page["results"].([]any)[0].(map[string]any)["presence"]; !ok {
			t.Fatalf("expand on the q64 link ignored: %v", page["results"])
		}
	}
	if len(seen) != total {
		t.Fatalf("pages held %d distinct users, total %d", len(seen), total)
	}
	var back map[string]any
	h.call("GET", page["previousPage"].(string), "", 200, &back)
	if back["pageNumber"].(float64) != page["pageNumber"].(float64)-1 {
		t.Fatalf("previousPage led to page %v from %v", back["pageNumber"], page["pageNumber"])
	}
	for _, q := range []string{"", "?q64=", "?q64=%21%21", "?q64=" + url.QueryEscape("bm90IGpzb24=")} {
		h.call("GET", "/api/v2/users/search"+q, "", 400, nil)
	}
}

// TestBulkPresenceAnySource reads bulk presence through /users/presences/{sourceId}/bulk, the
// source-generic path the SDKs call with "PURECLOUD", beside the per-user presence paths it
// resembles.
func TestBulkPresenceAnySource(t *testing.T) {
	h := newHarness(t, Config{})
	ids := "id=" + DemoUserID(1) + "&id=" + DemoUserID(2)
	for _, tc := range []struct {
		path string
		want int
	}{
		{"/api/v2/users/presences/PURECLOUD/bulk?" + ids, 200},
		{"/api/v2/users/presences/purecloud/bulk?" + ids, 200},
		{"/api/v2/users/presences/MICROSOFTTEAMS/bulk?" + ids, 404},
		{"/api/v2/users/presences/PURECLOUD/bulk", 400},
		{"/api/v2/users/presences/PURECLOUD/extra/bulk?" + ids, 404},
	} {
		if tc.want != 200 {
			h.call("GET", tc.path, "", tc.want, nil)
			continue
		}
		var got []map[string]any
		h.call("GET", tc.path, "", tc.want, &got)
		if len(got) != 2 || got[0]["userId"] != DemoUserID(1) || got[1]["userId"] != DemoUserID(2) {
			t.Fatalf("%s: bulk read %v", tc.path, got)
		}
	}
	// The per-user paths it resembles still route to the per-user handlers.
	var p map[string]any
	h.call("GET", "/api/v2/users/"+DemoUserID(1)+"/presences/PURECLOUD", "", 200, &p)
	if p["presenceDefinition"].(map[string]any)["id"] != AvailableID {
		t.Fatalf("per-user presence %v", p)
	}
	h.call("PUT", "/api/v2/users/presences/bulk", `[{"id":"`+DemoUserID(1)+`","presenceDefinition":{"id":"`+BusyID+`"}}]`, 200, nil)
}

func TestChannelsAndSubscriptions(t *testing.T) {
	h := newHarness(t, Config{})
	var first map[string]any
	h.call("POST", "/api/v2/notifications/channels", "", 200, &first)
	if !strings.HasPrefix(first["connectUri"].(string), "ws://") || first["expires"] == "" {
		t.Fatalf("channel %v", first)
	}
	for range maxChannels {
		h.call("POST", "/api/v2/notifications/channels", "", 200, nil)
	}
	var list struct {
		Entities []map[string]any `json:"entities"`
	}
	h.call("GET", "/api/v2/notifications/channels", "", 200, &list)
	if len(list.Entities) != maxChannels {
		t.Fatalf("%d channels, want %d", len(list.Entities), maxChannels)
	}
	h.call("HEAD", "/api/v2/notifications/channels/"+first["id"].(string), "", 404, nil)

	var ch map[string]any
	h.call("POST", "/api/v2/notifications/channels", "", 200, &ch)
	id := ch["id"].(string)
	var topics []string
	for n := range 1001 {
		topics = append(topics, fmt.Sprintf(`{"id":"v2.users.%s.presence"}`, DemoUserID(n)))
	}
	h.call("PUT", "/api/v2/notifications/channels/"+id+"/subscriptions", "["+strings.Join(topics[:1000], ",")+"]", 200, nil)
	h.call("POST", "/api/v2/notifications/channels/"+id+"/subscriptions", "["+topics[1000]+"]", 400, nil)
	var subs struct {
		Entities []map[string]any `json:"entities"`
	}
	h.call("PUT", "/api/v2/notifications/channels/"+id+"/subscriptions", `[{"id":"v2.users.`+ana+`?presence&routingStatus"}]`, 200, &subs)
	if len(subs.Entities) != 2 || subs.Entities[0]["id"] != "v2.users."+ana+".presence" {
		t.Fatalf("combined topic gave %v", subs.Entities)
	}
	h.call("POST", "/api/v2/notifications/channels/"+id+"/subscriptions", `[{"id":"v2.bogus"}]`, 400, nil)
	h.call("DELETE", "/api/v2/notifications/channels/"+id+"/subscriptions", "", 204, nil)
}

// socket connects a WebSocket to a new channel subscribed to topics.
func (h *harness) socket(ctx context.Context, topics ...string) (*websocket.Conn, string) {
	h.t.Helper()
	var ch map[string]any
	h.call("POST", "/api/v2/notifications/channels", "", 200, &ch)
	conn, _, err := websocket.Dial(ctx, ch["connectUri"].(string), nil)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = conn.CloseNow() })
	var body []string
	for _, tp := range topics {
		body = append(body, `{"id":"`+tp+`"}`)
	}
	h.call("PUT", "/api/v2/notifications/channels/"+ch["id"].(string)+"/subscriptions", "["+strings.Join(body, ",")+"]", 200, nil)
	return conn, ch["id"].(string)
}

type message struct {
	TopicName string         `json:"topicName"`
	EventBody map[string]any `json:"eventBody"`
	Result    string         `json:"result"`
	Status    string         `json:"status"`
}

// next reads the next message that is not a heartbeat.
func next(t *testing.T, ctx context.Context, conn *websocket.Conn) message {
	t.Helper()
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		var m message
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m.TopicName == "channel.metadata" && m.EventBody["message"] == "WebSocket Heartbeat" {
			continue
		}
		return m
	}
}

func TestWebSocketEventsAndProtocol(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _ := h.socket(ctx, "v2.users."+ana+".presence", "v2.users."+ana+".routingStatus")

	if err := h.srv.SetPresence("ana@example.com", "On Queue"); err != nil {
		t.Fatal(err)
	}
	m := next(t, ctx, conn)
	if m.TopicName != "v2.users."+ana+".presence" || m.EventBody["presenceDefinition"].(map[string]any)["systemPresence"] != "ON_QUEUE" {
		t.Fatalf("presence event %+v", m)
	}
	m = next(t, ctx, conn)
	if m.TopicName != "v2.users."+ana+".routingStatus" || m.EventBody["routingStatus"].(map[string]any)["status"] != "IDLE" {
		t.Fatalf("routing event %+v", m)
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte(`{"message":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if m = next(t, ctx, conn); m.TopicName != "channel.metadata" || m.EventBody["message"] != "pong" {
		t.Fatalf("ping answered %+v", m)
	}
	sub := `{"message":"subscribe","topics":["v2.users.` + ana + `.activity"],"correlationId":"c1"}`
	if err := conn.Write(ctx, websocket.MessageText, []byte(sub)); err != nil {
		t.Fatal(err)
	}
	if m = next(t, ctx, conn); m.Result != "200" || m.Status != "subscribed" {
		t.Fatalf("subscribe answered %+v", m)
	}
	if _, err := h.srv.StartCall(ana, true, ""); err != nil {
		t.Fatal(err)
	}
	if m = next(t, ctx, conn); m.TopicName != "v2.users."+ana+".routingStatus" || m.EventBody["routingStatus"].(map[string]any)["status"] != "INTERACTING" {
		t.Fatalf("ACD call routing %+v", m)
	}
	if m = next(t, ctx, conn); m.TopicName != "v2.users."+ana+".activity" {
		t.Fatalf("activity %+v", m)
	}
	h.srv.SocketClosing()
	if m = next(t, ctx, conn); m.TopicName != "v2.system.socket_closing" {
		t.Fatalf("closing %+v", m)
	}
}

func TestHeartbeat(t *testing.T) {
	h := newHarness(t, Config{HeartbeatInterval: 5 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _ := h.socket(ctx, "v2.users."+ana+".presence")
	_, data, err := conn.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != `{"eventBody":{"message":"WebSocket Heartbeat"},"topicName":"channel.metadata"}` {
		t.Fatalf("heartbeat %s", data)
	}
}

func TestSecondSocketDisconnectsFirst(t *testing.T) {
	h := newHarness(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, id := h.socket(ctx, "v2.users."+ana+".presence")
	second, _, err := websocket.Dial(ctx, strings.Replace(h.url, "http", "ws", 1)+"/channels/"+id, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer second.CloseNow()
	if _, _, err := first.Read(ctx); err == nil {
		t.Fatal("first socket still open after a second connected")
	}
	if err := h.srv.SetPresence(ana, "Busy"); err != nil {
		t.Fatal(err)
	}
	if m := next(t, ctx, second); m.TopicName != "v2.users."+ana+".presence" {
		t.Fatalf("second socket got %+v", m)
	}
}

func TestCallsProduceDetailEvents(t *testing.T) {
	h := newHarness(t, Config{})
	nonACD, err := h.srv.StartCall("ana@example.com", false, "")
	if err != nil {
		t.Fatal(err)
	}
	acd, err := h.srv.StartCall("bo@example.com", true, "q-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.srv.EndCall(nonACD); err != nil {
		t.Fatal(err)
	}
	if err := h.srv.EndCall(nonACD); err == nil {
		t.Fatal("ending an ended call must fail")
	}
	ev := h.srv.DetailEvents()
	if len(ev) != 3 {
		t.Fatalf("%d detail events", len(ev))
	}
	if ev[0].Topic != "v2.detail.events.conversation."+nonACD+".user.start" || ev[0].Body["queueId"] != nil || ev[0].Body["direction"] != "INBOUND" {
		t.Fatalf("non-ACD start %+v", ev[0])
	}
	if ev[1].Body["queueId"] != "q-1" || ev[1].Body["mediaType"] != "VOICE" {
		t.Fatalf("ACD start %+v", ev[1])
	}
	if ev[2].Topic != "v2.detail.events.conversation."+nonACD+".user.end" || ev[2].Body["disconnectType"] == nil {
		t.Fatalf("end %+v", ev[2])
	}
	var conv struct {
		Participants []map[string]any `json:"participants"`
	}
	h.call("GET", "/api/v2/conversations/"+acd, "", 200, &conv)
	if len(conv.Participants) != 3 || conv.Participants[2]["purpose"] != "agent" {
		t.Fatalf("ACD conversation %+v", conv)
	}
}

func TestFaultControlEndpoint(t *testing.T) {
	h := newHarness(t, Config{})
	resp, err := http.Post(h.url+"/_sim/faults", "application/json", strings.NewReader(`{"storm_for":"10s","retry_after":"3s"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var e map[string]any
	hdr := h.call("GET", "/api/v2/systempresences", "", 429, &e)
	if hdr.Get("Retry-After") != "3" || e["code"] != "too.many.requests.retry.after" {
		t.Fatalf("storm answered %v %v", hdr, e)
	}
	h.clock.Add(10 * time.Second)
	h.call("GET", "/api/v2/systempresences", "", 200, nil)
	if err := h.srv.Faults().Apply(fault.Settings{ExpireTokens: true}); err != nil {
		t.Fatal(err)
	}
	h.call("GET", "/api/v2/systempresences", "", 401, nil)
}

func TestSeedValidation(t *testing.T) {
	tests := []struct {
		name string
		seed Seed
		want string
	}{
		{"secondary under On Queue", Seed{Definitions: []SeedDefinition{{ID: "x", Label: "Q2", SystemPresence: "On Queue"}}}, "secondary presences"},
		{"unknown presence", Seed{Users: []SeedUser{{ID: "u", Email: "u@x", Presence: "Dancing"}}}, "unknown presence"},
		{"duplicate email", Seed{Users: []SeedUser{{ID: "u", Email: "u@x"}, {ID: "v", Email: "U@x"}}}, "duplicate"},
		{"missing id", Seed{Users: []SeedUser{{Email: "u@x"}}}, "required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(Config{Seed: &tt.seed})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestListParametersRepeatedOrCommaSeparated(t *testing.T) {
	h := newHarness(t, Config{})
	for _, q := range []string{"id=" + DemoUserID(1) + "&id=" + DemoUserID(2), "id=" + DemoUserID(1) + "," + DemoUserID(2)} {
		var got []map[string]any
		h.call("GET", "/api/v2/users/presences/purecloud/bulk?"+q, "", 200, &got)
		if len(got) != 2 {
			t.Fatalf("%s: %d presences", q, len(got))
		}
	}
}

func TestSeedFile(t *testing.T) {
	h := newHarness(t, Config{SeedFile: "testdata/seed.json"})
	users := h.srv.Users()
	want := []User{
		{ID: "5b0e7a52-0000-4000-8000-000000000001", Name: "Ana Alvarez", Email: "ana@example.com", PresenceID: OnQueueID, Presence: "On Queue", RoutingStatus: "IDLE"},
		{ID: "5b0e7a52-0000-4000-8000-000000000002", Name: "Bo Becker", Email: "bo@example.com", PresenceID: "0c1d2e3f-0000-4000-8000-000000000001", Presence: "Lunch", RoutingStatus: "OFF_QUEUE"},
		{ID: "5b0e7a52-0000-4000-8000-000000000003", Name: "Chloe Chen", Email: "chloe@example.com", PresenceID: OfflineID, Presence: "Offline", RoutingStatus: "OFF_QUEUE"},
	}
	if len(users) != len(want) {
		t.Fatalf("%d users", len(users))
	}
	for i := range want {
		if users[i] != want[i] {
			t.Errorf("user %d: %+v, want %+v", i, users[i], want[i])
		}
	}
	if _, err := New(Config{SeedFile: "testdata/missing.json"}); err == nil {
		t.Fatal("a missing seed file must fail")
	}
}
