// Package engine turns events into status writes: it recognises echoes of its own writes, keeps
// per agent the changes people and vendors made and the status the policy wants every system
// to show after them, overlays activities, plans writes within rate limits, and records every
// decision so explain can answer "why did my status change?".
//
// Machine is the deterministic core: no goroutines, no clock, no I/O but the store transaction it
// is handed. Engine runs a Machine for `serve`; the dryrun package (`omnipresence simulate`)
// drives one on a virtual clock.
package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
)

// Options tune a Machine. Zero values take the defaults.
type Options struct {
	// EchoWindow is how long after a write's answer its echo is still expected.
	EchoWindow time.Duration
	// LandingWindow bounds when a write whose answer did not come (or was an error after
	// which it may have landed) can have landed: within this long after it was sent, the
	// write timeout (default EchoWindow). An event dated later is not its echo.
	LandingWindow time.Duration
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
	// MaxSkew is how far ahead of the clock an event may be dated; one dated later is taken at
	// its receive time (default 5 minutes).
	MaxSkew time.Duration
	// HistoryWindow is how much vendor time of an agent's changes is kept so that a change
	// arriving late is decided in its place (default 15 minutes); MaxHistory caps the number
	// kept (default 64). Older changes are judged against the causes in force.
	HistoryWindow time.Duration
	MaxHistory    int
	// ClockTolerance is how far the vendors' clocks may be off the engine's when an event's
	// vendor time is compared with when the engine got a write's answer (the service uses a
	// second; the dry run's clocks are one).
	ClockTolerance time.Duration
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
	if o.LandingWindow <= 0 {
		o.LandingWindow = o.EchoWindow
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
	if o.MaxSkew <= 0 {
		o.MaxSkew = 5 * time.Minute
	}
	if o.HistoryWindow <= 0 {
		o.HistoryWindow = 15 * time.Minute
	}
	if o.MaxHistory <= 0 {
		o.MaxHistory = 64
	}
}

// minHistory is how many changes an agent keeps whatever their age.
const minHistory = 4

// Stats count what the machine decided; they feed metrics and simulate's summary.
type Stats struct {
	Events, Duplicates, Echoes, Writes, Deferred, Failed, Retries atomic.Int64
	Unmapped, UnknownAgent, UnknownStatus, UnknownSystem          atomic.Int64
	Stale, Superseded, NoPolicy                                   atomic.Int64
	FutureDated, Reclassified, Corrections                        atomic.Int64
}

// Machine is the engine's decision core. It is not safe for concurrent use.
type Machine struct {
	cfg  *policy.Config
	opts Options
	rnd  *rand.Rand

	agents  map[string]*agentState
	byID    map[string]map[string]string // system → account id → email
	byEmail map[string]map[string]string // system → email → account id
	// awaiting holds the systems whose account directory is still to be loaded: nothing is
	// written to them until it is.
	awaiting map[string]bool
	limiters map[string]*rate.Limiter

	nextWrite int64
	dirty     map[string]bool
	records   []pendingRecord
	current   map[string]presence.Status
	extCalls  []ExtensionCall
	// stateBuf and stateScratch are Flush's scratch space for encoding agent states, stepBuf
	// for the decision records.
	stateBuf     []byte
	stateScratch stateScratch
	stepBuf      []byte

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
		awaiting: map[string]bool{},
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

// AwaitAccounts says the account directory of system will be loaded (SetAccounts): until then
// nothing is written to it, since only its own account ids may address its vendor.
func (m *Machine) AwaitAccounts(system string) {
	if _, loaded := m.byEmail[system]; !loaded {
		m.awaiting[system] = true
	}
}

// SetAccounts replaces the account directory of a system (inline or pulled from the vendor) and
// decides every agent again, since who has an account may have changed.
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
	// The vendor's teams (CXone's) place agents under policies that name them.
	m.cfg.SetAccountTeams(system, accounts)
	delete(m.awaiting, system)
	for email, st := range m.agents {
		m.refold(st)
		m.syncTargets(email, st, st.UpdatedAt)
		m.dirty[email] = true
	}
}

// Ingest stores ev (deduplicated) in tx and applies it. It returns the agent to reconcile, or
// "" when nothing may need writing (duplicate, unknown agent, …).
func (m *Machine) Ingest(ctx context.Context, tx store.Tx, ev presence.Event, now time.Time) (string, error) {
	var one [1]storedEvent
	if err := m.storeEvents(ctx, tx, []presence.Event{ev}, one[:]); err != nil {
		return "", err
	}
	return m.applyStored(&one[0], now), nil
}

func (m *Machine) apply(ev presence.Event, email string, known bool, seq int64, now time.Time) string {
	sys := m.cfg.Systems[ev.System]
	if sys == nil {
		m.Stats.UnknownSystem.Add(1)
		m.record(ev.Agent, now, seq, Step{Kind: StepUnknownSystem, System: ev.System, Cause: ev.Describe(),
			Summary: fmt.Sprintf("event from unknown system %q ignored", ev.System)})
		return ""
	}
	if !known {
		m.Stats.UnknownAgent.Add(1)
		m.record(ev.Agent, now, seq, Step{Kind: StepUnknownAgent, System: ev.System, Cause: ev.Describe(),
			Summary: fmt.Sprintf("no agent has account %q in %s; event ignored", ev.Agent, ev.System)})
		return ""
	}
	st := m.agent(email)
	st.UpdatedAt = now
	m.dirty[email] = true
	ev.Agent = email
	if ev.At.After(now.Add(m.opts.MaxSkew)) {
		m.Stats.FutureDated.Add(1)
		m.record(email, now, seq, Step{Kind: StepFutureDated, System: ev.System, Cause: ev.Describe(),
			Summary: fmt.Sprintf("%s is dated %s, %s ahead of the clock; taken at its receive time %s",
				ev.Describe(), stamp(ev.At), ev.At.Sub(now).Round(time.Second), stamp(now))})
		ev.At = now
	}
	if ev.IsResync() && ev.Type == presence.StatusChanged && sys.OfflineLogsOut() {
		if s, _ := m.resolveStatus(sys, ev); s.Name == presence.OfflineName {
			ev.Type, ev.Status = presence.Logout, "" // on this system, showing Offline means logged out
		}
	}
	c := change{Seq: seq, Event: ev}
	if ev.ChangesStatus() {
		status, known := m.resolveStatus(sys, ev)
		c.Event.Status = status.ID
		ss := st.system(ev.System)
		if ev.IsResync() && ev.At.IsZero() {
			// The vendor does not date its reading: it is no older than what the engine knew.
			c.Event.At = ss.observedAt()
		}
		m.expireWrites(ss, now)
		if m.observe(email, st, ss, &c, now) {
			return email
		}
		if !known {
			m.Stats.UnknownStatus.Add(1)
			m.record(email, now, seq, Step{Kind: StepUnknownStatus, System: ev.System, Status: status.Name, Cause: m.describe(c.Event),
				Summary: fmt.Sprintf("status %q is not in %s's catalog; taken as a person's choice, which maps cannot use", status.Name, ev.System)})
		}
	}
	m.decide(email, st, c, now)
	return email
}

// decide puts a change into the agent's history at its place and decides again what every
// system should show.
func (m *Machine) decide(email string, st *agentState, c change, now time.Time) {
	pol := m.cfg.PolicyFor(email)
	rec := func(s Step) {
		if s.Kind == StepLate && c.Event.Origin == presence.OriginSelf {
			return // our own write's landing: placing it is bookkeeping, not news
		}
		m.record(email, now, c.Seq, s)
	}
	h := st.History
	pos := len(h)
	for pos > 0 && historyLess(pol, &c, &h[pos-1]) {
		pos--
	}
	if st.fold == nil {
		m.refold(st)
	}
	switch {
	case st.Base != nil && pos == 0 && c.Event.At.Before(st.BaseAt):
		m.Stats.Stale.Add(1)
		rec(Step{Kind: StepLate, System: c.Event.System, Cause: m.describe(c.Event),
			Summary: fmt.Sprintf("%s happened at %s, before the changes still kept; it is judged against the causes in force",
				m.describe(c.Event), stamp(c.Event.At))})
		fd := folder{m: m, email: email, pol: pol, f: st.Base, rec: rec, judged: true}
		fd.apply(&c)
		m.refold(st)
	case pos == len(h):
		fd := folder{m: m, email: email, pol: pol, f: st.fold, rec: rec}
		fd.apply(&c)
		st.History = append(st.History, c)
	default:
		m.Stats.Stale.Add(1)
		rec(Step{Kind: StepLate, System: c.Event.System, Cause: m.describe(c.Event),
			Summary: fmt.Sprintf("%s happened at %s, before %d change(s) already decided; it takes its place and they are decided again",
				m.describe(c.Event), stamp(c.Event.At), len(h)-pos)})
		st.History = append(h[:pos:pos], append([]change{c}, h[pos:]...)...)
		fd := folder{m: m, email: email, pol: pol, f: st.Base.clone()}
		var intents []decided
		for i := range st.History {
			fd.rec = nil
			if i == pos {
				fd.rec = rec
			}
			fd.apply(&st.History[i])
			if i == pos {
				intents = fd.intents
			}
		}
		st.fold = fd.f
		for _, d := range intents {
			fs := st.fold.Systems[d.system]
			if fs != nil && fs.Cause.Seq != c.Seq {
				m.Stats.Superseded.Add(1)
				rec(Step{Kind: StepSuperseded, System: d.system, Status: m.statusByID(d.system, d.status).Name, Rule: d.rule,
					Cause: m.describe(c.Event), Summary: fmt.Sprintf("%s → %s is older than the cause in force on %s (%s at %s)",
						d.rule, m.statusByID(d.system, d.status).Name, d.system, fs.Cause.Text, stamp(fs.Cause.At))})
			}
		}
	}
	m.syncTargets(email, st, now)
	m.prune(st)
}

// syncTargets copies the policy's targets to the systems' bookkeeping; a new target starts
// its writes afresh.
func (m *Machine) syncTargets(email string, st *agentState, now time.Time) {
	if st.fold == nil {
		return
	}
	for name, ss := range st.Systems {
		if _, ok := st.fold.Systems[name]; !ok && ss.Target != "" {
			// A late change took back every decision about the system.
			ss.Target, ss.TargetSince = "", now
			m.dirty[email] = true
		}
	}
	for name, fs := range st.fold.Systems {
		ss := st.system(name)
		target := fs.Target
		if fs.State != "" && !fs.Cause.At.After(fs.StateSince) {
			// A state only the vendor ends holds the system, and nothing decided since wants
			// it changed: the system is where the policy wants it.
			target = ""
		}
		if ss.Target == target {
			continue
		}
		ss.Target, ss.TargetSince = target, now
		ss.Attempts, ss.NextAttempt = 0, time.Time{}
		ss.Failed, ss.FailedFor = "", ""
		if ss.DeferredFor != fs.Target {
			ss.Deferred, ss.DeferredFor = "", ""
		}
		m.dirty[email] = true
	}
}

// prune folds the oldest changes into Base once they are older than the history window (or
// too many), and forgets timeline marks no decision needs any more.
func (m *Machine) prune(st *agentState) {
	h := st.History
	if len(h) > minHistory {
		newest := h[len(h)-1].Event.At
		n := 0
		for len(h)-n > minHistory && (len(h)-n > m.opts.MaxHistory || h[n].Event.At.Before(newest.Add(-m.opts.HistoryWindow))) {
			n++
		}
		if n > 0 {
			if st.Base == nil {
				st.Base = &foldState{}
			}
			fd := folder{m: m, email: st.Email, pol: m.cfg.PolicyFor(st.Email), f: st.Base}
			for i := 0; i < n; i++ {
				fd.apply(&h[i])
			}
			st.BaseAt = h[n-1].Event.At
			st.History = dropFront(h, n)
		}
	}
	for _, ss := range st.Systems {
		tl := ss.Timeline
		if len(tl) <= 2 {
			continue
		}
		horizon := tl[len(tl)-1].At.Add(-m.opts.HistoryWindow)
		n := 0
		for len(tl)-n > 2 && tl[n].At.Before(horizon) && (tl[n].Write == 0 || ss.openWrite(tl[n].Write) == nil) {
			n++
		}
		if n > 0 {
			ss.Timeline = dropFront(tl, n)
		}
	}
}

// dropFront removes the first n elements of s in place: pruning runs on every event, and a
// fresh copy each time was most of the decision's cost.
func dropFront[T any](s []T, n int) []T {
	copy(s, s[n:])
	clear(s[len(s)-n:])
	return s[:len(s)-n]
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
		if ss == nil {
			continue
		}
		if t := m.unlanded(st, ss, now); !t.IsZero() {
			later(t)
		}
		if !ss.needsWrite() || ss.InFlight != nil || isSystemState(m.statusByID(name, ss.Target)) {
			continue
		}
		if ss.Failed != "" && ss.FailedFor == ss.Target {
			continue
		}
		quiet := ss.DeferredFor == ss.Target // retrying a deferred write is explained once
		if ss.queued(ss.Target) {
			continue // the vendor holds this very write until the agent's state ends
		}
		if ss.Deferred != "" && ss.head() != ss.DeferredHead {
			// The system reported something since: the state that deferred the write may be over.
			ss.Deferred, ss.NextAttempt = "", time.Time{}
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
		account, ok := m.writeAccount(name, agent)
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
		why := st.fold.Systems[name].Cause
		m.nextWrite++
		w := Write{ID: m.nextWrite, Agent: agent, System: name, Account: account, StatusID: status.ID, Status: status.Name,
			SentAt: now, Attempt: ss.Attempts + 1, Rule: why.Rule, Cause: why.Text, CauseSeq: why.Seq}
		ss.InFlight = &w
		ss.Writes = append(ss.Writes, openWrite{ID: w.ID, StatusID: w.StatusID, SentAt: now})
		writes = append(writes, w)
		m.dirty[agent] = true
		if !quiet {
			m.record(agent, now, why.Seq, Step{Kind: StepWrite, System: name, Status: status.Name, Rule: w.Rule, Cause: w.Cause,
				Summary: fmt.Sprintf("writing %s to %s (attempt %d)", status.Name, name, w.Attempt)})
		}
	}
	return writes, wake
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

// agent returns an agent's state, creating it, with its fold computed.
func (m *Machine) agent(email string) *agentState {
	st := m.agents[email]
	if st == nil {
		st = &agentState{Email: email, Systems: map[string]*systemState{}}
		m.agents[email] = st
	}
	if st.fold == nil {
		m.refold(st)
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

// account reports whether an agent has an account in a system as far as is known: a system
// without a directory, or one whose directory is still loading, takes every agent.
func (m *Machine) account(system, email string) (string, bool) {
	dir, ok := m.byEmail[system]
	if !ok {
		return email, true
	}
	id, ok := dir[email]
	return id, ok
}

// writeAccount returns the account id to address a write to: from the system's directory, or
// the email for a system that has none (simulated systems). While the directory loads there is
// none yet.
func (m *Machine) writeAccount(system, email string) (string, bool) {
	if m.awaiting[system] {
		return "", false
	}
	return m.account(system, email)
}

// resolveStatus finds an event's status in the system's catalog. A status the catalog lacks
// is a person's choice all the same: it stands for itself, by id, and can be written back.
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
	return presence.Status{ID: raw, Name: raw, Settable: true}, false
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

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339Nano)
}
