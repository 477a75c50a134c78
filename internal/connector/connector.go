// Package connector defines how a vendor plugs into the engine: one small interface, optional
// capabilities found by type assertion, typed errors that tell the engine whether to retry,
// defer or give up, and the registry of vendors (see Vendor). Vendor packages live below it and
// never import the engine.
package connector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Connector is one connected system.
type Connector interface {
	// Catalog returns the system's statuses, with Settable filled in.
	Catalog(ctx context.Context) ([]presence.Status, error)
	// Accounts returns the system's users, for linking them to agents by email.
	Accounts(ctx context.Context) ([]presence.Account, error)
	// Watch observes the system until ctx ends, calling emit for every change. emit returns once
	// the event is durable; a connector advances its vendor checkpoint (replay id, stream
	// sequence) only after emit returned nil. Watch returns on a fatal error; the engine restarts
	// it with backoff.
	Watch(ctx context.Context, emit Emit) error
	// SetStatus makes account show statusID. It returns once the vendor accepted the write, with
	// the vendor's receipt for it.
	SetStatus(ctx context.Context, account, statusID string) (Receipt, error)
	// Close releases what the connector holds (connections, background refreshes). The engine
	// calls it once, after Watch and every write have returned.
	Close() error
}

// Receipt is what a vendor answered to an accepted write. Its Version is the vendor's own marker
// of the change the write made, which the status event the write causes carries too
// (presence.Event.Version), so the engine pairs that echo with its write exactly.
type Receipt struct {
	// Version is the vendor's marker of the change: Genesys's presence modifiedDate, the
	// Salesforce bridge's commandId, Amazon Connect's status StartTimestamp. Empty when the vendor
	// gives none; the engine then matches the echo by status and order.
	Version string
	// At is the vendor's time of the change, when it says (zero otherwise).
	At time.Time
	// Queued, when not empty, says the vendor accepted the write but holds it until the agent's
	// current state ends (Amazon Connect's NextStatus while on a contact), and why. The status
	// event comes when the vendor applies it.
	Queued string
}

// Emit hands one observed event to the engine and returns once it is stored.
type Emit func(ctx context.Context, ev presence.Event) error

// StatusWrite is one write of a bulk call.
type StatusWrite struct {
	Account  string
	StatusID string
}

// WriteResult is the answer to one write of a bulk call.
type WriteResult struct {
	Receipt Receipt
	Err     error
}

// BulkSetter is implemented by connectors whose vendor can write many agents in one call
// (Genesys PUT /api/v2/users/presences/bulk). The result holds one answer per write, in the
// order given; the error is for the call as a whole.
type BulkSetter interface {
	SetStatuses(ctx context.Context, writes []StatusWrite) ([]WriteResult, error)
}

// Current is what a system shows for one account, as the vendor dates it.
type Current struct {
	// StatusID is the status shown.
	StatusID string
	// Since is the vendor's time the status began (Salesforce StatusStartDate, Genesys
	// modifiedDate, Connect StartTimestamp); zero when the vendor does not say.
	Since time.Time
	// Version is the vendor's marker of the change that set it, as presence.Event.Version.
	Version string
}

// CurrentReader is implemented by connectors that can read an agent's current status, which the
// engine uses to resync after a restart or a reconnect.
type CurrentReader interface {
	// CurrentStatuses returns account id → what the account shows, for the given accounts (all
	// when empty).
	CurrentStatuses(ctx context.Context, accounts []string) (map[string]Current, error)
}

// Healther is implemented by connectors that can tell whether their vendor is reachable.
type Healther interface {
	Healthy(ctx context.Context) error
}

// Limiter is implemented by connectors that know their vendor's request budget; the engine
// applies it before calling SetStatus so limits are respected up front.
type Limiter interface {
	// WriteLimit returns the sustained writes per second and the burst the vendor allows.
	WriteLimit() (perSecond float64, burst int)
}

// Bridge carries status writes to an agent's session in their browser, where the vendor's own
// client applies them (the Salesforce Omni-Channel bridge). Send returns once the session
// applied the write, with the receipt whose Version the resulting status event carries, and a
// *DeferredError while the agent has no connected session.
type Bridge interface {
	Send(ctx context.Context, account, statusID string) (Receipt, error)
}

// BridgeAttacher is implemented by connectors whose writes go through a browser Bridge; serve
// attaches the one it serves. nil detaches it.
type BridgeAttacher interface {
	AttachBridge(b Bridge)
}

// DeferredError says the vendor refused a write because of the agent's current state (on a
// call, in after-call work) or because nothing can apply it right now (no browser bridge
// connected). The engine keeps the write and applies it when the state allows.
type DeferredError struct {
	// Reason names the blocking state, for explain ("AfterCallWork", "no bridge connected").
	Reason string
}

func (e *DeferredError) Error() string { return "write deferred: " + e.Reason }

// RetryAfterError says the vendor asked us to wait (HTTP 429 or 503 with Retry-After).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("retry after %s: %v", e.After, e.Err)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// PermanentError says retrying cannot help (unknown account, forbidden status).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

func (e *PermanentError) Unwrap() error { return e.Err }

// NotAppliedError says the vendor certainly did not apply the write: it was refused before
// anything changed (503, no token, a connection that never opened). No echo of it can come,
// so the engine may retry it without waiting for one. A write whose answer was lost (a
// timeout after the request left) is not a NotAppliedError: it may have landed.
type NotAppliedError struct{ Err error }

func (e *NotAppliedError) Error() string { return "not applied: " + e.Err.Error() }

func (e *NotAppliedError) Unwrap() error { return e.Err }

// IsNotApplied reports whether err says the write certainly did not change the vendor: a
// NotAppliedError, or a refusal (RetryAfterError, DeferredError, PermanentError).
func IsNotApplied(err error) bool {
	var n *NotAppliedError
	var r *RetryAfterError
	var d *DeferredError
	var p *PermanentError
	return errors.As(err, &n) || errors.As(err, &r) || errors.As(err, &d) || errors.As(err, &p)
}

// IsDeferred reports whether err is (or wraps) a DeferredError and returns it.
func IsDeferred(err error) (*DeferredError, bool) {
	var d *DeferredError
	ok := errors.As(err, &d)
	return d, ok
}

// RetryAfter returns the wait a RetryAfterError asks for.
func RetryAfter(err error) (time.Duration, bool) {
	var r *RetryAfterError
	if errors.As(err, &r) {
		return r.After, true
	}
	return 0, false
}

// IsPermanent reports whether err is (or wraps) a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Deps are what the engine hands a connector when opening it.
type Deps struct {
	// Logger is scoped to the system; secrets must never be passed to it.
	Logger *slog.Logger
	// HTTPClient is the client to use for every vendor call.
	HTTPClient *http.Client
	// Checkpoints stores vendor positions (replay ids, stream sequences) durably.
	Checkpoints Checkpoints
}

// Checkpoints persists named vendor positions.
type Checkpoints interface {
	Checkpoint(ctx context.Context, name string) (string, error)
	SetCheckpoint(ctx context.Context, name, value string) error
}

// MemoryCheckpoints keeps checkpoints in memory, for a connector opened without a store; the
// zero value is empty and ready.
type MemoryCheckpoints struct {
	mu sync.Mutex
	m  map[string]string
}

// Checkpoint is the value last set under name, "" when none.
func (m *MemoryCheckpoints) Checkpoint(_ context.Context, name string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[name], nil
}

// SetCheckpoint sets name's value.
func (m *MemoryCheckpoints) SetCheckpoint(_ context.Context, name, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]string{}
	}
	m.m[name] = value
	return nil
}

// All is a copy of every checkpoint, by name.
func (m *MemoryCheckpoints) All() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.m)
}

// Factory opens a connector for the system called name. Its settings have passed the vendor's
// checks, have the vendor's defaults filled in and their ${ENV} and file: references resolved.
type Factory func(ctx context.Context, name string, s settings.Settings, deps Deps) (Connector, error)
