package engine

import (
	"slices"
	"time"
)

// agentState is everything the engine knows about one agent; it is stored as JSON.
type agentState struct {
	Email   string                  `json:"email"`
	Systems map[string]*systemState `json:"systems"`
	// Activities are the activity instances in force, oldest first.
	Activities []*activityInstance `json:"activities,omitempty"`
	UpdatedAt  time.Time           `json:"updated_at,omitzero"`
}

// systemState is one agent's state on one system.
//
// Target is the status the newest cause wants the system to show; CauseAt is that cause's
// vendor time, and orders every later cause (newest wins). A write is needed while Target is
// set and differs from Observed, or while a write of another status is in flight.
type systemState struct {
	Observed   string    `json:"observed,omitempty"`
	ObservedAt time.Time `json:"observed_at,omitzero"`

	Target      string    `json:"target,omitempty"`
	CauseAt     time.Time `json:"cause_at,omitzero"`
	CauseSystem string    `json:"cause_system,omitempty"`
	CauseRule   string    `json:"cause_rule,omitempty"`
	CauseText   string    `json:"cause_text,omitempty"`
	CauseSeq    int64     `json:"cause_seq,omitempty"`
	// TargetSince is the engine time Target last changed (debounce counts from it).
	TargetSince time.Time `json:"target_since,omitzero"`

	InFlight *Write         `json:"in_flight,omitempty"`
	Pending  []pendingWrite `json:"pending,omitempty"`

	Deferred    string    `json:"deferred,omitempty"`
	DeferredFor string    `json:"deferred_for,omitempty"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	Failed      string    `json:"failed,omitempty"`
	FailedFor   string    `json:"failed_for,omitempty"`

	Overlay *overlay `json:"overlay,omitempty"`
}

// Write is one status write handed to a connector.
type Write struct {
	ID       int64     `json:"id"`
	Agent    string    `json:"agent"`
	System   string    `json:"system"`
	Account  string    `json:"account"`
	StatusID string    `json:"status_id"`
	Status   string    `json:"status"`
	SentAt   time.Time `json:"sent_at,omitzero"`
	Attempt  int       `json:"attempt"`
	Rule     string    `json:"rule,omitempty"`
	Cause    string    `json:"cause,omitempty"`
	CauseSeq int64     `json:"cause_seq,omitempty"`
	// Echoed is set when the vendor's event for this write arrived before its answer, at
	// EchoedAt (vendor time).
	Echoed   bool      `json:"echoed,omitempty"`
	EchoedAt time.Time `json:"echoed_at,omitzero"`
}

// pendingWrite is an accepted write whose echo has not arrived yet; SentAt is when the vendor
// answered it.
type pendingWrite struct {
	StatusID string    `json:"status_id"`
	SentAt   time.Time `json:"sent_at,omitzero"`
}

// overlay remembers what an activity covers on one system and what to restore afterwards.
type overlay struct {
	// Base is the status to restore when the last activity ends ("" when unknown).
	Base    string    `json:"base,omitempty"`
	BaseAt  time.Time `json:"base_at,omitzero"`
	BaseWhy string    `json:"base_why,omitempty"`
	// Released is set when the agent changed the system themselves during the activity.
	Released bool `json:"released,omitempty"`
}

// activityInstance is one running activity (one call).
type activityInstance struct {
	Name     string            `json:"name"`
	Key      string            `json:"key,omitempty"`
	Since    time.Time         `json:"since,omitzero"`
	Statuses map[string]string `json:"statuses"`
}

func (s *agentState) system(name string) *systemState {
	if s.Systems == nil {
		s.Systems = map[string]*systemState{}
	}
	ss := s.Systems[name]
	if ss == nil {
		ss = &systemState{}
		s.Systems[name] = ss
	}
	return ss
}

// needsWrite reports whether the system must still be written to reach its target.
func (ss *systemState) needsWrite() bool {
	if ss.Target == "" {
		return false
	}
	if ss.InFlight != nil {
		return ss.InFlight.StatusID != ss.Target
	}
	return ss.Observed != ss.Target
}

// expirePending drops pending writes older than the echo window.
func (ss *systemState) expirePending(now time.Time, window time.Duration) {
	ss.Pending = slices.DeleteFunc(ss.Pending, func(p pendingWrite) bool {
		return now.Sub(p.SentAt) > window
	})
}

// takeEcho reports whether status is the echo of a write of ours, consuming the match and
// every older pending write. Answered writes come first: a vendor reports a system's events in
// order, so an older write's echo precedes the echo of the write in flight.
func (ss *systemState) takeEcho(statusID string, at time.Time) bool {
	for i, p := range ss.Pending {
		if p.StatusID == statusID {
			ss.Pending = ss.Pending[i+1:]
			if len(ss.Pending) == 0 {
				ss.Pending = nil
			}
			return true
		}
	}
	if ss.InFlight != nil && ss.InFlight.StatusID == statusID {
		// Until the vendor answers, the write may still produce its event even if an earlier
		// event with this status (perhaps a person's) was already taken for it.
		ss.InFlight.Echoed = true
		if at.After(ss.InFlight.EchoedAt) {
			ss.InFlight.EchoedAt = at
		}
		ss.Pending = nil
		return true
	}
	return false
}

// writesOutstanding reports whether a write of ours may still change what the system shows.
func (ss *systemState) writesOutstanding() bool {
	return (ss.InFlight != nil && !ss.InFlight.Echoed) || len(ss.Pending) > 0
}

// retirePending drops pending writes answered before a change the vendor reports at `at`.
func (ss *systemState) retirePending(at time.Time) {
	ss.Pending = slices.DeleteFunc(ss.Pending, func(p pendingWrite) bool { return !p.SentAt.After(at) })
	if len(ss.Pending) == 0 {
		ss.Pending = nil
	}
}
