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
	if ev.IsResync() {
		// A reading says what shows now, since when: a landing of ours the engine only guessed,
		// dated after that, did not happen (yet).
		for i := len(ss.Timeline) - 1; i >= 0; i-- {
			if mk := ss.Timeline[i]; mk.Estimated && mk.At.After(ev.At) {
				m.unmark(email, st, ss, mk.Write, now)
				i = min(i, len(ss.Timeline))
			}
		}
	}
	missed := m.missed(ss, ev)
	if prev, _ := ss.statusAt(ev.At, true); ev.IsResync() && prev == ev.Status && !missed {
		// A reading of what the engine knew already (the landing of a write of ours
		// included): it owes no write an echo.
		m.record(email, now, c.Seq, Step{Kind: StepUnchanged, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(*ev), Summary: fmt.Sprintf("%s shows %s, as known; nothing changed", ev.System, m.statusByID(ev.System, ev.Status).Name)})
		report := *ev
		ss.addMark(mark{At: ev.At, Status: ev.Status, Seq: c.Seq, Report: &report, Reading: true})
		return true
	}
	if !ev.IsResync() {
		for _, mk := range ss.Timeline {
			if mk.Write != 0 && mk.Reading && mk.At.Equal(ev.At) && mk.Status == ev.Status {
				// A reading taken at start told of our write's landing already: this is the
				// event of that same landing, owing nothing more.
				name := m.statusByID(ev.System, ev.Status).Name
				m.record(email, now, c.Seq, Step{Kind: StepEcho, System: ev.System, Status: name, Cause: m.describe(*ev),
					Summary: fmt.Sprintf("%s showed %s at %s: the echo of our write, which a reading told already", ev.System, name, stamp(ev.At))})
				return true
			}
		}
	}
	if v := ev.Version; v != "" {
		for i := range ss.Writes {
			if w := &ss.Writes[i]; w.Answered && !w.Unsure && w.Version == v {
				m.echo(email, st, ss, w, c, now, "its version is the one the vendor answered our write with")
				return true
			}
		}
	}
	if ev.Version != "" && !ev.IsResync() && ss.repeats(ev) {
		// The vendor reported this very change before (the same status at the same vendor
		// time): a repeat, which can be no write's echo and no one's change.
		m.record(email, now, c.Seq, Step{Kind: StepUnchanged, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(*ev), Summary: fmt.Sprintf("%s reported %s at %s again; nothing changed", ev.System, m.statusByID(ev.System, ev.Status).Name, stamp(ev.At))})
		return true
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
	candidate := func(w *openWrite) bool {
		if w.StatusID != ev.Status || ev.At.Before(w.SentAt.Add(-m.opts.ClockTolerance)) {
			// A write lands after it is sent: an event dated before is not its echo.
			return false
		}
		if w.Queued == "" && ev.At.After(w.SentAt.Add(m.opts.LandingWindow+m.opts.ClockTolerance)) {
			// A write lands within the write timeout or never (one the vendor holds for later
			// aside), answered or not.
			return false
		}
		if w.Answered && !w.Unsure {
			// A write lands before the vendor answers it, so its echo is dated no later than
			// the answer (give or take the clocks' difference); with versions on both sides, the
			// exact match above has already spoken.
			return !(w.Version != "" && ev.Version != "") && !ev.At.After(w.AnsweredAt.Add(m.opts.ClockTolerance))
		}
		return true
	}
	takes := func(w *openWrite) bool {
		if !candidate(w) {
			return false
		}
		// Versioned events with the status of a write still unanswered all wait: its receipt
		// will say which one, if any, is its echo.
		return len(w.Maybes) == 0 || !w.Answered && ev.Version != "" && w.Maybes[0].Event.Version != ""
	}
	for i := range ss.Writes {
		if w := &ss.Writes[i]; takes(w) {
			if w.Answered {
				m.echo(email, st, ss, w, c, now, "it has our write's status, and the write owed its echo")
			} else {
				m.maybeEcho(email, st, ss, w, c, now)
			}
			return true
		}
	}
	for i := range ss.Writes {
		w := &ss.Writes[i]
		if !candidate(w) || len(w.Maybes) == 0 || ev.IsResync() {
			continue // a reading says what shows, not what just happened
		}
		// A second event with the write's status. If the system showed something else in
		// between, the write landed after that: this is its echo, and the first was a person's.
		if !ss.changedSince(w.ID, w.Maybes[0].Seq, ev.At, ev.Status) {
			break
		}
		m.reclassify(email, st, ss, w, 0, now)
		if w = ss.openWrite(w.ID); w != nil {
			if w.Answered {
				m.echo(email, st, ss, w, c, now, "our write's status again, after the system showed another: our write landed last")
			} else {
				m.maybeEcho(email, st, ss, w, c, now)
			}
		}
		return true
	}
	if prev, _ := ss.statusAt(ev.At, ev.IsResync()); prev == ev.Status && !missed {
		m.record(email, now, c.Seq, Step{Kind: StepUnchanged, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(*ev), Summary: fmt.Sprintf("%s already showed %s; nothing changed", ev.System, m.statusByID(ev.System, ev.Status).Name)})
		report := *ev
		// Reported while a write is on its way, it may still tell that a state which
		// refuses the write is over (that state's own event may come late).
		ss.moved(ss.addMark(mark{At: ev.At, Status: ev.Status, Seq: c.Seq, Report: &report, Reading: ev.IsResync()}))
		return true
	}
	if ev.IsResync() {
		name := m.statusByID(ev.System, ev.Status).Name
		m.record(email, now, c.Seq, Step{Kind: StepMissed, System: ev.System, Status: name, Cause: m.describe(*ev),
			Summary: fmt.Sprintf("%s shows %s since %s, which no event told: a change missed while away, decided at its time",
				ev.System, name, stamp(ev.At))})
	}
	i := ss.addMark(mark{At: ev.At, Status: ev.Status, Seq: c.Seq, Reading: ev.IsResync()})
	ss.moved(i)
	defer m.rederive(email, st, ss, i+1, now)
	status := m.statusByID(ev.System, ev.Status)
	for i := 0; i < len(ss.Writes); i++ {
		w := &ss.Writes[i]
		switch {
		case w.Queued != "" && !isSystemState(status):
			// The vendor applied another status than the one it held for us.
			ss.closeWrite(w.ID)
			i--
		case w.Answered && !w.Unsure && w.Queued == "" && ev.At.After(w.AnsweredAt.Add(m.opts.ClockTolerance)):
			// A vendor reports a system's events in order: the echo of a write answered before
			// this change happened has come already (or the vendor sends none).
			ss.closeWrite(w.ID)
			i--
		}
	}
	return false
}

// repeats reports whether the timeline already holds the change ev reports: a mark the vendor
// dated (not one the engine estimated) with ev's status at ev's time.
func (ss *systemState) repeats(ev *presence.Event) bool {
	for i := len(ss.Timeline) - 1; i >= 0; i-- {
		mk := ss.Timeline[i]
		if mk.At.Before(ev.At) {
			return false
		}
		if mk.At.Equal(ev.At) && mk.Status == ev.Status && !mk.Estimated {
			return true
		}
	}
	return false
}

// missed reports whether ev is a reading that says its status was set after the newest thing
// the engine knows of the system: the vendor dates and marks it (a version), so somebody set
// it then — a change the engine missed, even when it is the status the engine last knew. Our
// own landings the engine only estimated get the clocks' tolerance.
func (m *Machine) missed(ss *systemState, ev *presence.Event) bool {
	if !ev.IsResync() || ev.Version == "" || len(ss.Timeline) == 0 {
		return false
	}
	last := ss.Timeline[len(ss.Timeline)-1]
	after := last.At
	if last.Estimated {
		after = after.Add(m.opts.ClockTolerance)
	}
	return ev.At.After(after)
}

// echo confirms c as the echo of w: the write landed at c's time.
func (m *Machine) echo(email string, st *agentState, ss *systemState, w *openWrite, c *change, now time.Time, why string) {
	m.Stats.Echoes.Add(1)
	ev := c.Event
	id := w.ID
	m.unmark(email, st, ss, id, now)
	m.mark(email, st, ss, mark{At: ev.At, Status: ev.Status, Write: id, Seq: c.Seq, Reading: ev.IsResync()}, now)
	ss.closeWrite(id)
	m.endsState(email, st, ss, c, now)
	name := m.statusByID(ev.System, ev.Status).Name
	m.record(email, now, c.Seq, Step{Kind: StepEcho, System: ev.System, Status: name, Cause: m.describe(ev),
		Summary: fmt.Sprintf("%s now shows %s: the echo of our write (%s); not evaluated again", ev.System, name, why)})
	m.noteCorrection(email, st, ss, ev.System, ev.Status, now, c.Seq)
}

// maybeEcho takes c for the echo of an unanswered write, until its answer or a later event says
// otherwise.
func (m *Machine) maybeEcho(email string, st *agentState, ss *systemState, w *openWrite, c *change, now time.Time) {
	m.Stats.Echoes.Add(1)
	w.Maybes = append(w.Maybes, *c)
	m.mark(email, st, ss, mark{At: c.Event.At, Status: c.Event.Status, Write: w.ID, Seq: c.Seq, Reading: c.Event.IsResync()}, now)
	defer m.endsState(email, st, ss, c, now)
	name := m.statusByID(c.Event.System, c.Event.Status).Name
	m.record(email, now, c.Seq, Step{Kind: StepEcho, System: c.Event.System, Status: name, Cause: m.describe(c.Event),
		Summary: fmt.Sprintf("%s now shows %s: taken for the echo of our write, which the vendor has not answered yet", c.Event.System, name)})
}

// endsState looks at the mark the echo c of our write left.
func (m *Machine) endsState(email string, st *agentState, ss *systemState, c *change, now time.Time) {
	for i, mk := range ss.Timeline {
		if mk.Seq == c.Seq && mk.Write != 0 {
			m.settleState(email, st, ss, i, now)
			return
		}
	}
}

// settleState keeps the history right about our landing at mark i: when it follows a state only
// the vendor ends, that state ended with it (a change of ours in the history); otherwise not.
func (m *Machine) settleState(email string, st *agentState, ss *systemState, i int, now time.Time) {
	mk := ss.Timeline[i]
	system := ""
	have := -1
	for j, h := range st.History {
		if h.Seq == mk.Seq && h.Event.Origin == presence.OriginSelf {
			have, system = j, h.Event.System
		}
	}
	for name, s := range st.Systems {
		if s == ss {
			system = name
		}
	}
	want := i > 0 && isSystemState(m.statusByID(system, ss.Timeline[i-1].Status))
	switch {
	case want && have < 0:
		m.decide(email, st, change{Seq: mk.Seq, Event: presence.Event{System: system, Agent: email,
			Type: presence.StatusChanged, Status: mk.Status, At: mk.At, Origin: presence.OriginSelf}}, now)
	case !want && have >= 0:
		st.History = append(st.History[:have:have], st.History[have+1:]...)
		m.refold(st)
		m.syncTargets(email, st, now)
	}
}

// reclassify turns the i-th event w had taken for its echo back into a person's change, decided
// at its own time.
func (m *Machine) reclassify(email string, st *agentState, ss *systemState, w *openWrite, i int, now time.Time) {
	e := w.Maybes[i]
	w.Maybes = append(w.Maybes[:i:i], w.Maybes[i+1:]...)
	if len(w.Maybes) == 0 {
		w.Maybes = nil
	}
	if m.handOver(st, ss, w, e, now) {
		return
	}
	repeat := false
	for i := range ss.Timeline {
		if mk := &ss.Timeline[i]; mk.Write == w.ID && mk.Seq == e.Seq {
			mk.Write = 0
			if ss.prevStatus(i) == mk.Status {
				report := e.Event
				mk.Report, repeat = &report, true
			}
		}
	}
	for j := range st.History {
		if h := st.History[j]; h.Seq == e.Seq && h.Event.Origin == presence.OriginSelf {
			st.History = append(st.History[:j:j], st.History[j+1:]...)
			m.refold(st)
			m.syncTargets(email, st, now)
			break
		}
	}
	m.Stats.Echoes.Add(-1)
	m.Stats.Reclassified.Add(1)
	name := m.statusByID(e.Event.System, e.Event.Status).Name
	if repeat {
		m.record(email, now, e.Seq, Step{Kind: StepReclassified, System: e.Event.System, Status: name, Cause: m.describe(e.Event),
			Summary: fmt.Sprintf("the %s reported at %s was not our write's echo, but the system showed it already: no change",
				name, stamp(e.Event.At))})
		return
	}
	m.record(email, now, e.Seq, Step{Kind: StepReclassified, System: e.Event.System, Status: name, Cause: m.describe(e.Event),
		Summary: fmt.Sprintf("the %s reported at %s was a person's change, not our write's echo; it is decided at its own time",
			name, stamp(e.Event.At))})
	m.decide(email, st, e, now)
}

// handOver gives e, which was not the echo of w, to another write of ours with its status whose
// answer was lost and which could have landed then: e is that write's echo. It reports whether
// one took it.
func (m *Machine) handOver(st *agentState, ss *systemState, w *openWrite, e change, now time.Time) bool {
	at := e.Event.At
	for j := range ss.Writes {
		u := &ss.Writes[j]
		if u.ID == w.ID || !u.Unsure || len(u.Maybes) > 0 || u.StatusID != e.Event.Status ||
			at.Before(u.SentAt.Add(-m.opts.ClockTolerance)) || at.After(u.SentAt.Add(m.opts.LandingWindow+m.opts.ClockTolerance)) {
			continue
		}
		m.unmark(st.Email, st, ss, u.ID, now) // a landing guessed for it, if any
		for k := range ss.Timeline {
			if mk := &ss.Timeline[k]; mk.Write == w.ID && mk.Seq == e.Seq {
				mk.Write = u.ID
			}
		}
		u.Maybes = []change{e}
		name := m.statusByID(e.Event.System, e.Event.Status).Name
		m.record(st.Email, now, e.Seq, Step{Kind: StepEcho, System: e.Event.System, Status: name, Cause: m.describe(e.Event),
			Summary: fmt.Sprintf("the %s reported at %s was not the echo of our latest write, but of an earlier one whose answer was lost",
				name, stamp(at))})
		return true
	}
	return false
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

// unlanded takes back the landings the engine guessed for writes whose answer was lost, once
// they could no longer have landed (the landing window is over) and no echo said they did: the
// system shows what it showed before. It returns when the next such guess runs out (zero when
// none is pending).
func (m *Machine) unlanded(st *agentState, ss *systemState, now time.Time) time.Time {
	var next time.Time
	for _, mk := range ss.Timeline {
		if !mk.Estimated || mk.Write == 0 {
			continue
		}
		w := ss.openWrite(mk.Write)
		if w == nil || !w.Unsure || len(w.Maybes) > 0 {
			continue // answered, or an event already told it landed
		}
		end := w.SentAt.Add(m.opts.LandingWindow + m.opts.ClockTolerance)
		if now.After(end) {
			m.unmark(st.Email, st, ss, w.ID, now)
			return m.unlanded(st, ss, now)
		}
		if next.IsZero() || end.Before(next) {
			next = end.Add(time.Nanosecond)
		}
	}
	return next
}

// moved notes that the mark at index i was added: when it is the newest, the system changed, and
// a write in flight may be refused for a state that is over already.
func (ss *systemState) moved(i int) {
	if i != len(ss.Timeline)-1 {
		return
	}
	ss.Moved = ss.InFlight != nil
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
	moved := ss.Moved
	ss.Moved = false
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
		if len(ow.Maybes) > 0 {
			m.record(w.Agent, now, w.CauseSeq, step)
			m.settle(st, ss, ow, w, r, now)
			return time.Time{}
		}
		m.land(st, ss, w, r, now)
		m.noteCorrection(w.Agent, st, ss, w.System, w.StatusID, now, w.CauseSeq)
	case deferred:
		m.refused(st, ss, ow, now)
		if ss.DeferredFor != w.StatusID {
			m.Stats.Deferred.Add(1)
		}
		quiet := ss.DeferredFor == w.StatusID
		ss.Deferred, ss.DeferredFor, ss.DeferredHead = d.Reason, w.StatusID, ss.head()
		switch {
		case moved:
			// The system changed while the write was on its way: try again now.
			ss.Deferred, retryAt = "", now
		case m.opts.DeferredRecheck > 0:
			ss.NextAttempt = now.Add(m.opts.DeferredRecheck)
			retryAt = ss.NextAttempt
		}
		if quiet {
			return retryAt // still deferred for the same reason: explained once
		}
		step.Kind, step.Summary = StepDeferred, fmt.Sprintf("%s cannot take %s now (%s); written when that ends", w.System, w.Status, d.Reason)
	case connector.IsPermanent(err):
		m.refused(st, ss, ow, now)
		m.fail(ss, w, err, &step)
	case connector.IsNotApplied(err):
		// The vendor certainly did not apply it: no echo will come.
		m.refused(st, ss, ow, now)
		retryAt = m.retry(ss, w, err, &step, now)
	case len(ow.Maybes) > 0:
		// The answer was lost, but an event with the write's status came before it: the
		// write landed, and that event is its echo (or a later one will show otherwise).
		ow.Answered, ow.AnsweredAt, ow.Unsure = true, now, true
		ss.Attempts, ss.NextAttempt = 0, time.Time{}
		for len(ow.Maybes) > 1 {
			// A write echoes once: without the receipt's version to say which, the first
			// is taken, and the others were people's.
			m.reclassify(w.Agent, st, ss, ow, len(ow.Maybes)-1, now)
		}
		step.Kind = StepWriteOK
		step.Summary = fmt.Sprintf("%s showed %s before answering the write; it landed", w.System, w.Status)
		step.Details = []string{"answer: " + err.Error()}
	default:
		// The write may have landed all the same (a timeout): its echo is still recognised
		// while it can have landed.
		ow.Answered, ow.AnsweredAt, ow.Unsure = true, now, true
		retryAt = m.retry(ss, w, err, &step, now)
	}
	m.record(w.Agent, now, w.CauseSeq, step)
	return retryAt
}

// retry schedules the next attempt of a write that failed with err, with the wait the vendor
// asked for or a backoff, or records it as failed once its attempts are spent. It returns when
// to try again (zero when not).
func (m *Machine) retry(ss *systemState, w Write, err error, step *Step, now time.Time) time.Time {
	ss.Attempts++
	if ss.Attempts >= m.opts.RetryBudget {
		m.fail(ss, w, err, step)
		return time.Time{}
	}
	m.Stats.Retries.Add(1)
	wait, ok := connector.RetryAfter(err)
	if !ok {
		wait = m.backoff(ss.Attempts)
	}
	ss.NextAttempt = now.Add(wait)
	step.Kind, step.Summary = StepRetry, fmt.Sprintf("%s refused %s: %v; retrying in %s", w.System, w.Status, err, wait)
	if !connector.IsNotApplied(err) {
		step.Summary = fmt.Sprintf("%s did not confirm %s: %v; it may have landed; retrying in %s", w.System, w.Status, err, wait)
	}
	return ss.NextAttempt
}

// refused forgets a write the vendor refused: it owes no echo, so an event taken for its echo
// was a person's change.
func (m *Machine) refused(st *agentState, ss *systemState, ow *openWrite, now time.Time) {
	for len(ow.Maybes) > 0 {
		m.reclassify(st.Email, st, ss, ow, 0, now)
	}
	m.unmark(st.Email, st, ss, ow.ID, now)
	ss.closeWrite(ow.ID)
}

// settle decides, once the vendor answered, which of the events taken for the write's echo is
// it. With a version, the one that carries it; the others were people's changes. Without, the
// one taken stays the echo unless a change followed it: the write's own event may then still
// come, and would show that it landed after that change.
func (m *Machine) settle(st *agentState, ss *systemState, ow *openWrite, w Write, r connector.Receipt, now time.Time) {
	if r.Version != "" {
		echo := -1
		for i, e := range ow.Maybes {
			if e.Event.Version == r.Version || e.Event.Version == "" && echo < 0 {
				echo = i
			}
		}
		for i := len(ow.Maybes) - 1; i >= 0; i-- {
			if i != echo {
				m.reclassify(st.Email, st, ss, ow, i, now)
			}
		}
		if echo >= 0 {
			ss.closeWrite(ow.ID)
			return
		}
		m.land(st, ss, w, r, now)
		m.noteCorrection(st.Email, st, ss, w.System, w.StatusID, now, w.CauseSeq)
		return
	}
	if !ss.changedSince(ow.ID, ow.Maybes[0].Seq, time.Time{}, w.StatusID) {
		ss.closeWrite(ow.ID)
	}
}

// land marks where an accepted write landed: at the receipt's time, or, when the vendor does not
// say, when it answered.
func (m *Machine) land(st *agentState, ss *systemState, w Write, r connector.Receipt, now time.Time) {
	at, est := r.At, r.At.IsZero()
	if est {
		at = now
		for _, mk := range ss.Timeline {
			if mk.Write != 0 && mk.Write != w.ID && mk.Status == w.StatusID && !mk.Estimated &&
				!mk.At.Before(w.SentAt.Add(-m.opts.ClockTolerance)) {
				// The system reported the status since the write went out, as the echo of an
				// earlier write of ours with it: that event may as well be this write's landing,
				// and no guess is placed over what followed it. Its own echo, if it comes, says.
				return
			}
		}
	}
	m.unmark(st.Email, st, ss, w.ID, now)
	m.mark(st.Email, st, ss, mark{At: at, Status: w.StatusID, Write: w.ID, Estimated: est}, now)
}

// mark adds mk to the system's timeline; the change that follows it may turn out to be a mere
// report, or a report a change.
func (m *Machine) mark(email string, st *agentState, ss *systemState, mk mark, now time.Time) {
	i := ss.addMark(mk)
	ss.moved(i)
	if st != nil {
		m.rederive(email, st, ss, i+1, now)
	}
}

// unmark removes the marks of our write id, and looks again at what followed them.
func (m *Machine) unmark(email string, st *agentState, ss *systemState, id int64, now time.Time) {
	for _, i := range ss.dropMarks(id) {
		m.rederive(email, st, ss, i, now)
	}
}

// rederive looks again at the person's mark at index i after the mark before it changed: a
// report that now follows another status is a change, decided in its place; a change that now
// follows its own status is a report, and leaves the history.
func (m *Machine) rederive(email string, st *agentState, ss *systemState, i int, now time.Time) {
	if i <= 0 || i >= len(ss.Timeline) || ss.Timeline[i].Seq == 0 {
		return
	}
	if !ss.Timeline[i].person() {
		m.settleState(email, st, ss, i, now)
		return
	}
	mk := &ss.Timeline[i]
	prev := ss.prevStatus(i)
	switch {
	case mk.Report != nil && mk.Status != prev:
		ev := *mk.Report
		mk.Report = nil
		m.record(email, now, mk.Seq, Step{Kind: StepLate, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
			Cause: m.describe(ev), Summary: fmt.Sprintf("%s at %s now follows another status (an earlier change arrived late): it is a change",
				m.describe(ev), stamp(ev.At))})
		m.decide(email, st, change{Seq: mk.Seq, Event: ev}, now)
	case mk.Report == nil && mk.Status == prev:
		for j := range st.History {
			if st.History[j].Seq != mk.Seq {
				continue
			}
			ev := st.History[j].Event
			mk.Report = &ev
			st.History = append(st.History[:j:j], st.History[j+1:]...)
			m.record(email, now, mk.Seq, Step{Kind: StepLate, System: ev.System, Status: m.statusByID(ev.System, ev.Status).Name,
				Cause: m.describe(ev), Summary: fmt.Sprintf("%s at %s now follows the same status (an earlier change arrived late): it changed nothing",
					m.describe(ev), stamp(ev.At))})
			m.refold(st)
			m.syncTargets(email, st, now)
			return
		}
	}
}

func (m *Machine) fail(ss *systemState, w Write, err error, step *Step) {
	m.Stats.Failed.Add(1)
	ss.Failed, ss.FailedFor = err.Error(), w.StatusID
	ss.Attempts, ss.NextAttempt = 0, time.Time{}
	step.Kind = StepFailed
	step.Summary = fmt.Sprintf("writing %s to %s failed: %v; retried on the next change", w.Status, w.System, err)
}
