package salesforce

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
	"github.com/omnipresence/omnipresence/internal/pause"
)

// Headless consoles stand in for agents who keep their Lightning console open all day: for each
// user, a bridge that speaks the omnipresence bridge's wire protocol (POST /api/v1/bridge/events,
// the command stream GET /api/v1/bridge/stream, POST /api/v1/bridge/ack), as the bridge core
// (bridge/salesforce/.../omnipresenceBridge.js) does in the console page, with tokens the org
// mints for the user. It applies commands through the same org methods as the widget, reports
// every change of the user's Omni-Channel status (tagging the ones its commands caused with the
// command id), and steps aside while a person has the user's console page open with its own
// bridge, as a second tab of the same agent would.

// logoutReasons are the reasons omniChannelLogout carries; an agent's own logout carries none.
var logoutReasons = map[string]bool{"DuplicateLogin": true, "DuplicateLoginInSameBrowser": true,
	"MaintenanceLogout": true, "OmniSupervisorLogout": true}

// notOurs are the reasons of changes someone other than the toolkit made.
var notOurs = map[string]bool{"OmniManualStatusChange": true, "OmniSupervisorStatusChange": true,
	"OmniSupervisorLogout": true, "MaintenanceLogout": true, "DuplicateLogin": true, "DuplicateLoginInSameBrowser": true}

// consoleOpenFor is how long after its last poll a console page counts as open.
const consoleOpenFor = 3 * time.Second

// HeadlessOptions configure StartHeadlessConsoles.
type HeadlessOptions struct {
	// Service is the omnipresence service's base URL.
	Service string
	// Users are the users (id, username or email) whose consoles run.
	Users []string
	// Client makes the bridge's requests; nil means a client without timeout (the stream is long).
	Client *http.Client
}

// StartHeadlessConsoles runs a headless console with the bridge for each user until ctx ends;
// wait blocks until every one has stopped.
func (s *Server) StartHeadlessConsoles(ctx context.Context, o HeadlessOptions) (wait func(), err error) {
	if o.Service == "" {
		return nil, errors.New("headless consoles need the service URL")
	}
	if s.cfg.BridgeSigner == nil {
		return nil, errors.New("headless consoles need a bridge signer (Config.BridgeSigner) to mint tokens")
	}
	client := o.Client
	if client == nil {
		client = &http.Client{}
	}
	var hs []*headless
	for _, u := range o.Users {
		id, err := s.UserID(u)
		if err != nil {
			return nil, err
		}
		hs = append(hs, &headless{s: s, user: id, base: strings.TrimRight(o.Service, "/") + "/api/v1/bridge", client: client,
			wake: make(chan struct{}, 1)})
	}
	var wg sync.WaitGroup
	for _, h := range hs {
		s.watchChanges(h.user, h.changed)
		wg.Add(3)
		go func() { defer wg.Done(); h.streamLoop(ctx) }()
		go func() { defer wg.Done(); h.postLoop(ctx) }()
		go func() { defer wg.Done(); h.heartbeatLoop(ctx) }()
	}
	return wg.Wait, nil
}

// watchChanges calls fn with every change of the user's status, after it happened.
func (s *Server) watchChanges(userID string, fn func(Change)) {
	s.hooksMu.Lock()
	defer s.hooksMu.Unlock()
	if s.hooks == nil {
		s.hooks = map[string][]func(Change){}
	}
	s.hooks[userID] = append(s.hooks[userID], fn)
}

func (s *Server) notifyChange(ch Change) {
	s.hooksMu.Lock()
	fns := slices.Clone(s.hooks[ch.UserID])
	s.hooksMu.Unlock()
	for _, fn := range fns {
		fn(ch)
	}
}

// noteConsolePoll records that a console page of the user asked for its state; withBridge
// records that the page runs a bridge (it asked for a token).
func (s *Server) noteConsolePoll(userID string, withBridge bool) {
	s.pollsMu.Lock()
	defer s.pollsMu.Unlock()
	if s.polls == nil {
		s.polls = map[string]time.Time{}
		s.browserBridges = map[string]bool{}
	}
	s.polls[userID] = s.now()
	if withBridge {
		s.browserBridges[userID] = true
	}
}

// consoleOpen reports whether a person has the user's console page open with its bridge.
func (s *Server) consoleOpen(userID string) bool {
	s.pollsMu.Lock()
	defer s.pollsMu.Unlock()
	at, ok := s.polls[userID]
	return ok && s.browserBridges[userID] && s.now().Sub(at) < consoleOpenFor
}

// headless is one user's console.
type headless struct {
	s      *Server
	user   string
	base   string
	client *http.Client

	mu     sync.Mutex
	outbox []wireEvent
	// expect is the change a command is making, so its event carries the command id.
	expect *expectation
	wake   chan struct{}
}

type expectation struct {
	to        string // DeveloperName or Offline
	commandID string
}

// wireEvent is one event as the bridge posts it.
type wireEvent struct {
	ID            string `json:"id"`
	Type          string `json:"type"`
	At            string `json:"at"`
	StatusID      string `json:"statusId,omitempty"`
	StatusAPIName string `json:"statusApiName,omitempty"`
	Reason        string `json:"reason,omitempty"`
	CommandID     string `json:"commandId,omitempty"`
}

// changed reports a change of the user's status the way the console announces it: a login,
// then the status change; or a logout.
func (h *headless) changed(ch Change) {
	if h.s.consoleOpen(h.user) {
		return // the page's own bridge reports it
	}
	h.mu.Lock()
	var cid string
	// A change Salesforce attributes to someone else is never a command's echo.
	if h.expect != nil && h.expect.to == ch.To && !notOurs[ch.Reason] {
		cid, h.expect = h.expect.commandID, nil
	}
	at := ch.At.UTC().Format(time.RFC3339Nano)
	if ch.To == Offline {
		ev := wireEvent{ID: newEventID(), Type: "logout", At: at, CommandID: cid}
		if logoutReasons[ch.Reason] {
			ev.Reason = ch.Reason
		}
		h.outbox = append(h.outbox, ev)
	} else {
		sid := h.s.statusID(ch.To)
		if ch.From == Offline {
			h.outbox = append(h.outbox, wireEvent{ID: newEventID(), Type: "login", At: at, StatusID: sid, StatusAPIName: ch.To})
		}
		reason := ch.Reason
		if reason == "" {
			reason = "OmniManualStatusChange"
		}
		h.outbox = append(h.outbox, wireEvent{ID: newEventID(), Type: "status_changed", At: at, StatusID: sid,
			StatusAPIName: ch.To, Reason: reason, CommandID: cid})
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// postLoop sends the outbox in order, retrying with backoff, until ctx ends.
func (h *headless) postLoop(ctx context.Context) {
	backoff := time.Second
	for {
		h.mu.Lock()
		batch := append([]wireEvent(nil), h.outbox[:min(len(h.outbox), 100)]...)
		h.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-h.wake:
			}
			continue
		}
		code, err := h.post(ctx, "/events", map[string]any{"events": batch})
		switch {
		case err == nil && code == http.StatusOK, code == http.StatusBadRequest:
			// Accepted, or refused as invalid, which sending again cannot change.
			h.mu.Lock()
			h.outbox = h.outbox[len(batch):]
			h.mu.Unlock()
			backoff = time.Second
		default:
			h.s.log.Debug("headless console: posting events failed; retrying", "user", h.user, "status", code, "err", err)
			if !pause.For(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// heartbeatInterval is how often a headless console tells the service it is there, as the
// bridge core does (the service counts a console silent for 150 s as gone).
const heartbeatInterval = 30 * time.Second

// heartbeatLoop calls the service's heartbeat while no person's console page carries the
// bridge, until ctx ends.
func (h *headless) heartbeatLoop(ctx context.Context) {
	for pause.For(ctx, heartbeatInterval) {
		if h.s.consoleOpen(h.user) {
			continue
		}
		if code, err := h.post(ctx, "/heartbeat", map[string]any{}); err != nil || code != http.StatusNoContent {
			h.s.log.Debug("headless console: heartbeat failed", "user", h.user, "status", code, "err", err)
		}
	}
}

// streamLoop keeps the command stream open while no person's console page is, until ctx ends.
func (h *headless) streamLoop(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		if h.s.consoleOpen(h.user) {
			if !pause.For(ctx, time.Second) {
				return
			}
			continue
		}
		start := time.Now()
		err := h.stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > time.Minute {
			backoff = time.Second
		}
		if err != nil {
			h.s.log.Debug("headless console: stream ended", "user", h.user, "err", err)
			if !pause.For(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, 30*time.Second)
		}
	}
}

// stream reads commands until the stream ends, the token is due for renewal or a person opens
// the console page.
func (h *headless) stream(ctx context.Context) error {
	token, err := h.s.MintBridgeToken(h.user)
	if err != nil {
		return err
	}
	// A token lives 10 minutes; reconnect with a fresh one before the service ends the stream.
	ctx, cancel := context.WithTimeout(ctx, 8*time.Minute)
	defer cancel()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if h.s.consoleOpen(h.user) {
					cancel()
					return
				}
			}
		}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+"/stream", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	res, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1024))
		return fmt.Errorf("stream: %s: %s", res.Status, bytes.TrimSpace(b))
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 4096), 64<<10)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if event == "command" && data != "" {
				h.command(ctx, data)
			}
			event, data = "", ""
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event:"):
			event = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	return sc.Err()
}

// command applies one command as the bridge does through the Omni toolkit, then acks it.
func (h *headless) command(ctx context.Context, data string) {
	var cmd struct {
		ID       string `json:"id"`
		Action   string `json:"action"`
		StatusID string `json:"statusId"`
	}
	if err := json.Unmarshal([]byte(data), &cmd); err != nil || cmd.ID == "" {
		h.s.log.Warn("headless console: command ignored", "user", h.user, "data", data)
		return
	}
	result, reason := h.apply(cmd.Action, cmd.StatusID, cmd.ID)
	body := map[string]string{"id": cmd.ID, "result": result}
	if reason != "" {
		body["reason"] = reason
	}
	for attempt := 0; attempt < 5; attempt++ {
		code, err := h.post(ctx, "/ack", body)
		if err == nil && code < 500 && code != http.StatusUnauthorized && code != http.StatusTooManyRequests {
			return
		}
		if !pause.For(ctx, time.Duration(attempt+1)*time.Second) {
			return
		}
	}
}

func (h *headless) apply(action, statusID, commandID string) (result, reason string) {
	logout := action == "logout" || action == "set_status" && statusID == "0"
	if !logout && (action != "set_status" || statusID == "") {
		return "failed", fmt.Sprintf("unknown command %q", action)
	}
	current, err := h.s.Presence(h.user)
	if err != nil {
		return "failed", err.Error()
	}
	target := Offline
	if !logout {
		name, ok := h.s.statusName(statusID)
		if !ok {
			return "deferred", "Omni-Channel refused: The agent does not have access to status " + statusID
		}
		target = name
	}
	if current == target {
		return "applied", "already in this status"
	}
	h.mu.Lock()
	h.expect = &expectation{to: target, commandID: commandID}
	h.mu.Unlock()
	reasonText := "OmniToolkitStatusChange"
	if logout {
		reasonText = "OmniLoginStatusChange"
	}
	if _, err := h.s.SetStatus(h.user, target, reasonText); err != nil {
		h.mu.Lock()
		h.expect = nil
		h.mu.Unlock()
		return "deferred", "Omni-Channel refused: " + err.Error()
	}
	return "applied", ""
}

func (h *headless) post(ctx context.Context, path string, body any) (int, error) {
	token, err := h.s.MintBridgeToken(h.user)
	if err != nil {
		return 0, err
	}
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.base+path, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := h.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	return res.StatusCode, nil
}

// statusID is the 18-character id of a status DeveloperName ("" when unknown).
func (s *Server) statusID(name string) string {
	s.org.mu.Lock()
	defer s.org.mu.Unlock()
	r, err := s.org.status(name)
	if err != nil {
		return ""
	}
	return r["Id"].(string)
}

// statusName is the DeveloperName of a status id (15 or 18 characters).
func (s *Server) statusName(id string) (string, bool) {
	s.org.mu.Lock()
	defer s.org.mu.Unlock()
	if _, ok := sfid.Canonical(id); !ok {
		return "", false
	}
	r, err := s.org.status(id)
	if err != nil {
		return "", false
	}
	return r["DeveloperName"].(string), true
}

func newEventID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "headless-" + hex.EncodeToString(b[:])
}

// sleep waits d or until ctx ends; it reports whether d passed.
