package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/presence"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeEngine is an in-memory Engine that records every call.
type fakeEngine struct {
	mu        sync.Mutex
	agents    map[string]engine.AgentView
	steps     map[string][]engine.Step
	err       error // returned by Agents, Agent and Explain when set
	readyErr  error
	ingestErr error // returned by Ingest once failAt events were stored
	failAt    int
	calls     []string
	ingested  []presence.Event
	subs      map[int]chan engine.Decision
	nextSub   int
	// subscribed receives a value per Subscribe; cancelled per cancel of a subscription.
	subscribed chan struct{}
	cancelled  chan struct{}
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{
		agents:     map[string]engine.AgentView{},
		steps:      map[string][]engine.Step{},
		subs:       map[int]chan engine.Decision{},
		subscribed: make(chan struct{}, 16),
		cancelled:  make(chan struct{}, 16),
	}
}

func (f *fakeEngine) record(call string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
}

func (f *fakeEngine) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeEngine) Agents(context.Context) ([]engine.AgentView, error) {
	f.record("Agents")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []engine.AgentView
	for _, a := range f.agents {
		out = append(out, a)
	}
	return out, nil
}

func (f *fakeEngine) Agent(_ context.Context, email string) (engine.AgentView, bool, error) {
	f.record("Agent " + email)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return engine.AgentView{}, false, f.err
	}
	a, ok := f.agents[email]
	return a, ok, nil
}

func (f *fakeEngine) Explain(_ context.Context, email string, limit int) ([]engine.Step, error) {
	f.record("Explain " + email + " " + strconv.Itoa(limit))
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	steps := f.steps[email]
	if len(steps) > limit {
		steps = steps[len(steps)-limit:]
	}
	return steps, nil
}

func (f *fakeEngine) Subscribe(buffer int) (<-chan engine.Decision, func()) {
	f.record("Subscribe")
	f.mu.Lock()
	id := f.nextSub
	f.nextSub++
	ch := make(chan engine.Decision, buffer)
	f.subs[id] = ch
	f.mu.Unlock()
	f.subscribed <- struct{}{}
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, id)
			f.mu.Unlock()
			f.cancelled <- struct{}{}
		})
	}
}

// publish sends d to every live subscription.
func (f *fakeEngine) publish(d engine.Decision) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.subs {
		ch <- d
	}
}

func (f *fakeEngine) liveSubscriptions() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeEngine) Ingest(_ context.Context, ev presence.Event) error {
	f.record("Ingest " + ev.Describe())
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ingestErr != nil && len(f.ingested) >= f.failAt {
		return f.ingestErr
	}
	f.ingested = append(f.ingested, ev)
	return nil
}

func (f *fakeEngine) Ingested() []presence.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]presence.Event(nil), f.ingested...)
}

func (f *fakeEngine) Ready() error {
	f.record("Ready")
	return f.readyErr
}

var errEngine = errors.New("store unavailable")

// request describes one call made directly against the handler.
type request struct {
	method, path, body string
	header             map[string]string
	remote, host       string
}

// do serves req on h. Requests come from 127.0.0.1 to host 127.0.0.1:8080 unless told otherwise.
func do(t *testing.T, h http.Handler, req request) *httptest.ResponseRecorder {
	t.Helper()
	if req.method == "" {
		req.method = http.MethodGet
	}
	r := httptest.NewRequest(req.method, req.path, strings.NewReader(req.body))
	r.RemoteAddr = "127.0.0.1:50000"
	if req.remote != "" {
		r.RemoteAddr = req.remote
	}
	r.Host = "127.0.0.1:8080"
	if req.host != "" {
		r.Host = req.host
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}
