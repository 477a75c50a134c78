package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/engine"
)

// readEvent reads one SSE block (up to a blank line) and returns its non-comment lines.
func readEvent(t *testing.T, r *bufio.Reader) []string {
	t.Helper()
	var lines []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the stream: %v (got %q)", err, lines)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if len(lines) > 0 {
				return lines
			}
			continue
		}
		if !strings.HasPrefix(line, ":") {
			lines = append(lines, line)
		}
	}
}

func TestEventsStream(t *testing.T) {
	f := newFakeEngine()
	s := New(Options{Engine: f})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	res, err := http.Get(ts.URL + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(res.Body)
	if got := readEvent(t, r); !cmp.Equal(got, []string{"retry: 3000"}) {
		t.Fatalf("first block %q", got)
	}
	<-f.subscribed

	want := []engine.Decision{
		{Agent: "bob@example.com", Step: engine.Step{Seq: 1, At: t0, Kind: "event", System: "sf", Summary: "sf status_changed Online"}},
		{Agent: "amy@example.com", Step: engine.Step{Seq: 2, At: t0, Kind: "write", Summary: "line one\nline two"}},
	}
	for _, d := range want {
		f.publish(d)
	}
	for i, d := range want {
		lines := readEvent(t, r)
		if len(lines) != 2 || lines[0] != "event: decision" || !strings.HasPrefix(lines[1], "data: ") {
			t.Fatalf("event %d: %q", i, lines)
		}
		var got engine.Decision
		if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[1], "data: ")), &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(d, got); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}

	// The client leaves: the handler must cancel its subscription.
	res.Body.Close()
	<-f.cancelled
	if n := f.liveSubscriptions(); n != 0 {
		t.Errorf("%d subscriptions left after the client went away", n)
	}
}

func TestEventsStreamRequiresAuth(t *testing.T) {
	f := newFakeEngine()
	s := New(Options{Engine: f, AdminToken: "t"})
	w := do(t, s.Handler(), request{path: "/api/v1/events"})
	if w.Code != 401 {
		t.Fatalf("status %d, want 401", w.Code)
	}
	if calls := f.Calls(); len(calls) != 0 {
		t.Errorf("engine called: %v", calls)
	}
}

func TestEventsEndWhenEngineCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &closingEngine{fakeEngine: newFakeEngine()}
		s := New(Options{Engine: f})
		w := newStreamRecorder()
		req := httptest.NewRequest("GET", "/api/v1/events", nil)
		req.RemoteAddr, req.Host = "127.0.0.1:1", "localhost"
		// Returns only because the subscription ends; a hang fails the bubble as a deadlock.
		s.Handler().ServeHTTP(w, req)
		if w.code != 200 || !strings.Contains(w.String(), "retry: 3000") {
			t.Errorf("status %d, stream %q", w.code, w.String())
		}
	})
}

// closingEngine's subscriptions are already closed, as an engine that is stopping returns them.
type closingEngine struct{ *fakeEngine }

func (c *closingEngine) Subscribe(int) (<-chan engine.Decision, func()) {
	ch := make(chan engine.Decision)
	close(ch)
	return ch, func() {}
}

func TestEventsHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeEngine()
		s := New(Options{Engine: f})
		w := newStreamRecorder()
		ctx, cancel := context.WithCancel(context.Background())
		req := httptest.NewRequest("GET", "/api/v1/events", nil).WithContext(ctx)
		req.RemoteAddr, req.Host = "127.0.0.1:1", "localhost"
		done := make(chan struct{})
		go func() {
			s.Handler().ServeHTTP(w, req)
			close(done)
		}()
		time.Sleep(15*time.Second - time.Nanosecond)
		synctest.Wait()
		if n := strings.Count(w.String(), ": heartbeat\n\n"); n != 0 {
			t.Fatalf("%d heartbeats before 15 s", n)
		}
		time.Sleep(time.Nanosecond + 30*time.Second)
		synctest.Wait()
		if n := strings.Count(w.String(), ": heartbeat\n\n"); n != 3 {
			t.Fatalf("%d heartbeats after 45 s, want 3", n)
		}
		if w.flushes < 4 {
			t.Errorf("%d flushes, want one per write", w.flushes)
		}
		cancel()
		<-done
		if n := f.liveSubscriptions(); n != 0 {
			t.Errorf("%d subscriptions left after the request ended", n)
		}
	})
}

// streamRecorder is a ResponseWriter that supports flushing and can be read while written.
type streamRecorder struct {
	mu      sync.Mutex
	header  http.Header
	buf     bytes.Buffer
	code    int
	flushes int
}

func newStreamRecorder() *streamRecorder { return &streamRecorder{header: http.Header{}} }

func (s *streamRecorder) Header() http.Header { return s.header }
func (s *streamRecorder) WriteHeader(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code = code
}
func (s *streamRecorder) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(b)
}
func (s *streamRecorder) Flush() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushes++
}
func (s *streamRecorder) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// TestServeShutdownEndsStreams runs the real server and checks that ending its context closes
// open event streams and returns promptly.
func TestServeShutdownEndsStreams(t *testing.T) {
	f := newFakeEngine()
	s := New(Options{Engine: f})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, ln) }()

	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	res, err := client.Get("http://" + ln.Addr().String() + "/api/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	<-f.subscribed
	if res, err := client.Get("http://" + ln.Addr().String() + "/healthz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("healthz while streaming: %v", err)
	} else {
		res.Body.Close()
	}

	cancel()
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := io.ReadAll(res.Body); err != nil {
		t.Fatalf("stream did not end cleanly: %v", err)
	}
	<-f.cancelled
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("listener still accepts after Serve returned")
	}
}
