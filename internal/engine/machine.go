// Package engine turns events into status writes: it recognises echoes of its own writes, keeps
// per agent and system the status the newest cause wants, overlays activities, plans writes
// within rate limits, and records every decision so explain can answer "why did my status
// change?".
//
// Machine is the deterministic core: no goroutines, no clock, no I/O but the store transaction it
// is handed. Engine runs a Machine for `serve`; the dryrun package (`omnipresence simulate`) drives one on a virtual clock.
package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
)

// Options tune a Machine. Zero values take the defaults.
type Options struct {
	// EchoWindow is how long after a write an event with the written status counts as its echo.
	EchoWindow time.Duration
	// RetryBudget is how many attempts a write gets before it is recorded as failed.
	RetryBudget int
	// BackoffBase and BackoffMax bound the exponential retry delay (with jitter).
	BackoffBase, BackoffMax time.Duration
	// DeferredRecheck, when positive, retries a deferred write after this long even if no event
	// from the system arrived (a browser bridge may connect without telling the vendor).
	DeferredRecheck time.Duration
	// Limits are per-system write budgets applied before a write goes out.
	Limits map[string]Limit
	// Seed seeds the retry jitter, for deterministic runs.
	Seed uint64
}

// Limit is a sustained write rate and a burst.
type Limit struct {
	PerSecond float64
	Burst     int
}

func (o *Options) defaults() {
	if o.EchoWindow <= 0 {
		o.EchoWindow = 30 * time.Second
	}
	if o.RetryBudget <= 0 {
		o.RetryBudget = 6
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 2 * time.Minute
	}
}

// Stats count what the machine decided; they feed metrics and simulate's summary.
type Stats struct {
	Events, Duplicates, Echoes, Writes, Deferred, Failed, Retries atomic.Int64
	Unmapped, UnknownAgent, UnknownStatus, UnknownSystem          atomic.Int64
	Stale, Superseded, NoPolicy                                   atomic.Int64
}

// Machine is the engine's decision core. It is not safe for concurrent use.
type Machine struct {
	cfg  *policy.Config
	opts Options
	rnd  *rand.Rand

	agents   map[string]*agentState
	byID     map[string]map[string]string // system → account id → email
	byEmail  map[string]map[string]string // system → email → account id
	limiters map[string]*rate.Limiter

	nextWrite int64
	dirty     map[string]bool
	records   []pendingRecord
	buf       []byte
	current   map[string]presence.Status
	extCalls  []ExtensionCall

	// Stats are updated as decisions are made.
	Stats Stats
}

type pendingRecord struct {
	agent    string
	at       time.Time
	eventSeq int64
	step     Step
}

// NewMachine returns a machine for cfg.
func NewMachine(cfg *policy.Config, opts Options) *Machine {
	opts.defaults()
	m := &Machine{
		cfg:      cfg,
		opts:     opts,
		rnd:      rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		agents:   map[string]*agentState{},
		byID:     map[string]map[string]string{},
		byEmail:  map[string]map[string]string{},
		limiters: map[string]*rate.Limiter{},
		dirty:    map[string]bool{},
	}
	for name, l := range opts.Limits {
		m.limiters[name] = rate.NewLimiter(rate.Limit(l.PerSecond), max(l.Burst, 1))
	}
	for _, name := range cfg.SystemNames {
		if accts := cfg.Systems[name].Accounts; accts != nil {
			m.SetAccounts(name, accts)
		}
	}
	return m
}

// SetAccounts replaces the account directory of a system (inline or pulled from the vendor).
func (m *Machine) SetAccounts(system string, accounts []presence.Account) {
	ids := make(map[string]string, len(accounts))
	emails := make(map[string]string, len(accounts))
	for _, a := range accounts {
		if a.Email == "" {
			continue
		}
		e := strings.ToLower(a.Email)
		ids[a.ID] = e
		emails[e] = a.ID
	}
	m.byID[system] = ids
	m.byEmail[system] = emails
}

// Ingest stores ev (deduplicated) in tx and applies it. It returns the agent to reconcile, or
// "" when nothing may need writing (duplicate, unknown agent, …).
func (m *Machine) Ingest(ctx context.Context, tx store.Tx, ev presence.Event, now time.Time) (string, error) {
	m.Stats.Events.Add(1)
	email, known := m.resolveAgent(ev.System, ev.Agent)
	body, err := appendEvent(nil, ev)
	if err != nil {
		return "", fmt.Errorf("encoding event: %w", err)
	}
	rec := store.Event{DedupeKey: ev.DedupeKey(), Agent: email, System: ev.System, Type: string(ev.Type), At: ev.At, Body: body}
	if !known {
		rec.Agent = ev.Agent
	}
	inserted, err := tx.InsertEvent(ctx, &rec)
	if err != nil {
		return "", err
	}
	if !inserted {
		m.Stats.Duplicates.Add(1)
		return "", nil
	}
	return m.apply(ev, email, known, rec.Seq, now), nil
}

func (m *Machine) apply(ev presence.Event, email string, known bool, seq int64, now time.Time) string {
	cause := ev.Describe()
	sys := m.cfg.Systems[ev.System]
	if sys == nil {
		m.Stats.UnknownSystem.Add(1)
		m.record(ev.Agent, now, seq, Step{Kind: "unknown_system", System: ev.System, Cause: cause,
			Summary: fmt.Sprintf("event from unknown system %q ignored", ev.System)})
		return ""
	}
	if !known {
		m.Stats.UnknownAgent.Add(1)
		m.record(ev.Agent, now, seq, Step{Kind: "unknown_agent", System: ev.System, Cause: cause,
			Summary: fmt.Sprintf("no agent has account %q in %s; event ignored", ev.Agent, ev.System)})
		return ""
	}
	st := m.agent(email)
	st.UpdatedAt = now
	m.dirty[email] = true
	pol := m.cfg.PolicyFor(email)
	ss := st.system(ev.System)
	ss.expirePending(now, m.opts.EchoWindow)

	var newStatus, oldStatus presence.Status
	current := m.currentStatuses(st)
	if ev.ChangesStatus() {
		status, ok := m.resolveStatus(sys, ev)
		if ev.Type != presence.Logout {
			cause = ev.System + " " + string(ev.Type) + " " + status.Name
		}
		if !ok {
			m.Stats.UnknownStatus.Add(1)
			m.record(email, now, seq, Step{Kind: "unknown_status", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("status %q is not in %s's catalog; recorded, maps cannot use it", status.Name, ev.System)})
		}
		if ev.At.Before(ss.ObservedAt) {
			m.Stats.Stale.Add(1)
			echo := ss.takeEcho(status.ID, ev.At)
			if echo {
				m.Stats.Echoes.Add(1)
			}
			m.record(email, now, seq, Step{Kind: "stale", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("%s at %s is older than what %s showed since %s; kept as history only",
					status.Name, stamp(ev.At), ev.System, stamp(ss.ObservedAt)),
				Details: echoDetail(echo)})
			return ""
		}
		if ev.Origin == presence.OriginSelf || ss.takeEcho(status.ID, ev.At) {
			m.Stats.Echoes.Add(1)
			ss.Observed, ss.ObservedAt = status.ID, ev.At
			if ss.Deferred != "" && ss.Observed == ss.DeferredFor {
				ss.Deferred, ss.DeferredFor = "", ""
			}
			m.record(email, now, seq, Step{Kind: "echo", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("%s now shows %s: the echo of our write; not evaluated again", ev.System, status.Name)})
			return email
		}
		// A vendor delivers a system's events in order, so the echo of every write it answered
		// before this event happened has already come: stop waiting for it.
		ss.retirePending(ev.At)
		if ev.IsResync() && ss.Observed == "" {
			ss.Observed, ss.ObservedAt = status.ID, ev.At
			m.record(email, now, seq, Step{Kind: "baseline", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("%s shows %s (first reading); nothing to decide", ev.System, status.Name)})
			return ""
		}
		if status.ID == ss.Observed {
			// Picking the status a system already shows changes nothing, so it decides nothing.
			ss.ObservedAt = ev.At
			m.record(email, now, seq, Step{Kind: "unchanged", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("%s already showed %s; nothing changed", ev.System, status.Name)})
			return email
		}
		oldStatus = m.statusByID(ev.System, ss.Observed)
		newStatus = status
		previous := ss.Observed
		ss.Observed, ss.ObservedAt = status.ID, ev.At
		if ss.Deferred != "" && isSystemState(oldStatus) && !isSystemState(status) {
			m.record(email, now, seq, Step{Kind: "state_ended", System: ev.System, Status: status.Name, Cause: cause,
				Summary: fmt.Sprintf("%s left %s; the deferred write of %s goes out now", ev.System, oldStatus.Name,
					m.statusByID(ev.System, ss.DeferredFor).Name)})
			ss.Deferred = ""
			return email
		}
		if isSystemState(status) {
			if ss.Target == previous && !ss.writesOutstanding() {
				ss.Target = ""
			}
		} else {
			m.manualChange(email, st, ss, ev, cause, status, seq, pol, now)
		}
	} else {
		newStatus = current[ev.System]
		oldStatus = newStatus
	}

	if pol == nil {
		m.Stats.NoPolicy.Add(1)
		m.record(email, now, seq, Step{Kind: "event", System: ev.System, Status: newStatus.Name, Cause: cause,
			Summary: fmt.Sprintf("%s: no policy applies to %s", cause, email)})
		return email
	}
	eval := pol.Evaluate(policy.Input{Event: withAgent(ev, email), New: newStatus, Old: oldStatus, Current: current})
	step := Step{Kind: "event", System: ev.System, Status: newStatus.Name, Cause: cause, Summary: cause}
	for _, s := range eval.Steps {
		mark := "·"
		if s.Matched {
			mark = "✓"
		}
		step.Details = append(step.Details, fmt.Sprintf("%s %s: %s", mark, s.Rule, s.Detail))
	}
	if eval.Unmapped {
		m.Stats.Unmapped.Add(1)
		step.Kind = "unmapped"
		step.Summary = cause + ": no map, rule or activity matched; no change"
	}
	m.record(email, now, seq, step)

	for _, in := range eval.Intents {
		m.applyIntent(email, st, in, ev, cause, seq, pol, now)
	}
	for _, hit := range eval.Ends {
		m.endActivity(email, st, hit, ev, cause, seq, now)
	}
	for _, hit := range eval.Starts {
		m.startActivity(email, st, hit, ev, cause, seq, now)
	}
	if pol.Extension != nil && ev.ChangesStatus() {
		m.queueExtension(email, st, pol, ev, oldStatus, newStatus, cause, seq)
	}
	return email
}

// manualChange handles a status the agent (or their vendor) chose on a system.
func (m *Machine) manualChange(email string, st *agentState, ss *systemState, ev presence.Event, cause string,
	status presence.Status, seq int64, pol *policy.Policy, now time.Time) {
	if !m.newer(ev.At, ev.System, ss, pol) {
		m.record(email, now, seq, Step{Kind: "superseded", System: ev.System, Status: status.Name, Cause: cause,
			Summary: fmt.Sprintf("%s is older than the cause in force (%s at %s); %s goes back to %s",
				status.Name, ss.CauseText, stamp(ss.CauseAt), ev.System, m.statusByID(ev.System, ss.Target).Name)})
		m.Stats.Superseded.Add(1)
		return
	}
	m.setTarget(ss, status.ID, ev.At, ev.System, "manual change", cause, seq, now)
	if ss.Overlay != nil && !ss.Overlay.Released && m.overlaid(st, ev.System) {
		ss.Overlay.Released = true
		m.record(email, now, seq, Step{Kind: "activity_released", System: ev.System, Status: status.Name, Cause: cause,
			Summary: fmt.Sprintf("changed by hand during an activity: %s stays when the activity ends", status.Name)})
	}
}

func (m *Machine) applyIntent(email string, st *agentState, in policy.Intent, ev presence.Event, cause string,
	seq int64, pol *policy.Policy, now time.Time) {
	ts := st.system(in.System)
	if _, ok := m.account(in.System, email); !ok {
		m.record(email, now, seq, Step{Kind: "no_account", System: in.System, Status: in.Status.Name, Rule: in.Rule, Cause: cause,
			Summary: fmt.Sprintf("%s has no account in %s; %s not applied", email, in.System, in.Status.Name)})
		return
	}
	if ts.Overlay != nil && !ts.Overlay.Released && m.overlaid(st, in.System) {
		if !ev.At.Before(ts.Overlay.BaseAt) {
			ts.Overlay.Base, ts.Overlay.BaseAt, ts.Overlay.BaseWhy = in.Status.ID, ev.At, in.Rule
		}
		m.record(email, now, seq, Step{Kind: "held", System: in.System, Status: in.Status.Name, Rule: in.Rule, Cause: cause,
			Summary: fmt.Sprintf("%s should show %s, but an activity covers it; applied when the activity ends", in.System, in.Status.Name)})
		return
	}
	if !m.newer(ev.At, ev.System, ts, pol) {
		m.Stats.Superseded.Add(1)
		m.record(email, now, seq, Step{Kind: "superseded", System: in.System, Status: in.Status.Name, Rule: in.Rule, Cause: cause,
			Summary: fmt.Sprintf("%s → %s is older than the cause in force on %s (%s at %s); ignored",
				in.Rule, in.Status.Name, in.System, ts.CauseText, stamp(ts.CauseAt))})
		return
	}
	m.setTarget(ts, in.Status.ID, ev.At, ev.System, in.Rule, cause, seq, now)
	m.record(email, now, seq, Step{Kind: "intent", System: in.System, Status: in.Status.Name, Rule: in.Rule, Cause: cause,
		Summary: fmt.Sprintf("%s should show %s (%s)", in.System, in.Status.Name, in.Rule)})
}

func (m *Machine) startActivity(email string, st *agentState, hit policy.ActivityHit, ev presence.Event, cause string, seq int64, now time.Time) {
	for _, inst := range st.Activities {
		if inst.Name == hit.Activity.Name && inst.Key == hit.Key {
			m.record(email, now, seq, Step{Kind: "activity", Rule: hit.Activity.Name, Cause: cause,
				Summary: fmt.Sprintf("%s %s is already running", hit.Activity.Name, hit.Key)})
			return
		}
	}
	inst := &activityInstance{Name: hit.Activity.Name, Key: hit.Key, Since: ev.At, Statuses: map[string]string{}}
	var names []string
	for sys, status := range hit.Activity.Set {
		if _, ok := m.account(sys, email); !ok {
			continue
		}
		inst.Statuses[sys] = status.ID
		names = append(names, sys)
	}
	sort.Strings(names)
	for _, sys := range names {
		ts := st.system(sys)
		if ts.Overlay == nil || (ts.Overlay.Released && !m.overlaid(st, sys)) {
			base := ts.Target
			if base == "" {
				base = ts.Observed
			}
			ts.Overlay = &overlay{Base: base, BaseAt: ts.CauseAt, BaseWhy: ts.CauseRule}
		}
		if ts.Overlay.Released {
			continue
		}
		m.setTarget(ts, inst.Statuses[sys], ev.At, ev.System, hit.Activity.Name, cause, seq, now)
	}
	st.Activities = append(st.Activities, inst)
	m.record(email, now, seq, Step{Kind: "activity_start", Rule: hit.Activity.Name, Cause: cause,
		Summary: fmt.Sprintf("%s started%s: %s", hit.Activity.Name, keySuffix(hit.Key), m.describeSet(inst.Statuses))})
}

func (m *Machine) endActivity(email string, st *agentState, hit policy.ActivityHit, ev presence.Event, cause string, seq int64, now time.Time) {
	idx := -1
	for i, inst := range st.Activities {
		if inst.Name == hit.Activity.Name && (hit.Key == "" || inst.Key == hit.Key) {
			idx = i
			break
		}
	}
	if idx < 0 {
		m.record(email, now, seq, Step{Kind: "activity", Rule: hit.Activity.Name, Cause: cause,
			Summary: fmt.Sprintf("%s ended%s, but it was not running; nothing to restore", hit.Activity.Name, keySuffix(hit.Key))})
		return
	}
	inst := st.Activities[idx]
	st.Activities = append(st.Activities[:idx:idx], st.Activities[idx+1:]...)
	if len(st.Activities) == 0 {
		st.Activities = nil
	}
	m.record(email, now, seq, Step{Kind: "activity_end", Rule: inst.Name, Cause: cause,
		Summary: fmt.Sprintf("%s ended%s", inst.Name, keySuffix(inst.Key))})
	systems := make([]string, 0, len(inst.Statuses))
	for sys := range inst.Statuses {
		systems = append(systems, sys)
	}
	sort.Strings(systems)
	for _, sys := range systems {
		ts := st.system(sys)
		ov := ts.Overlay
		if ov == nil {
			continue
		}
		if latest := m.latestCovering(st, sys); latest != nil {
			if !ov.Released {
				m.setTarget(ts, latest.Statuses[sys], ev.At, ev.System, latest.Name, cause, seq, now)
			}
			continue
		}
		ts.Overlay = nil
		switch {
		case ov.Released:
			m.record(email, now, seq, Step{Kind: "restore", System: sys, Rule: inst.Name + " restore", Cause: cause,
				Summary: fmt.Sprintf("%s keeps %s: it was changed by hand during the activity", sys, m.statusByID(sys, ts.Observed).Name)})
		case ov.Base == "":
			m.record(email, now, seq, Step{Kind: "restore", System: sys, Rule: inst.Name + " restore", Cause: cause,
				Summary: fmt.Sprintf("%s had no known status before the activity; nothing to restore", sys)})
		default:
			m.setTarget(ts, ov.Base, ev.At, ev.System, inst.Name+" restore", cause, seq, now)
			name := m.statusByID(sys, ov.Base).Name
			m.record(email, now, seq, Step{Kind: "restore", System: sys, Status: name, Rule: inst.Name + " restore", Cause: cause,
				Summary: fmt.Sprintf("%s goes back to %s, the status before the activity", sys, name)})
		}
	}
}

// latestCovering returns the newest running activity that covers sys.
func (m *Machine) latestCovering(st *agentState, sys string) *activityInstance {
	for i := len(st.Activities) - 1; i >= 0; i-- {
		if _, ok := st.Activities[i].Statuses[sys]; ok {
			return st.Activities[i]
		}
	}
	return nil
}

func (m *Machine) overlaid(st *agentState, sys string) bool { return m.latestCovering(st, sys) != nil }

// newer reports whether a cause at `at` from system `from` beats the cause in force on ss:
// later wins; inside the same instant the policy's master wins, otherwise the later arrival.
func (m *Machine) newer(at time.Time, from string, ss *systemState, pol *policy.Policy) bool {
	if ss.CauseAt.IsZero() || at.After(ss.CauseAt) {
		return true
	}
	if at.Before(ss.CauseAt) {
		return false
	}
	if pol != nil && pol.Master != "" && from != pol.Master && ss.CauseSystem == pol.Master {
		return false
	}
	return true
}

func (m *Machine) setTarget(ss *systemState, statusID string, at time.Time, from, rule, cause string, seq int64, now time.Time) {
	if ss.Target != statusID {
		ss.TargetSince = now
		ss.Attempts, ss.NextAttempt = 0, time.Time{}
		ss.Failed, ss.FailedFor = "", ""
		if ss.DeferredFor != statusID {
			ss.Deferred, ss.DeferredFor = "", ""
		}
	}
	ss.Target = statusID
	ss.CauseAt, ss.CauseSystem, ss.CauseRule, ss.CauseText, ss.CauseSeq = at, from, rule, cause, seq
}

// Plan returns the writes due now for an agent, marks them in flight, and returns when the agent
// should be looked at again (zero when no wait is pending).
func (m *Machine) Plan(agent string, now time.Time) ([]Write, time.Time) {
	st := m.agents[agent]
	if st == nil {
		return nil, time.Time{}
	}
	pol := m.cfg.PolicyFor(agent)
	var writes []Write
	var wake time.Time
	later := func(t time.Time) {
		if wake.IsZero() || t.Before(wake) {
			wake = t
		}
	}
	for _, name := range m.cfg.SystemNames {
		ss := st.Systems[name]
		if ss == nil || !ss.needsWrite() || ss.InFlight != nil {
			continue
		}
		if ss.Failed != "" && ss.FailedFor == ss.Target {
			continue
		}
		if ss.Deferred != "" && ss.DeferredFor == ss.Target {
			if m.opts.DeferredRecheck <= 0 {
				continue
			}
			if now.Before(ss.NextAttempt) {
				later(ss.NextAttempt)
				continue
			}
		} else if now.Before(ss.NextAttempt) {
			later(ss.NextAttempt)
			continue
		}
		if pol != nil && pol.Debounce > 0 {
			if due := ss.TargetSince.Add(pol.Debounce); now.Before(due) {
				later(due)
				continue
			}
		}
		account, ok := m.account(name, agent)
		if !ok {
			continue
		}
		if lim := m.limiters[name]; lim != nil {
			r := lim.ReserveN(now, 1)
			if d := r.DelayFrom(now); d > 0 {
				r.CancelAt(now)
				later(now.Add(d))
				continue
			}
		}
		status := m.statusByID(name, ss.Target)
		m.nextWrite++
		w := Write{ID: m.nextWrite, Agent: agent, System: name, Account: account, StatusID: status.ID, Status: status.Name,
			SentAt: now, Attempt: ss.Attempts + 1, Rule: ss.CauseRule, Cause: ss.CauseText, CauseSeq: ss.CauseSeq}
		ss.InFlight = &w
		writes = append(writes, w)
		m.dirty[agent] = true
		m.record(agent, now, ss.CauseSeq, Step{Kind: "write", System: name, Status: status.Name, Rule: w.Rule, Cause: w.Cause,
			Summary: fmt.Sprintf("writing %s to %s (attempt %d)", status.Name, name, w.Attempt)})
	}
	return writes, wake
}

// Outcome records the vendor's answer to a write. It returns the time the agent should be
// looked at again for a retry (zero when none is needed beyond the usual reconcile).
func (m *Machine) Outcome(w Write, err error, now time.Time) time.Time {
	st := m.agents[w.Agent]
	if st == nil {
		return time.Time{}
	}
	ss := st.system(w.System)
	if ss.InFlight == nil || ss.InFlight.ID != w.ID {
		return time.Time{}
	}
	inf := ss.InFlight
	ss.InFlight = nil
	m.dirty[w.Agent] = true
	step := Step{System: w.System, Status: w.Status, Rule: w.Rule, Cause: w.Cause}
	var retryAt time.Time
	switch d, deferred := connector.IsDeferred(err); {
	case err == nil:
		m.Stats.Writes.Add(1)
		// The vendor took the write. If its echo came and a change followed (a vendor reports a
		// system's events in order), that change is what it shows and the write has nothing
		// more to say. Otherwise it shows the write now, even over a change a person made while
		// it was in flight (a corrective write follows), and the write's own event is still
		// expected even if an event with its status was taken for the echo (that one may have
		// been a person's): the entry lasts until a later change or the echo window.
		if !inf.Echoed || !ss.ObservedAt.After(inf.EchoedAt) {
			ss.Pending = append(ss.Pending, pendingWrite{StatusID: w.StatusID, SentAt: now})
			ss.Observed = w.StatusID
		}
		// An event the vendor dates before this write was sent describes the system before it.
		if ss.ObservedAt.Before(w.SentAt) {
			ss.ObservedAt = w.SentAt
		}
		ss.Attempts, ss.NextAttempt = 0, time.Time{}
		ss.Deferred, ss.DeferredFor, ss.Failed, ss.FailedFor = "", "", "", ""
		step.Kind, step.Summary = "write_ok", fmt.Sprintf("%s accepted %s", w.System, w.Status)
	case deferred:
		if ss.DeferredFor != w.StatusID {
			m.Stats.Deferred.Add(1)
		}
		ss.Deferred, ss.DeferredFor = d.Reason, w.StatusID
		if m.opts.DeferredRecheck > 0 {
			ss.NextAttempt = now.Add(m.opts.DeferredRecheck)
			retryAt = ss.NextAttempt
		}
		step.Kind, step.Summary = "deferred", fmt.Sprintf("%s cannot take %s now (%s); written when that ends", w.System, w.Status, d.Reason)
	case connector.IsPermanent(err):
		m.fail(ss, w, err, &step)
	default:
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
		step.Kind, step.Summary = "retry", fmt.Sprintf("%s refused %s: %v; retrying in %s", w.System, w.Status, err, wait)
	}
	m.record(w.Agent, now, w.CauseSeq, step)
	return retryAt
}

func (m *Machine) fail(ss *systemState, w Write, err error, step *Step) {
	m.Stats.Failed.Add(1)
	ss.Failed, ss.FailedFor = err.Error(), w.StatusID
	ss.Attempts, ss.NextAttempt = 0, time.Time{}
	step.Kind = "failed"
	step.Summary = fmt.Sprintf("writing %s to %s failed: %v; retried on the next change", w.Status, w.System, err)
}

// backoff is base·2^(attempt-1), capped, with ±20% jitter.
func (m *Machine) backoff(attempt int) time.Duration {
	d := m.opts.BackoffBase << min(attempt-1, 30)
	if d <= 0 || d > m.opts.BackoffMax {
		d = m.opts.BackoffMax
	}
	jitter := 0.8 + 0.4*m.rnd.Float64()
	return time.Duration(float64(d) * jitter)
}

func (m *Machine) agent(email string) *agentState {
	st := m.agents[email]
	if st == nil {
		st = &agentState{Email: email, Systems: map[string]*systemState{}}
		m.agents[email] = st
	}
	return st
}

func (m *Machine) resolveAgent(system, raw string) (string, bool) {
	if strings.Contains(raw, "@") {
		return strings.ToLower(raw), true
	}
	if email, ok := m.byID[system][raw]; ok {
		return email, true
	}
	return "", false
}

// account returns an agent's account id in a system; without a directory the email is the id.
func (m *Machine) account(system, email string) (string, bool) {
	dir, ok := m.byEmail[system]
	if !ok {
		return email, true
	}
	id, ok := dir[email]
	return id, ok
}

func (m *Machine) resolveStatus(sys *policy.System, ev presence.Event) (presence.Status, bool) {
	raw := ev.Status
	if ev.Type == presence.Logout {
		raw = presence.OfflineName
	}
	if sys.Catalog == nil {
		return presence.Status{ID: raw, Name: raw, Settable: true}, true
	}
	if s, ok := sys.Catalog.Resolve(raw); ok {
		return s, true
	}
	if ev.Type == presence.Logout {
		return presence.Status{ID: raw, Name: raw, Category: presence.CategoryOffline, Settable: true}, true
	}
	return presence.Status{ID: raw, Name: raw}, false
}

// statusByID names a status id of a system; unknown ids name themselves.
func (m *Machine) statusByID(system, id string) presence.Status {
	if id == "" {
		return presence.Status{}
	}
	if sys := m.cfg.Systems[system]; sys != nil && sys.Catalog != nil {
		if s, ok := sys.Catalog.ByID(id); ok {
			return s
		}
	}
	return presence.Status{ID: id, Name: id, Settable: true}
}

// currentStatuses returns what each system shows; the map is reused by the next call.
func (m *Machine) currentStatuses(st *agentState) map[string]presence.Status {
	if m.current == nil {
		m.current = map[string]presence.Status{}
	}
	out := m.current
	clear(out)
	for name, ss := range st.Systems {
		if ss.Observed != "" {
			out[name] = m.statusByID(name, ss.Observed)
		}
	}
	return out
}

func (m *Machine) describeSet(statuses map[string]string) string {
	parts := make([]string, 0, len(statuses))
	for sys, id := range statuses {
		parts = append(parts, sys+" → "+m.statusByID(sys, id).Name)
	}
	sort.Strings(parts)
	if len(parts) == 0 {
		return "no system to cover"
	}
	return strings.Join(parts, ", ")
}

func (m *Machine) record(agent string, at time.Time, eventSeq int64, s Step) {
	s.At = at
	s.EventSeq = eventSeq
	m.records = append(m.records, pendingRecord{agent: agent, at: at, eventSeq: eventSeq, step: s})
}

func isSystemState(s presence.Status) bool {
	return s.ID != "" && (s.Category == presence.CategorySystem || !s.Settable)
}

func withAgent(ev presence.Event, email string) presence.Event {
	ev.Agent = email
	return ev
}

func keySuffix(key string) string {
	if key == "" {
		return ""
	}
	return " (" + key + ")"
}

func echoDetail(echo bool) []string {
	if echo {
		return []string{"it matched a write of ours, which is now confirmed"}
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
