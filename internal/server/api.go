package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/omnipresence/omnipresence/internal/engine"
)

// Explain limits: the default number of steps and the most a client may ask for.
const (
	defaultExplainLimit = 100
	maxExplainLimit     = 1000
)

// agentList is the body of GET /api/v1/agents.
type agentList struct {
	Agents []AgentRow `json:"agents"`
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) {
	agents, err := s.opts.Engine.Agents(r.Context())
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	rows := make([]AgentRow, 0, len(agents))
	for _, a := range agents {
		rows = append(rows, s.row(a))
	}
	slices.SortFunc(rows, func(a, b AgentRow) int { return strings.Compare(a.Email, b.Email) })
	writeJSON(w, http.StatusOK, agentList{Agents: rows})
}

func (s *Server) getAgent(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	view, ok, err := s.opts.Engine.Agent(r.Context(), email)
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	if !ok {
		writeJSONError(w, http.StatusNotFound, "unknown agent", map[string]string{"email": email})
		return
	}
	writeJSON(w, http.StatusOK, s.row(view))
}

// explainResponse is the JSON body of GET /api/v1/agents/{email}/explain.
type explainResponse struct {
	Email string        `json:"email"`
	Steps []engine.Step `json:"steps"`
}

func (s *Server) explain(w http.ResponseWriter, r *http.Request) {
	email := r.PathValue("email")
	q := r.URL.Query()
	limit := defaultExplainLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxExplainLimit {
			writeJSONError(w, http.StatusBadRequest, "invalid limit",
				fmt.Sprintf("limit must be an integer from 1 to %d, got %q", maxExplainLimit, v))
			return
		}
		limit = n
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "text" {
		writeJSONError(w, http.StatusBadRequest, "invalid format",
			fmt.Sprintf("format must be json or text, got %q", format))
		return
	}
	_, ok, err := s.opts.Engine.Agent(r.Context(), email)
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	if !ok {
		writeJSONError(w, http.StatusNotFound, "unknown agent", map[string]string{"email": email})
		return
	}
	steps, err := s.opts.Engine.Explain(r.Context(), email, limit)
	if err != nil {
		s.engineError(w, r, err)
		return
	}
	if steps == nil {
		steps = []engine.Step{}
	}
	if format == "text" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		engine.WriteExplain(w, email, steps)
		return
	}
	writeJSON(w, http.StatusOK, explainResponse{Email: email, Steps: steps})
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(s.openapi)
}
