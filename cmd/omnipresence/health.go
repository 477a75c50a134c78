package main

import (
	"context"
	"sync"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/server"
)

// systemHealth reports each system's health to the console: the engine's view of every system
// (engine.Systems: ready, or why not, events and failures), the write budget the connector
// keeps to, and, for a system written through a browser bridge, the agents' consoles connected.
type systemHealth struct {
	systems    []server.SystemInfo
	connectors map[string]connector.Connector
	svc        *serviceEngine

	mu        sync.Mutex
	hub       *bridge.Hub
	bridgeSys string
}

// newSystemHealth returns a report on the systems as svc sees them.
func newSystemHealth(systems []server.SystemInfo, conns map[string]connector.Connector, svc *serviceEngine) *systemHealth {
	return &systemHealth{systems: systems, connectors: conns, svc: svc}
}

// setBridge makes the report count the consoles connected through hub for system.
func (h *systemHealth) setBridge(hub *bridge.Hub, system string) {
	h.mu.Lock()
	h.hub, h.bridgeSys = hub, system
	h.mu.Unlock()
}

// Systems implements server.SystemHealth.
func (h *systemHealth) Systems(ctx context.Context) []server.SystemStatus {
	byName := map[string]engine.SystemHealth{}
	for _, s := range h.svc.Systems() {
		byName[s.Name] = s
	}
	h.mu.Lock()
	hub, bridgeSys := h.hub, h.bridgeSys
	h.mu.Unlock()
	var bridges *server.BridgeCount
	if hub != nil {
		bridges = &server.BridgeCount{}
		if views, err := h.svc.Agents(ctx); err == nil {
			for _, v := range views {
				sv, ok := v.Systems[bridgeSys]
				if !ok || sv.Account == "" {
					continue
				}
				bridges.Agents++
				if hub.Connected(sv.Account) {
					bridges.Connected++
				}
			}
		}
	}
	out := make([]server.SystemStatus, 0, len(h.systems))
	for _, si := range h.systems {
		eh := byName[si.Name]
		st := server.SystemStatus{SystemInfo: si, State: server.HealthUnknown, Reason: eh.Reason,
			LastEvent: eh.LastEvent, WatchErrors: eh.WatchErrors, LastError: eh.LastError, LastErrorAt: eh.LastErrorAt}
		switch eh.State {
		case engine.SystemReady:
			st.State, st.Reason = server.HealthConnected, "accounts loaded, watched, and the vendor answers"
		case engine.SystemWaiting, engine.SystemNotConnected:
			st.State = server.HealthDisconnected
		}
		if l, ok := h.connectors[si.Name].(connector.Limiter); ok {
			ps, burst := l.WriteLimit()
			st.RateLimit = &server.RateLimit{PerSecond: ps, Burst: burst}
		}
		if bridges != nil && si.Name == bridgeSys {
			b := *bridges
			st.Bridges = &b
		}
		out = append(out, st)
	}
	return out
}
