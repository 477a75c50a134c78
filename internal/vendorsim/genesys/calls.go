package genesys

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// DemoQueueID is the queue ACD calls arrive on when none is named.
const DemoQueueID = "f2c6d1a4-3b8e-4e7a-9d2c-1a5b7c9e0d11"

// User is a simulated user as the control API shows it.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
	// PresenceID is the current presence definition id, Presence its label.
	PresenceID    string `json:"presenceId"`
	Presence      string `json:"presence"`
	RoutingStatus string `json:"routingStatus"`
}

// DetailEvent is one v2.detail.events.conversation.{id}.user.start/.user.end event, as Event
// Orchestration triggers receive it.
type DetailEvent struct {
	Topic string         `json:"topicName"`
	Body  map[string]any `json:"eventBody"`
}

func (s *Server) userView(u *user) User {
	d := s.org.defByID[u.presenceID]
	return User{ID: u.ID, Name: u.Name, Email: u.Email, PresenceID: d.ID, Presence: d.Label, RoutingStatus: u.routing}
}

// UserByEmail returns the user with that email.
func (s *Server) UserByEmail(email string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.byEmail[strings.ToLower(email)]
	if u == nil {
		return User{}, false
	}
	return s.userView(u), true
}

// Users returns every user, in seed order.
func (s *Server) Users() []User {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]User, len(s.org.users))
	for i, u := range s.org.users {
		out[i] = s.userView(u)
	}
	return out
}

// SetPresence changes a user's presence as the user would in the Genesys UI. user is an id or
// email, presence a definition label or id.
func (s *Server) SetPresence(user, presence string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.lookupUser(user)
	if u == nil {
		return fmt.Errorf("unknown user %q", user)
	}
	d := s.org.lookupDef(presence)
	if d == nil {
		return fmt.Errorf("unknown presence %q", presence)
	}
	s.setPresenceLocked(u, d, u.presenceMessage)
	return nil
}

// StartCall connects an inbound call to user (id or email): an ACD call on queueID (DemoQueueID
// when empty) or a non-ACD call. It returns the conversation id.
func (s *Server) StartCall(user string, acd bool, queueID string) (string, error) {
	return s.startCall(user, acd, queueID, "inbound")
}

func (s *Server) startCall(user string, acd bool, queueID, direction string) (string, error) {
	if direction != "inbound" && direction != "outbound" {
		return "", fmt.Errorf("direction must be inbound or outbound, got %q", direction)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.org.lookupUser(user)
	if u == nil {
		return "", fmt.Errorf("unknown user %q", user)
	}
	if !acd {
		queueID = ""
	} else if queueID == "" {
		queueID = DemoQueueID
	}
	now := s.cfg.Now()
	c := &conversation{ID: newUUID(), UserID: u.ID, ParticipantID: newUUID(), CustomerID: newUUID(), QueueID: queueID, Direction: direction, Start: now}
	s.org.convs[c.ID] = c
	u.calls[c.ID] = c
	// The user's call alerts, user.start fires, then the call connects.
	s.publishConversation(u, c, "alerting")
	s.detail = append(s.detail, DetailEvent{Topic: "v2.detail.events.conversation." + c.ID + ".user.start", Body: s.detailBody(u, c, false)})
	s.publishConversation(u, c, "connected")
	s.setRoutingLocked(u, s.derivedRouting(u), now)
	return c.ID, nil
}

// EndCall disconnects a conversation started with StartCall.
func (s *Server) EndCall(conversationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.org.convs[conversationID]
	if c == nil || c.Ended {
		return fmt.Errorf("no connected conversation %q", conversationID)
	}
	u := s.org.byID[c.UserID]
	c.Ended, c.End = true, s.cfg.Now()
	delete(u.calls, c.ID)
	s.publishConversation(u, c, "disconnected")
	s.detail = append(s.detail, DetailEvent{Topic: "v2.detail.events.conversation." + c.ID + ".user.end", Body: s.detailBody(u, c, true)})
	s.setRoutingLocked(u, s.derivedRouting(u), c.End)
	return nil
}

// DetailEvents returns the user.start/.user.end events produced so far.
func (s *Server) DetailEvents() []DetailEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DetailEvent(nil), s.detail...)
}

func (s *Server) detailBody(u *user, c *conversation, end bool) map[string]any {
	at := c.Start
	if end {
		at = c.End
	}
	ani, dnis := "tel:+15555550100", "tel:+15555550199"
	if c.Direction == "outbound" {
		ani, dnis = dnis, ani
	}
	b := map[string]any{
		"eventTime": at.UnixMilli(), "conversationId": c.ID, "participantId": c.ParticipantID, "sessionId": c.ID[:8] + c.ParticipantID[8:],
		"mediaType": "VOICE", "provider": "Edge", "direction": strings.ToUpper(c.Direction), "ani": ani, "dnis": dnis,
		"addressTo": dnis, "addressFrom": ani, "userId": u.ID, "divisionId": u.Division,
		"conversationExternalContactIds": []string{}, "conversationExternalOrganizationIds": []string{},
	}
	if c.QueueID != "" {
		b["queueId"] = c.QueueID
	}
	if end {
		b["disconnectType"] = "ENDPOINT"
		b["interactingDurationMs"] = c.End.Sub(c.Start).Milliseconds()
		for _, k := range []string{"heldDurationMs", "alertingDurationMs", "contactingDurationMs", "dialingDurationMs", "callbackDurationMs"} {
			b[k] = 0
		}
	}
	return b
}

// conversationModel renders a conversation with the user's call in state.
func conversationModel(u *user, c *conversation, state string) map[string]any {
	call := map[string]any{"id": c.ParticipantID, "state": state, "direction": c.Direction, "recording": false, "held": false, "provider": "Edge"}
	if state != "alerting" {
		call["connectedTime"] = isoTime(c.Start)
		call["segments"] = []any{map[string]any{"type": "Interact", "segmentStart": isoTime(c.Start)}}
	}
	if state == "disconnected" {
		call["disconnectedTime"] = isoTime(c.End)
		call["disconnectType"] = "endpoint"
	}
	purpose := "user"
	if c.QueueID != "" {
		purpose = "agent"
	}
	agent := map[string]any{"id": c.ParticipantID, "userId": u.ID, "user": map[string]any{"id": u.ID}, "name": u.Name,
		"purpose": purpose, "calls": []any{call}}
	customerState := state
	if state == "alerting" {
		customerState = "connected"
	}
	customer := map[string]any{"id": c.CustomerID, "purpose": "customer", "address": "tel:+15555550100",
		"calls": []any{map[string]any{"id": c.CustomerID, "state": customerState, "direction": c.Direction}}}
	if c.QueueID == "" {
		customer["purpose"] = "external"
	}
	parts := []any{customer}
	if c.QueueID != "" {
		agent["queueId"] = c.QueueID
		parts = append(parts, map[string]any{"id": c.ID[:8] + c.CustomerID[8:], "purpose": "acd", "queueId": c.QueueID, "queue": map[string]any{"id": c.QueueID}})
	}
	parts = append(parts, agent)
	return map[string]any{"id": c.ID, "participants": parts, "recordingState": "none", "divisions": []any{
		map[string]any{"division": map[string]any{"id": u.Division}, "entities": []any{map[string]any{"id": u.ID}}}}}
}

func (s *Server) getConversation(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.org.convs[r.PathValue("id")]
	if c == nil {
		s.notFound(w, "Conversation")
		return
	}
	state := "connected"
	if c.Ended {
		state = "disconnected"
	}
	writeJSON(w, http.StatusOK, conversationModel(s.org.byID[c.UserID], c, state))
}

// --- control endpoints ------------------------------------------------------------------

func (s *Server) controlRoutes(m *http.ServeMux) {
	m.HandleFunc("GET /_sim/users", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Users()) })
	m.HandleFunc("POST /_sim/presence", s.controlPresence)
	m.HandleFunc("POST /_sim/calls", s.controlStartCall)
	m.HandleFunc("POST /_sim/calls/{id}/end", func(w http.ResponseWriter, r *http.Request) {
		if err := s.EndCall(r.PathValue("id")); err != nil {
			controlError(w, http.StatusNotFound, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"conversationId": r.PathValue("id"), "ended": true})
	})
	m.HandleFunc("GET /_sim/detail-events", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.DetailEvents()) })
	m.HandleFunc("POST /_sim/sockets/drop", func(w http.ResponseWriter, _ *http.Request) {
		s.DropSockets()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/sockets/mute", func(w http.ResponseWriter, _ *http.Request) {
		s.MuteSockets()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/sockets/closing", func(w http.ResponseWriter, _ *http.Request) {
		s.SocketClosing()
		w.WriteHeader(http.StatusNoContent)
	})
	m.HandleFunc("POST /_sim/tokens/expire", func(w http.ResponseWriter, _ *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
}

func controlError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<14))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		controlError(w, http.StatusBadRequest, fmt.Errorf("invalid body: %w", err))
		return false
	}
	return true
}

func (s *Server) controlPresence(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User     string `json:"user"`
		Presence string `json:"presence"`
	}
	if !decodeControl(w, r, &body) {
		return
	}
	if err := s.SetPresence(body.User, body.Presence); err != nil {
		controlError(w, http.StatusBadRequest, err)
		return
	}
	s.mu.Lock()
	u := s.userView(s.org.lookupUser(body.User))
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, u)
}

func (s *Server) controlStartCall(w http.ResponseWriter, r *http.Request) {
	var body struct {
		User      string `json:"user"`
		ACD       bool   `json:"acd"`
		QueueID   string `json:"queueId"`
		Direction string `json:"direction"`
	}
	if !decodeControl(w, r, &body) {
		return
	}
	if body.Direction == "" {
		body.Direction = "inbound"
	}
	id, err := s.startCall(body.User, body.ACD, body.QueueID, strings.ToLower(body.Direction))
	if err != nil {
		controlError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"conversationId": id})
}
