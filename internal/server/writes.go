package server

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/engine"
)

// Actions are the admin actions the console offers; the engine implements them. An Engine
// without them answers 501 to the action routes.
type Actions interface {
	// Retry makes a failed or deferred write go out again now; false when there was none.
	Retry(ctx context.Context, email, system string) (bool, error)
	// Resync reads what every system shows for the agent now and reconciles it; it returns the
	// systems read.
	Resync(ctx context.Context, email string) ([]string, error)
}

// WriteItem is one write that did not land: failed after its retries, deferred by the system,
// or still due.
type WriteItem struct {
	Agent  string `json:"agent"`
	System string `json:"system"`
	// Status is the status the write should set.
	Status string `json:"status"`
	// State is failed, deferred or drifting (due or in flight).
	State  string `json:"state"`
	Reason string `json:"reason"`
	// Observed is what the system shows meanwhile.
	Observed  string    `json:"observed"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// writesResponse is the body of GET /api/v1/writes.
type writesResponse struct {
	Writes []WriteItem `json:"writes"`
	Counts struct {
		Failed   int `json:"failed"`
		Deferred int `json:"deferred"`
		Due      int `json:"due"`
	} `json:"counts"`
}

func (s *Server) writes(w http.ResponseWriter, r *http.Request) {
	views, err := s.opts.Engine.Agents(r.Context())
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	resp := writesResponse{Writes: []WriteItem{}}
	for _, v := range views {
		for name, sv := range v.Systems {
			state, reason := cellState(sv)
			switch state {
			case StateFailed:
				resp.Counts.Failed++
				reason = sv.Failed
			case StateDeferred:
				resp.Counts.Deferred++
				reason = sv.Deferred
			case StateDrifting:
				resp.Counts.Due++
			default:
				continue
			}
			resp.Writes = append(resp.Writes, WriteItem{Agent: v.Email, System: name, Status: sv.Desired, State: state,
				Reason: reason, Observed: sv.Observed, UpdatedAt: v.UpdatedAt})
		}
	}
	slices.SortFunc(resp.Writes, func(a, b WriteItem) int {
		if d := stateRank[a.State] - stateRank[b.State]; d != 0 {
			return d
		}
		if c := strings.Compare(a.Agent, b.Agent); c != 0 {
			return c
		}
		return strings.Compare(a.System, b.System)
	})
	writeJSON(w, http.StatusOK, resp)
}

// actions returns the engine's admin actions, answering itself when it has none (501) or when a
// browser sends the request from another site (403: without an admin token, loopback clients
// are trusted, so a page elsewhere must not be able to post to them).
func (s *Server) actions(w http.ResponseWriter, r *http.Request) (Actions, bool) {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			writeJSONError(w, http.StatusForbidden, "cross-site request refused", "admin actions are taken from the console of this service")
			return nil, false
		}
	}
	a, ok := s.opts.Engine.(Actions)
	if !ok {
		writeJSONError(w, http.StatusNotImplemented, "this service offers no admin actions", nil)
	}
	return a, ok
}

func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	a, ok := s.actions(w, r)
	if !ok {
		return
	}
	email, system := r.PathValue("email"), r.PathValue("system")
	if cfg := s.policy(); cfg != nil && cfg.Systems[system] == nil {
		writeJSONError(w, http.StatusNotFound, "unknown system", map[string]string{"system": system})
		return
	}
	did, err := a.Retry(r.Context(), email, system)
	if errors.Is(err, engine.ErrUnknownAgent) {
		writeJSONError(w, http.StatusNotFound, "unknown agent", map[string]string{"email": email})
		return
	}
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	s.log.InfoContext(r.Context(), "admin retried a write", "agent", email, "system", system, "retried", did)
	writeJSON(w, http.StatusOK, map[string]any{"retried": did})
}

func (s *Server) resync(w http.ResponseWriter, r *http.Request) {
	a, ok := s.actions(w, r)
	if !ok {
		return
	}
	email := r.PathValue("email")
	read, err := a.Resync(r.Context(), email)
	if errors.Is(err, engine.ErrUnknownAgent) {
		writeJSONError(w, http.StatusNotFound, "unknown agent", map[string]string{"email": email})
		return
	}
	if read == nil {
		read = []string{}
	}
	if err != nil {
		s.log.WarnContext(r.Context(), "admin resync partly failed", "agent", email, "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": "reading some systems failed", "detail": err.Error(), "read": read})
		return
	}
	s.log.InfoContext(r.Context(), "admin resynced an agent", "agent", email, "systems", strings.Join(read, ","))
	writeJSON(w, http.StatusOK, map[string]any{"read": read})
}
