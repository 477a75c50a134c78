package server

import (
	"context"
	"net/http"
	"time"
)

// SystemHealth reports the health of each connected system, for GET /api/v1/systems and the
// console's health view.
type SystemHealth interface {
	// Systems returns one status per configured system, in display order.
	Systems(ctx context.Context) []SystemStatus
}

// The connection states of a system.
const (
	HealthConnected    = "connected"
	HealthDisconnected = "disconnected"
	HealthUnknown      = "unknown"
)

// SystemStatus is one system's health as the console shows it. Fields a provider cannot tell
// stay zero and are not shown.
type SystemStatus struct {
	SystemInfo
	// State is connected, disconnected or unknown; Reason says why in a sentence.
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// LastEvent is when the service last heard from the system.
	LastEvent time.Time `json:"last_event,omitzero"`
	// WatchErrors counts the times watching the system failed and restarted; LastError is the
	// latest such failure, at LastErrorAt.
	WatchErrors int64     `json:"watch_errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// RateLimit is the write budget the service keeps to for the vendor.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
	// TokenExpiry is when the current access token expires.
	TokenExpiry time.Time `json:"token_expiry,omitzero"`
	// Bridges counts agents' consoles connected through a browser bridge (Salesforce).
	Bridges *BridgeCount `json:"bridges,omitempty"`
}

// RateLimit is a write budget.
type RateLimit struct {
	PerSecond float64 `json:"per_second"`
	Burst     int     `json:"burst"`
	// Available is how many writes may go out at once now, when known.
	Available *float64 `json:"available,omitempty"`
}

// BridgeCount is how many agents' consoles are connected out of those the system has.
type BridgeCount struct {
	Connected int `json:"connected"`
	Agents    int `json:"agents"`
}

// systemsResponse is the body of GET /api/v1/systems.
type systemsResponse struct {
	Ready   bool           `json:"ready"`
	Reason  string         `json:"reason,omitempty"`
	Systems []SystemStatus `json:"systems"`
	At      time.Time      `json:"at"`
}

func (s *Server) systems(w http.ResponseWriter, r *http.Request) {
	resp := systemsResponse{Ready: true, At: time.Now().UTC()}
	if err := s.opts.Engine.Ready(); err != nil {
		resp.Ready, resp.Reason = false, err.Error()
	}
	if s.opts.Health != nil {
		resp.Systems = s.opts.Health.Systems(r.Context())
	}
	if resp.Systems == nil {
		resp.Systems = []SystemStatus{}
		for _, si := range s.systemInfos() {
			resp.Systems = append(resp.Systems, SystemStatus{SystemInfo: si, State: HealthUnknown,
				Reason: "this service reports no health for its systems"})
		}
	}
	writeJSON(w, http.StatusOK, resp)
}
