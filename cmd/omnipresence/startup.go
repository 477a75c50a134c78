package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/server"
	"github.com/omnipresence/omnipresence/internal/store"
)

// Catalog fetches at start-up: each attempt's time limit, and the backoff between attempts.
const (
	catalogTimeout    = 30 * time.Second
	catalogMinBackoff = time.Second
	catalogMaxBackoff = time.Minute
)

// catalogCheckpoint is where the last catalog pulled from a system is kept, for starts while
// the vendor cannot be reached.
func catalogCheckpoint(system string) string { return "catalog/" + system }

// storedCatalog is a catalog as kept in the store.
type storedCatalog struct {
	At       time.Time         `json:"at"`
	Statuses []presence.Status `json:"statuses"`
}

// withCatalogs pulls the catalog of every connected system that has no inline one, all at
// once, each retrying with backoff until it answers; a system that cannot be reached at its
// first attempt uses the catalog stored at an earlier start, when there is one. It then loads
// the policy again with the catalogs, which checks every status name against them. Progress
// shows in svc (GET /api/v1/systems, /readyz) and in the log.
func withCatalogs(ctx context.Context, cfg *policy.Config, path string, conns map[string]connector.Connector,
	st store.Store, log *slog.Logger, svc *serviceEngine) (*policy.Config, error) {
	var mu sync.Mutex
	got := map[string][]presence.Status{}
	var wg sync.WaitGroup
	for _, name := range cfg.SystemNames {
		c := conns[name]
		if cfg.Systems[name].Catalog != nil || c == nil {
			continue
		}
		svc.progress(name, engine.SystemConnecting, "loading the catalog")
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses, ok := pullCatalog(ctx, name, c, st, log, svc)
			if ok {
				mu.Lock()
				got[name] = statuses
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, nil
	}
	if len(got) == 0 {
		return cfg, nil
	}
	full, err := policy.Load(path, policy.Options{Catalog: func(sys *policy.System) ([]presence.Status, error) {
		return got[sys.Name], nil
	}})
	if err != nil {
		return nil, &exitError{code: 2, err: fmt.Errorf("the policy does not fit the systems' catalogs:\n%w", err)}
	}
	return full, nil
}

// pullCatalog asks one system for its catalog until it answers or ctx ends.
func pullCatalog(ctx context.Context, name string, c connector.Connector, st store.Store, log *slog.Logger, svc *serviceEngine) ([]presence.Status, bool) {
	wait := catalogMinBackoff
	for first := true; ; first = false {
		cctx, cancel := context.WithTimeout(ctx, catalogTimeout)
		statuses, err := c.Catalog(cctx)
		cancel()
		if ctx.Err() != nil {
			return nil, false
		}
		if err == nil {
			if b, err := json.Marshal(storedCatalog{At: time.Now().UTC(), Statuses: statuses}); err == nil {
				if err := st.SetCheckpoint(ctx, catalogCheckpoint(name), string(b)); err != nil {
					log.Warn("keeping the catalog for later starts failed", "system", name, "err", err)
				}
			}
			svc.progress(name, engine.SystemConnecting, "catalog loaded; waiting for the other systems' catalogs")
			return statuses, true
		}
		if first {
			if kept, ok := storedCatalogOf(ctx, st, name); ok {
				log.Warn("system "+name+": the catalog cannot be loaded now; using the one kept at "+kept.At.Format(time.RFC3339),
					"system", name, "err", err)
				return kept.Statuses, true
			}
		}
		reason := "loading the catalog: " + err.Error()
		svc.progress(name, engine.SystemWaiting, reason)
		d := wait/2 + rand.N(wait/2+1)
		wait = min(wait*2, catalogMaxBackoff)
		log.Warn("waiting for system "+name+": "+reason, "system", name, "retry_in", d.Round(time.Millisecond))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, false
		case <-t.C:
		}
	}
}

func storedCatalogOf(ctx context.Context, st store.Store, name string) (storedCatalog, bool) {
	raw, err := st.Checkpoint(ctx, catalogCheckpoint(name))
	if err != nil || raw == "" {
		return storedCatalog{}, false
	}
	var kept storedCatalog
	if json.Unmarshal([]byte(raw), &kept) != nil || len(kept.Statuses) == 0 {
		return storedCatalog{}, false
	}
	return kept, true
}

var _ server.Actions = (*serviceEngine)(nil)

// errStarting answers what needs the engine while it starts.
var errStarting = errors.New("the service is starting: the systems' catalogs are loading")

// serviceEngine is what the HTTP server serves from: the engine once it runs, and the start-up
// progress until then, so that the API, the admin UI and /readyz work from the first moment.
type serviceEngine struct {
	eng       atomic.Pointer[engine.Engine]
	started   chan struct{}
	startOnce sync.Once
	// views and rs serve a replica that does not lead (cluster.go): agents from the database,
	// events to the inbox.
	views atomic.Pointer[storeViews]
	rs    *replicaSet

	mu      sync.Mutex
	systems []engine.SystemHealth
}

func newServiceEngine(cfg *policy.Config, conns map[string]connector.Connector) *serviceEngine {
	s := &serviceEngine{started: make(chan struct{})}
	now := time.Now().UTC()
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		h := engine.SystemHealth{Name: name, Kind: sys.Kind, State: engine.SystemConnecting, Reason: "starting", Since: now, Accounts: -1}
		if sys.Accounts != nil {
			h.Accounts = len(sys.Accounts)
		}
		if conns[name] == nil {
			h.State, h.Reason = engine.SystemNotConnected, "no connector: events come only through the webhook"
		}
		s.systems = append(s.systems, h)
	}
	return s
}

func (s *serviceEngine) set(e *engine.Engine) {
	s.eng.Store(e)
	s.startOnce.Do(func() { close(s.started) })
}

// unset forgets e once it stopped (a replica that no longer leads).
func (s *serviceEngine) unset(e *engine.Engine) { s.eng.CompareAndSwap(e, nil) }

// engine is the running engine, nil while this replica does not lead.
func (s *serviceEngine) engine() *engine.Engine { return s.eng.Load() }

// follow makes the service serve from the database while it runs no engine.
func (s *serviceEngine) follow(v *storeViews, rs *replicaSet) {
	s.rs = rs
	s.views.Store(v)
}

// progress records a system's start-up state.
func (s *serviceEngine) progress(name, state, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.systems {
		h := &s.systems[i]
		if h.Name != name {
			continue
		}
		if h.State != state {
			h.Since = time.Now().UTC()
		}
		if state == engine.SystemWaiting {
			h.Retries++
			h.LastError, h.LastErrorAt = reason, time.Now().UTC()
		}
		h.State, h.Reason = state, reason
	}
}

func (s *serviceEngine) Agents(ctx context.Context) ([]engine.AgentView, error) {
	if e := s.eng.Load(); e != nil {
		return e.Agents(ctx)
	}
	if v := s.views.Load(); v != nil {
		m, err := v.machine(ctx)
		if err != nil {
			return nil, err
		}
		return m.Views(), nil
	}
	return nil, nil
}

func (s *serviceEngine) Agent(ctx context.Context, email string) (engine.AgentView, bool, error) {
	if e := s.eng.Load(); e != nil {
		return e.Agent(ctx, email)
	}
	if v := s.views.Load(); v != nil {
		return v.agent(ctx, strings.ToLower(strings.TrimSpace(email)))
	}
	return engine.AgentView{}, false, nil
}

func (s *serviceEngine) Explain(ctx context.Context, email string, limit int) ([]engine.Step, error) {
	if e := s.eng.Load(); e != nil {
		return e.Explain(ctx, email, limit)
	}
	if v := s.views.Load(); v != nil {
		recs, err := v.st.Audit(ctx, strings.ToLower(strings.TrimSpace(email)), limit)
		if err != nil {
			return nil, err
		}
		return engine.DecodeSteps(recs)
	}
	return nil, nil
}

// Ingest stores ev: through the engine, or, on a replica that does not lead, in the inbox.
func (s *serviceEngine) Ingest(ctx context.Context, ev presence.Event) error {
	if e := s.eng.Load(); e != nil {
		if err := e.Ingest(ctx, ev); !errors.Is(err, engine.ErrStopped) || s.views.Load() == nil {
			return err
		}
		// This replica stopped leading meanwhile.
	}
	if s.views.Load() != nil {
		return s.rs.toInbox(ctx, ev)
	}
	return errStarting
}

func (s *serviceEngine) Ready() error {
	if e := s.eng.Load(); e != nil {
		return e.Ready()
	}
	if s.views.Load() != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var waiting []string
	for _, h := range s.systems {
		if h.State == engine.SystemWaiting {
			waiting = append(waiting, "waiting for system "+h.Name+": "+h.Reason)
		}
	}
	if len(waiting) == 0 {
		return errStarting
	}
	return fmt.Errorf("%w; %s", errStarting, strings.Join(waiting, "; "))
}

func (s *serviceEngine) Systems() []engine.SystemHealth {
	if e := s.eng.Load(); e != nil {
		return e.Systems()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := append([]engine.SystemHealth(nil), s.systems...)
	if s.views.Load() != nil {
		for i := range out {
			if out[i].State != engine.SystemNotConnected {
				out[i].Reason = "this replica does not lead: the leader watches the system (GET /api/v1/cluster)"
			}
		}
	}
	return out
}

// Retry makes a failed or deferred write go out again (server.Actions); a replica that does
// not lead asks the leader.
func (s *serviceEngine) Retry(ctx context.Context, email, system string) (bool, error) {
	if e := s.eng.Load(); e != nil {
		return e.Retry(ctx, email, system)
	}
	if s.views.Load() != nil {
		return s.rs.retry(ctx, email, system)
	}
	return false, errStarting
}

// Resync reads what every system shows for the agent now (server.Actions); a replica that
// does not lead asks the leader.
func (s *serviceEngine) Resync(ctx context.Context, email string) ([]string, error) {
	if e := s.eng.Load(); e != nil {
		return e.Resync(ctx, email)
	}
	if s.views.Load() != nil {
		return s.rs.resync(ctx, email)
	}
	return nil, errStarting
}

// Subscribe streams the engine's decisions; a subscription made while the service starts
// begins with the engine.
func (s *serviceEngine) Subscribe(buffer int) (<-chan engine.Decision, func()) {
	if e := s.eng.Load(); e != nil {
		return e.Subscribe(buffer)
	}
	out := make(chan engine.Decision, max(buffer, 1))
	done := make(chan struct{})
	var once sync.Once
	cancel := func() { once.Do(func() { close(done) }) }
	go func() {
		defer close(out)
		select {
		case <-done:
			return
		case <-s.started:
		}
		e := s.eng.Load()
		if e == nil {
			return // this replica stopped leading; the client subscribes again
		}
		in, stop := e.Subscribe(buffer)
		defer stop()
		for {
			select {
			case <-done:
				return
			case d, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- d:
				default: // a subscriber that does not keep up misses decisions, as with the engine
				}
			}
		}
	}()
	return out, cancel
}

// withAccountTeams gives the policy the teams of every connected system's accounts (CXone's
// teams), when a policy's applies_to names teams, so that those policies apply to the agents
// the vendor puts in them. A system that cannot answer now is skipped with a warning: its
// agents get the policies the agents directory gives them.
func withAccountTeams(ctx context.Context, cfg *policy.Config, conns map[string]connector.Connector, log *slog.Logger) {
	if !cfg.UsesTeams() {
		return
	}
	var wg sync.WaitGroup
	for _, name := range cfg.SystemNames {
		c := conns[name]
		if c == nil || cfg.Systems[name].Accounts != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			actx, cancel := context.WithTimeout(ctx, catalogTimeout)
			defer cancel()
			accts, err := c.Accounts(actx)
			if err != nil {
				log.Warn("system "+name+": the accounts' teams cannot be loaded now", "system", name, "err", err)
				return
			}
			cfg.SetAccountTeams(name, accts)
		}()
	}
	wg.Wait()
}
