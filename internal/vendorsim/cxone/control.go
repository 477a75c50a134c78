package cxone

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// UserState is what GET /_sim/users shows of one agent.
type UserState struct {
	Email   string `json:"email"`
	AgentID int    `json:"agentId"`
	Team    string `json:"team"`
	// Status is "Available", an unavailable code's name, "Unavailable" (no reason), "LoggedOut"
	// or a contact state.
	Status    string `json:"status"`
	State     string `json:"state"`
	Reason    string `json:"reason,omitempty"`
	StartTime string `json:"startTime"`
	ContactID int64  `json:"contactId,omitempty"`
}

func statusOf(a *agent) string {
	if a.State == Unavailable && a.Out != nil {
		return a.Out.Name
	}
	return a.State
}

func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_sim/users", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Users())
	})
	m.HandleFunc("POST /_sim/users/{user}/status", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Status string `json:"status"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<14)).Decode(&body); err != nil || body.Status == "" {
			http.Error(w, `want {"status":"Available|<unavailable code>|Unavailable|LoggedOut"}`, http.StatusBadRequest)
			return
		}
		if err := s.SetStatus(r.PathValue("user"), body.Status); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/contacts", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			User      string `json:"user"`
			Direction string `json:"direction"`
			Skill     string `json:"skill"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<14)).Decode(&body); err != nil || body.User == "" {
			http.Error(w, `want {"user":"<email or agent id>","direction":"inbound|outbound","skill":"…"}`, http.StatusBadRequest)
			return
		}
		id, err := s.StartContact(body.User, body.Direction == "outbound", body.Skill)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"contactId": strconv.FormatInt(id, 10)})
	})
	m.HandleFunc("POST /_sim/contacts/{id}/end", func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err := s.EndContact(id); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
}

// Users lists every agent with their ACD state.
func (s *Server) Users() []UserState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []UserState
	for _, a := range s.sortedAgents() {
		u := UserState{Email: a.Email, AgentID: a.ID, Team: a.Team.Name, Status: statusOf(a), State: a.State, StartTime: cxTime(a.Start)}
		if a.Out != nil {
			u.Reason = a.Out.Name
		}
		if a.contact != nil {
			u.ContactID = a.contact.ID
		}
		out = append(out, u)
	}
	return out
}

// SetStatus makes an agent (email or agent id) show status as the person would in their agent
// client: "LoggedOut" logs them out; anything else logs them in first when they are not.
func (s *Server) SetStatus(user, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.t.findUser(user)
	if a == nil || a.Team == nil {
		return errors.New("no such agent: " + user)
	}
	now := s.cfg.Now()
	if status != LoggedOut && a.session == nil {
		s.t.login(a, now)
	}
	return s.t.setState(a, status, now)
}

// StartContact puts an agent on a call and returns the contact id.
func (s *Server) StartContact(user string, outbound bool, skill string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.t.findUser(user)
	if a == nil || a.Team == nil {
		return 0, errors.New("no such agent: " + user)
	}
	if skill == "" {
		skill = "Inbound " + a.Team.Name
	}
	c, err := s.t.startContact(a, outbound, skill, s.cfg.Now())
	if err != nil {
		return 0, err
	}
	return c.ID, nil
}

// EndContact ends a call.
func (s *Server) EndContact(id int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t.endContact(id, s.cfg.Now())
}

// Status returns an agent's status as Users shows it, and when it began.
func (s *Server) Status(user string) (string, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.t.findUser(user)
	if a == nil || a.Team == nil {
		return "", time.Time{}, false
	}
	return statusOf(a), a.Start, true
}
