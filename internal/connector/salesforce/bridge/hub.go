package bridge

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
)

// Command actions of the wire contract.
const (
	ActionSetStatus = "set_status"
	ActionLogout    = "logout"
)

// Ack results of the wire contract.
const (
	ResultApplied  = "applied"
	ResultDeferred = "deferred"
	ResultFailed   = "failed"
)

// maxPending bounds a user's unacknowledged commands; the oldest give way.
const maxPending = 16

// offlineID is the status id Salesforce reserves for Offline; writing it logs the agent out.
const offlineID = "0"

// Command is one status write on its way to an agent's bridge. StatusID is the 15-character
// id the Omni toolkit takes ("0" with ActionLogout).
type Command struct {
	ID            string `json:"id"`
	Action        string `json:"action"`
	StatusID      string `json:"statusId"`
	StatusAPIName string `json:"statusApiName,omitempty"`
}

// Hub holds, per Salesforce user, the open bridge streams and the commands not yet
// acknowledged. It is the salesforce connector's Bridge. Create it with NewHub.
type Hub struct {
	names map[string]string

	mu     sync.Mutex
	users  map[string]*user
	closed bool
	done   chan struct{}
}

type user struct {
	streams map[*stream]struct{}
	pending []*pending // unacknowledged commands, oldest first
}

// pending is a queued command and the Send calls waiting for its ack.
type pending struct {
	cmd Command
	// sentOn holds the open streams the command was handed to; empty means unsent.
	sentOn map[*stream]struct{}
	// result receives the ack's outcome once; it is buffered so resolving never blocks.
	result chan error
}

// stream is one open event stream of a user's bridge.
type stream struct {
	notify chan struct{}
	// outbox is guarded by Hub.mu.
	outbox []Command
}

// NewHub returns a hub. statusNames maps Salesforce status ids (15 or 18 characters) to their
// API names, sent along with commands; it may be nil.
func NewHub(statusNames map[string]string) *Hub {
	names := make(map[string]string, len(statusNames))
	for id, n := range statusNames {
		names[sfid.Normalize(id)] = n
	}
	return &Hub{names: names, users: map[string]*user{}, done: make(chan struct{})}
}

// errNoBridge is the reason of the deferral while a user has no stream open.
const errNoBridge = "no Omni-Channel bridge connected"

// Send delivers a status write to userID's bridge and waits for its ack. Without an open stream
// it returns a *connector.DeferredError at once. Otherwise the command is queued (status "0"
// logs out) and Send returns a receipt whose Version is the command id (which the status event
// the command causes carries) when the bridge applied it, a *connector.DeferredError with the
// bridge's reason when it deferred it, an error with the reason when it failed, and ctx's error
// when ctx ends first; the command then stays queued and is sent again on reconnect. A newer
// write for the same user, sent or deferred, replaces an older command no open stream holds.
func (h *Hub) Send(ctx context.Context, userID, statusID string) (connector.Receipt, error) {
	userID, statusID = sfid.Normalize(userID), sfid.Normalize(statusID)
	cmd := Command{ID: newID(), Action: ActionSetStatus, StatusID: sfid.To15(statusID), StatusAPIName: h.names[statusID]}
	if statusID == offlineID {
		cmd.Action, cmd.StatusAPIName = ActionLogout, ""
	}
	p := &pending{cmd: cmd, sentOn: map[*stream]struct{}{}, result: make(chan error, 1)}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return connector.Receipt{}, &connector.DeferredError{Reason: "the bridge service is shutting down"}
	}
	u := h.users[userID]
	if u == nil {
		h.mu.Unlock()
		return connector.Receipt{}, &connector.DeferredError{Reason: errNoBridge}
	}
	// This write replaces the older ones no open stream holds, so a reconnecting bridge is
	// not sent stale statuses, even when this one is deferred for want of a stream.
	kept := u.pending[:0]
	for _, old := range u.pending {
		if len(old.sentOn) == 0 {
			old.result <- &connector.DeferredError{Reason: "superseded by a newer command"}
			continue
		}
		kept = append(kept, old)
	}
	clear(u.pending[len(kept):])
	u.pending = kept
	if len(u.streams) == 0 {
		h.dropIfIdle(userID, u)
		h.mu.Unlock()
		return connector.Receipt{}, &connector.DeferredError{Reason: errNoBridge}
	}
	for len(kept) >= maxPending {
		kept[0].result <- &connector.DeferredError{Reason: "dropped: too many unacknowledged commands"}
		kept = kept[1:]
	}
	u.pending = append(kept, p)
	for s := range u.streams {
		s.push(p)
	}
	h.mu.Unlock()

	select {
	case err := <-p.result:
		if err != nil {
			return connector.Receipt{}, err
		}
		return connector.Receipt{Version: cmd.ID}, nil
	case <-ctx.Done():
		return connector.Receipt{}, ctx.Err()
	case <-h.done:
		return connector.Receipt{}, &connector.DeferredError{Reason: "the bridge service is shutting down"}
	}
}

// push hands p to s; the caller holds Hub.mu.
func (s *stream) push(p *pending) {
	p.sentOn[s] = struct{}{}
	s.outbox = append(s.outbox, p.cmd)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// ack resolves userID's command id with result; it reports whether the command was pending.
func (h *Hub) ack(userID, id, result, reason string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return false
	}
	for i, p := range u.pending {
		if p.cmd.ID != id {
			continue
		}
		u.pending = append(u.pending[:i], u.pending[i+1:]...)
		for s := range p.sentOn {
			delete(p.sentOn, s)
		}
		switch result {
		case ResultApplied:
			p.result <- nil
		case ResultDeferred:
			p.result <- &connector.DeferredError{Reason: "Omni-Channel: " + reason}
		default:
			p.result <- errors.New("Omni-Channel refused the status: " + reason)
		}
		h.dropIfIdle(userID, u)
		return true
	}
	return false
}

// open registers a new stream for userID and queues every unacknowledged command on it. It
// returns nil once the hub is closed.
func (h *Hub) open(userID string) *stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	u := h.users[userID]
	if u == nil {
		u = &user{streams: map[*stream]struct{}{}}
		h.users[userID] = u
	}
	s := &stream{notify: make(chan struct{}, 1)}
	u.streams[s] = struct{}{}
	for _, p := range u.pending {
		s.push(p)
	}
	return s
}

// close unregisters a stream; its commands count as unsent unless another stream has them.
func (h *Hub) close(userID string, s *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[userID]
	if u == nil {
		return
	}
	delete(u.streams, s)
	for _, p := range u.pending {
		delete(p.sentOn, s)
	}
	h.dropIfIdle(userID, u)
}

// take returns the commands waiting on s and empties its outbox.
func (h *Hub) take(s *stream) []Command {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := s.outbox
	s.outbox = nil
	return out
}

// dropIfIdle forgets a user with neither streams nor pending commands; the caller holds h.mu.
func (h *Hub) dropIfIdle(userID string, u *user) {
	if len(u.streams) == 0 && len(u.pending) == 0 {
		delete(h.users, userID)
	}
}

// Connected reports whether userID has a bridge stream open.
func (h *Hub) Connected(userID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	u := h.users[sfid.Normalize(userID)]
	return u != nil && len(u.streams) > 0
}

// isClosed reports whether Close was called.
func (h *Hub) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// Close ends every stream and every waiting Send; streams opened later are refused.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.closed {
		h.closed = true
		close(h.done)
	}
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
