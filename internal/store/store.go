// Package store defines the durable state of omnipresence: the events it accepted (deduplicated),
// each agent's state, the audit trail that explain reads, and vendor checkpoints. Backends live
// below it (memory, sqlite, postgres) and all pass the conformance suite in storetest.
//
// The engine owns the meaning of agent state and audit bodies; the store keeps them as opaque
// JSON so that backends stay small and the engine can evolve its state without migrations.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrClosed is returned by a store used after Close.
var ErrClosed = errors.New("store: closed")

// Event is one accepted vendor or webhook event.
type Event struct {
	// Seq is assigned by the store on insert, increasing in insert order.
	Seq int64
	// DedupeKey is unique across all events; a second insert with the same key is a no-op.
	DedupeKey string
	Agent     string
	System    string
	Type      string
	// At is the vendor's time of the event.
	At time.Time
	// Body is the full normalized event as JSON.
	Body []byte
}

// Agent is one agent's state as the engine last committed it.
type Agent struct {
	// Key is the agent's canonical key (email).
	Key string
	// State is the engine's JSON encoding of observed, desired, pending writes and overlays.
	State []byte
	// UpdatedAt is when the engine last changed the state.
	UpdatedAt time.Time
}

// AuditRecord is one step of an agent's decision chain (event, rule, intent, write, answer, echo).
type AuditRecord struct {
	// Seq is assigned by the store on insert, increasing in insert order.
	Seq   int64
	Agent string
	// At is the engine time of the step.
	At time.Time
	// Kind names the step ("event", "intent", "write", "write_result", "echo", …).
	Kind string
	// EventSeq links the step to the event that caused it, 0 when none.
	EventSeq int64
	// Body is the engine's JSON for the step.
	Body []byte
}

// Store is a backend. Writes happen only inside Update; reads may run concurrently with it.
type Store interface {
	// Update runs fn in one write transaction and commits it when fn returns nil; any error
	// rolls every change of fn back. Calls are serialized.
	Update(ctx context.Context, fn func(Tx) error) error

	// Agent returns one agent's committed state.
	Agent(ctx context.Context, key string) (Agent, bool, error)
	// Agents returns every agent's committed state, ordered by key.
	Agents(ctx context.Context) ([]Agent, error)
	// Events returns up to limit events of an agent, newest first; every agent's when agent is "".
	// It is a read for tools and tests: backends need not index events by agent.
	Events(ctx context.Context, agent string, limit int) ([]Event, error)
	// Audit returns up to limit audit records of an agent, newest first.
	Audit(ctx context.Context, agent string, limit int) ([]AuditRecord, error)
	// RecentDedupeKeys returns the keys of the newest n events, newest first (to warm a cache).
	RecentDedupeKeys(ctx context.Context, n int) ([]string, error)
	// Checkpoint returns a named vendor position, "" when none was stored.
	Checkpoint(ctx context.Context, name string) (string, error)
	// SetCheckpoint stores a named vendor position in its own transaction.
	SetCheckpoint(ctx context.Context, name, value string) error
	// Close releases the backend; later calls return ErrClosed.
	Close() error
}

// EventBatcher is a Tx that can insert several events at once (one round trip to a server).
type EventBatcher interface {
	// InsertEvents does what InsertEvent does for each of evs in order, setting inserted[i]:
	// an event whose key an earlier one of evs carries is a duplicate of it.
	InsertEvents(ctx context.Context, evs []Event, inserted []bool) error
}

// InsertEvents inserts evs through tx, at once when tx is an EventBatcher, else one by one.
func InsertEvents(ctx context.Context, tx Tx, evs []Event, inserted []bool) error {
	if b, ok := tx.(EventBatcher); ok {
		return b.InsertEvents(ctx, evs, inserted)
	}
	for i := range evs {
		var err error
		if inserted[i], err = tx.InsertEvent(ctx, &evs[i]); err != nil {
			return err
		}
	}
	return nil
}

// Tx is a write transaction.
type Tx interface {
	// InsertEvent stores ev unless an event with the same DedupeKey exists. It sets ev.Seq and
	// reports whether the event was new.
	InsertEvent(ctx context.Context, ev *Event) (inserted bool, err error)
	// PutAgent inserts or replaces an agent's state.
	PutAgent(ctx context.Context, a Agent) error
	// AppendAudit stores records in order, setting each Seq.
	AppendAudit(ctx context.Context, recs []AuditRecord) error
	// SetCheckpoint stores a named vendor position.
	SetCheckpoint(ctx context.Context, name, value string) error
}
