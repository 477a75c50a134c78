package engine

import (
	"slices"
	"sort"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// agentState is everything the engine knows about one agent; it is stored as JSON.
//
// Two views are kept apart. History is what people and vendors did, in the order it happened
// (vendor time); the policy folded over it, from Base, gives the status every system should
// show — the answer an ideal world with instant writes would reach, so the same changes give
// the same answer whatever the latencies and the order of delivery. The systems' timelines
// are what each system really showed, as far as the engine knows, our own writes included;
// the engine writes wherever the two differ.
type agentState struct {
	Email   string                  `json:"email"`
	Systems map[string]*systemState `json:"systems"`
	// History holds the recent changes, oldest first: ordered by vendor time, then with the
	// policy's master last within one instant, then by arrival.
	History []change `json:"history,omitempty"`
	// Base is the policy's state before History[0] (nil when nothing came before); BaseAt is
	// the time of the newest change folded into it.
	Base      *foldState `json:"base,omitempty"`
	BaseAt    time.Time  `json:"base_at,omitzero"`
	UpdatedAt time.Time  `json:"updated_at,omitzero"`

	// fold is Base with History applied; derived, not stored.
	fold *foldState
}

// change is one entry of History: an event a person or a vendor caused (never the echo of a
// write of ours). Event.Agent is the agent's email and Event.Status the resolved status id.
type change struct {
	Seq   int64          `json:"seq"`
	Event presence.Event `json:"event"`
	// Ext holds the policy extension webhook's answer to this change, once it came.
	Ext []extTarget `json:"ext,omitempty"`
}

// extTarget is one target the extension webhook asked for.
type extTarget struct {
	System string `json:"system"`
	Status string `json:"status"`
}

// foldState is the policy's view of an agent after some changes: per system the status the
// newest cause wants, the vendor-only state it may be in, and the activities in force.
type foldState struct {
	Systems map[string]*foldSystem `json:"systems,omitempty"`
	// Activities are the activity instances in force, oldest first.
	Activities []*activityInstance `json:"activities,omitempty"`
	// Ended remembers activity ends seen without their start (a start delivered after its
	// end is then known to be over), newest last.
	Ended []endedActivity `json:"ended,omitempty"`
}

// foldSystem is one system in the policy's view.
type foldSystem struct {
	// Target is the status the newest cause wants the system to show ("" while nothing has
	// said); Cause says which cause.
	Target string `json:"target,omitempty"`
	Cause  cause  `json:"cause,omitzero"`
	// State is a status only the vendor sets (after-call work, on a contact) that the system
	// shows since StateSince; "" when it shows an ordinary status.
	State      string    `json:"state,omitempty"`
	StateSince time.Time `json:"state_since,omitzero"`
	// Overlay is set while an activity covers the system.
	Overlay *overlay `json:"overlay,omitempty"`
}

// cause names what decided a target: when (vendor time), on which system, by which rule.
type cause struct {
	At     time.Time `json:"at,omitzero"`
	System string    `json:"system,omitempty"`
	Rule   string    `json:"rule,omitempty"`
	Text   string    `json:"text,omitempty"`
	Seq    int64     `json:"seq,omitempty"`
}

// endedActivity is an activity end seen before its start.
type endedActivity struct {
	Name string    `json:"name"`
	Key  string    `json:"key,omitempty"`
	At   time.Time `json:"at"`
}

// overlay remembers what an activity covers on one system and what to restore afterwards.
type overlay struct {
	// Base is the status to restore when the last activity ends ("" when unknown).
	Base    string `json:"base,omitempty"`
	BaseWhy cause  `json:"base_why,omitzero"`
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

// systemState is the engine's real-world bookkeeping of one agent on one system.
type systemState struct {
	// Timeline is what the system showed, as far as the engine knows: changes by anyone and
	// the landings of our writes, in vendor time order, newest last.
	Timeline []mark `json:"timeline,omitempty"`
	// Writes are our writes whose echo has not been identified yet.
	Writes []openWrite `json:"writes,omitempty"`
	// InFlight is the write being sent now.
	InFlight *Write `json:"in_flight,omitempty"`

	// Target mirrors the policy's target for the system; TargetSince is the engine time it
	// last changed (debounce counts from it).
	Target      string    `json:"target,omitempty"`
	TargetSince time.Time `json:"target_since,omitzero"`

	// Moved is set when the system changed while a write was in flight: a refusal of that
	// write may describe a state that has ended already.
	Moved bool `json:"moved,omitempty"`

	Deferred    string `json:"deferred,omitempty"`
	DeferredFor string `json:"deferred_for,omitempty"`
	// DeferredHead is the newest timeline mark (its seq) when the write was deferred: once the
	// system reports anything newer, the state that deferred it may be over.
	DeferredHead int64     `json:"deferred_head,omitempty"`
	Attempts     int       `json:"attempts,omitempty"`
	NextAttempt  time.Time `json:"next_attempt,omitzero"`
	Failed       string    `json:"failed,omitempty"`
	FailedFor    string    `json:"failed_for,omitempty"`
}

// mark is one entry of a system's timeline.
type mark struct {
	At     time.Time `json:"at"`
	Status string    `json:"status"`
	// Write is the id of our write this mark is the landing of; 0 for anyone else's change.
	Write int64 `json:"write,omitempty"`
	// Estimated is set while the landing time is our guess (when the vendor answered), not
	// the vendor's.
	Estimated bool `json:"estimated,omitempty"`
	// Seq is the event that told (0 for an estimated landing).
	Seq int64 `json:"seq,omitempty"`
	// Report holds a person's event that reported what the system already showed, so not a
	// change; should a late change come to lie before it, it is the change it then is.
	Report *presence.Event `json:"report,omitempty"`
	// Reading marks a reading taken at start or reconnect: what the system showed then, since
	// At. Changes the vendor reports for the same instant come before it.
	Reading bool `json:"reading,omitempty"`
}

// person reports whether the mark is a change or report someone else made, not our write.
func (mk mark) person() bool { return mk.Write == 0 }

// openWrite is a write of ours whose echo is still expected.
type openWrite struct {
	ID       int64     `json:"id"`
	StatusID string    `json:"status_id"`
	SentAt   time.Time `json:"sent_at,omitzero"`
	// Answered is set once the vendor answered: accepted, with the receipt's Version, or
	// Unsure when the answer was an error after which the write may still have landed.
	Answered   bool      `json:"answered,omitempty"`
	AnsweredAt time.Time `json:"answered_at,omitzero"`
	Version    string    `json:"version,omitempty"`
	Unsure     bool      `json:"unsure,omitempty"`
	// Queued is the vendor's reason for holding the write until the agent's state ends.
	Queued string `json:"queued,omitempty"`
	// Maybes are events taken for the write's echo while the answer, or another event, may
	// still prove otherwise; until then the write stays open. Events that carry a version all
	// wait for the answer's version; without versions there is at most one.
	Maybes []change `json:"maybes,omitempty"`
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

// observed is what the system shows now as far as the engine knows ("" when unknown).
func (ss *systemState) observed() string {
	if n := len(ss.Timeline); n > 0 {
		return ss.Timeline[n-1].Status
	}
	return ""
}

// head is the seq of the newest mark (0 when none).
func (ss *systemState) head() int64 {
	if n := len(ss.Timeline); n > 0 {
		return ss.Timeline[n-1].Seq
	}
	return 0
}

// observedAt is the vendor time of the newest mark.
func (ss *systemState) observedAt() time.Time {
	if n := len(ss.Timeline); n > 0 {
		return ss.Timeline[n-1].At
	}
	return time.Time{}
}

// statusAt is what the system showed at t, marks at t included, and the index of that mark
// (-1 when none). For a change the vendor reports (not a reading), readings at t come after it.
func (ss *systemState) statusAt(t time.Time, reading bool) (string, int) {
	for i := len(ss.Timeline) - 1; i >= 0; i-- {
		mk := ss.Timeline[i]
		if mk.At.After(t) || mk.At.Equal(t) && mk.Reading && !reading {
			continue
		}
		return mk.Status, i
	}
	return "", -1
}

// addMark inserts mk in vendor time order, after marks of the same time, and returns its index.
func (ss *systemState) addMark(mk mark) int {
	i := sort.Search(len(ss.Timeline), func(i int) bool {
		o := ss.Timeline[i]
		return o.At.After(mk.At) || o.At.Equal(mk.At) && o.Reading && !mk.Reading
	})
	ss.Timeline = slices.Insert(ss.Timeline, i, mk)
	return i
}

// dropMarks removes the marks of write id and returns the indexes that now hold the marks
// that followed them.
func (ss *systemState) dropMarks(write int64) []int {
	var at []int
	out := ss.Timeline[:0]
	for _, mk := range ss.Timeline {
		if mk.Write == write {
			at = append(at, len(out))
			continue
		}
		out = append(out, mk)
	}
	ss.Timeline = out
	return at
}

// prevStatus is the status of the mark before index i ("" when none).
func (ss *systemState) prevStatus(i int) string {
	if i > 0 && i <= len(ss.Timeline) {
		return ss.Timeline[i-1].Status
	}
	return ""
}

// changedSince reports whether, after the mark event seq left for write id, the timeline shows
// a status other than status at or before to (zero: at any time).
func (ss *systemState) changedSince(id, seq int64, to time.Time, status string) bool {
	start := -1
	for i, mk := range ss.Timeline {
		if mk.Write == id && mk.Seq == seq {
			start = i
		}
	}
	if start < 0 {
		return false
	}
	for _, mk := range ss.Timeline[start+1:] {
		if !to.IsZero() && mk.At.After(to) {
			break
		}
		if mk.Status != status {
			return true
		}
	}
	return false
}

// needsWrite reports whether the system must still be written to reach its target.
func (ss *systemState) needsWrite() bool {
	if ss.Target == "" {
		return false
	}
	if ss.InFlight != nil {
		return ss.InFlight.StatusID != ss.Target
	}
	return ss.observed() != ss.Target
}

// openWrite returns the open write with id, or nil.
func (ss *systemState) openWrite(id int64) *openWrite {
	for i := range ss.Writes {
		if ss.Writes[i].ID == id {
			return &ss.Writes[i]
		}
	}
	return nil
}

// closeWrite forgets an open write.
func (ss *systemState) closeWrite(id int64) {
	ss.Writes = slices.DeleteFunc(ss.Writes, func(w openWrite) bool { return w.ID == id })
	if len(ss.Writes) == 0 {
		ss.Writes = nil
	}
}

// system returns the fold's view of a system, creating it.
func (f *foldState) system(name string) *foldSystem {
	if f.Systems == nil {
		f.Systems = map[string]*foldSystem{}
	}
	fs := f.Systems[name]
	if fs == nil {
		fs = &foldSystem{}
		f.Systems[name] = fs
	}
	return fs
}

// shows is the status the system shows in the policy's view: its vendor-only state, else its
// target.
func (f *foldState) shows(name string) string {
	fs := f.Systems[name]
	if fs == nil {
		return ""
	}
	if fs.State != "" {
		return fs.State
	}
	return fs.Target
}

// clone returns a deep copy.
func (f *foldState) clone() *foldState {
	out := &foldState{}
	if f == nil {
		return out
	}
	if f.Systems != nil {
		out.Systems = make(map[string]*foldSystem, len(f.Systems))
		for k, v := range f.Systems {
			c := *v
			if v.Overlay != nil {
				o := *v.Overlay
				c.Overlay = &o
			}
			out.Systems[k] = &c
		}
	}
	for _, a := range f.Activities {
		c := *a
		c.Statuses = make(map[string]string, len(a.Statuses))
		for k, v := range a.Statuses {
			c.Statuses[k] = v
		}
		out.Activities = append(out.Activities, &c)
	}
	out.Ended = slices.Clone(f.Ended)
	return out
}
