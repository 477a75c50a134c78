package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// The states of a system's connection (SystemHealth.State).
const (
	// SystemConnecting: loading the account directory, reading current statuses, starting to watch.
	SystemConnecting = "connecting"
	// SystemReady: the directory is loaded and the system is watched; writes go out.
	SystemReady = "ready"
	// SystemWaiting: the last attempt failed (Reason says why); the engine retries with backoff.
	SystemWaiting = "waiting"
	// SystemNotConnected: the policy gives no connection settings, or this build has no
	// connector for the kind; events come only through the webhook and writes wait.
	SystemNotConnected = "not_connected"
)

// SystemHealth is what the engine knows of one system's connection: GET /api/v1/systems, the
// admin console and /readyz show it. A system that is not ready delays only its own writes.
type SystemHealth struct {
	Name  string `json:"name"`
	Kind  string `json:"kind"`
	Ready bool   `json:"ready"`
	// State is one of the System* constants; Reason says why a system is not ready.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Since is when the system entered its state.
	Since time.Time `json:"since"`
	// Accounts is the size of the system's account directory (-1 while it is not loaded).
	Accounts int `json:"accounts"`
	// Events counts the events the system's watcher delivered, the last at LastEvent.
	Events    int64     `json:"events"`
	LastEvent time.Time `json:"last_event,omitzero"`
	// Retries counts failed attempts to connect, load or watch; WatchErrors those of the
	// watcher alone. LastError is the latest failure, at LastErrorAt.
	Retries     int64     `json:"retries"`
	WatchErrors int64     `json:"watch_errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// DegradedError is what Ready returns while the engine runs but some systems are not ready:
// the service still serves and syncs the other systems.
type DegradedError struct {
	Systems []SystemHealth
}

func (e *DegradedError) Error() string {
	parts := make([]string, len(e.Systems))
	for i, s := range e.Systems {
		parts[i] = fmt.Sprintf("system %s is not ready: %s", s.Name, s.Reason)
	}
	return strings.Join(parts, "; ")
}

// tracker holds one system's health.
type tracker struct {
	mu sync.Mutex
	h  SystemHealth
	// watching and probeErr decide readiness once the directory is loaded.
	loaded, watching bool
	probeErr         error
	now              func() time.Time
}

func (t *tracker) snapshot() SystemHealth {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.h
}

// state moves the system to state (Since changes only when the state does).
func (t *tracker) state(state, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.setLocked(state, reason)
}

func (t *tracker) setLocked(state, reason string) {
	if t.h.State != state {
		t.h.Since = t.now()
	}
	t.h.State, t.h.Reason, t.h.Ready = state, reason, state == SystemReady
}

// failed records a failed attempt and makes the system wait.
func (t *tracker) failed(reason string, watch bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.h.Retries++
	if watch {
		t.h.WatchErrors++
		t.watching = false
	}
	t.h.LastError, t.h.LastErrorAt = reason, t.now()
	t.setLocked(SystemWaiting, reason)
}

// settle makes the system ready when its directory is loaded, it is watched and its last
// health check passed.
func (t *tracker) settle() {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.probeErr != nil:
		t.setLocked(SystemWaiting, "health check: "+t.probeErr.Error())
	case t.loaded && t.watching:
		t.setLocked(SystemReady, "")
	}
}

func (t *tracker) event(at time.Time) {
	t.mu.Lock()
	t.h.Events++
	t.h.LastEvent = at
	t.mu.Unlock()
}

// Systems returns the health of every system of the policy, by name.
func (e *Engine) Systems() []SystemHealth {
	out := make([]SystemHealth, 0, len(e.health))
	for _, t := range e.health {
		out = append(out, t.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Ready returns nil when the engine runs and every connected system is ready; a *DegradedError
// naming the systems that are not while it runs without them; another error while it starts
// or stops.
func (e *Engine) Ready() error {
	if !e.ready.Load() {
		return errors.New(e.notReady.Load().(string))
	}
	var bad []SystemHealth
	for _, s := range e.Systems() {
		if !s.Ready && s.State != SystemNotConnected {
			bad = append(bad, s)
		}
	}
	if len(bad) > 0 {
		return &DegradedError{Systems: bad}
	}
	return nil
}

// newTrackers starts every system's health: connecting, or not connected for a system
// without a connector.
func (e *Engine) newTrackers() {
	e.health = map[string]*tracker{}
	for _, name := range e.cfg.Policy.SystemNames {
		sys := e.cfg.Policy.Systems[name]
		t := &tracker{now: e.now, h: SystemHealth{Name: name, Kind: sys.Kind, Accounts: -1}}
		if sys.Accounts != nil {
			t.h.Accounts = len(sys.Accounts)
		}
		if e.cfg.Connectors[name] == nil {
			reason := "the policy gives no connection settings; events come only through the webhook"
			if sys.Connected() {
				reason = "this build has no connector for kind " + sys.Kind + "; events come only through the webhook"
			}
			t.setLocked(SystemNotConnected, reason)
		} else {
			t.setLocked(SystemConnecting, "starting")
		}
		e.health[name] = t
	}
}

func (e *Engine) registerSystemMetrics(reg prometheus.Registerer) error {
	for _, name := range e.cfg.Policy.SystemNames {
		t := e.health[name]
		labels := prometheus.Labels{"system": name, "kind": t.h.Kind}
		gauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "omnipresence", Name: "system_ready",
			Help: "1 when the system's directory is loaded and it is watched, else 0.", ConstLabels: labels},
			func() float64 {
				if t.snapshot().Ready {
					return 1
				}
				return 0
			})
		retries := prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "omnipresence", Name: "system_retries_total",
			Help: "Failed attempts to connect to, load or watch the system.", ConstLabels: labels},
			func() float64 { return float64(t.snapshot().Retries) })
		for _, c := range []prometheus.Collector{gauge, retries} {
			if err := reg.Register(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// retryBackoff is a system's wait between failed attempts: exponential from MinBackoff to
// MaxBackoff, with jitter so that many systems do not retry in step.
type retryBackoff struct {
	min, max, next time.Duration
}

func (b *retryBackoff) wait() time.Duration {
	if b.next < b.min {
		b.next = b.min
	}
	d := b.next
	b.next = min(b.next*2, b.max)
	return d/2 + rand.N(d/2+1)
}

func (b *retryBackoff) reset() { b.next = b.min }

// sleep waits d or until ctx ends; it reports whether d passed.

// runSystem brings one system up and keeps it up until ctx ends, independently of the others:
// it loads the account directory (retrying with backoff), reads what every account shows now,
// then watches, restarting the watcher with backoff and reading current statuses again after
// each restart. Until the directory is loaded, writes to the system wait.
func (e *Engine) runSystem(ctx context.Context, name string, c connector.Connector) {
	t := e.health[name]
	b := &retryBackoff{min: e.cfg.MinBackoff, max: e.cfg.MaxBackoff}
	wait := func(what string, err error, watch bool) bool {
		reason := what + ": " + err.Error()
		if what == "" {
			reason = err.Error()
		}
		t.failed(reason, watch)
		d := b.wait()
		e.log.Warn("waiting for system "+name+": "+reason, "system", name, "retry_in", d.Round(time.Millisecond))
		return pause.For(ctx, d)
	}
	if e.cfg.Policy.Systems[name].Accounts == nil {
		for {
			t.state(SystemConnecting, "loading accounts")
			accts, err := c.Accounts(ctx)
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				accts = e.listed(accts)
				if _, err = e.call(ctx, &request{kind: opAccounts, system: name, accounts: accts}); err == nil {
					t.mu.Lock()
					t.h.Accounts = len(accts)
					t.mu.Unlock()
					break
				}
				if ctx.Err() != nil {
					return
				}
			}
			if !wait("loading accounts", err, false) {
				return
			}
		}
	}
	t.mu.Lock()
	t.loaded = true
	t.mu.Unlock()
	b.reset()
	if hc, ok := c.(connector.Healther); ok && e.cfg.HealthInterval > 0 {
		var probing sync.WaitGroup
		probing.Add(1)
		go func() { defer probing.Done(); e.probe(ctx, name, hc, t) }()
		defer probing.Wait()
	}
	emit := func(ctx context.Context, ev presence.Event) error {
		if err := e.Ingest(ctx, ev); err != nil {
			return err
		}
		t.event(e.now())
		return nil
	}
	for ctx.Err() == nil {
		t.state(SystemConnecting, "reading current statuses")
		e.resync(ctx, name, c)
		t.mu.Lock()
		t.watching = true
		t.mu.Unlock()
		t.settle()
		started := e.now()
		err := c.Watch(ctx, emit)
		if ctx.Err() != nil {
			return
		}
		if e.now().Sub(started) > e.cfg.MaxBackoff {
			b.reset()
		}
		if err == nil {
			err = errors.New("the watcher ended")
		}
		if !wait("watch", err, true) {
			return
		}
	}
}

// probe asks a connector whether its vendor answers, every HealthInterval, so that an outage
// the watcher rides out by itself still shows.
func (e *Engine) probe(ctx context.Context, name string, hc connector.Healther, t *tracker) {
	tick := time.NewTicker(e.cfg.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		pctx, cancel := context.WithTimeout(ctx, e.cfg.HealthInterval)
		err := hc.Healthy(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		t.mu.Lock()
		was := t.probeErr
		t.probeErr = err
		if err != nil {
			t.h.Retries++
			t.h.LastError, t.h.LastErrorAt = "health check: "+err.Error(), e.now()
		}
		t.mu.Unlock()
		if err != nil {
			e.log.Warn("waiting for system "+name+": health check: "+err.Error(), "system", name, "retry_in", e.cfg.HealthInterval)
		} else if was != nil {
			e.log.Info("system "+name+" answers again", "system", name)
		}
		t.settle()
	}
}

// resync reads what every account of the system shows now (with an agents directory, only the
// listed people's accounts), so that a restart, or a watcher that was down, catches up with
// changes made meanwhile. A failure is logged: the changes are then picked up as they recur.
func (e *Engine) resync(ctx context.Context, name string, c connector.Connector) {
	cr, ok := c.(connector.CurrentReader)
	if !ok {
		return
	}
	var accounts []string
	if e.cfg.Policy.Agents != nil {
		e.mu.RLock()
		for id := range e.m.byID[name] {
			accounts = append(accounts, id)
		}
		e.mu.RUnlock()
		if len(accounts) == 0 {
			return
		}
	}
	current, err := cr.CurrentStatuses(ctx, accounts)
	if err != nil {
		if ctx.Err() == nil {
			e.log.Warn("reading current statuses failed; changes made meanwhile are picked up as they recur", "system", name, "err", err)
		}
		return
	}
	if _, err := e.call(ctx, &request{kind: opObserve, system: name, current: current}); err != nil && ctx.Err() == nil {
		e.log.Warn("recording current statuses failed", "system", name, "err", err)
	}
}

// agentEmails lists every agent the machine knows; the sequencer calls it.
func (e *Engine) agentEmails() []string {
	out := make([]string, 0, len(e.m.agents))
	for email := range e.m.agents {
		out = append(out, email)
	}
	return out
}
