package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/server"
)

// vendorTitles names each kind as its vendor does, for the console.
var vendorTitles = map[string]string{
	"salesforce":    "Salesforce Omni-Channel",
	"genesys":       "Genesys Cloud",
	"cxone":         "NICE CXone",
	"amazonconnect": "Amazon Connect",
	"teams":         "Microsoft Teams",
}

func vendorTitle(kind string) string {
	if t, ok := vendorTitles[kind]; ok {
		return t
	}
	return kind
}

// healthCheckEvery bounds how often a vendor is asked whether it is reachable.
const healthCheckEvery = 15 * time.Second

// systemHealth reports each system's health to the console from what the service can see: the
// connector's own health check, the events and watch failures of each system, its write budget
// and, for Salesforce, the agents' consoles connected through the bridge.
type systemHealth struct {
	systems    []server.SystemInfo
	connectors map[string]connector.Connector
	eng        *engine.Engine
	hub        *bridge.Hub
	bridgeSys  string

	mu      sync.Mutex
	last    map[string]time.Time // system → latest event heard
	errs    map[string]int64
	lastErr map[string]string
	errAt   map[string]time.Time
	checked map[string]time.Time
	healthy map[string]error
}

// newSystemHealth returns a report on the systems; set eng (and hub) before serving it.
func newSystemHealth(systems []server.SystemInfo, conns map[string]connector.Connector) *systemHealth {
	return &systemHealth{systems: systems, connectors: conns, last: map[string]time.Time{},
		errs: map[string]int64{}, lastErr: map[string]string{}, errAt: map[string]time.Time{},
		checked: map[string]time.Time{}, healthy: map[string]error{}}
}

// eventKinds are the explain steps that follow an event a system sent.
var eventKinds = map[engine.StepKind]bool{engine.StepEvent: true, engine.StepUnmapped: true, engine.StepEcho: true,
	engine.StepUnchanged: true, engine.StepLate: true, engine.StepFutureDated: true, engine.StepStateEnded: true,
	engine.StepUnknownStatus: true, engine.StepUnknownAgent: true}

// follow records the time of every event the engine decides on until ctx ends.
func (h *systemHealth) follow(ctx context.Context) {
	decisions, cancel := h.eng.Subscribe(1024)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-decisions:
			if !ok {
				return
			}
			if eventKinds[d.Kind] && d.System != "" {
				h.mu.Lock()
				if d.At.After(h.last[d.System]) {
					h.last[d.System] = d.At
				}
				h.mu.Unlock()
			}
		}
	}
}

// watchFailed counts a failed watch of a system.
func (h *systemHealth) watchFailed(system, reason string, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs[system]++
	h.lastErr[system], h.errAt[system] = reason, at
}

// Systems implements server.SystemHealth.
func (h *systemHealth) Systems(ctx context.Context) []server.SystemStatus {
	var connected map[string]int
	var linked map[string]int
	if h.hub != nil {
		connected, linked = map[string]int{}, map[string]int{}
		if views, err := h.eng.Agents(ctx); err == nil {
			for _, v := range views {
				sv, ok := v.Systems[h.bridgeSys]
				if !ok || sv.Account == "" {
					continue
				}
				linked[h.bridgeSys]++
				if h.hub.Connected(sv.Account) {
					connected[h.bridgeSys]++
				}
			}
		}
	}
	out := make([]server.SystemStatus, 0, len(h.systems))
	for _, si := range h.systems {
		st := server.SystemStatus{SystemInfo: si, State: server.HealthUnknown}
		c := h.connectors[si.Name]
		switch {
		case c == nil:
			st.State, st.Reason = server.HealthDisconnected, "this build has no connector for "+si.Title+
				"; its events arrive only through the webhook and writes to it wait"
		default:
			if err, known := h.check(ctx, si.Name, c); known {
				if err != nil {
					st.State, st.Reason = server.HealthDisconnected, err.Error()
				} else {
					st.State, st.Reason = server.HealthConnected, "the vendor answers"
				}
			} else {
				st.Reason = "the connector has no health check; see the last event and watch errors"
			}
			if l, ok := c.(connector.Limiter); ok {
				ps, burst := l.WriteLimit()
				st.RateLimit = &server.RateLimit{PerSecond: ps, Burst: burst}
			}
		}
		h.mu.Lock()
		st.LastEvent = h.last[si.Name]
		st.WatchErrors, st.LastError, st.LastErrorAt = h.errs[si.Name], h.lastErr[si.Name], h.errAt[si.Name]
		h.mu.Unlock()
		if st.State == server.HealthUnknown && h.eng.Ready() == nil && st.WatchErrors == 0 && !st.LastEvent.IsZero() {
			st.State, st.Reason = server.HealthConnected, "events arrive"
		}
		if h.hub != nil && si.Name == h.bridgeSys {
			st.Bridges = &server.BridgeCount{Connected: connected[si.Name], Agents: linked[si.Name]}
		}
		out = append(out, st)
	}
	return out
}

// check runs the connector's health check at most every healthCheckEvery; known is false when
// the connector has none.
func (h *systemHealth) check(ctx context.Context, name string, c connector.Connector) (err error, known bool) {
	hc, ok := c.(connector.Healther)
	if !ok {
		return nil, false
	}
	h.mu.Lock()
	if at, ok := h.checked[name]; ok && time.Since(at) < healthCheckEvery {
		err := h.healthy[name]
		h.mu.Unlock()
		return err, true
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = hc.Healthy(ctx)
	h.mu.Lock()
	h.checked[name], h.healthy[name] = time.Now(), err
	h.mu.Unlock()
	return err, true
}

// watchTap is a log handler that passes every record on and tells the health report about the
// engine's "watch stopped; restarting" records, which carry the system and the error.
type watchTap struct {
	slog.Handler
	health *systemHealth
	attrs  []slog.Attr
}

func (t *watchTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "watch stopped; restarting" && t.health != nil {
		var system, reason string
		visit := func(a slog.Attr) bool {
			switch a.Key {
			case "system":
				system = a.Value.String()
			case "err":
				reason = a.Value.String()
			}
			return true
		}
		for _, a := range t.attrs {
			visit(a)
		}
		r.Attrs(visit)
		if system != "" {
			t.health.watchFailed(system, reason, r.Time)
		}
	}
	return t.Handler.Handle(ctx, r)
}

func (t *watchTap) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchTap{Handler: t.Handler.WithAttrs(as), health: t.health, attrs: append(append([]slog.Attr(nil), t.attrs...), as...)}
}

func (t *watchTap) WithGroup(name string) slog.Handler {
	return &watchTap{Handler: t.Handler.WithGroup(name), health: t.health, attrs: t.attrs}
}
