package fault

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func okHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
}

func serve(h http.Handler, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func TestNoFaultsPassThrough(t *testing.T) {
	in := New(Options{})
	h := in.Middleware(okHandler())
	for range 100 {
		if rec := serve(h, "/api/x"); rec.Code != http.StatusOK {
			t.Fatalf("status %d, want 200", rec.Code)
		}
	}
}

func TestErrorRateIsDeterministicWithSeededRand(t *testing.T) {
	run := func() []int {
		in := New(Options{Rand: rand.New(rand.NewPCG(1, 2))})
		if err := in.Apply(Settings{ErrorRate: 0.3, ErrorStatus: 502}); err != nil {
			t.Fatal(err)
		}
		h := in.Middleware(okHandler())
		var codes []int
		for range 200 {
			codes = append(codes, serve(h, "/api/x").Code)
		}
		return codes
	}
	a, b := run(), run()
	fails := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("request %d: %d then %d; same seed must give same faults", i, a[i], b[i])
		}
		switch a[i] {
		case 502:
			fails++
		case 200:
		default:
			t.Fatalf("unexpected status %d", a[i])
		}
	}
	if fails < 30 || fails > 90 {
		t.Fatalf("%d of 200 failed at rate 0.3", fails)
	}
}

func TestStormAnswers429UntilItEnds(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	var gotRetry time.Duration
	in := New(Options{Now: c.now, WriteError: func(w http.ResponseWriter, _ *http.Request, status int, ra time.Duration) {
		gotRetry = ra
		w.WriteHeader(status)
	}})
	if err := in.Apply(Settings{StormFor: 10 * time.Second, RetryAfter: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	h := in.Middleware(okHandler())
	rec := serve(h, "/api/x")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" || gotRetry != 1500*time.Millisecond {
		t.Fatalf("in storm: %d Retry-After=%q writer got %v", rec.Code, rec.Header().Get("Retry-After"), gotRetry)
	}
	if got := in.Current().StormFor; got != 10*time.Second {
		t.Fatalf("storm left %v", got)
	}
	if rec := serve(h, "/_sim/faults"); rec.Code != http.StatusOK {
		t.Fatalf("control path must be exempt, got %d", rec.Code)
	}
	c.t = c.t.Add(10 * time.Second)
	if rec := serve(h, "/api/x"); rec.Code != http.StatusOK {
		t.Fatalf("after storm: %d", rec.Code)
	}
}

func TestLatencyUsesSleepAndStopsOnCancel(t *testing.T) {
	var slept []time.Duration
	in := New(Options{Sleep: func(ctx context.Context, d time.Duration) error {
		slept = append(slept, d)
		return ctx.Err()
	}})
	if err := in.Apply(Settings{Latency: 250 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	called := 0
	h := in.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { called++ }))
	serve(h, "/api/x")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/api/x", nil).WithContext(ctx))
	if len(slept) != 2 || slept[0] != 250*time.Millisecond || called != 1 {
		t.Fatalf("slept %v, handler called %d times; want two sleeps and one call", slept, called)
	}
}

func TestHooksRunOnceWhenApplied(t *testing.T) {
	drops, expiries := 0, 0
	in := New(Options{OnDropSockets: func() { drops++ }, OnExpireTokens: func() { expiries++ }})
	if err := in.Apply(Settings{DropSockets: true, ExpireTokens: true}); err != nil {
		t.Fatal(err)
	}
	if err := in.Apply(Settings{Latency: time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if drops != 1 || expiries != 1 {
		t.Fatalf("drops=%d expiries=%d, want 1 and 1", drops, expiries)
	}
	if s := in.Current(); s.DropSockets || s.ExpireTokens {
		t.Fatalf("one-shot actions must not stay in force: %+v", s)
	}
}

func TestControlHandler(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	drops := 0
	in := New(Options{Now: c.now, OnDropSockets: func() { drops++ }})
	h := in.ControlHandler()
	tests := []struct {
		name, method, body string
		wantCode           int
		wantBody           string
	}{
		{"get empty", http.MethodGet, "", 200, `{}`},
		{"apply", http.MethodPost, `{"latency":"200ms","error_rate":0.5,"error_status":500,"storm_for":"30s","drop_sockets":true}`, 200,
			`{"latency":"200ms","error_rate":0.5,"error_status":500,"storm_for":"30s"}`},
		{"bad duration", http.MethodPost, `{"latency":"soon"}`, 400, ""},
		{"unknown field", http.MethodPost, `{"latncy":"1s"}`, 400, ""},
		{"rate out of range", http.MethodPost, `{"error_rate":2}`, 400, ""},
		{"status out of range", http.MethodPost, `{"error_status":200}`, 400, ""},
		{"too large", http.MethodPost, `{"latency":"` + strings.Repeat("1", 20000) + `s"}`, 400, ""},
		{"still in force after bad input", http.MethodGet, "", 200, `{"latency":"200ms","error_rate":0.5,"error_status":500,"storm_for":"30s"}`},
		{"method", http.MethodDelete, "", 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tt.method, "/_sim/faults", strings.NewReader(tt.body)))
			if rec.Code != tt.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.wantCode, rec.Body)
			}
			if tt.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Fatalf("body %s, want %s", rec.Body, tt.wantBody)
			}
		})
	}
	if drops != 1 {
		t.Fatalf("drop hook ran %d times", drops)
	}
}

func TestSettingsJSONRoundTrip(t *testing.T) {
	in := Settings{Latency: time.Second, ErrorRate: 0.25, ErrorStatus: 503, StormFor: time.Minute, RetryAfter: 2 * time.Second, ExpireTokens: true}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Settings
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Fatalf("round trip: %+v != %+v", out, in)
	}
}

func TestBindFlags(t *testing.T) {
	var s Settings
	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	BindFlags(fs, &s)
	if err := fs.Parse([]string{"--fault-latency=50ms", "--fault-error-rate=0.1", "--fault-storm=5s"}); err != nil {
		t.Fatal(err)
	}
	want := Settings{Latency: 50 * time.Millisecond, ErrorRate: 0.1, ErrorStatus: 503, StormFor: 5 * time.Second, RetryAfter: time.Second}
	if s != want {
		t.Fatalf("flags gave %+v, want %+v", s, want)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
