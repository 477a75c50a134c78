package engine

import (
	"fmt"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Telling our own writes' echoes from people's changes.
//
// Every accepted write makes its system report one status event, its echo. Where the vendor
// marks the change (the receipt's Version comes back on the event, or the event says it was
// ours), the echo is matched to its write exactly. Where it does not, one event with the
// write's status consumes the one echo the write owes; an event that arrives while the write is
// unanswered is only provisionally its echo, and becomes a person's change again — decided at
// its own time — when the write's own event turns out to come after it (a different status
// showed in between, or the receipt's version differs). Events a vendor reports in order keep
// this honest; docs/policy.md ("Loops and echoes") lists the one case that stays ambiguous.

// observe classifies a status event from one system. It returns true when the event is handled
// (an echo of ours, or a report of what the system already showed); false for a change, whose
// mark it has added to the system's timeline.
func (m *Machine) observe(email string, st *agentState, ss *systemState, c *change, now time.Time) bool {
	ev := &c.Event
	if v := ev.Version; v != "" {
		for i := range ss.Writes {
			if w := &ss.Writes[i]; w.Answered && !w.Unsure && w.Version == v {
				m.echo(email, st, ss, w, c, now, "its version is the one the vendor answered our write with")
				return true
			}
		}
	}
	if ev.Origin == presence.OriginSelf {
		for i := range ss.Writes {
			if w := &ss.Writes[i]; w.StatusID == ev.Status {
				m.echo(email, st, ss, w, c, now, "the vendor marks it as made by us")
				return true
			}
		}
		m.Stats.Echoes.Add(1)
		ss.addMark(mark{At: ev.At, Status: ev.Status, Seq: c.Seq, Write: -1})
		m.record(email, now, c.Seq, Step{Kind: StepEcho, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(*ev), Summary: fmt.Sprintf("%s now shows %s, a change the vendor marks as made by us; not evaluated",
				ev.System, m.statusByID(ev.System, ev.Status).Name)})
		return true
	}
	for i := range ss.Writes {
		w := &ss.Writes[i]
		if w.StatusID != ev.Status || (w.Answered && !w.Unsure && w.Version != "" && ev.Version != "") {
			continue
		}
		if w.Maybe == nil {
			if w.Answered {
				m.echo(email, st, ss, w, c, now, "it has our write's status, and the write owed its echo")
			} else {
				m.maybeEcho(email, ss, w, c, now)
			}
			return true
		}
		// A second event with the write's status. If the system showed something else in
		// between, the write landed after that: this is its echo, and the first was a person's.
		if !ss.changedBetween(w.Maybe.Event.At, ev.At, ev.Status) {
			break
		}
		m.reclassify(email, st, ss, w, now)
		if w = ss.openWrite(w.ID); w != nil {
			if w.Answered {
				m.echo(email, st, ss, w, c, now, "our write's status again, after the system showed another: our write landed last")
			} else {
				m.maybeEcho(email, ss, w, c, now)
			}
		}
		return true
	}
	if prev, _ := ss.statusAt(ev.At, nil); prev == ev.Status {
		m.record(email, now, c.Seq, Step{Kind: StepUnchanged, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(*ev), Summary: fmt.Sprintf("%s already showed %s; nothing changed", ev.System, m.statusByID(ev.System, ev.Status).Name)})
		return true
	}
	ss.addMark(mark{At: ev.At, Status: ev.Status, Seq: c.Seq})
	status := m.statusByID(ev.System, ev.Status)
	for i := 0; i < len(ss.Writes); i++ {
		w := &ss.Writes[i]
		switch {
		case w.Queued != "" && !isSystemState(status):
			// The vendor applied another status than the one it held for us.
			ss.closeWrite(w.ID)
			i--
		case w.Answered && w.Queued == "" && !w.AnsweredAt.IsZero() && ev.At.After(w.AnsweredAt):
			// A vendor reports a system's events in order: the echo of a write answered before
			// this change happened has come already (or the vendor sends none).
			ss.closeWrite(w.ID)
			i--
		}
	}
	return false
}

// echo confirms c as the echo of w: the write landed at c's time.
func (m *Machine) echo(email string, st *agentState, ss *systemState, w *openWrite, c *change, now time.Time, why string) {
	m.Stats.Echoes.Add(1)
	ev := c.Event
	id := w.ID
	ss.dropMarks(id)
	ss.addMark(mark{At: ev.At, Status: ev.Status, Write: id, Seq: c.Seq})
	ss.closeWrite(id)
	name := m.statusByID(ev.System, ev.Status).Name
	m.record(email, now, c.Seq, Step{Kind: StepEcho, System: ev.System, Status: name, Cause: m.describe(ev),
		Summary: fmt.Sprintf("%s now shows %s: the echo of our write (%s); not evaluated again", ev.System, name, why)})
	m.noteCorrection(email, st, ss, ev.System, ev.Status, now, c.Seq)
}

// maybeEcho takes c for the echo of an unanswered write, until its answer or a later event says
// otherwise.
func (m *Machine) maybeEcho(email string, ss *systemState, w *openWrite, c *change, now time.Time) {
	m.Stats.Echoes.Add(1)
	cp := *c
	w.Maybe = &cp
	ss.addMark(mark{At: c.Event.At, Status: c.Event.Status, Write: w.ID, Seq: c.Seq})
	name := m.statusByID(c.Event.System, c.Event.Status).Name
	m.record(email, now, c.Seq, Step{Kind: StepEcho, System: c.Event.System, Status: name, Cause: m.describe(c.Event),
		Summary: fmt.Sprintf("%s now shows %s: taken for the echo of our write, which the vendor has not answered yet", c.Event.System, name)})
}

// reclassify turns the event w had taken for its echo back into a person's change, decided at
// its own time.
func (m *Machine) reclassify(email string, st *agentState, ss *systemState, w *openWrite, now time.Time) {
	e := *w.Maybe
	w.Maybe = nil
	for i := range ss.Timeline {
		if mk := &ss.Timeline[i]; mk.Write == w.ID && mk.Seq == e.Seq {
			mk.Write = 0
		}
	}
	m.Stats.Echoes.Add(-1)
	m.Stats.Reclassified.Add(1)
	name := m.statusByID(e.Event.System, e.Event.Status).Name
	m.record(email, now, e.Seq, Step{Kind: StepReclassified, System: e.Event.System, Status: name, Cause: m.describe(e.Event),
		Summary: fmt.Sprintf("the %s reported at %s was a person's change, not our write's echo; it is decided at its own time",
			name, stamp(e.Event.At))})
	m.decide(email, st, e, now)
}

// noteCorrection explains a write of ours that now shows over a newer decision.
func (m *Machine) noteCorrection(email string, st *agentState, ss *systemState, system, shown string, now time.Time, seq int64) {
	if ss.Target == "" || ss.Target == shown || ss.observed() != shown || st.fold == nil {
		return
	}
	fs := st.fold.Systems[system]
	if fs == nil {
		return
	}
	m.Stats.Corrections.Add(1)
	m.record(email, now, seq, Step{Kind: StepCorrection, System: system, Status: m.statusByID(system, ss.Target).Name,
		Rule: fs.Cause.Rule, Cause: fs.Cause.Text,
		Summary: fmt.Sprintf("our write of %s landed after a newer decision (%s at %s); %s is written",
			m.statusByID(system, shown).Name, fs.Cause.Text, stamp(fs.Cause.At), m.statusByID(system, ss.Target).Name)})
}

// expireWrites stops expecting echoes that are overdue.
func (m *Machine) expireWrites(ss *systemState, now time.Time) {
	for i := 0; i < len(ss.Writes); i++ {
		w := &ss.Writes[i]
		if w.Queued != "" || (ss.InFlight != nil && ss.InFlight.ID == w.ID) {
			continue
		}
		since := w.SentAt
		if w.Answered {
			since = w.AnsweredAt
		}
		if now.Sub(since) > m.opts.EchoWindow {
			ss.closeWrite(w.ID)
			i--
		}
	}
}

// queued reports whether the vendor holds a write of status for when the agent's state ends.
func (ss *systemState) queued(status string) bool {
	for _, w := range ss.Writes {
		if w.Queued != "" && w.StatusID == status {
			return true
		}
	}
	return false
}

// Outcome records the vendor's answer to a write: its receipt when it accepted it, else the
// error. It returns the time the agent should be looked at again for a retry (zero when none
// is needed beyond the usual reconcile).
func (m *Machine) Outcome(w Write, r connector.Receipt, err error, now time.Time) time.Time {
	st := m.agents[w.Agent]
	if st == nil {
		return time.Time{}
	}
	ss := st.system(w.System)
	if ss.InFlight == nil || ss.InFlight.ID != w.ID {
		return time.Time{}
	}
	ss.InFlight = nil
	m.dirty[w.Agent] = true
	ow := ss.openWrite(w.ID)
	if ow == nil {
		ss.Writes = append(ss.Writes, openWrite{ID: w.ID, StatusID: w.StatusID, SentAt: w.SentAt})
		ow = &ss.Writes[len(ss.Writes)-1]
	}
	step := Step{System: w.System, Status: w.Status, Rule: w.Rule, Cause: w.Cause}
	var retryAt time.Time
	switch d, deferred := connector.IsDeferred(err); {
	case err == nil:
		m.Stats.Writes.Add(1)
		ss.Attempts, ss.NextAttempt = 0, time.Time{}
		ss.Deferred, ss.DeferredFor, ss.Failed, ss.FailedFor = "", "", "", ""
		ow.Answered, ow.AnsweredAt, ow.Version = true, now, r.Version
		if r.Queued != "" {
			ow.Queued = r.Queued
			m.Stats.Deferred.Add(1)
			step.Kind = StepDeferred
			step.Summary = fmt.Sprintf("%s took %s but holds it until %s; it shows it then", w.System, w.Status, r.Queued)
			break
		}
		step.Kind, step.Summary = StepWriteOK, fmt.Sprintf("%s accepted %s", w.System, w.Status)
		if r.Version != "" {
			step.Details = []string{"vendor version " + r.Version}
		}
		if e := ow.Maybe; e != nil {
			switch {
			case r.Version != "" && e.Event.Version != "" && e.Event.Version != r.Version:
				m.record(w.Agent, now, w.CauseSeq, step)
				m.reclassify(w.Agent, st, ss, ow, now)
				m.land(ss, w, r, now)
				m.noteCorrection(w.Agent, st, ss, w.System, w.StatusID, now, w.CauseSeq)
				return time.Time{}
			case r.Version != "" || !ss.changedAfter(e.Event.At, w.StatusID):
				ss.closeWrite(w.ID)
			}
			// Otherwise a change followed the event taken for the echo: the write's own event
			// may still come, and would show it landed after that change.
			break
		}
		m.land(ss, w, r, now)
		m.noteCorrection(w.Agent, st, ss, w.System, w.StatusID, now, w.CauseSeq)
	case deferred:
		ss.closeWrite(w.ID)
		if ss.DeferredFor != w.StatusID {
			m.Stats.Deferred.Add(1)
		}
		quiet := ss.DeferredFor == w.StatusID
		ss.Deferred, ss.DeferredFor = d.Reason, w.StatusID
		if m.opts.DeferredRecheck > 0 {
			ss.NextAttempt = now.Add(m.opts.DeferredRecheck)
			retryAt = ss.NextAttempt
		}
		if quiet {
			return retryAt // still deferred for the same reason: explained once
		}
		step.Kind, step.Summary = StepDeferred, fmt.Sprintf("%s cannot take %s now (%s); written when that ends", w.System, w.Status, d.Reason)
	case connector.IsPermanent(err):
		ss.closeWrite(w.ID)
		m.fail(ss, w, err, &step)
	default:
		// The write may have landed all the same (a timeout): its echo is still recognised.
		ow.Answered, ow.AnsweredAt, ow.Unsure = true, now, true
		ss.Attempts++
		if ss.Attempts >= m.opts.RetryBudget {
			m.fail(ss, w, err, &step)
			break
		}
		m.Stats.Retries.Add(1)
		wait, ok := connector.RetryAfter(err)
		if !ok {
			wait = m.backoff(ss.Attempts)
		}
		ss.NextAttempt = now.Add(wait)
		retryAt = ss.NextAttempt
		step.Kind, step.Summary = StepRetry, fmt.Sprintf("%s refused %s: %v; retrying in %s", w.System, w.Status, err, wait)
	}
	m.record(w.Agent, now, w.CauseSeq, step)
	return retryAt
}

// land marks where an accepted write landed: at the receipt's time, or, when the vendor does not
// say, when it answered.
func (m *Machine) land(ss *systemState, w Write, r connector.Receipt, now time.Time) {
	at, est := r.At, r.At.IsZero()
	if est {
		at = now
	}
	ss.dropMarks(w.ID)
	ss.addMark(mark{At: at, Status: w.StatusID, Write: w.ID, Estimated: est})
}

func (m *Machine) fail(ss *systemState, w Write, err error, step *Step) {
	m.Stats.Failed.Add(1)
	ss.Failed, ss.FailedFor = err.Error(), w.StatusID
	ss.Attempts, ss.NextAttempt = 0, time.Time{}
	step.Kind = StepFailed
	step.Summary = fmt.Sprintf("writing %s to %s failed: %v; retried on the next change", w.Status, w.System, err)
}
