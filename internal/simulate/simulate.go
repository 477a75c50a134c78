package simulate

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
	// Machine is the engine after the run, for tests and explain.
	Machine *engine.Machine
	// Store holds the run's events and audit trail.
	Store store.Store
}

type itemKind int

const (
	kindEvent itemKind = iota
	kindLanding
	kindReconcile
)

type item struct {
	at    time.Time
	order int64
	kind  itemKind
	ev    presence.Event
	w     engine.Write
	agent string
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
	inFlight map[string]map[string]bool // system → agent → a write of ours is on its way
	emails   map[string]map[string]string
	res      *Result
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
		inFlight: map[string]map[string]bool{},
		emails:   map[string]map[string]string{},
		res:      &Result{},
	}
	for name, sys := range cfg.Systems {
		r.truth[name] = map[string]string{}
		r.inFlight[name] = map[string]bool{}
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
		r.observe(it.ev)
		return r.ingest(ctx, it.ev, now)
	case kindLanding:
		return r.land(ctx, it.w, now)
	case kindReconcile:
		if t, ok := r.planned[it.agent]; ok && t.Equal(now) {
			delete(r.planned, it.agent)
		}
		return r.reconcile(ctx, it.agent, now)
	}
	return nil
}

// observe applies a person's change to the simulated system it happened on.
func (r *run) observe(ev presence.Event) {
	if !ev.ChangesStatus() {
		return
	}
	email, ok := r.email(ev.System, ev.Agent)
	if !ok {
		return
	}
	if r.inFlight[ev.System][email] {
		r.res.Raced++
	}
	r.truth[ev.System][email] = r.statusOf(ev).ID
}

func (r *run) ingest(ctx context.Context, ev presence.Event, now time.Time) error {
	return r.st.Update(ctx, func(tx store.Tx) error {
		agent, err := r.m.Ingest(ctx, tx, ev, now)
		if err != nil {
			return err
		}
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
			r.inFlight[w.System][agent] = true
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
// otherwise applied, answered, and followed by the vendor's own status event.
func (r *run) land(ctx context.Context, w engine.Write, now time.Time) error {
	delete(r.inFlight[w.System], w.Agent)
	var werr error
	if cur := r.truth[w.System][w.Agent]; cur != "" {
		if s := r.status(w.System, cur); s.Category == presence.CategorySystem || !s.Settable {
			werr = &connector.DeferredError{Reason: s.Name}
		}
	}
	if werr == nil {
		r.truth[w.System][w.Agent] = w.StatusID
		r.res.Writes = append(r.res.Writes, WriteLine{At: now, Agent: w.Agent, System: w.System, Status: w.Status,
			StatusID: w.StatusID, Rule: w.Rule, Cause: w.Cause})
	}
	err := r.st.Update(ctx, func(tx store.Tx) error {
		if retry := r.m.Outcome(w, werr, now); !retry.IsZero() {
			r.schedule(w.Agent, retry)
		}
		r.schedule(w.Agent, now)
		_, err := r.m.Flush(ctx, tx)
		return err
	})
	if err != nil || werr != nil {
		return err
	}
	echo := presence.Event{At: now, System: w.System, Agent: w.Account, Type: presence.StatusChanged, Status: w.StatusID}
	if r.cfg.Systems[w.System].Kind == "salesforce" && r.status(w.System, w.StatusID).Name == presence.OfflineName {
		echo.Type, echo.Status = presence.Logout, ""
	}
	return r.ingest(ctx, echo, now)
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
