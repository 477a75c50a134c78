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

// Options tune a run.
type Options struct {
	// WriteLatency is how long a write takes to land and echo (default 50ms).
	WriteLatency time.Duration
	// AnswerLag and EchoLag delay the vendor's answer and its status event after the write
	// lands (default 0: both at once); they let tests deliver either one first.
	AnswerLag, EchoLag time.Duration
	// SkipIndistinguishable drops a person's change to exactly the status a write of ours is
	// setting while that write is unanswered. Without a vendor origin marker such a change
	// cannot be told from the write's own event (the engine takes it for the echo), so
	// properties that compare against the newest change quantify over runs without it.
	SkipIndistinguishable bool
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
	// Skipped lists the events dropped by SkipIndistinguishable, per agent.
	Skipped map[string][]time.Time
	// Repeats lists events (agent and time) that reported the status their system already
	// showed: not changes, so they decide nothing.
	Repeats map[string][]time.Time
	// Machine is the engine after the run, for tests and explain.
	Machine *engine.Machine
	// Store holds the run's events and audit trail.
	Store store.Store
}

// EchoIDPrefix starts the vendor event id of every event a simulated system emits for one of
// the engine's writes.
const EchoIDPrefix = "sim-echo-"

type itemKind int

const (
	kindEvent itemKind = iota
	kindLanding
	kindAnswer
	kindEcho
	kindReconcile
)

type item struct {
	at    time.Time
	order int64
	kind  itemKind
	ev    presence.Event
	w     engine.Write
	err   error
	agent string
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
	truth    map[string]map[string]string
	inFlight map[string]map[string]string // system → agent → status id of our write, until answered
	emails   map[string]map[string]string
	// echoes holds the echoes on their way, per system and agent: a vendor delivers a
	// system's events in order, so they go before any later event of that system.
	echoes map[string]map[string][]*item
	res    *Result
}

// Run simulates cfg on events (ordered by time).
func Run(ctx context.Context, cfg *policy.Config, events []presence.Event, opts Options) (*Result, error) {
	if opts.WriteLatency <= 0 {
		opts.WriteLatency = 50 * time.Millisecond
	}
	if opts.Machine.EchoWindow <= 0 {
		opts.Machine.EchoWindow = max(10*opts.WriteLatency, time.Second)
	}
	r := &run{
		cfg: cfg, opts: opts,
		m:        engine.NewMachine(cfg, opts.Machine),
		st:       memory.New(),
		planned:  map[string]time.Time{},
		truth:    map[string]map[string]string{},
		inFlight: map[string]map[string]string{},
		emails:   map[string]map[string]string{},
		echoes:   map[string]map[string][]*item{},
		res:      &Result{Skipped: map[string][]time.Time{}, Repeats: map[string][]time.Time{}},
	}
	for name, sys := range cfg.Systems {
		r.truth[name] = map[string]string{}
		r.inFlight[name] = map[string]string{}
		r.echoes[name] = map[string][]*item{}
		ids := map[string]string{}
		for _, a := range sys.Accounts {
			ids[a.ID] = strings.ToLower(a.Email)
		}
		r.emails[name] = ids
	}
	for _, ev := range events {
		r.push(&item{at: ev.At, kind: kindEvent, ev: ev})
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
	case kindEvent:
		if err := r.deliverEchoesBefore(ctx, it.ev, now); err != nil {
			return err
		}
		if !r.observe(it.ev) {
			return nil
		}
		return r.ingest(ctx, it.ev, now)
	case kindLanding:
		r.land(it.w, now)
		return nil
	case kindAnswer:
		return r.answer(ctx, it.w, it.err, now)
	case kindEcho:
		if it.delivered {
			return nil
		}
		it.delivered = true
		return r.ingest(ctx, it.ev, now)
	case kindReconcile:
		if t, ok := r.planned[it.agent]; ok && t.Equal(now) {
			delete(r.planned, it.agent)
		}
		return r.reconcile(ctx, it.agent, now)
	}
	return nil
}

// observe applies a person's change to the simulated system it happened on; it reports false
// when the change is dropped (SkipIndistinguishable).
func (r *run) observe(ev presence.Event) bool {
	if !ev.ChangesStatus() {
		return true
	}
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return true
	}
	id := r.statusOf(ev).ID
	if w, ok := r.inFlight[ev.System][email]; ok {
		if w == id && r.opts.SkipIndistinguishable {
			r.res.Skipped[email] = append(r.res.Skipped[email], ev.At)
			return false
		}
		if w != id {
			r.res.Raced++
		}
	}
	if r.truth[ev.System][email] == id {
		r.res.Repeats[email] = append(r.res.Repeats[email], ev.At)
	}
	r.truth[ev.System][email] = id
	return true
}

func (r *run) ingest(ctx context.Context, ev presence.Event, now time.Time) error {
	return r.st.Update(ctx, func(tx store.Tx) error {
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
			r.inFlight[w.System][agent] = w.StatusID
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
	r.push(&item{at: now.Add(r.opts.AnswerLag), kind: kindAnswer, w: w, err: werr})
	if werr != nil {
		return
	}
	r.truth[w.System][w.Agent] = w.StatusID
	r.res.Writes = append(r.res.Writes, WriteLine{At: now, Agent: w.Agent, System: w.System, Status: w.Status,
		StatusID: w.StatusID, Rule: w.Rule, Cause: w.Cause})
	echo := presence.Event{ID: fmt.Sprintf("%s%d", EchoIDPrefix, w.ID), At: now, System: w.System, Agent: w.Account,
		Type: presence.StatusChanged, Status: w.StatusID}
	if r.cfg.Systems[w.System].Kind == "salesforce" && r.status(w.System, w.StatusID).Name == presence.OfflineName {
		echo.Type, echo.Status = presence.Logout, ""
	}
	it := &item{at: now.Add(r.opts.EchoLag), kind: kindEcho, ev: echo}
	r.push(it)
	r.echoes[w.System][w.Agent] = append(r.echoes[w.System][w.Agent], it)
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
			it.delivered = true
			if err := r.ingest(ctx, it.ev, now); err != nil {
				return err
			}
		}
	}
	r.echoes[ev.System][email] = queue
	return nil
}

// answer hands the vendor's answer to the engine.
func (r *run) answer(ctx context.Context, w engine.Write, werr error, now time.Time) error {
	delete(r.inFlight[w.System], w.Agent)
	return r.st.Update(ctx, func(tx store.Tx) error {
		if retry := r.m.Outcome(w, werr, now); !retry.IsZero() {
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
