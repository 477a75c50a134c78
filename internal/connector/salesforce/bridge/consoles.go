package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Console presence: the service knows whether each agent's console is there by its bridge. A
// console is present while its bridge keeps a command stream open and keeps calling (every
// request counts; the bridge sends a heartbeat at least every HeartbeatInterval). It went away
// when its last stream closed (the tab or browser was closed), or at its last call when it has
// been silent for SilentAfter (a frozen tab, a network gone without a close). Once it has been
// gone for each of the thresholds (DisconnectGrace, then every policy's on_disconnect after),
// a console_disconnected event is stored through the engine, timed since + threshold; when it
// comes back after the first of them, a console_connected event. A reload or a short network
// drop, back within DisconnectGrace, records nothing.
const (
	// HeartbeatInterval is how often a bridge calls when it has nothing else to say.
	HeartbeatInterval = 30 * time.Second
	// SilentAfter is how long a console may say nothing before it counts as gone since its
	// last call: above a hidden tab's throttled heartbeat (Chrome runs its timers once a
	// minute), below any on_disconnect a policy would want.
	SilentAfter = 150 * time.Second
	// DisconnectGrace is how long a console must be gone before the disconnect is recorded.
	DisconnectGrace = 30 * time.Second
)

// forgetAfter is how long a console gone for good is remembered; one that comes back later is
// new (it is recorded as connected).
const forgetAfter = 7 * 24 * time.Hour

// checkpointPrefix names the checkpoint holding the console state of a system.
const checkpointPrefix = "bridge.consoles."

// console is what the service knows of one user's console.
type console struct {
	streams  int
	lastSeen time.Time
	// goneAt is when the last stream closed, zero when the console was heard from since.
	goneAt time.Time
	// away is set once the console counts as gone: since when, why, which thresholds were
	// recorded.
	away   bool
	since  time.Time
	reason string
	fired  []time.Duration
	// connectAt is when the console came back after a recorded disconnect (or appeared for the
	// first time); zero when no console_connected is owed.
	connectAt time.Time
}

// savedConsole is a console in the checkpoint.
type savedConsole struct {
	Connected bool      `json:"connected,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Reason    string    `json:"reason,omitempty"`
	Fired     []string  `json:"fired,omitempty"`
}

// consoles tracks the console of every user that has a bridge.
type consoles struct {
	system     string
	thresholds []time.Duration
	cps        connector.Checkpoints
	ingest     func(context.Context, presence.Event) error
	log        *slog.Logger

	mu     sync.Mutex
	users  map[string]*console
	dirty  bool
	closed bool

	connectedGauge prometheus.GaugeFunc
	streamsGauge   prometheus.GaugeFunc
	disconnects    prometheus.Counter
	connects       prometheus.Counter
	heartbeats     prometheus.Counter
}

func newConsoles(system string, afters []time.Duration, cps connector.Checkpoints,
	ingest func(context.Context, presence.Event) error, reg prometheus.Registerer, log *slog.Logger) (*consoles, error) {
	c := &consoles{system: system, cps: cps, ingest: ingest, log: log, users: map[string]*console{}}
	c.thresholds = append(c.thresholds, DisconnectGrace)
	for _, a := range afters {
		if a < DisconnectGrace {
			return nil, fmt.Errorf("bridge: an on_disconnect after of %s is shorter than %s", a, DisconnectGrace)
		}
		if !slices.Contains(c.thresholds, a) {
			c.thresholds = append(c.thresholds, a)
		}
	}
	slices.Sort(c.thresholds)
	labels := prometheus.Labels{"system": system}
	c.connectedGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "omnipresence", Name: "bridge_consoles_connected",
		Help: "Agents whose console (Omni-Channel bridge) is connected.", ConstLabels: labels}, func() float64 {
		return float64(c.count(func(u *console) bool { return !u.away && u.goneAt.IsZero() }))
	})
	c.streamsGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "omnipresence", Name: "bridge_streams",
		Help: "Open bridge command streams.", ConstLabels: labels}, func() float64 {
		n := 0
		c.count(func(u *console) bool { n += u.streams; return false })
		return float64(n)
	})
	c.disconnects = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "omnipresence", Name: "bridge_console_disconnects_total",
		Help: "Agent consoles recorded as gone (for longer than the grace period).", ConstLabels: labels})
	c.connects = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "omnipresence", Name: "bridge_console_connects_total",
		Help: "Agent consoles recorded as connected (first seen, or back after a recorded disconnect).", ConstLabels: labels})
	c.heartbeats = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "omnipresence", Name: "bridge_heartbeats_total",
		Help: "Heartbeats received from bridges.", ConstLabels: labels})
	if reg != nil {
		for _, m := range []prometheus.Collector{c.connectedGauge, c.streamsGauge, c.disconnects, c.connects, c.heartbeats} {
			if err := reg.Register(m); err != nil {
				return nil, err
			}
		}
	}
	return c, nil
}

func (c *consoles) count(f func(*console) bool) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, u := range c.users {
		if f(u) {
			n++
		}
	}
	return n
}

// user returns userID's console, creating it (as a first appearance) when new; c.mu is held.
func (c *consoles) user(userID string, now time.Time) *console {
	u := c.users[userID]
	if u == nil {
		u = &console{lastSeen: now, connectAt: now}
		c.users[userID] = u
		c.dirty = true
	}
	return u
}

// seen records a call of userID's bridge at now.
func (c *consoles) seen(userID string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.heard(c.user(userID, now), now)
}

// heard marks u alive at now, owing a console_connected when it comes back from a recorded
// disconnect; c.mu is held.
func (c *consoles) heard(u *console, now time.Time) {
	if now.After(u.lastSeen) {
		u.lastSeen = now
	}
	u.goneAt = time.Time{}
	if u.away {
		if len(u.fired) > 0 {
			u.connectAt = now
		}
		u.away, u.since, u.reason, u.fired = false, time.Time{}, "", nil
		c.dirty = true
	}
}

func (c *consoles) heartbeat(userID string, now time.Time) {
	c.heartbeats.Inc()
	c.seen(userID, now)
}

// opened records a new command stream of userID.
func (c *consoles) opened(userID string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	u := c.user(userID, now)
	u.streams++
	c.heard(u, now)
}

// closedStream records the end of a command stream of userID. A service shutting down closes
// every stream; that is not the consoles going away.
func (c *consoles) closedStream(userID string, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	u := c.users[userID]
	if u == nil || c.closed {
		return
	}
	u.streams--
	if now.After(u.lastSeen) {
		u.lastSeen = now
	}
	if u.streams == 0 {
		u.goneAt = now
	}
}

// shutdown stops tracking: the streams the shutdown ends do not count, and the consoles stay
// as they were for the next start.
func (c *consoles) shutdown() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
}

// due is one event check owes the engine, with what to mark once it is stored.
type due struct {
	user string
	ev   presence.Event
	// after is the threshold recorded, 0 for a console_connected.
	after time.Duration
	at    time.Time
}

// check updates who is away at now and stores the events owed, in time order per user. An
// event that cannot be stored is tried again at the next check.
func (c *consoles) check(ctx context.Context, now time.Time) {
	var todo []due
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	for id, u := range c.users {
		if u.away && len(u.fired) >= len(c.thresholds) && u.connectAt.IsZero() && now.Sub(u.since) > forgetAfter {
			delete(c.users, id)
			c.dirty = true
			continue
		}
		if !u.away {
			switch {
			case !u.goneAt.IsZero():
				u.away, u.since, u.reason = true, u.goneAt, "closed"
			case now.Sub(u.lastSeen) > SilentAfter:
				u.away, u.since, u.reason = true, u.lastSeen, "silent"
			}
			if u.away {
				c.dirty = true
			}
		}
		if !u.connectAt.IsZero() {
			todo = append(todo, due{user: id, at: u.connectAt, ev: presence.Event{
				ID:     fmt.Sprintf("console:%s:connected:%d", id, u.connectAt.UnixMilli()),
				System: c.system, Agent: id, Type: presence.ConsoleConnected, At: u.connectAt.UTC()}})
		}
		if !u.away {
			continue
		}
		for _, d := range c.thresholds {
			if slices.Contains(u.fired, d) || now.Before(u.since.Add(d)) {
				continue
			}
			todo = append(todo, due{user: id, after: d, at: u.since, ev: presence.Event{
				ID:     fmt.Sprintf("console:%s:%d:%s", id, u.since.UnixMilli(), d),
				System: c.system, Agent: id, Type: presence.ConsoleDisconnected, At: u.since.Add(d).UTC(),
				Data: map[string]any{"since": u.since.UTC().Format(time.RFC3339Nano), "after": d.String(), "reason": u.reason}}})
		}
	}
	c.mu.Unlock()
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].ev.At.Before(todo[j].ev.At) })
	failed := 0
	var lastErr error
	for _, d := range todo {
		if err := c.ingest(ctx, d.ev); err != nil {
			failed, lastErr = failed+1, err
			continue
		}
		c.mu.Lock()
		if u := c.users[d.user]; u != nil {
			switch {
			case d.after == 0 && u.connectAt.Equal(d.at):
				u.connectAt = time.Time{}
				c.connects.Inc()
			case d.after > 0 && u.away && u.since.Equal(d.at) && !slices.Contains(u.fired, d.after):
				u.fired = append(u.fired, d.after)
				if d.after == DisconnectGrace {
					c.disconnects.Inc()
				}
			}
			c.dirty = true
		}
		c.mu.Unlock()
	}
	if failed > 0 && ctx.Err() == nil {
		c.log.WarnContext(ctx, "storing console connects and disconnects failed; will retry", "events", failed, "err", lastErr)
	}
}

// restore reads the saved consoles. A console saved as connected counts as heard from at now
// (the service's start): a bridge reconnects within seconds, and one that closed while the
// service was down is gone from now on.
func (c *consoles) restore(ctx context.Context, now time.Time) error {
	if c.cps == nil {
		return nil
	}
	raw, err := c.cps.Checkpoint(ctx, checkpointPrefix+c.system)
	if err != nil || raw == "" {
		return err
	}
	var saved map[string]savedConsole
	if err := json.Unmarshal([]byte(raw), &saved); err != nil {
		return fmt.Errorf("bridge: the saved console state is unreadable: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range saved {
		if live := c.users[id]; live != nil {
			// The bridge called before the state was read: it is back, or was never gone.
			live.connectAt = time.Time{}
			if !s.Connected && len(s.Fired) > 0 {
				live.connectAt = live.lastSeen
			}
			continue
		}
		u := &console{lastSeen: now}
		if !s.Connected {
			u.away, u.since, u.reason = true, s.Since, s.Reason
			u.lastSeen = s.Since
			for _, f := range s.Fired {
				if d, err := time.ParseDuration(f); err == nil {
					u.fired = append(u.fired, d)
				}
			}
		}
		c.users[id] = u
	}
	return nil
}

// save writes the consoles when they changed since the last save.
func (c *consoles) save(ctx context.Context) error {
	if c.cps == nil {
		return nil
	}
	c.mu.Lock()
	if !c.dirty {
		c.mu.Unlock()
		return nil
	}
	out := make(map[string]savedConsole, len(c.users))
	for id, u := range c.users {
		if !u.away {
			out[id] = savedConsole{Connected: true}
			continue
		}
		s := savedConsole{Since: u.since.UTC(), Reason: u.reason}
		for _, f := range u.fired {
			s.Fired = append(s.Fired, f.String())
		}
		out[id] = s
	}
	c.dirty = false
	c.mu.Unlock()
	b, _ := json.Marshal(out) // strings, bools and times only
	if err := c.cps.SetCheckpoint(ctx, checkpointPrefix+c.system, string(b)); err != nil {
		c.mu.Lock()
		c.dirty = true
		c.mu.Unlock()
		return err
	}
	return nil
}

// ConsoleView is one agent's console as GET /api/v1/consoles shows it.
type ConsoleView struct {
	// User is the Salesforce user id (18 characters), the agent's account in the system.
	User string `json:"user"`
	// Connected is true while the console is there.
	Connected bool `json:"connected"`
	// Streams counts the open command streams (1 while connected, 0 otherwise).
	Streams int `json:"streams"`
	// LastSeen is the bridge's last call.
	LastSeen time.Time `json:"last_seen,omitzero"`
	// Since and Reason say, for a console that is gone, since when and why ("closed": its last
	// stream closed; "silent": it stopped calling).
	Since  time.Time `json:"since,omitzero"`
	Reason string    `json:"reason,omitempty"`
}

// ConsolesView lists the consoles of one Salesforce system.
type ConsolesView struct {
	System string `json:"system"`
	// DisconnectAfter lists the thresholds at which a disconnect is recorded (the grace
	// period, then each on_disconnect after).
	DisconnectAfter []string      `json:"disconnect_after"`
	Consoles        []ConsoleView `json:"consoles"`
}

// view lists every console, ordered by user id.
func (c *consoles) view(now time.Time) ConsolesView {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := ConsolesView{System: c.system, Consoles: make([]ConsoleView, 0, len(c.users))}
	for _, d := range c.thresholds {
		v.DisconnectAfter = append(v.DisconnectAfter, d.String())
	}
	for id, u := range c.users {
		cv := ConsoleView{User: id, Streams: u.streams, LastSeen: u.lastSeen.UTC()}
		switch {
		case u.away:
			cv.Since, cv.Reason = u.since.UTC(), u.reason
		case !u.goneAt.IsZero():
			cv.Since, cv.Reason = u.goneAt.UTC(), "closed"
		case now.Sub(u.lastSeen) > SilentAfter:
			cv.Since, cv.Reason = u.lastSeen.UTC(), "silent"
		default:
			cv.Connected = true
		}
		v.Consoles = append(v.Consoles, cv)
	}
	sort.Slice(v.Consoles, func(i, j int) bool { return v.Consoles[i].User < v.Consoles[j].User })
	return v
}

// ConsolesHandler serves GET /api/v1/consoles, {"systems":[ConsolesView]}; mount it behind
// the admin API's authentication.
func (h *Handler) ConsolesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string][]ConsolesView{"systems": {h.consoles.view(h.opts.Now())}})
	})
}

// Run tracks the consoles until ctx ends: it restores their saved state, then once a second
// records disconnects and reconnects through Ingest and saves the state when it changed.
func (h *Handler) Run(ctx context.Context) error {
	if err := h.consoles.restore(ctx, h.opts.Now()); err != nil {
		return err
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			h.consoles.shutdown()
			saveCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return h.consoles.save(saveCtx)
		case <-tick.C:
		}
		h.consoles.check(ctx, h.opts.Now())
		if err := h.consoles.save(ctx); err != nil && ctx.Err() == nil {
			h.opts.Logger.WarnContext(ctx, "saving the console state failed; will retry", "err", err)
		}
	}
}
