package amazonconnect

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// ErrNotFound says a user, status or contact of a control call does not exist.
var ErrNotFound = errors.New("not found")

func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_sim/users", s.handleUsers)
	m.HandleFunc("POST /_sim/users/{user}/status", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status string `json:"status"`
		}
		if !controlBody(w, r, &req) {
			return
		}
		controlAnswer(w, s.SetStatus(r.PathValue("user"), req.Status), nil)
	})
	m.HandleFunc("POST /_sim/users/{user}/login", func(w http.ResponseWriter, r *http.Request) {
		controlAnswer(w, s.Login(r.PathValue("user")), nil)
	})
	m.HandleFunc("POST /_sim/users/{user}/logout", func(w http.ResponseWriter, r *http.Request) {
		controlAnswer(w, s.Logout(r.PathValue("user")), nil)
	})
	m.HandleFunc("POST /_sim/contacts", func(w http.ResponseWriter, r *http.Request) {
		var req ContactRequest
		if !controlBody(w, r, &req) {
			return
		}
		id, err := s.StartContact(req)
		controlAnswer(w, err, map[string]string{"contactId": id})
	})
	m.HandleFunc("POST /_sim/contacts/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		var err error
		switch r.PathValue("action") {
		case "answer":
			err = s.AnswerContact(r.PathValue("id"))
		case "end":
			err = s.EndContact(r.PathValue("id"))
		case "clear":
			err = s.ClearContact(r.PathValue("id"))
		default:
			http.Error(w, "unknown action "+r.PathValue("action")+": answer, end or clear", http.StatusNotFound)
			return
		}
		controlAnswer(w, err, nil)
	})
	m.HandleFunc("POST /_sim/kinesis/reshard", func(w http.ResponseWriter, _ *http.Request) {
		s.Reshard()
		controlAnswer(w, nil, nil)
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireTokens()
		controlAnswer(w, nil, nil)
	})
}

func controlBody(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		http.Error(w, "invalid body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func controlAnswer(w http.ResponseWriter, err error, v any) {
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
	case v == nil:
		w.WriteHeader(http.StatusNoContent)
	default:
		writeJSON(w, "application/json", v)
	}
}

// UserState is one user as GET /_sim/users lists them.
type UserState struct {
	ID         string         `json:"id"`
	Email      string         `json:"email"`
	Username   string         `json:"username"`
	LoggedIn   bool           `json:"logged_in"`
	Status     string         `json:"status"`
	NextStatus string         `json:"next_status,omitempty"`
	Contacts   []ContactState `json:"contacts"`
}

// ContactState is one contact of a user.
type ContactState struct {
	ID      string `json:"id"`
	Channel string `json:"channel"`
	State   string `json:"state"`
}

// Users lists the users with their status, next status and contacts.
func (s *Server) Users() []UserState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]UserState, 0, len(s.users))
	for _, u := range s.users {
		us := UserState{ID: u.id, Email: u.email, Username: u.username, LoggedIn: u.loggedIn, Status: u.status.name, Contacts: []ContactState{}}
		if u.next != nil {
			us.NextStatus = u.next.name
		}
		for _, c := range u.contacts {
			us.Contacts = append(us.Contacts, ContactState{ID: c.id, Channel: c.channel, State: c.state})
		}
		out = append(out, us)
	}
	return out
}

func (s *Server) handleUsers(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, "application/json", s.Users())
}

// user finds a user by id, ARN, username or email (s.mu held).
func (s *Server) user(ref string) (*user, error) {
	for _, u := range s.users {
		if u.id == ref || u.arn == ref || strings.EqualFold(u.username, ref) || strings.EqualFold(u.email, ref) {
			return u, nil
		}
	}
	return nil, fmt.Errorf("user %q: %w", ref, ErrNotFound)
}

// SetStatus makes the user (id, username or email) pick a status (name or id) in the CCP; on a
// contact it becomes their next status.
func (s *Server) SetStatus(userRef, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.user(userRef)
	if err != nil {
		return err
	}
	for _, a := range s.statuses {
		if a.name == status || a.id == status {
			s.setStatus(u, a)
			return nil
		}
	}
	return fmt.Errorf("status %q: %w", status, ErrNotFound)
}

// Login logs the user in with the status they show (LOGIN event).
func (s *Server) Login(userRef string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.user(userRef)
	if err != nil {
		return err
	}
	if !u.loggedIn {
		u.loggedIn = true
		s.publish(u, "LOGIN", nil)
	}
	return nil
}

// Logout sets the user Offline and logs them out (LOGOUT event); a user with a contact cannot
// log out.
func (s *Server) Logout(userRef string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.user(userRef)
	if err != nil {
		return err
	}
	if len(u.contacts) > 0 {
		return fmt.Errorf("user %s has a contact", u.email)
	}
	if u.status.typ != "OFFLINE" {
		for _, a := range s.statuses {
			if a.typ == "OFFLINE" {
				s.setStatus(u, a)
				break
			}
		}
	}
	if u.loggedIn {
		u.loggedIn = false
		s.publish(u, "LOGOUT", nil)
	}
	return nil
}

// ContactRequest routes a contact to an agent.
type ContactRequest struct {
	// User is the agent (id, username or email).
	User string `json:"user"`
	// Channel is VOICE (default), CHAT or TASK.
	Channel string `json:"channel,omitempty"`
	// Direction is INBOUND (default; the agent is PendingBusy until they answer) or OUTBOUND
	// (CallingCustomer until the customer answers).
	Direction string `json:"direction,omitempty"`
	// Queue names the queue (BasicQueue); empty for an outbound call with no queue.
	Queue string `json:"queue,omitempty"`
	// Answer connects the contact at once.
	Answer bool `json:"answer,omitempty"`
}

// StartContact routes a contact to a logged-in agent and returns its id.
func (s *Server) StartContact(req ContactRequest) (string, error) {
	ch := strings.ToUpper(req.Channel)
	if ch == "" {
		ch = "VOICE"
	}
	if !slices.Contains([]string{"VOICE", "CHAT", "TASK", "EMAIL"}, ch) {
		return "", fmt.Errorf("channel %q: VOICE, CHAT, TASK or EMAIL", req.Channel)
	}
	dir := strings.ToUpper(req.Direction)
	if dir == "" {
		dir = "INBOUND"
	}
	if dir != "INBOUND" && dir != "OUTBOUND" {
		return "", fmt.Errorf("direction %q: INBOUND or OUTBOUND", req.Direction)
	}
	queue := req.Queue
	if queue == "" && dir == "INBOUND" {
		queue = basicQueue
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u, err := s.user(req.User)
	if err != nil {
		return "", err
	}
	if !u.loggedIn {
		return "", fmt.Errorf("user %s is not logged in", u.email)
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	x := hex.EncodeToString(b)
	now := s.now()
	c := &contact{id: x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32], channel: ch, method: dir,
		queue: queue, state: "CONNECTING", stateStart: now}
	if queue != "" {
		c.queued = now
	}
	if req.Answer {
		c.state, c.connected = "CONNECTED", now
	}
	prev := s.snapshot(u)
	u.contacts = append(u.contacts, c)
	s.contacts[c.id], s.owner[c.id] = c, u
	s.publish(u, "STATE_CHANGE", prev)
	return c.id, nil
}

// contactChange moves a contact on (s.mu taken here) and publishes the agent's change.
func (s *Server) contactChange(id string, fn func(u *user, c *contact) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, u := s.contacts[id], s.owner[id]
	if c == nil {
		return fmt.Errorf("contact %q: %w", id, ErrNotFound)
	}
	prev := s.snapshot(u)
	if err := fn(u, c); err != nil {
		return err
	}
	s.publish(u, "STATE_CHANGE", prev)
	return nil
}

// AnswerContact connects a contact: the agent is Busy.
func (s *Server) AnswerContact(id string) error {
	return s.contactChange(id, func(_ *user, c *contact) error {
		if c.state != "CONNECTING" && c.state != "INCOMING" && c.state != "PENDING" {
			return fmt.Errorf("contact %s is %s", id, c.state)
		}
		c.state, c.stateStart, c.connected = "CONNECTED", s.now(), s.now()
		return nil
	})
}

// EndContact ends a contact: the agent is in after-contact work until ClearContact.
func (s *Server) EndContact(id string) error {
	return s.contactChange(id, func(_ *user, c *contact) error {
		if c.state == "ENDED" {
			return fmt.Errorf("contact %s has ended", id)
		}
		c.state, c.stateStart = "ENDED", s.now()
		return nil
	})
}

// ClearContact ends the agent's after-contact work for a contact; with no contact left, the
// agent's next status, if any, applies.
func (s *Server) ClearContact(id string) error {
	return s.contactChange(id, func(u *user, c *contact) error {
		u.contacts = slices.DeleteFunc(u.contacts, func(x *contact) bool { return x == c })
		delete(s.contacts, id)
		delete(s.owner, id)
		if len(u.contacts) == 0 && u.next != nil {
			u.status, u.statusStart, u.next = u.next, s.after(u), nil
		}
		return nil
	})
}

// Reshard splits every open shard of the agent event stream in two.
func (s *Server) Reshard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stream.reshard()
}
