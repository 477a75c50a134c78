package dryrun

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

// Event is one event of a dry run: a change lands on its system at At, and the engine learns
// of it at Received (late or out-of-order delivery; zero means at At).
type Event struct {
	presence.Event
	Received time.Time
}

// OnTime wraps events delivered when they happen.
func OnTime(evs []presence.Event) []Event {
	out := make([]Event, len(evs))
	for i, ev := range evs {
		out[i] = Event{Event: ev}
	}
	return out
}

func (e Event) received() time.Time {
	if e.Received.IsZero() {
		return e.At
	}
	return e.Received
}

// Options tune a run.
type Options struct {
	// WriteLatency is how long a write takes to land and echo (default 50ms).
	WriteLatency time.Duration
	// AnswerLag and EchoLag delay the vendor's answer and its status event after the write
	// lands (default 0: both at once); they let tests deliver either one first.
	AnswerLag, EchoLag time.Duration
	// Unmarked names systems that do not mark their changes: no version on their events and
	// receipts, so the engine must tell echoes by status and order alone. By default every
	// simulated system marks them, as the real vendors do (Genesys modifiedDate, the Salesforce
	// bridge's commandId, Connect and CXone state start times).
	Unmarked map[string]bool
	// Restarts are times at which the engine stops without warning and starts again from its
	// store: answers to writes in flight are lost, and on start it reads what every system shows
	// (a resync, dated by the vendor), as the service does.
	Restarts []time.Time
	// Machine tunes the engine; the echo window defaults to ten times the write latency.
	Machine engine.Options
	// Fault, when set, says how each write the engine sends fails (NoFault: it does not). A
	// write a system state blocks is refused whatever it says.
	Fault func(engine.Write) Fault
}

// Fault is how a simulated vendor fails one write.
type Fault int

// The faults a write can meet.
const (
	// NoFault: the write lands and the vendor answers with its receipt.
	NoFault Fault = iota
	// FaultNotApplied: the vendor refuses the write before applying it, and says so
	// (connector.NotAppliedError, as a 503 is).
	FaultNotApplied
	// FaultTimeoutUnlanded: the write never lands and its answer never comes: the engine gives
	// up at the landing window (the write timeout) with an error that leaves it unsure.
	FaultTimeoutUnlanded
	// FaultTimeoutLanded: the write lands and echoes, but its answer never comes: the engine
	// gives up at the landing window, unsure.
	FaultTimeoutLanded
)

// errTimeout is the answer to a write whose answer never came.
var errTimeout = errors.New("simulated vendor: no answer before the write timeout")

// WriteLine is one write the engine made, as simulate prints it.
type WriteLine struct {
	At       time.Time `json:"at"`
	Agent    string    `json:"agent"`
	System   string    `json:"system"`
	Status   string    `json:"status"`
	StatusID string    `json:"status_id"`
	Rule     string    `json:"rule"`
	Cause    string    `json:"cause"`
}

// Summary is the final line.
type Summary struct {
	Final    map[string]map[string]string `json:"final"`
	Writes   int64                        `json:"writes"`
	Echoes   int64                        `json:"echoes"`
	Deferred int64                        `json:"deferred"`
	Failed   int64                        `json:"failed"`
	Unmapped int64                        `json:"unmapped"`
}

// Result is a whole run.
type Result struct {
	Writes  []WriteLine
	Summary Summary
	// Raced counts writes of ours that were in flight while a person changed the same system
	// (each may need one corrective write).
	Raced int
	// ExtensionCalls counts the extension webhook calls the engine asked for; simulate makes
	// no network calls, so the policies' own decisions stand.
	ExtensionCalls int
	// Repeats lists the events (by index) that reported the status their system already
	// showed when they happened: not changes, so they decide nothing.
	Repeats map[int]bool
	// Ambiguous lists a person's status events on an unmarked system that the engine cannot
	// tell from the echo of a write of ours: the same status, delivered while that write's echo
	// was due.
	Ambiguous []Ambiguity
	// Faulted counts the writes that met a fault (Options.Fault).
	Faulted int
	// Dated lists the events (by index) that a marked reading taken at a restart was dated by
	// before the engine was told of them: the engine cannot tell whether such an event, when it
	// reported the status its system showed already, was somebody setting it again (a change
	// it missed) or no change.
	Dated []int
	// Landings are our writes that landed, in the order they did.
	Landings []Landing
	// Truth is what each simulated system shows at the end: agent → system → status id.
	Truth map[string]map[string]string
	// EchoOf maps the seq of each stored echo event to the write it echoed (Landing.Write).
	EchoOf map[int64]int64
	// Machine is the engine after the run, for tests and explain.
	Machine *engine.Machine
	// Store holds the run's events and audit trail.
	Store store.Store
}

// Landing is a write of ours landing on its system; its echo reaches the engine at Received.
// Write numbers the run's writes in the order they were sent.
type Landing struct {
	Write    int64
	System   string
	Agent    string
	StatusID string
	At       time.Time
	Received time.Time
}

// Ambiguity is a person's status event (Event, an index of the input) that the engine cannot
// tell from the echo of our write Write, which has its status (and landed at Landed, unless it
// never did): the system does not mark its changes, or the write's answer was lost (a restart,
// a timeout) while the event is dated within the write's landing window.
// The engine may read the event as that echo, and the write's own event, at Landed, as a
// person's. An event may have several such writes.
type Ambiguity struct {
	Event  int
	Write  int64
	Landed time.Time
}

// EchoIDPrefix starts the vendor event id of every event a simulated system emits for one of
// the engine's writes.
const EchoIDPrefix = "sim-echo-"

type itemKind int

const (
	kindChange itemKind = iota
	kindDeliver
	kindLanding
	kindAnswer
	kindEcho
	kindReconcile
	kindRestart
)

type item struct {
	at      time.Time
	order   int64
	kind    itemKind
	ev      presence.Event
	index   int
	sent    *sent
	receipt connector.Receipt
	err     error
	agent   string
	// delivered marks an echo already handed over ahead of a later event of its system.
	delivered bool
}

type agenda []*item

func (a agenda) Len() int { return len(a) }
func (a agenda) Less(i, j int) bool {
	if !a[i].at.Equal(a[j].at) {
		return a[i].at.Before(a[j].at)
	}
	return a[i].order < a[j].order
}
func (a agenda) Swap(i, j int) { a[i], a[j] = a[j], a[i] }
func (a *agenda) Push(x any)   { *a = append(*a, x.(*item)) }
func (a *agenda) Pop() any {
	old := *a
	it := old[len(old)-1]
	*a = old[:len(old)-1]
	return it
}

// sent is one write of ours on its way. Key numbers writes across restarts (the engine's write
// ids may be used again once nothing names them).
type sent struct {
	key      int64
	w        engine.Write
	landed   time.Time
	answered time.Time
	// generation is the engine that sent it: a restart loses its answer.
	generation int
	// unsure is set when the engine's answer was a timeout: whether the write landed, and
	// which event is its echo, it cannot know.
	unsure bool
}

// run is one simulation in progress.
type run struct {
	cfg     *policy.Config
	opts    Options
	m       *engine.Machine
	st      store.Store
	agenda  agenda
	order   int64
	planned map[string]time.Time // agent → time of its queued reconcile
	// truth is what each simulated system shows: system → agent email → status id; since is
	// when each began, with the version of the change that set it.
	truth map[string]map[string]string
	since map[string]map[string]connector.Current
	// generation counts restarts: answers for writes of an earlier engine are lost.
	generation int
	// versions counts the changes of each system, for their version markers.
	versions map[string]int
	emails   map[string]map[string]string
	// writes are our writes per system and agent, in the order sent.
	writes map[string]map[string][]*sent
	// suspects are the events that may be read as echoes, until the run says which are.
	suspects []suspect
	// applied remembers the events applied, by system and vendor id, to the input index.
	applied map[string]int
	// landed holds when each write that landed did, by key.
	landed    map[int64]time.Time
	sentCount int64
	// deliveries are the items that hand each input event to the engine, by index; delivered
	// holds the indexes handed over.
	deliveries map[int]*item
	delivered  map[int]bool
	// setBy is the input event that set what each system shows (system → agent → index; -1
	// for a write of ours).
	setBy map[string]map[string]int
	// echoes holds the echoes on their way, per system and agent: a vendor delivers a
	// system's events in order, so they go before any later event of that system.
	echoes map[string]map[string][]*item
	res    *Result
}

// Run simulates cfg on events.
func Run(ctx context.Context, cfg *policy.Config, events []Event, opts Options) (*Result, error) {
	if opts.WriteLatency <= 0 {
		opts.WriteLatency = 50 * time.Millisecond
	}
	if opts.Machine.EchoWindow <= 0 {
		opts.Machine.EchoWindow = max(10*opts.WriteLatency, time.Second)
	}
	r := &run{
		cfg: cfg, opts: opts,
		m:          engine.NewMachine(cfg, opts.Machine),
		st:         memory.New(),
		planned:    map[string]time.Time{},
		truth:      map[string]map[string]string{},
		since:      map[string]map[string]connector.Current{},
		versions:   map[string]int{},
		emails:     map[string]map[string]string{},
		writes:     map[string]map[string][]*sent{},
		deliveries: map[int]*item{},
		delivered:  map[int]bool{},
		setBy:      map[string]map[string]int{},
		landed:     map[int64]time.Time{},
		applied:    map[string]int{},
		echoes:     map[string]map[string][]*item{},
		res:        &Result{Repeats: map[int]bool{}, EchoOf: map[int64]int64{}},
	}
	for name, sys := range cfg.Systems {
		r.truth[name] = map[string]string{}
		r.since[name] = map[string]connector.Current{}
		r.writes[name] = map[string][]*sent{}
		r.setBy[name] = map[string]int{}
		r.echoes[name] = map[string][]*item{}
		ids := map[string]string{}
		for _, a := range sys.Accounts {
			ids[a.ID] = strings.ToLower(a.Email)
		}
		r.emails[name] = ids
	}
	// A system applies changes in the order they happened; within one instant, in the order
	// it reports them.
	order := make([]int, len(events))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ea, eb := events[order[a]], events[order[b]]
		if !ea.At.Equal(eb.At) {
			return ea.At.Before(eb.At)
		}
		return ea.received().Before(eb.received())
	})
	for _, i := range order {
		r.push(&item{at: events[i].At, kind: kindChange, ev: events[i].Event, index: i})
	}
	byReceipt := make([]int, len(events))
	copy(byReceipt, order)
	sort.SliceStable(byReceipt, func(a, b int) bool {
		return events[byReceipt[a]].received().Before(events[byReceipt[b]].received())
	})
	for _, i := range byReceipt {
		r.deliveries[i] = &item{at: events[i].received(), kind: kindDeliver, ev: events[i].Event, index: i}
		r.push(r.deliveries[i])
	}
	for _, t := range opts.Restarts {
		r.push(&item{at: t, kind: kindRestart})
	}
	for r.agenda.Len() > 0 {
		it := heap.Pop(&r.agenda).(*item)
		if err := r.step(ctx, it); err != nil {
			return nil, err
		}
	}
	r.res.Machine = r.m
	r.res.Store = r.st
	r.res.Summary = r.summary()
	r.res.Ambiguous = r.ambiguities()
	r.res.Truth = map[string]map[string]string{}
	for system, agents := range r.truth {
		for agent, id := range agents {
			if r.res.Truth[agent] == nil {
				r.res.Truth[agent] = map[string]string{}
			}
			r.res.Truth[agent][system] = id
		}
	}
	return r.res, nil
}

func (r *run) push(it *item) {
	r.order++
	it.order = r.order
	heap.Push(&r.agenda, it)
}

func (r *run) step(ctx context.Context, it *item) error {
	now := it.at
	switch it.kind {
	case kindChange:
		r.change(it)
		return nil
	case kindDeliver:
		if err := r.deliverEchoesBefore(ctx, it.ev, now); err != nil {
			return err
		}
		r.noteAmbiguity(it)
		r.delivered[it.index] = true
		_, err := r.ingest(ctx, it.ev, now)
		return err
	case kindLanding:
		r.land(it.sent, now)
		return nil
	case kindAnswer:
		if it.sent.generation != r.generation {
			return nil // the engine that sent the write stopped: its answer is lost (answered stays zero)
		}
		return r.answer(ctx, it.sent, it.receipt, it.err, now)
	case kindEcho:
		if it.delivered {
			return nil
		}
		return r.deliverEcho(ctx, it, now)
	case kindReconcile:
		if t, ok := r.planned[it.agent]; ok && t.Equal(now) {
			delete(r.planned, it.agent)
		}
		return r.reconcile(ctx, it.agent, now)
	case kindRestart:
		return r.restart(ctx, now)
	}
	return nil
}

// change applies a person's change to the simulated system it happened on, giving it the
// system's next version marker.
func (r *run) change(it *item) {
	ev := &it.ev
	if ev.ID != "" {
		key := ev.System + "/" + ev.ID
		if first, dup := r.applied[key]; dup {
			// The same event delivered again: it happened once.
			ev.Version = r.deliveries[first].ev.Version
			r.deliveries[it.index].ev.Version = ev.Version
			r.res.Repeats[it.index] = true
			return
		}
		r.applied[key] = it.index
	}
	if !ev.ChangesStatus() {
		return
	}
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return
	}
	id := r.statusOf(*ev).ID
	for _, s := range r.writes[ev.System][email] {
		if s.landed.IsZero() && s.w.StatusID != id {
			r.res.Raced++
		}
	}
	if r.truth[ev.System][email] == id {
		r.res.Repeats[it.index] = true
	}
	if ev.Version == "" && !r.opts.Unmarked[ev.System] {
		ev.Version = r.nextVersion(ev.System)
	}
	r.show(ev.System, email, id, ev.At, ev.Version)
	r.setBy[ev.System][email] = it.index
	r.deliveries[it.index].ev.Version = ev.Version // the delivery carries the same marker
}

func (r *run) nextVersion(system string) string {
	r.versions[system]++
	return fmt.Sprintf("%s-v%d", system, r.versions[system])
}

// noteAmbiguity remembers, for a person's status event about to be delivered, the writes of
// ours with its status already sent: once the run is over, ambiguities says which the engine
// could have taken it for the echo of.
func (r *run) noteAmbiguity(it *item) {
	ev := it.ev
	if !ev.ChangesStatus() {
		return
	}
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return
	}
	id := r.statusOf(ev).ID
	for _, s := range r.writes[ev.System][email] {
		if s.w.StatusID == id && !ev.At.Before(s.w.SentAt) {
			r.suspects = append(r.suspects, suspect{event: it.index, at: ev.At, system: ev.System, sent: s})
		}
	}
}

// suspect is a person's status event delivered after a write of ours with its status was sent.
type suspect struct {
	event  int
	at     time.Time
	system string
	sent   *sent
}

// ambiguities keeps the suspects the engine cannot tell from the write's echo: on a system
// that does not mark its changes, an event dated before the write's answer; for a write whose
// answer (with its version) was lost or timed out, an event dated within its landing window.
func (r *run) ambiguities() []Ambiguity {
	var out []Ambiguity
	for _, sp := range r.suspects {
		s := sp.sent
		landed, ok := r.landed[s.key]
		lost := s.answered.IsZero() || s.unsure
		if !ok && !lost {
			continue // a write refused, as the engine heard, owes no echo
		}
		due := s.answered
		if lost {
			due = s.w.SentAt.Add(r.landingWindow() + r.opts.Machine.ClockTolerance)
		}
		if (r.opts.Unmarked[sp.system] || lost) && !sp.at.After(due) {
			out = append(out, Ambiguity{Event: sp.event, Write: s.key, Landed: landed})
		}
	}
	return out
}

// landingWindow is how long after it is sent a write may land: the engine's write timeout.
func (r *run) landingWindow() time.Duration {
	if lw := r.opts.Machine.LandingWindow; lw > 0 {
		return lw
	}
	return r.opts.Machine.EchoWindow
}

func (r *run) ingest(ctx context.Context, ev presence.Event, now time.Time) (int64, error) {
	var seq int64
	err := r.st.Update(ctx, func(tx store.Tx) error {
		agent, err := r.m.Ingest(ctx, tx, ev, now)
		if err != nil {
			return err
		}
		r.res.ExtensionCalls += len(r.m.TakeExtensionCalls())
		if agent != "" {
			r.schedule(agent, now)
		}
		_, err = r.m.Flush(ctx, tx)
		return err
	})
	if err == nil && strings.HasPrefix(ev.ID, EchoIDPrefix) {
		seq, err = r.lastSeq(ctx)
	}
	return seq, err
}

func (r *run) lastSeq(ctx context.Context) (int64, error) {
	evs, err := r.st.Events(ctx, "", 1)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return evs[0].Seq, nil
}

// schedule queues one reconcile of agent at t, coalescing repeated requests.
func (r *run) schedule(agent string, t time.Time) {
	if prev, ok := r.planned[agent]; ok && !t.Before(prev) {
		return
	}
	r.planned[agent] = t
	r.push(&item{at: t, kind: kindReconcile, agent: agent})
}

func (r *run) reconcile(ctx context.Context, agent string, now time.Time) error {
	return r.st.Update(ctx, func(tx store.Tx) error {
		writes, wake := r.m.Plan(agent, now)
		for _, w := range writes {
			r.sentCount++
			s := &sent{key: r.sentCount, w: w, generation: r.generation}
			r.writes[w.System][agent] = append(r.writes[w.System][agent], s)
			r.push(&item{at: now.Add(r.opts.WriteLatency), kind: kindLanding, sent: s})
		}
		if !wake.IsZero() {
			r.schedule(agent, wake)
		}
		_, err := r.m.Flush(ctx, tx)
		return err
	})
}

// land delivers a write to its simulated system: refused while a system state blocks writes,
// otherwise applied; the vendor then answers and emits its own status event (the echo).
func (r *run) land(s *sent, now time.Time) {
	w := s.w
	var werr error
	if cur := r.truth[w.System][w.Agent]; cur != "" {
		if s := r.status(w.System, cur); s.Category == presence.CategorySystem || !s.Settable {
			werr = &connector.DeferredError{Reason: s.Name}
		}
	}
	fault := NoFault
	if werr == nil && r.opts.Fault != nil {
		fault = r.opts.Fault(w)
	}
	if fault != NoFault {
		r.res.Faulted++
	}
	// A write whose answer never comes is given up at the write timeout, after it landed.
	timeout := w.SentAt.Add(r.landingWindow())
	if timeout.Before(now) {
		timeout = now
	}
	switch fault {
	case FaultNotApplied:
		werr = &connector.NotAppliedError{Err: errors.New("simulated vendor: 503")}
	case FaultTimeoutUnlanded:
		r.push(&item{at: timeout, kind: kindAnswer, sent: s, err: errTimeout})
		return
	}
	if werr != nil {
		r.push(&item{at: now.Add(r.opts.AnswerLag), kind: kindAnswer, sent: s, err: werr})
		return
	}
	s.landed = now
	r.landed[s.key] = now
	r.res.Landings = append(r.res.Landings, Landing{Write: s.key, System: w.System, Agent: w.Agent, StatusID: w.StatusID,
		At: now, Received: now.Add(r.opts.EchoLag)})
	r.res.Writes = append(r.res.Writes, WriteLine{At: now, Agent: w.Agent, System: w.System, Status: w.Status,
		StatusID: w.StatusID, Rule: w.Rule, Cause: w.Cause})
	var receipt connector.Receipt
	echo := presence.Event{ID: fmt.Sprintf("%s%d", EchoIDPrefix, len(r.res.Landings)), At: now, System: w.System, Agent: w.Account,
		Type: presence.StatusChanged, Status: w.StatusID}
	if !r.opts.Unmarked[w.System] {
		receipt = connector.Receipt{Version: r.nextVersion(w.System), At: now}
		echo.Version = receipt.Version
	}
	r.show(w.System, w.Agent, w.StatusID, now, receipt.Version)
	r.setBy[w.System][w.Agent] = -1
	if off := r.cfg.Systems[w.System].Vendor.Catalog.Offline; off != nil && w.StatusID == off.ID {
		// Setting the vendor's reserved Offline logs the agent out; the vendor reports a logout.
		echo.Type, echo.Status = presence.Logout, ""
	}
	if fault == FaultTimeoutLanded {
		r.push(&item{at: timeout, kind: kindAnswer, sent: s, err: errTimeout})
	} else {
		r.push(&item{at: now.Add(r.opts.AnswerLag), kind: kindAnswer, sent: s, receipt: receipt})
	}
	it := &item{at: now.Add(r.opts.EchoLag), kind: kindEcho, ev: echo, sent: s}
	r.push(it)
	r.echoes[w.System][w.Agent] = append(r.echoes[w.System][w.Agent], it)
}

// show makes a simulated system show status for agent from at, set by the change version.
func (r *run) show(system, agent, status string, at time.Time, version string) {
	r.truth[system][agent] = status
	r.since[system][agent] = connector.Current{StatusID: status, Since: at, Version: version}
}

// restart stops the engine and starts a new one from the store, which then reads what every
// system shows.
func (r *run) restart(ctx context.Context, now time.Time) error {
	r.generation++
	r.m = engine.NewMachine(r.cfg, r.opts.Machine)
	todo, err := r.m.Restore(ctx, r.st)
	if err != nil {
		return err
	}
	r.planned = map[string]time.Time{}
	for _, agent := range todo {
		r.schedule(agent, now)
	}
	systems := make([]string, 0, len(r.since))
	for name := range r.since {
		systems = append(systems, name)
	}
	sort.Strings(systems)
	for _, system := range systems {
		agents := make([]string, 0, len(r.since[system]))
		for agent := range r.since[system] {
			agents = append(agents, agent)
		}
		sort.Strings(agents)
		for _, agent := range agents {
			cur := r.since[system][agent]
			if i, ok := r.setBy[system][agent]; ok && i >= 0 && !r.delivered[i] && cur.Version != "" {
				// Only a reading the vendor marks can say a status was set again.
				r.res.Dated = append(r.res.Dated, i)
			}
			ev := presence.Event{ID: fmt.Sprintf("resync-%d-%s", r.generation, agent), System: system, Agent: agent,
				Type: presence.StatusChanged, Status: cur.StatusID, At: cur.Since, Version: cur.Version,
				Data: map[string]any{"source": presence.SourceResync}}
			if _, err := r.ingest(ctx, ev, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliverEcho hands one echo to the engine.
func (r *run) deliverEcho(ctx context.Context, it *item, now time.Time) error {
	it.delivered = true
	seq, err := r.ingest(ctx, it.ev, now)
	if err == nil && seq != 0 {
		r.res.EchoOf[seq] = it.sent.key
	}
	return err
}

// deliverEchoesBefore hands over, ahead of ev, the echoes its system emitted before it.
func (r *run) deliverEchoesBefore(ctx context.Context, ev presence.Event, now time.Time) error {
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return nil
	}
	queue := r.echoes[ev.System][email]
	for len(queue) > 0 && (queue[0].delivered || queue[0].ev.At.Before(ev.At)) {
		it := queue[0]
		queue = queue[1:]
		if !it.delivered {
			if err := r.deliverEcho(ctx, it, now); err != nil {
				return err
			}
		}
	}
	r.echoes[ev.System][email] = queue
	return nil
}

// answer hands the vendor's answer to the engine.
func (r *run) answer(ctx context.Context, s *sent, receipt connector.Receipt, werr error, now time.Time) error {
	w := s.w
	s.answered = now
	s.unsure = werr != nil && !connector.IsNotApplied(werr)
	return r.st.Update(ctx, func(tx store.Tx) error {
		if retry := r.m.Outcome(w, receipt, werr, now); !retry.IsZero() {
			r.schedule(w.Agent, retry)
		}
		r.schedule(w.Agent, now)
		_, err := r.m.Flush(ctx, tx)
		return err
	})
}

func (r *run) email(system, agent string) (string, bool) {
	if strings.Contains(agent, "@") {
		return strings.ToLower(agent), true
	}
	e, ok := r.emails[system][agent]
	return e, ok
}

func (r *run) statusOf(ev presence.Event) presence.Status {
	raw := ev.Status
	if ev.Type == presence.Logout {
		raw = presence.OfflineName
	}
	if c := r.cfg.Systems[ev.System].Catalog; c != nil {
		if s, ok := c.Resolve(raw); ok {
			return s
		}
	}
	return presence.Status{ID: raw, Name: raw, Settable: true}
}

func (r *run) status(system, id string) presence.Status {
	if c := r.cfg.Systems[system].Catalog; c != nil {
		if s, ok := c.ByID(id); ok {
			return s
		}
	}
	return presence.Status{ID: id, Name: id, Settable: true}
}

func (r *run) summary() Summary {
	s := Summary{Final: map[string]map[string]string{}}
	for system, agents := range r.truth {
		for agent, id := range agents {
			if s.Final[agent] == nil {
				s.Final[agent] = map[string]string{}
			}
			s.Final[agent][system] = r.status(system, id).Name
		}
	}
	st := &r.m.Stats
	s.Writes, s.Echoes, s.Deferred = st.Writes.Load(), st.Echoes.Load(), st.Deferred.Load()
	s.Failed, s.Unmapped = st.Failed.Load(), st.Unmapped.Load()
	return s
}

// WriteJSONL prints one line per write, then the summary line.
func (res *Result) WriteJSONL(w io.Writer) error {
	enc := json.NewEncoder(w)
	for _, l := range res.Writes {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return enc.Encode(res.Summary)
}

// WriteTable prints the writes and the final statuses for people.
func (res *Result) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tAGENT\tSYSTEM\tSTATUS\tRULE\tCAUSE")
	for _, l := range res.Writes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", l.At.Format(time.RFC3339Nano), l.Agent, l.System, l.Status, l.Rule, l.Cause)
	}
	fmt.Fprintln(tw)
	agents := make([]string, 0, len(res.Summary.Final))
	systems := map[string]bool{}
	for a, m := range res.Summary.Final {
		agents = append(agents, a)
		for s := range m {
			systems[s] = true
		}
	}
	sort.Strings(agents)
	names := make([]string, 0, len(systems))
	for s := range systems {
		names = append(names, s)
	}
	sort.Strings(names)
	fmt.Fprint(tw, "FINAL AGENT")
	for _, s := range names {
		fmt.Fprint(tw, "\t"+strings.ToUpper(s))
	}
	fmt.Fprintln(tw)
	for _, a := range agents {
		fmt.Fprint(tw, a)
		for _, s := range names {
			v := res.Summary.Final[a][s]
			if v == "" {
				v = "-"
			}
			fmt.Fprint(tw, "\t"+v)
		}
		fmt.Fprintln(tw)
	}
	s := res.Summary
	fmt.Fprintf(tw, "\nwrites %d, echoes %d, deferred %d, failed %d, unmapped %d\n", s.Writes, s.Echoes, s.Deferred, s.Failed, s.Unmapped)
	return tw.Flush()
}
