package dryrun

import (
	"container/heap"
	"context"
	"encoding/json"
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
	// Machine tunes the engine; the echo window defaults to ten times the write latency.
	Machine engine.Options
}

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
	// Landings are our writes that landed, in the order they did.
	Landings []Landing
	// Truth is what each simulated system shows at the end: agent → system → status id.
	Truth map[string]map[string]string
	// EchoOf maps the seq of each stored echo event to the write it echoed.
	EchoOf map[int64]int64
	// Machine is the engine after the run, for tests and explain.
	Machine *engine.Machine
	// Store holds the run's events and audit trail.
	Store store.Store
}

// Landing is a write of ours landing on its system; its echo reaches the engine at Received.
type Landing struct {
	Write    int64
	System   string
	Agent    string
	StatusID string
	At       time.Time
	Received time.Time
}

// Ambiguity is a person's status event (Event, an index of the input) on a system that does
// not mark its changes, delivered while the echo of our write Write, with the same status, was
// due; the write landed at Landed. The engine may read it as that echo, and the write's own
// event, at Landed, as a person's.
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
)

type item struct {
	at      time.Time
	order   int64
	kind    itemKind
	ev      presence.Event
	index   int
	w       engine.Write
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

// sent is one write of ours on its way, for the ambiguity report.
type sent struct {
	w        engine.Write
	landed   time.Time
	answered time.Time
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
	// truth is what each simulated system shows: system → agent email → status id.
	truth map[string]map[string]string
	// versions counts the changes of each system, for their version markers.
	versions map[string]int
	emails   map[string]map[string]string
	// writes are our writes per system and agent, in the order sent.
	writes map[string]map[string][]*sent
	// applied remembers the events applied, by system and vendor id, to the input index.
	applied map[string]int
	// landed holds when each write that landed did.
	landed map[int64]time.Time
	// deliveries are the items that hand each input event to the engine, by index.
	deliveries map[int]*item
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
		versions:   map[string]int{},
		emails:     map[string]map[string]string{},
		writes:     map[string]map[string][]*sent{},
		deliveries: map[int]*item{},
		landed:     map[int64]time.Time{},
		applied:    map[string]int{},
		echoes:     map[string]map[string][]*item{},
		res:        &Result{Repeats: map[int]bool{}, EchoOf: map[int64]int64{}},
	}
	for name, sys := range cfg.Systems {
		r.truth[name] = map[string]string{}
		r.writes[name] = map[string][]*sent{}
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
	for r.agenda.Len() > 0 {
		it := heap.Pop(&r.agenda).(*item)
		if err := r.step(ctx, it); err != nil {
			return nil, err
		}
	}
	r.res.Machine = r.m
	r.res.Store = r.st
	r.res.Summary = r.summary()
	// A write that never landed owes no echo: a change with its status was a person's.
	amb := r.res.Ambiguous[:0]
	for _, a := range r.res.Ambiguous {
		if at, ok := r.landed[a.Write]; ok {
			a.Landed = at
			amb = append(amb, a)
		}
	}
	r.res.Ambiguous = amb
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
		_, err := r.ingest(ctx, it.ev, now)
		return err
	case kindLanding:
		r.land(it.w, now)
		return nil
	case kindAnswer:
		return r.answer(ctx, it.w, it.receipt, it.err, now)
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
	r.truth[ev.System][email] = id
	if ev.Version == "" && !r.opts.Unmarked[ev.System] {
		ev.Version = r.nextVersion(ev.System)
	}
	r.deliveries[it.index].ev.Version = ev.Version // the delivery carries the same marker
}

func (r *run) nextVersion(system string) string {
	r.versions[system]++
	return fmt.Sprintf("%s-v%d", system, r.versions[system])
}

// noteAmbiguity records a person's change on an unmarked system delivered while the echo of a
// write of ours with the same status was due.
func (r *run) noteAmbiguity(it *item) {
	ev := it.ev
	if !ev.ChangesStatus() || !r.opts.Unmarked[ev.System] {
		return
	}
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return
	}
	id := r.statusOf(ev).ID
	for _, s := range r.writes[ev.System][email] {
		// While a write is unanswered, any event with its status may be its echo; once
		// answered, any dated no later than the answer.
		if s.w.StatusID == id && !ev.At.Before(s.w.SentAt) && (s.answered.IsZero() || !ev.At.After(s.answered)) {
			r.res.Ambiguous = append(r.res.Ambiguous, Ambiguity{Event: it.index, Write: s.w.ID})
			return
		}
	}
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
			r.writes[w.System][agent] = append(r.writes[w.System][agent], &sent{w: w})
			r.push(&item{at: now.Add(r.opts.WriteLatency), kind: kindLanding, w: w})
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
func (r *run) land(w engine.Write, now time.Time) {
	var werr error
	if cur := r.truth[w.System][w.Agent]; cur != "" {
		if s := r.status(w.System, cur); s.Category == presence.CategorySystem || !s.Settable {
			werr = &connector.DeferredError{Reason: s.Name}
		}
	}
	if werr != nil {
		r.forget(w)
		r.push(&item{at: now.Add(r.opts.AnswerLag), kind: kindAnswer, w: w, err: werr})
		return
	}
	for _, s := range r.writes[w.System][w.Agent] {
		if s.w.ID == w.ID {
			s.landed = now
		}
	}
	r.landed[w.ID] = now
	r.res.Landings = append(r.res.Landings, Landing{Write: w.ID, System: w.System, Agent: w.Agent, StatusID: w.StatusID,
		At: now, Received: now.Add(r.opts.EchoLag)})
	r.truth[w.System][w.Agent] = w.StatusID
	r.res.Writes = append(r.res.Writes, WriteLine{At: now, Agent: w.Agent, System: w.System, Status: w.Status,
		StatusID: w.StatusID, Rule: w.Rule, Cause: w.Cause})
	var receipt connector.Receipt
	echo := presence.Event{ID: fmt.Sprintf("%s%d", EchoIDPrefix, w.ID), At: now, System: w.System, Agent: w.Account,
		Type: presence.StatusChanged, Status: w.StatusID}
	if !r.opts.Unmarked[w.System] {
		receipt = connector.Receipt{Version: r.nextVersion(w.System), At: now}
		echo.Version = receipt.Version
	}
	if r.cfg.Systems[w.System].Kind == "salesforce" && r.status(w.System, w.StatusID).Name == presence.OfflineName {
		echo.Type, echo.Status = presence.Logout, ""
	}
	r.push(&item{at: now.Add(r.opts.AnswerLag), kind: kindAnswer, w: w, receipt: receipt})
	it := &item{at: now.Add(r.opts.EchoLag), kind: kindEcho, ev: echo, w: w}
	r.push(it)
	r.echoes[w.System][w.Agent] = append(r.echoes[w.System][w.Agent], it)
}

// forget drops a write that will not land from the ones whose echo is due.
func (r *run) forget(w engine.Write) {
	list := r.writes[w.System][w.Agent]
	for i, s := range list {
		if s.w.ID == w.ID {
			r.writes[w.System][w.Agent] = append(list[:i:i], list[i+1:]...)
			return
		}
	}
}

// deliverEcho hands one echo to the engine.
func (r *run) deliverEcho(ctx context.Context, it *item, now time.Time) error {
	it.delivered = true
	seq, err := r.ingest(ctx, it.ev, now)
	if err == nil && seq != 0 {
		r.res.EchoOf[seq] = it.w.ID
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
func (r *run) answer(ctx context.Context, w engine.Write, receipt connector.Receipt, werr error, now time.Time) error {
	for _, s := range r.writes[w.System][w.Agent] {
		if s.w.ID == w.ID {
			s.answered = now
		}
	}
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
