package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/workqueue"
)

// Config assembles a running engine.
type Config struct {
	Policy     *policy.Config
	Store      store.Store
	Connectors map[string]connector.Connector
	Machine    Options
	// Workers is how many agents are reconciled at once (default 64; writes to a vendor with a
	// bulk API are gathered across them).
	Workers int
	// BulkWindow is how long writes for a bulk-capable vendor gather before one call goes out
	// (default 20ms); BulkMax caps a call (default 50, Genesys's limit).
	BulkWindow time.Duration
	BulkMax    int
	// BatchSize caps how many operations share one store transaction (default 512).
	BatchSize int
	// WriteTimeout bounds one vendor write (default 15s).
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Registerer receives the engine's and its queue's metrics; nil for none.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient calls policy extension webhooks; nil means a default client.
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the wait between failed attempts to load a system's
	// accounts or to watch it (default 1s and 1min).
	MinBackoff, MaxBackoff time.Duration
	// HealthInterval is how often a connector that can tell (connector.Healther) is asked
	// whether its vendor answers (default 30s; negative: never).
	HealthInterval time.Duration
}

// Engine runs a Machine for the service: one sequencer goroutine owns the machine and commits
// its decisions in batches (group commit), workers reconcile agents from a deduplicating queue,
// and one goroutine per system loads its accounts and watches it, so that a system that cannot
// be reached delays only itself (see Systems).
type Engine struct {
	cfg   Config
	log   *slog.Logger
	m     *Machine
	queue *workqueue.Queue[string]
	reqs  chan *request
	now   func() time.Time

	mu       sync.RWMutex // guards m for readers; the sequencer holds it while applying a batch
	subsMu   sync.Mutex
	subs     map[int]chan Decision
	nextSub  int
	ready    atomic.Bool
	notReady atomic.Value // string
	running  chan struct{}
	latency  prometheus.Histogram
	extWG    sync.WaitGroup
	extCtx   context.Context
	batchers map[string]*batcher
	health   map[string]*tracker
}

type opKind int

const (
	opIngest opKind = iota
	opPlan
	opOutcome
	opAccounts
	opObserve
	opExtension
	opRetry
	opWake
)

type request struct {
	kind     opKind
	ev       presence.Event
	agent    string
	w        Write
	receipt  connector.Receipt
	err      error
	system   string
	accounts []presence.Account
	current  map[string]connector.Current
	ext      ExtensionCall
	answer   ExtensionAnswer
	start    time.Time
	reply    chan response
}

type response struct {
	err    error
	agent  string
	agents []string
	writes []Write
	wake   time.Time
}

// ErrStopped is returned by calls made after the engine stopped.
var ErrStopped = errors.New("engine: stopped")

// New builds an engine; Run starts it.
func New(cfg Config) (*Engine, error) {
	if cfg.Policy == nil || cfg.Store == nil {
		return nil, errors.New("engine: a policy and a store are required")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.BulkWindow <= 0 {
		cfg.BulkWindow = 20 * time.Millisecond
	}
	if cfg.BulkMax <= 0 {
		cfg.BulkMax = 50
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = time.Second
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Minute, cfg.MinBackoff)
	}
	if cfg.HealthInterval == 0 {
		cfg.HealthInterval = 30 * time.Second
	}
	opts := cfg.Machine
	if opts.Limits == nil {
		opts.Limits = map[string]Limit{}
	}
	batchers := map[string]*batcher{}
	for name, c := range cfg.Connectors {
		var limit *Limit
		if l, ok := c.(connector.Limiter); ok {
			ps, burst := l.WriteLimit()
			limit = &Limit{PerSecond: ps, Burst: burst}
		}
		if bs, ok := c.(connector.BulkSetter); ok {
			// The budget counts requests: the batcher spends it per call, not per write.
			b := &batcher{system: name, conn: bs, window: cfg.BulkWindow, max: cfg.BulkMax, timeout: cfg.WriteTimeout,
				in: make(chan bulkItem)}
			if limit != nil {
				b.limiter = rate.NewLimiter(rate.Limit(limit.PerSecond), max(limit.Burst, 1))
			}
			batchers[name] = b
			continue
		}
		if _, set := opts.Limits[name]; !set && limit != nil {
			opts.Limits[name] = *limit
		}
	}
	if opts.DeferredRecheck == 0 {
		opts.DeferredRecheck = 30 * time.Second
	}
	if opts.ClockTolerance == 0 {
		opts.ClockTolerance = time.Second
	}
	if opts.LandingWindow == 0 {
		// A write is abandoned after the write timeout (a bulk call included): it cannot
		// land later.
		opts.LandingWindow = cfg.WriteTimeout
	}
	m := NewMachine(cfg.Policy, opts)
	for name := range cfg.Connectors {
		if cfg.Policy.Systems[name] != nil && cfg.Policy.Systems[name].Accounts == nil {
			// Its directory comes from the vendor: nothing is written to it until it has.
			m.AwaitAccounts(name)
		}
	}
	e := &Engine{
		cfg:      cfg,
		log:      cfg.Logger,
		m:        m,
		reqs:     make(chan *request, cfg.BatchSize),
		now:      cfg.Now,
		subs:     map[int]chan Decision{},
		running:  make(chan struct{}),
		batchers: batchers,
	}
	e.notReady.Store("starting")
	e.newTrackers()
	for _, name := range cfg.Policy.SystemNames {
		if cfg.Connectors[name] != nil && cfg.Policy.Systems[name].Accounts == nil {
			e.m.AwaitAccounts(name)
		}
	}
	qopts := workqueue.Options[string]{}
	if cfg.Registerer != nil {
		qm, err := workqueue.NewPrometheusMetrics(cfg.Registerer, "reconcile")
		if err != nil {
			return nil, err
		}
		qopts.Metrics = qm
		if err := e.registerMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
		if err := e.registerSystemMetrics(cfg.Registerer); err != nil {
			return nil, err
		}
	}
	e.queue = workqueue.New(qopts)
	return e, nil
}

// Run restores state and runs the sequencer, the workers and one goroutine per system (see
// runSystem) until ctx ends; it then drains in-flight work and returns. A system that cannot be
// reached is retried with backoff and never holds up the others.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	todo, err := e.m.Restore(ctx, e.cfg.Store)
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("restoring state: %w", err)
	}
	e.extCtx = ctx
	seqCtx, stopSeq := context.WithCancel(context.Background())
	seqDone := make(chan struct{})
	go func() { defer close(seqDone); e.sequence(seqCtx) }()
	close(e.running)

	bulkCtx, stopBulk := context.WithCancel(context.Background())
	var bulkWG sync.WaitGroup
	for _, b := range e.batchers {
		bulkWG.Add(1)
		go func() { defer bulkWG.Done(); b.run(bulkCtx) }()
	}
	defer func() { stopBulk(); bulkWG.Wait() }()
	var wg sync.WaitGroup
	for range e.cfg.Workers {
		wg.Add(1)
		go func() { defer wg.Done(); e.work(ctx) }()
	}
	for _, k := range todo {
		e.queue.Add(k)
	}
	var systems sync.WaitGroup
	for _, name := range e.cfg.Policy.SystemNames {
		if c := e.cfg.Connectors[name]; c != nil {
			systems.Add(1)
			go func() { defer systems.Done(); e.runSystem(ctx, name, c) }()
		}
	}
	e.ready.Store(true)
	<-ctx.Done()
	e.ready.Store(false)
	e.notReady.Store("stopping")
	systems.Wait()
	e.queue.ShutDownWithDrain()
	wg.Wait()
	e.extWG.Wait()
	stopSeq()
	<-seqDone
	e.closeSubs()
	return nil
}

// listed keeps, when the policy has an agents directory, only the accounts of the people it
// lists: the directory says who the agents are, so an integration user or a supervisor of the
// vendor's user list is not one.
func (e *Engine) listed(accts []presence.Account) []presence.Account {
	dir := e.cfg.Policy.Agents
	if dir == nil {
		return accts
	}
	known := make(map[string]bool, len(dir))
	for _, a := range dir {
		known[normalizeEmail(a.Email)] = true
	}
	out := accts[:0:0]
	for _, a := range accts {
		if known[normalizeEmail(a.Email)] {
			out = append(out, a)
		}
	}
	return out
}

// Ingest stores ev and applies it; it returns once the event and its decision are durable.
func (e *Engine) Ingest(ctx context.Context, ev presence.Event) error {
	_, err := e.call(ctx, &request{kind: opIngest, ev: ev})
	return err
}

func (e *Engine) call(ctx context.Context, r *request) (response, error) {
	select {
	case <-e.running:
	case <-ctx.Done():
		return response{}, ctx.Err()
	}
	r.reply = make(chan response, 1)
	r.start = time.Now()
	select {
	case e.reqs <- r:
	case <-ctx.Done():
		return response{}, ctx.Err()
	}
	select {
	case resp := <-r.reply:
		return resp, resp.err
	case <-ctx.Done():
		return response{}, ctx.Err()
	}
}

// sequence owns the machine: it takes operations in batches, applies them inside one store
// transaction, and answers only after the commit.
func (e *Engine) sequence(ctx context.Context) {
	batch := make([]*request, 0, e.cfg.BatchSize)
	resps := make([]response, 0, e.cfg.BatchSize)
	for {
		batch = batch[:0]
		select {
		case r := <-e.reqs:
			batch = append(batch, r)
		case <-ctx.Done():
			e.failPending()
			return
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case r := <-e.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		now := e.now()
		var decisions []Decision
		var calls []ExtensionCall
		e.mu.Lock()
		err := e.cfg.Store.Update(context.WithoutCancel(ctx), func(tx store.Tx) error {
			resps = resps[:0]
			for _, r := range batch {
				var resp response
				switch r.kind {
				case opIngest:
					agent, err := e.m.Ingest(ctx, tx, r.ev, now)
					if err != nil {
						return err
					}
					resp.agent = agent
				case opPlan:
					resp.writes, resp.wake = e.m.Plan(r.agent, now)
				case opOutcome:
					resp.wake = e.m.Outcome(r.w, r.receipt, r.err, now)
				case opAccounts:
					e.m.SetAccounts(r.system, r.accounts)
					// Writes to the system waited for its directory: look at every agent again.
					resp.agents = e.agentEmails()
				case opExtension:
					resp.agent = e.m.ApplyExtension(r.ext, r.answer, r.err, now)
				case opWake:
					resp.agent = e.m.Wake(r.system, r.agent)
				case opRetry:
					ok, err := e.m.Retry(r.agent, r.system, now)
					if err != nil {
						resp.err = err
					} else if ok {
						resp.agent = r.agent
					}
				case opObserve:
					for account, cur := range r.current {
						ev := presence.Event{System: r.system, Agent: account, Type: presence.StatusChanged, Status: cur.StatusID,
							At: cur.Since, Version: cur.Version, Data: map[string]any{"source": presence.SourceResync}}
						agent, err := e.m.Ingest(ctx, tx, ev, now)
						if err != nil {
							return err
						}
						if agent != "" {
							resp.agents = append(resp.agents, agent)
						}
					}
				}
				resps = append(resps, resp)
			}
			var err error
			decisions, err = e.m.Flush(ctx, tx)
			return err
		})
		if err == nil {
			calls = e.m.TakeExtensionCalls()
		}
		if err != nil {
			if derr := e.m.Discard(context.WithoutCancel(ctx), e.cfg.Store); derr != nil {
				e.log.Error("reloading state after a failed commit", "err", derr)
			}
		}
		e.mu.Unlock()
		for i, r := range batch {
			if err != nil {
				r.reply <- response{err: fmt.Errorf("committing: %w", err)}
				continue
			}
			if e.latency != nil && r.kind == opIngest {
				e.latency.Observe(time.Since(r.start).Seconds())
			}
			if (r.kind == opIngest || r.kind == opExtension) && resps[i].agent != "" {
				e.queue.Add(resps[i].agent)
			}
			for _, a := range resps[i].agents {
				e.queue.Add(a)
			}
			r.reply <- resps[i]
		}
		e.publish(decisions)
		for _, c := range calls {
			e.extWG.Add(1)
			go e.callExtension(c)
		}
	}
}

// callExtension asks a policy's webhook and hands its answer to the sequencer.
func (e *Engine) callExtension(c ExtensionCall) {
	defer e.extWG.Done()
	ans, err := CallExtension(e.extCtx, e.cfg.HTTPClient, c)
	if e.extCtx.Err() != nil {
		return
	}
	if _, cerr := e.call(e.extCtx, &request{kind: opExtension, ext: c, answer: ans, err: err}); cerr != nil {
		e.log.Warn("recording an extension answer failed", "agent", c.Agent, "err", cerr)
	}
}

func (e *Engine) failPending() {
	for {
		select {
		case r := <-e.reqs:
			r.reply <- response{err: ErrStopped}
		default:
			return
		}
	}
}

// work reconciles agents from the queue: plan the writes due, make them, record the answers.
func (e *Engine) work(ctx context.Context) {
	for {
		agent, shutdown := e.queue.Get()
		if shutdown {
			return
		}
		e.reconcile(context.WithoutCancel(ctx), agent)
		e.queue.Done(agent)
	}
}

func (e *Engine) reconcile(ctx context.Context, agent string) {
	plan, err := e.call(ctx, &request{kind: opPlan, agent: agent})
	if err != nil {
		e.log.Warn("planning failed; retrying", "agent", agent, "err", err)
		e.queue.AddRateLimited(agent)
		return
	}
	e.queue.Forget(agent)
	wake := plan.wake
	for _, w := range plan.writes {
		receipt, werr := e.send(ctx, w)
		out, err := e.call(ctx, &request{kind: opOutcome, w: w, receipt: receipt, err: werr})
		if err != nil {
			e.log.Error("recording a write outcome failed", "agent", agent, "system", w.System, "err", err)
			e.queue.AddRateLimited(agent)
			continue
		}
		if !out.wake.IsZero() && (wake.IsZero() || out.wake.Before(wake)) {
			wake = out.wake
		}
	}
	if !wake.IsZero() {
		e.queue.AddAfter(agent, wake.Sub(e.now()))
	}
}

func (e *Engine) send(ctx context.Context, w Write) (connector.Receipt, error) {
	c := e.cfg.Connectors[w.System]
	if c == nil {
		return connector.Receipt{}, &connector.DeferredError{Reason: "no connector for " + w.System}
	}
	ctx, cancel := context.WithTimeout(ctx, e.cfg.WriteTimeout)
	defer cancel()
	if b := e.batchers[w.System]; b != nil {
		return b.submit(ctx, w)
	}
	return c.SetStatus(ctx, w.Account, w.StatusID)
}

// Agents returns every known agent.
func (e *Engine) Agents(ctx context.Context) ([]AgentView, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.m.Views(), nil
}

// Agent returns one agent by email.
func (e *Engine) Agent(ctx context.Context, email string) (AgentView, bool, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	v, ok := e.m.View(normalizeEmail(email))
	return v, ok, nil
}

// Explain returns up to limit steps of an agent's decision chain, oldest first.
func (e *Engine) Explain(ctx context.Context, email string, limit int) ([]Step, error) {
	recs, err := e.cfg.Store.Audit(ctx, normalizeEmail(email), limit)
	if err != nil {
		return nil, err
	}
	return DecodeSteps(recs)
}

// normalizeEmail is how the API's callers may write an agent's email.
func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// Stats exposes the machine's counters.
func (e *Engine) Stats() *Stats { return &e.m.Stats }

// Subscribe returns a channel of decisions as they are committed. A subscriber that does not
// keep up misses decisions rather than slowing the engine. The function cancels.
func (e *Engine) Subscribe(buffer int) (<-chan Decision, func()) {
	e.subsMu.Lock()
	defer e.subsMu.Unlock()
	id := e.nextSub
	e.nextSub++
	ch := make(chan Decision, max(buffer, 1))
	e.subs[id] = ch
	return ch, func() {
		e.subsMu.Lock()
		defer e.subsMu.Unlock()
		if c, ok := e.subs[id]; ok {
			delete(e.subs, id)
			close(c)
		}
	}
}

func (e *Engine) publish(ds []Decision) {
	if len(ds) == 0 {
		return
	}
	e.subsMu.Lock()
	defer e.subsMu.Unlock()
	for _, ch := range e.subs {
		for _, d := range ds {
			select {
			case ch <- d:
			default:
			}
		}
	}
}

func (e *Engine) closeSubs() {
	e.subsMu.Lock()
	defer e.subsMu.Unlock()
	for id, ch := range e.subs {
		delete(e.subs, id)
		close(ch)
	}
}
