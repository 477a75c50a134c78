package bridge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
	"github.com/omnipresence/omnipresence/internal/presence"
)

const (
	testUser = "005000000000001AAA"
	testOrg  = "00D000000000001EAA"
	// fixtures holds the bridge's test key pair (bridge/salesforce/test/fixtures).
	fixtures = "../../../../bridge/salesforce/test/fixtures/"
)

var (
	testSigner   = readSigner("test-key.pem")
	otherSigner  = readSigner("other-key.pem")
	testVerifier = func() *bridgetoken.Verifier {
		b, err := os.ReadFile(fixtures + "test-cert.pem")
		if err != nil {
			panic(err)
		}
		certs, err := bridgetoken.ParseCertificates(b)
		if err != nil {
			panic(err)
		}
		v, err := bridgetoken.NewVerifier(certs, nil)
		if err != nil {
			panic(err)
		}
		return v
	}()
)

func readSigner(name string) *bridgetoken.Signer {
	b, err := os.ReadFile(fixtures + name)
	if err != nil {
		panic(err)
	}
	s, err := bridgetoken.ParseSigner(b)
	if err != nil {
		panic(err)
	}
	return s
}

// mint signs a token for user with s, as the org's Apex controller does.
func mint(t testing.TB, s *bridgetoken.Signer, user string, ttl time.Duration) string {
	t.Helper()
	tok, err := s.Mint(testOrg, user, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signAt signs a token for testUser issued at iat and expiring at exp.
func signAt(t testing.TB, iat, exp time.Time) string {
	t.Helper()
	tok, err := testSigner.Sign(bridgetoken.Claims{Iss: testOrg, Sub: testUser, Aud: bridgetoken.Audience, Iat: iat.Unix(), Exp: exp.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const allowedOrigin = "https://acme.lightning.force.com"

// env is a bridge handler on a test server with a recording Ingest.
type env struct {
	t   *testing.T
	hub *Hub
	srv *httptest.Server

	mu     sync.Mutex
	stored []presence.Event
	fail   error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, hub: NewHub(map[string]string{"0N5000000000001": "AvailableforVoice"})}
	h, err := NewHandler(Options{Verifier: testVerifier, Origins: []string{allowedOrigin}, System: "sf", Hub: e.hub,
		Logger: slog.New(slog.DiscardHandler),
		Ingest: func(_ context.Context, ev presence.Event) error {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.fail != nil {
				return e.fail
			}
			e.stored = append(e.stored, ev)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		e.hub.Close()
		e.srv.Close()
	})
	return e
}

func (e *env) events() []presence.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]presence.Event(nil), e.stored...)
}

func userToken(t *testing.T) string {
	return mint(t, testSigner, testUser, 10*time.Minute)
}

func (e *env) do(method, path, tok, body string, hdr map[string]string) (*http.Response, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// sse is a test client of the command stream, acting as the bridge.
type sse struct {
	cancel   context.CancelFunc
	commands chan Command
	done     chan struct{}
}

func (e *env) openStream(tok string) *sse {
	e.t.Helper()
	return e.openStreamAs(tok, testUser)
}

// openStreamAs opens a stream with tok, the token of user.
func (e *env) openStreamAs(tok, user string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+Prefix+"stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		cancel()
		resp.Body.Close()
		e.t.Fatalf("stream answered %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &sse{cancel: cancel, commands: make(chan Command, 16), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var event, id, data string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if event == "command" {
					var c Command
					if json.Unmarshal([]byte(data), &c) == nil && c.ID == id {
						s.commands <- c
					}
				}
				event, id, data = "", "", ""
			case strings.HasPrefix(line, "event: "):
				event = line[7:]
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: "):
				data = line[6:]
			}
		}
	}()
	waitFor(e.t, "the stream to register", func() bool { return e.hub.Connected(user) })
	return s
}

func (s *sse) close() {
	s.cancel()
	<-s.done
}

func (s *sse) next(t *testing.T) Command {
	t.Helper()
	select {
	case c := <-s.commands:
		return c
	case <-s.done:
		t.Fatal("the stream ended before a command arrived")
	case <-time.After(10 * time.Second):
		t.Fatal("no command arrived")
	}
	return Command{}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) ack(id, result, reason string) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"id": id, "result": result, "reason": reason})
	if resp, body := e.do(http.MethodPost, Prefix+"ack", userToken(e.t), string(b), nil); resp.StatusCode != http.StatusNoContent {
		e.t.Fatalf("ack answered %s %s", resp.Status, body)
	}
}

// sendAsync runs hub.Send and delivers its result.
func (e *env) sendAsync(ctx context.Context, status string) <-chan error {
	out := make(chan error, 1)
	go func() { _, err := e.hub.Send(ctx, testUser, status); out <- err }()
	return out
}

func result(t *testing.T, c <-chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Send did not return")
	}
	return nil
}

const goodEvent = `{"id":"e1","type":"status_changed","at":"2026-03-02T09:00:00Z","statusId":"0N5000000000001"}`

func TestAuthAndCORS(t *testing.T) {
	e := newEnv(t)
	good := userToken(t)
	expired := signAt(t, time.Now().Add(-20*time.Minute), time.Now().Add(-10*time.Minute))
	dev, _ := bridgetoken.NewDevSigner([]byte("x"))
	events := `{"events":[` + goodEvent + `]}`
	tests := []struct {
		name, method, path, token, body, origin string
		extra                                   map[string]string
		want                                    int
		wantCORS                                bool
	}{
		{"events without token", "POST", "events", "", events, "", nil, 401, false},
		{"events with another org's key", "POST", "events", mint(t, otherSigner, testUser, time.Minute), events, "", nil, 401, false},
		{"events with a development token", "POST", "events", mint(t, dev, testUser, time.Minute), events, "", nil, 401, false},
		{"events with an expired token", "POST", "events", expired, events, "", nil, 401, false},
		{"stream without token", "GET", "stream", "", "", allowedOrigin, nil, 401, true},
		{"ack without token", "POST", "ack", "", `{"id":"x","result":"applied"}`, "", nil, 401, false},
		{"events with token", "POST", "events", good, events, "", nil, 200, false},
		{"events from the allowed origin", "POST", "events", good, events, allowedOrigin, nil, 200, true},
		{"events from the allowed origin in capitals", "POST", "events", good, events, "https://ACME.lightning.force.com", nil, 200, true},
		{"events from another origin", "POST", "events", good, events, "https://evil.example", nil, 200, false},
		{"ack of an unknown command", "POST", "ack", good, `{"id":"x","result":"applied"}`, allowedOrigin, nil, 204, true},
		{"heartbeat", "POST", "heartbeat", good, "", allowedOrigin, nil, 204, true},
		{"heartbeat without token", "POST", "heartbeat", "", "", allowedOrigin, nil, 401, true},
		{"preflight of the heartbeat", "OPTIONS", "heartbeat", "", "", allowedOrigin, map[string]string{"Access-Control-Request-Method": "POST"}, 204, true},
		{"preflight allowed", "OPTIONS", "events", "", "", allowedOrigin, map[string]string{"Access-Control-Request-Method": "POST"}, 204, true},
		{"preflight of the stream", "OPTIONS", "stream", "", "", allowedOrigin, map[string]string{"Access-Control-Request-Method": "GET"}, 204, true},
		{"preflight from another origin", "OPTIONS", "events", "", "", "https://evil.example", nil, 403, false},
		{"preflight without origin", "OPTIONS", "ack", "", "", "", nil, 403, false},
		{"wrong method", "GET", "events", good, "", "", nil, 405, false},
		{"unknown route", "POST", "other", good, "", "", nil, 404, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{}
			for k, v := range tt.extra {
				hdr[k] = v
			}
			if tt.origin != "" {
				hdr["Origin"] = tt.origin
			}
			resp, body := e.do(tt.method, Prefix+tt.path, tt.token, tt.body, hdr)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			acao := resp.Header.Get("Access-Control-Allow-Origin")
			if tt.wantCORS != (acao != "") || (acao != "" && acao != tt.origin) {
				t.Errorf("Access-Control-Allow-Origin = %q, want CORS %v for %q", acao, tt.wantCORS, tt.origin)
			}
			if tt.method == "OPTIONS" && tt.want == 204 {
				// The browser core's stream request carries Cache-Control, as EventSource's does.
				allowed := resp.Header.Get("Access-Control-Allow-Headers")
				if !strings.Contains(allowed, "Authorization") || !strings.Contains(allowed, "Cache-Control") ||
					resp.Header.Get("Access-Control-Allow-Methods") != tt.extra["Access-Control-Request-Method"] {
					t.Errorf("preflight headers = %v", resp.Header)
				}
			}
		})
	}
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	base := Options{Verifier: testVerifier, System: "sf", Hub: NewHub(nil), Ingest: func(context.Context, presence.Event) error { return nil }}
	for name, change := range map[string]func(*Options){
		"no verifier":      func(o *Options) { o.Verifier = nil },
		"short after":      func(o *Options) { o.DisconnectAfter = []time.Duration{10 * time.Second} },
		"no system":        func(o *Options) { o.System = "" },
		"no hub":           func(o *Options) { o.Hub = nil },
		"no ingest":        func(o *Options) { o.Ingest = nil },
		"origin with path": func(o *Options) { o.Origins = []string{"https://acme.lightning.force.com/lightning"} },
		"origin no scheme": func(o *Options) { o.Origins = []string{"acme.lightning.force.com"} },
	} {
		o := base
		change(&o)
		if _, err := NewHandler(o); err == nil {
			t.Errorf("%s: NewHandler accepted it", name)
		}
	}
}

func TestEventsMapping(t *testing.T) {
	e := newEnv(t)
	body := `{"events":[
 {"id":"a1","type":"status_changed","at":"2026-03-02T10:00:00+01:00","statusId":"0N5000000000001","statusApiName":"AvailableforVoice","reason":"OmniManualStatusChange"},
 {"id":"a2","type":"status_changed","at":"2026-03-02T09:00:01Z","statusId":"0N5000000000002CAA","reason":"OmniToolkitStatusChange","commandId":"c-1"},
 {"id":"a3","type":"login","at":"2026-03-02T09:00:02Z","statusId":"0N5000000000001"},
 {"id":"a4","type":"logout","at":"2026-03-02T09:00:03Z","commandId":"c-2"},
 {"id":"a5","type":"work_accepted","at":"2026-03-02T09:00:04Z","channel":"sfdc_phone"},
 {"id":"a6","type":"workload_changed","at":"2026-03-02T09:00:05Z","previousWorkload":0,"newWorkload":1.5,"configuredCapacity":5}]}`
	resp, out := e.do("POST", Prefix+"events", userToken(t), body, nil)
	if resp.StatusCode != 200 || strings.TrimSpace(out) != `{"accepted":6}` {
		t.Fatalf("answer %d %s", resp.StatusCode, out)
	}
	at := func(s int) time.Time { return time.Date(2026, 3, 2, 9, 0, s, 0, time.UTC) }
	want := []presence.Event{
		{ID: "bridge:a1", System: "sf", Agent: testUser, Type: presence.StatusChanged, Status: "0N5000000000001CAA", At: at(0),
			Data: map[string]any{"statusApiName": "AvailableforVoice", "reason": "OmniManualStatusChange"}},
		{ID: "bridge:a2", System: "sf", Agent: testUser, Type: presence.StatusChanged, Status: "0N5000000000002CAA", At: at(1),
			Data: map[string]any{"reason": "OmniToolkitStatusChange", "commandId": "c-1"}, Origin: presence.OriginSelf, Version: "c-1"},
		{ID: "bridge:a3", System: "sf", Agent: testUser, Type: presence.Login, Status: "0N5000000000001CAA", At: at(2)},
		{ID: "bridge:a4", System: "sf", Agent: testUser, Type: presence.Logout, At: at(3),
			Data: map[string]any{"commandId": "c-2"}, Origin: presence.OriginSelf, Version: "c-2"},
		{ID: "bridge:a5", System: "sf", Agent: testUser, Type: presence.WorkAccepted, At: at(4), Data: map[string]any{"channel": "sfdc_phone"}},
		{ID: "bridge:a6", System: "sf", Agent: testUser, Type: presence.WorkloadChanged, At: at(5),
			Data: map[string]any{"previousWorkload": 0.0, "newWorkload": 1.5, "configuredCapacity": 5.0}},
	}
	if d := cmp.Diff(want, e.events()); d != "" {
		t.Errorf("stored events (-want +got):\n%s", d)
	}
}

func TestBadBatchesStoreNothing(t *testing.T) {
	e := newEnv(t)
	many := make([]string, MaxEvents+1)
	for i := range many {
		many[i] = strings.Replace(goodEvent, `"e1"`, `"m`+strings.Repeat("x", i%50)+string(rune('a'+i%26))+`"`, 1)
	}
	tests := map[string]struct {
		body string
		want int
	}{
		"not json":               {`{"events":[`, 400},
		"no events":              {`{"events":[]}`, 400},
		"unknown batch field":    {`{"events":[` + goodEvent + `],"user":"x"}`, 400},
		"trailing data":          {`{"events":[` + goodEvent + `]} {}`, 400},
		"too many events":        {`{"events":[` + strings.Join(many, ",") + `]}`, 400},
		"too large":              {`{"events":[` + goodEvent + `],"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413},
		"one bad of two":         {`{"events":[` + goodEvent + `,{"id":"e2","type":"status_changed","at":"2026-03-02T09:00:00Z"}]}`, 400},
		"unknown type":           {`{"events":[{"id":"e1","type":"dance","at":"2026-03-02T09:00:00Z"}]}`, 400},
		"bad time":               {`{"events":[{"id":"e1","type":"login","at":"yesterday"}]}`, 400},
		"far future":             {`{"events":[{"id":"e1","type":"login","at":"2999-01-01T00:00:00Z"}]}`, 400},
		"missing id":             {`{"events":[{"type":"login","at":"2026-03-02T09:00:00Z"}]}`, 400},
		"bad id":                 {`{"events":[{"id":"a b","type":"login","at":"2026-03-02T09:00:00Z"}]}`, 400},
		"duplicate id":           {`{"events":[` + goodEvent + `,` + goodEvent + `]}`, 400},
		"unknown event field":    {`{"events":[{"id":"e1","type":"login","at":"2026-03-02T09:00:00Z","user":"005000000000002"}]}`, 400},
		"status not 0N5":         {`{"events":[{"id":"e1","type":"status_changed","at":"2026-03-02T09:00:00Z","statusId":"005000000000001"}]}`, 400},
		"logout with status":     {`{"events":[{"id":"e1","type":"logout","at":"2026-03-02T09:00:00Z","statusId":"0N5000000000001"}]}`, 400},
		"workload missing":       {`{"events":[{"id":"e1","type":"workload_changed","at":"2026-03-02T09:00:00Z","newWorkload":1}]}`, 400},
		"workload negative":      {`{"events":[{"id":"e1","type":"workload_changed","at":"2026-03-02T09:00:00Z","previousWorkload":-1,"newWorkload":1,"configuredCapacity":2}]}`, 400},
		"workload as string":     {`{"events":[{"id":"e1","type":"workload_changed","at":"2026-03-02T09:00:00Z","previousWorkload":"1","newWorkload":1,"configuredCapacity":2}]}`, 400},
		"workload on a login":    {`{"events":[{"id":"e1","type":"login","at":"2026-03-02T09:00:00Z","newWorkload":1}]}`, 400},
		"channel on a login":     {`{"events":[{"id":"e1","type":"login","at":"2026-03-02T09:00:00Z","channel":"sfdc_phone"}]}`, 400},
		"bad channel":            {`{"events":[{"id":"e1","type":"work_accepted","at":"2026-03-02T09:00:00Z","channel":"a'b"}]}`, 400},
		"commandId on work":      {`{"events":[{"id":"e1","type":"work_accepted","at":"2026-03-02T09:00:00Z","commandId":"c1"}]}`, 400},
		"reason too long":        {`{"events":[{"id":"e1","type":"status_changed","at":"2026-03-02T09:00:00Z","statusId":"0N5000000000001","reason":"` + strings.Repeat("r", 256) + `"}]}`, 400},
		"statusApiName with dot": {`{"events":[{"id":"e1","type":"status_changed","at":"2026-03-02T09:00:00Z","statusId":"0N5000000000001","statusApiName":"a.b"}]}`, 400},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body := e.do("POST", Prefix+"events", userToken(t), tt.body, nil)
			if resp.StatusCode != tt.want {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, tt.want)
			}
			var eb struct {
				Error  string `json:"error"`
				Detail any    `json:"detail"`
			}
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Error == "" || eb.Detail == nil {
				t.Errorf("error body = %s, want an error with detail", body)
			}
			if got := e.events(); len(got) != 0 {
				t.Errorf("a bad batch stored %d events", len(got))
			}
		})
	}
}

func TestEventsStoreFailure(t *testing.T) {
	e := newEnv(t)
	e.fail = errors.New("disk full")
	resp, body := e.do("POST", Prefix+"events", userToken(t), `{"events":[`+goodEvent+`]}`, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "disk full") {
		t.Errorf("answer %d %s, want 503 with the reason", resp.StatusCode, body)
	}
}

func TestEventsOnlyForTheTokensUser(t *testing.T) {
	e := newEnv(t)
	other := mint(t, testSigner, "005000000000002", time.Minute)
	if resp, body := e.do("POST", Prefix+"events", other, `{"events":[`+goodEvent+`]}`, nil); resp.StatusCode != 200 {
		t.Fatalf("answer %d %s", resp.StatusCode, body)
	}
	if got := e.events(); len(got) != 1 || got[0].Agent != "005000000000002AAA" {
		t.Errorf("stored %+v, want the event for the token's user", got)
	}
}

func TestSendWithoutStreamIsDeferred(t *testing.T) {
	e := newEnv(t)
	_, err := e.hub.Send(context.Background(), testUser, "0N5000000000001")
	var d *connector.DeferredError
	if !errors.As(err, &d) || d.Reason != "no Omni-Channel bridge connected" {
		t.Fatalf("Send = %v, want the no-bridge deferral", err)
	}
}

func TestSendAcks(t *testing.T) {
	tests := []struct {
		name, status, result, reason string
		wantAction, wantName         string
		check                        func(error) bool
	}{
		{"applied", "0N5000000000001", ResultApplied, "", ActionSetStatus, "AvailableforVoice", func(err error) bool { return err == nil }},
		{"deferred", "0N5000000000002CAA", ResultDeferred, "on a call", ActionSetStatus, "", func(err error) bool {
			var d *connector.DeferredError
			return errors.As(err, &d) && strings.Contains(d.Reason, "on a call")
		}},
		{"failed", "0N5000000000001", ResultFailed, "status not allowed", ActionSetStatus, "AvailableforVoice", func(err error) bool {
			var d *connector.DeferredError
			return err != nil && !errors.As(err, &d) && strings.Contains(err.Error(), "status not allowed")
		}},
		{"logout", "0", ResultApplied, "", ActionLogout, "", func(err error) bool { return err == nil }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			s := e.openStream(userToken(t))
			defer s.close()
			res := e.sendAsync(context.Background(), tt.status)
			c := s.next(t)
			wantID := sfid.To15(tt.status)
			if c.Action != tt.wantAction || c.StatusID != wantID || c.StatusAPIName != tt.wantName || c.ID == "" {
				t.Errorf("command = %+v, want %s %s %q", c, tt.wantAction, wantID, tt.wantName)
			}
			e.ack(c.ID, tt.result, tt.reason)
			if err := result(t, res); !tt.check(err) {
				t.Errorf("Send = %v", err)
			}
		})
	}
}

func TestSendEndsWithContext(t *testing.T) {
	e := newEnv(t)
	s := e.openStream(userToken(t))
	defer s.close()
	ctx, cancel := context.WithCancel(context.Background())
	res := e.sendAsync(ctx, "0N5000000000001")
	s.next(t)
	cancel()
	if err := result(t, res); !errors.Is(err, context.Canceled) {
		t.Errorf("Send = %v, want the context's error", err)
	}
}

func TestReconnectResendsUnacked(t *testing.T) {
	e := newEnv(t)
	s1 := e.openStream(userToken(t))
	res := e.sendAsync(context.Background(), "0N5000000000001")
	first := s1.next(t)
	s1.close()
	waitFor(t, "the stream to close", func() bool { return !e.hub.Connected(testUser) })
	s2 := e.openStream(userToken(t))
	defer s2.close()
	again := s2.next(t)
	if again != first {
		t.Errorf("resent %+v, want %+v", again, first)
	}
	e.ack(again.ID, ResultApplied, "")
	if err := result(t, res); err != nil {
		t.Errorf("Send = %v, want nil after the resent command's ack", err)
	}
}

func TestNewerWriteReplacesUnsentCommand(t *testing.T) {
	e := newEnv(t)
	s1 := e.openStream(userToken(t))
	ctx, cancel := context.WithCancel(context.Background())
	stale := e.sendAsync(ctx, "0N5000000000001")
	s1.next(t)
	cancel()
	if err := result(t, stale); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send = %v", err)
	}
	s1.close()
	waitFor(t, "the stream to close", func() bool { return !e.hub.Connected(testUser) })
	// The engine's newer write finds no stream and is deferred, yet replaces the stale one.
	var d *connector.DeferredError
	if _, err := e.hub.Send(context.Background(), testUser, "0N5000000000002"); !errors.As(err, &d) {
		t.Fatalf("Send = %v, want deferred", err)
	}
	s2 := e.openStream(userToken(t))
	defer s2.close()
	res := e.sendAsync(context.Background(), "0N5000000000003")
	if c := s2.next(t); c.StatusID != "0N5000000000003" {
		t.Fatalf("first command after reconnect = %+v, want the newest status (the stale one was replaced)", c)
	} else {
		e.ack(c.ID, ResultApplied, "")
	}
	if err := result(t, res); err != nil {
		t.Error(err)
	}
}

func TestCloseEndsStreamsAndSends(t *testing.T) {
	e := newEnv(t)
	s := e.openStream(userToken(t))
	res := e.sendAsync(context.Background(), "0N5000000000001")
	s.next(t)
	e.hub.Close()
	<-s.done
	var d *connector.DeferredError
	if err := result(t, res); !errors.As(err, &d) {
		t.Errorf("Send = %v, want deferred on shutdown", err)
	}
	resp, _ := e.do("GET", Prefix+"stream", userToken(t), "", nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("stream after Close = %d, want 503", resp.StatusCode)
	}
}

func TestStreamHeartbeat(t *testing.T) {
	hub := NewHub(nil)
	h, err := NewHandler(Options{Verifier: testVerifier, System: "sf", Hub: hub, Heartbeat: time.Millisecond,
		Ingest: func(context.Context, presence.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer hub.Close()
	req, _ := http.NewRequest("GET", srv.URL+Prefix+"stream", nil)
	req.Header.Set("Authorization", "Bearer "+userToken(t))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() == ": heartbeat" {
			return
		}
	}
	t.Fatal("no heartbeat before the stream ended")
}

func TestStreamEndsWhenTheTokenExpires(t *testing.T) {
	exp := time.Unix(1_800_000_600, 0)
	hub := NewHub(nil)
	h, err := NewHandler(Options{Verifier: testVerifier, System: "sf", Hub: hub,
		Now:    func() time.Time { return exp.Add(bridgetoken.ClockSkew - time.Millisecond) },
		Ingest: func(context.Context, presence.Event) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	defer hub.Close()
	tok := signAt(t, exp.Add(-10*time.Minute), exp)
	req, _ := http.NewRequest("GET", srv.URL+Prefix+"stream", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream answered %s", resp.Status)
	}
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	select {
	case err := <-ended:
		if err != nil {
			t.Errorf("stream ended with %v, want a clean end", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived its token")
	}
	waitFor(t, "the stream to unregister", func() bool { return !hub.Connected(testUser) })
}

// Omni-Channel's logout reasons: a session moved to another browser is no logout of the agent;
// a supervisor's or Salesforce's logout (and a supervisor's or the agent's change) is never an
// echo, even if the bridge tagged it.
func TestLogoutReasons(t *testing.T) {
	e := newEnv(t)
	body := `{"events":[
 {"id":"r1","type":"logout","at":"2026-03-02T09:00:00Z","reason":"DuplicateLogin"},
 {"id":"r2","type":"logout","at":"2026-03-02T09:00:01Z","reason":"DuplicateLoginInSameBrowser"},
 {"id":"r3","type":"logout","at":"2026-03-02T09:00:02Z","reason":"OmniSupervisorLogout","commandId":"c-1"},
 {"id":"r4","type":"logout","at":"2026-03-02T09:00:03Z","reason":"MaintenanceLogout"},
 {"id":"r5","type":"status_changed","at":"2026-03-02T09:00:04Z","statusId":"0N5000000000001","reason":"OmniSupervisorStatusChange","commandId":"c-2"}]}`
	if resp, out := e.do("POST", Prefix+"events", userToken(t), body, nil); resp.StatusCode != 200 {
		t.Fatalf("answer %d %s", resp.StatusCode, out)
	}
	at := func(s int) time.Time { return time.Date(2026, 3, 2, 9, 0, s, 0, time.UTC) }
	want := []presence.Event{
		{ID: "bridge:r1", System: "sf", Agent: testUser, Type: presence.SessionMoved, At: at(0), Data: map[string]any{"reason": "DuplicateLogin"}},
		{ID: "bridge:r2", System: "sf", Agent: testUser, Type: presence.SessionMoved, At: at(1), Data: map[string]any{"reason": "DuplicateLoginInSameBrowser"}},
		{ID: "bridge:r3", System: "sf", Agent: testUser, Type: presence.Logout, At: at(2), Data: map[string]any{"reason": "OmniSupervisorLogout", "commandId": "c-1"}},
		{ID: "bridge:r4", System: "sf", Agent: testUser, Type: presence.Logout, At: at(3), Data: map[string]any{"reason": "MaintenanceLogout"}},
		{ID: "bridge:r5", System: "sf", Agent: testUser, Type: presence.StatusChanged, Status: "0N5000000000001CAA", At: at(4),
			Data: map[string]any{"reason": "OmniSupervisorStatusChange", "commandId": "c-2"}},
	}
	if d := cmp.Diff(want, e.events()); d != "" {
		t.Errorf("stored events (-want +got):\n%s", d)
	}
	if got := e.events()[2].Describe(); got != "sf logout (OmniSupervisorLogout)" {
		t.Errorf("explain names the supervisor's logout %q", got)
	}
}
