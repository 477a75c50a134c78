package dryrun

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

var (
	propertySeeds = flag.Int("property.seeds", 400, "random worlds the property test runs (60 with -short)")
	propertyFrom  = flag.Int("property.from", 0, "first seed of the property test")
)

// The property test: in random worlds — policies with non-involutive maps, rules, activities,
// a master, debounce, vendor-only states, on_disconnect, over 2 or 3 systems of different
// kinds, some marking their changes and some not — and random days, with the engine killed and
// restarted from its store now and then, vendors refusing writes (a 503) or losing their
// answers (a timeout, after the write landed or not) in a third of the worlds, and the write
// timeout varying — status changes, logouts and logins, unknown statuses, calls that overlap
// and arrive end-first, consoles going away, duplicates, equal timestamps, late delivery,
// bursts far below the write latency, latencies from 1ms to 1s, the vendor's answer and its
// echo in either order — every system ends where the ideal world ends: the policy decided over
// the changes in the order they happened, with every write landing at once (engine.Ideal).
//
// Some events cannot be told apart, and the test then accepts the ideal answer of every
// reading of them and nothing else (Result.Ambiguous, Result.Dated):
//   - A person's change with the status of a write of ours whose echo is due — on a system that
//     does not mark its changes, or for a write whose answer was lost (a restart, a timeout)
//     and within its write timeout — is either the person's change at its own time (our
//     write's echo came later, or never), or no change at all (it was the echo, and the event
//     at our write's landing, if it landed, was a person picking the status the system
//     already showed).
//   - A person picking again the status their system shows, which a restart's marked reading
//     is dated by before the event itself is delivered, is either a change the engine missed
//     or no change.

// world is a random policy.
type world struct {
	systems []sysSpec
	// acts names the systems whose calls start and end activities.
	acts []string
	// consoles names the Salesforce system whose agent consoles an on_disconnect watches.
	consoles string
	yaml     string
}

type sysSpec struct {
	name, kind string
	statuses   []string // settable statuses, by name
	state      string   // a state only the vendor sets, "" when none
	marked     bool
}

// vendorStates are states each kind enters on its own, as the vendors name them.
var vendorStates = map[string]string{"amazonconnect": "AfterCallWork", "genesys": "Idle", "cxone": "InboundContact"}

func (s sysSpec) sources() []string {
	out := append([]string(nil), s.statuses...)
	if s.state != "" {
		out = append(out, s.state)
	}
	return out
}

func newWorld(rnd *rand.Rand) world {
	var w world
	kinds := []string{"genesys", "salesforce", "amazonconnect", "cxone"}
	rnd.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	n := 2 + rnd.IntN(2)
	var b strings.Builder
	b.WriteString("version: 1\nsystems:\n")
	for i := range n {
		s := sysSpec{name: string(rune('a' + i)), kind: kinds[i], marked: rnd.IntN(2) == 0}
		for j := range 4 {
			s.statuses = append(s.statuses, fmt.Sprintf("%s%d", strings.ToUpper(s.name), j))
		}
		fmt.Fprintf(&b, "  %s:\n    kind: %s\n    catalog:\n", s.name, s.kind)
		for j, st := range s.statuses {
			fmt.Fprintf(&b, "      - {id: %s-id-%d, name: %s, category: away}\n", s.name, j, st)
		}
		if st, ok := vendorStates[s.kind]; ok && rnd.IntN(2) == 0 {
			s.state = st
			fmt.Fprintf(&b, "      - {id: %s-state, name: %s, category: system}\n", s.name, st)
		}
		if s.kind == "salesforce" {
			s.statuses = append(s.statuses, presence.OfflineName)
		}
		w.systems = append(w.systems, s)
	}
	b.WriteString("policies:\n  - name: random\n")
	if rnd.IntN(3) == 0 {
		fmt.Fprintf(&b, "    master: %s\n", w.systems[rnd.IntN(n)].name)
	}
	if rnd.IntN(3) == 0 {
		fmt.Fprintf(&b, "    debounce: %dms\n", rnd.IntN(300))
	}
	b.WriteString("    map:\n")
	for _, from := range w.systems {
		for _, to := range w.systems {
			if from.name == to.name {
				continue
			}
			var pairs []string
			for _, src := range from.sources() {
				if rnd.IntN(4) == 0 {
					continue // unmapped: no change
				}
				pairs = append(pairs, fmt.Sprintf("%s: %s", src, to.statuses[rnd.IntN(len(to.statuses))]))
			}
			if len(pairs) == 0 {
				continue
			}
			fmt.Fprintf(&b, "      - from: %s\n        to: %s\n        states: {%s}\n", from.name, to.name, strings.Join(pairs, ", "))
		}
	}
	if k := rnd.IntN(4); k > 0 {
		b.WriteString("    rules:\n")
		for i := range k {
			on := w.systems[rnd.IntN(n)]
			typ := "status_changed"
			if on.kind == "salesforce" && rnd.IntN(3) == 0 {
				typ = "logout"
			}
			about := w.systems[rnd.IntN(n)]
			field := []string{"new_state", "old_state"}[rnd.IntN(2)]
			op := []string{"eq", "ne"}[rnd.IntN(2)]
			srcs := about.sources()
			target := w.systems[rnd.IntN(n)]
			fmt.Fprintf(&b, "      - name: r%d\n        on: %s.%s\n        when: {a: %s.%s, op: %s, b: %s}\n        set: {%s: %s}\n",
				i, on.name, typ, about.name, field, op, srcs[rnd.IntN(len(srcs))], target.name, target.statuses[rnd.IntN(len(target.statuses))])
		}
	}
	if rnd.IntN(2) == 0 {
		on := w.systems[rnd.IntN(n)]
		covered := w.systems[rnd.IntN(n)]
		w.acts = []string{on.name}
		fmt.Fprintf(&b, "    activities:\n      - name: call\n        start: %s.conversation_started\n        end: %s.conversation_ended\n", on.name, on.name)
		if rnd.IntN(2) == 0 {
			b.WriteString("        match: [{path: queueId, op: not_exists}]\n")
		}
		fmt.Fprintf(&b, "        set: {%s: %s}\n", covered.name, covered.statuses[rnd.IntN(len(covered.statuses))])
	}
	for _, sys := range w.systems {
		if sys.kind != "salesforce" || rnd.IntN(2) == 0 {
			continue
		}
		var targets []string
		for _, t := range w.systems {
			if t.name != sys.name {
				targets = append(targets, fmt.Sprintf("%s: %s", t.name, t.statuses[rnd.IntN(len(t.statuses))]))
			}
		}
		w.consoles = sys.name
		fmt.Fprintf(&b, "    on_disconnect:\n      of: %s\n      after: 30s\n      set: {%s}\n", sys.name, strings.Join(targets[:1+rnd.IntN(len(targets))], ", "))
	}
	w.yaml = b.String()
	return w
}

// day is a random sequence of events for the world's agents.
func (w world) day(rnd *rand.Rand, agents []string) []Event {
	var out []Event
	at := base
	humans := 3 + rnd.IntN(23)
	calls := map[string]int{} // agent → calls started
	for i := range humans {
		switch r := rnd.IntN(10); {
		case r == 0: // same instant as the previous event
		case r == 1: // a burst far below the write latency
			at = at.Add(time.Duration(rnd.IntN(3)) * time.Millisecond)
		default:
			at = at.Add(time.Millisecond + time.Duration(rnd.Int64N(int64(2*time.Second))))
		}
		agent := agents[rnd.IntN(len(agents))]
		sys := w.systems[rnd.IntN(len(w.systems))]
		ev := presence.Event{ID: fmt.Sprintf("h%d", i), At: at, System: sys.name, Agent: agent, Type: presence.StatusChanged}
		switch r := rnd.IntN(20); {
		case r < 3 && len(w.acts) > 0:
			ev.System = w.acts[0]
			ev.Type = presence.ConversationStarted
			if calls[agent] > 0 && rnd.IntN(2) == 0 {
				ev.Type = presence.ConversationEnded
			} else {
				calls[agent]++
			}
			ev.Data = map[string]any{"conversationId": fmt.Sprintf("c%d", 1+rnd.IntN(max(calls[agent], 1)))}
			if rnd.IntN(4) == 0 {
				ev.Data["queueId"] = "q1"
			}
		case r == 4 && w.consoles != "":
			// The agent's console has been gone for the policy's while, or is back.
			ev.System = w.consoles
			ev.Type = presence.ConsoleDisconnected
			ev.Data = map[string]any{"after": "30s", "reason": "closed"}
			if rnd.IntN(2) == 0 {
				ev.Type, ev.Data = presence.ConsoleConnected, nil
			}
		case r < 5 && sys.state != "":
			ev.Status = sys.state
		case r < 6:
			ev.Status = "Nap" // not in the catalog
		case r < 8 && sys.kind == "salesforce":
			ev.Type = presence.Logout
		case r < 9 && sys.kind == "salesforce":
			ev.Type, ev.Status = presence.Login, sys.statuses[rnd.IntN(len(sys.statuses)-1)]
		default:
			ev.Status = sys.statuses[rnd.IntN(len(sys.statuses))]
		}
		e := Event{Event: ev}
		if rnd.IntN(5) == 0 { // delivered late
			e.Received = at.Add(time.Millisecond + time.Duration(rnd.Int64N(int64(3*time.Second))))
		}
		out = append(out, e)
		if rnd.IntN(20) == 0 { // delivered twice
			d := e
			d.Received = e.received().Add(time.Duration(rnd.Int64N(int64(time.Second))))
			out = append(out, d)
		}
	}
	return out
}

func TestPropertyEndsWhereTheIdealWorldEnds(t *testing.T) {
	seeds := *propertySeeds
	if testing.Short() && seeds > 60 {
		seeds = 60
	}
	dir := t.TempDir()
	stats := map[string]int{}
	for seed := uint64(*propertyFrom); seed < uint64(*propertyFrom+seeds); seed++ {
		checkWorld(t, dir, seed, stats)
		if t.Failed() {
			return
		}
	}
	t.Logf("%d seeds: %v", seeds, stats)
}

func checkWorld(t *testing.T, dir string, seed uint64, stats map[string]int) {
	rnd := rand.New(rand.NewPCG(seed, 7))
	w := newWorld(rnd)
	path := filepath.Join(dir, fmt.Sprintf("p%d.yaml", seed))
	if err := os.WriteFile(path, []byte(w.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		t.Fatalf("seed %d: generated policy does not load: %v\n%s", seed, err, w.yaml)
	}
	agents := []string{"ana@example.com", "bo@example.com"}[:1+rnd.IntN(2)]
	events := w.day(rnd, agents)
	latency := time.Duration(float64(time.Millisecond) * pow1000(rnd.Float64())) // 1ms to 1s
	opts := Options{WriteLatency: latency, Unmarked: map[string]bool{}}
	for _, s := range w.systems {
		if !s.marked {
			opts.Unmarked[s.name] = true
		}
	}
	if rnd.IntN(2) == 0 { // the vendor's answer and its event arrive in either order
		opts.AnswerLag = time.Duration(rnd.Int64N(int64(latency)))
	} else {
		opts.EchoLag = time.Duration(rnd.Int64N(int64(latency)))
	}
	for range rnd.IntN(3) { // the engine is killed and starts again from its store
		last := events[len(events)-1].received()
		opts.Restarts = append(opts.Restarts, base.Add(time.Duration(rnd.Int64N(int64(last.Sub(base)+time.Second)))))
	}
	// Vendors fail writes, in a third of the worlds, and the write timeout varies (draws of
	// their own, so the worlds above stay what they were).
	frnd := rand.New(rand.NewPCG(seed, 11))
	if frnd.IntN(2) == 0 {
		// The write timeout: no shorter than a write and its answer take.
		opts.Machine.LandingWindow = latency + opts.AnswerLag + time.Duration(frnd.Int64N(int64(2*latency)))
	}
	if frnd.IntN(3) == 0 {
		opts.Fault = faults(frnd)
	}
	res, err := Run(context.Background(), cfg, events, opts)
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		var evs strings.Builder
		for i, e := range events {
			late := ""
			if !e.Received.IsZero() {
				late = fmt.Sprintf(" (received %s)", e.Received.Sub(base))
			}
			fmt.Fprintf(&evs, "  #%d %s %s %s %s %s %v%s repeat=%v\n", i, e.At.Sub(base), e.Agent, e.System, e.Type, e.Status, e.Data, late, res.Repeats[i])
		}
		var ws strings.Builder
		for _, x := range res.Writes {
			fmt.Fprintf(&ws, "  %s %s %s %s (%s; %s)\n", x.At.Sub(base), x.Agent, x.System, x.Status, x.Rule, x.Cause)
		}
		t.Fatalf("seed %d (latency %s, answer lag %s, echo lag %s, landing window %s, unmarked %v, restarts %v, ambiguous %+v, dated %v, faulted %d): %s\npolicy:\n%s\nevents:\n%swrites:\n%s",
			seed, latency, opts.AnswerLag, opts.EchoLag, opts.Machine.LandingWindow, opts.Unmarked, opts.Restarts, res.Ambiguous, res.Dated, res.Faulted,
			fmt.Sprintf(format, args...), w.yaml, evs.String(), ws.String())
	}
	stats["ambiguous"] += len(res.Ambiguous)
	stats["faulted"] += res.Faulted
	stats["dated"] += len(res.Dated)
	stats["missed"] += stepCount(t, res, engine.StepMissed)
	stats["writes"] += int(res.Summary.Writes)
	stats["late"] += int(res.Machine.Stats.Stale.Load())
	stats["reclassified"] += int(res.Machine.Stats.Reclassified.Load())
	stats["corrections"] += int(res.Machine.Stats.Corrections.Load())

	// 1. Every system ends where the ideal world ends, under some reading of the ambiguous changes.
	for _, agent := range agents {
		readings := idealReadings(cfg, agent, events, res)
		got := map[string]string{}
		for sys, id := range res.Truth[agent] {
			got[sys] = id
		}
		// A system no one changed (reports of what it showed aside) and the policy, in the end,
		// decided nothing for may keep what a decision taken back by a late event wrote: its
		// status before that is unknown.
		for sys := range got {
			if !touched(events, res, agent, sys) && !decidedInAny(readings, sys) {
				delete(got, sys)
			}
		}
		if !containsReading(readings, got) {
			fail("%s ends at %v; the ideal world ends at one of %v", agent, names(cfg, got), namesAll(cfg, readings))
		}
		// 2. The engine knows what every system shows, and calls it in sync only when it is.
		v, _ := res.Machine.View(agent)
		for sys, id := range got {
			if sv := v.Systems[sys]; sv.ObservedID != id {
				fail("%s: the engine believes %s shows %q, it shows %q", agent, sys, sv.ObservedID, id)
			}
		}
		for sys, sv := range v.Systems {
			if sv.InSync && sv.DesiredID != sv.ObservedID {
				fail("%s: %s reported in sync while it shows %s and should show %s", agent, sys, sv.Observed, sv.Desired)
			}
		}
	}
	// 3. No echo is evaluated, unless the run was ambiguous about it.
	ambiguousWrites := map[int64]bool{}
	for _, a := range res.Ambiguous {
		ambiguousWrites[a.Write] = true
	}
	for seq, kinds := range echoStepKinds(t, res) {
		for _, k := range kinds {
			if k != engine.StepEcho && k != engine.StepUnchanged && k != engine.StepStateEnded && !ambiguousWrites[res.EchoOf[seq]] {
				fail("the echo event %d of write %d was handled as %v", seq, res.EchoOf[seq], kinds)
			}
		}
	}
	// 4. Writes are bounded by the changes: one per system for each change, and one
	// correction for each write a person's change raced.
	changes := 0
	for i := range events {
		if !res.Repeats[i] {
			changes++
		}
	}
	if bound := changes*len(w.systems) + res.Raced; int(res.Summary.Writes) > bound {
		fail("%d writes for %d changes over %d systems and %d raced writes (bound %d)", res.Summary.Writes, changes, len(w.systems), res.Raced, bound)
	}
}

// faults fails about a third of the writes, each way as often, never more than three in a row
// for one agent on one system (the engine's retry budget outlasts them).
func faults(rnd *rand.Rand) func(engine.Write) Fault {
	run := map[string]int{}
	return func(w engine.Write) Fault {
		key := w.Agent + "/" + w.System
		if run[key] >= 3 || rnd.IntN(3) != 0 {
			run[key] = 0
			return NoFault
		}
		run[key]++
		return []Fault{FaultNotApplied, FaultTimeoutUnlanded, FaultTimeoutLanded}[rnd.IntN(3)]
	}
}

// pow1000 maps [0,1) to [1,1000) on a log scale.
func pow1000(x float64) float64 {
	v := 1.0
	for range 3 {
		v *= 1 + 9*x
	}
	return min(v, 999)
}

// idealReadings returns the ideal outcome for every reading of the ambiguous events. Each
// reading rebuilds what the agent's systems showed — people's events and our writes' landings,
// in the order they happened — with the events read as echoes swapped with the landings of
// their writes (the landing then read as a person's event); a person's event that reports the
// status its system already showed is no change, unless a restart's reading was dated by it
// before it was delivered (Result.Dated): then both ways. The changes that remain are decided
// in the ideal world.
func idealReadings(cfg *policy.Config, agent string, events []Event, res *Result) []map[string]string {
	// Per ambiguous event, the writes whose echo it may be read as.
	var order []int
	suspects := map[int][]int64{}
	for _, a := range res.Ambiguous {
		if !strings.EqualFold(events[a.Event].Agent, agent) {
			continue
		}
		if _, ok := suspects[a.Event]; !ok {
			order = append(order, a.Event)
		}
		suspects[a.Event] = append(suspects[a.Event], a.Write)
	}
	var dated []int
	for _, i := range res.Dated {
		if strings.EqualFold(events[i].Agent, agent) && !slices.Contains(dated, i) {
			dated = append(dated, i)
		}
	}
	landings := map[int64]Landing{}
	for _, l := range res.Landings {
		landings[l.Write] = l
	}
	var out []map[string]string
	seen := map[string]bool{}
	// Every reading: each ambiguous event a person's, or the echo of one of its writes, no write
	// echoed twice.
	var walk func(i int, flipped map[int]int64, used map[int64]bool)
	walk = func(i int, flipped map[int]int64, used map[int64]bool) {
		if len(out) > 1<<14 {
			panic("too many readings to enumerate")
		}
		if i == len(order) {
			for set := range 1 << len(dated) {
				forced := map[int]bool{}
				for j, ev := range dated {
					forced[ev] = set&(1<<j) != 0
				}
				r := engine.Ideal(cfg, agent, readingChanges(cfg, agent, events, res, flipped, forced, landings))
				if key := fmt.Sprint(r); !seen[key] {
					seen[key] = true
					out = append(out, r)
				}
			}
			return
		}
		walk(i+1, flipped, used)
		ev := order[i]
		for _, w := range suspects[ev] {
			if used[w] {
				continue
			}
			flipped[ev], used[w] = w, true
			walk(i+1, flipped, used)
			delete(flipped, ev)
			delete(used, w)
		}
	}
	walk(0, map[int]int64{}, map[int64]bool{})
	return out
}

// point is one entry of a rebuilt timeline: a person's event or one of our landings.
type point struct {
	ev       presence.Event
	status   string
	at       time.Time
	received time.Time
	ours     bool
	order    int
	// index is the input event's (-1 for a landing of ours).
	index int
}

func readingChanges(cfg *policy.Config, agent string, events []Event, res *Result, flipped map[int]int64, forced map[int]bool, landings map[int64]Landing) []presence.Event {
	statusOf := func(ev presence.Event) string {
		raw := ev.Status
		if ev.Type == presence.Logout {
			raw = presence.OfflineName
		}
		if c := cfg.Systems[ev.System].Catalog; c != nil {
			if s, ok := c.Resolve(raw); ok {
				return s.ID
			}
		}
		return raw
	}
	seen := map[string]bool{}
	timelines := map[string][]point{}
	var others []point
	// A system applies its events in the order they happen, within one instant in the order
	// it reports them.
	idx := make([]int, len(events))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ea, eb := events[idx[a]], events[idx[b]]
		if !ea.At.Equal(eb.At) {
			return ea.At.Before(eb.At)
		}
		return ea.received().Before(eb.received())
	})
	for n, i := range idx {
		e := events[i]
		if !strings.EqualFold(e.Agent, agent) {
			continue
		}
		key := e.System + "/" + e.ID
		if e.ID != "" && seen[key] {
			continue // a duplicate delivery: the engine drops it
		}
		seen[key] = true
		p := point{ev: e.Event, at: e.At, received: e.received(), order: n, index: i}
		if !e.ChangesStatus() {
			others = append(others, p)
			continue
		}
		p.status = statusOf(e.Event)
		if _, ok := flipped[i]; ok {
			p.ours = true
			p.ev.Status = p.status
		}
		timelines[e.System] = append(timelines[e.System], p)
	}
	flippedWrites := map[int64]bool{}
	for _, w := range flipped {
		flippedWrites[w] = true
	}
	for _, l := range landings {
		if !strings.EqualFold(l.Agent, agent) {
			continue
		}
		p := point{status: l.StatusID, at: l.At, received: l.Received, ours: true, order: len(events) + int(l.Write), index: -1,
			ev: presence.Event{System: l.System, Agent: agent, Type: presence.StatusChanged, Status: l.StatusID, At: l.At}}
		if flippedWrites[l.Write] {
			p.ours = false
		}
		timelines[l.System] = append(timelines[l.System], p)
	}
	changes := others
	for _, tl := range timelines {
		sort.SliceStable(tl, func(i, j int) bool {
			if !tl[i].at.Equal(tl[j].at) {
				return tl[i].at.Before(tl[j].at)
			}
			return tl[i].order < tl[j].order
		})
		prev := ""
		for _, p := range tl {
			switch {
			case !p.ours && (p.status != prev || forced[p.index]):
				changes = append(changes, p)
			case p.ours && prev != "" && isVendorState(cfg, p.ev.System, prev):
				// our write landing ends a state only the vendor ends
				p.ev.Origin = presence.OriginSelf
				changes = append(changes, p)
			}
			prev = p.status
		}
	}
	sort.SliceStable(changes, func(i, j int) bool {
		if !changes[i].received.Equal(changes[j].received) {
			return changes[i].received.Before(changes[j].received)
		}
		return changes[i].order < changes[j].order
	})
	out := make([]presence.Event, len(changes))
	for i, p := range changes {
		out[i] = p.ev
	}
	return out
}

// touched reports whether a person changed system for agent (not merely reported what it
// showed).
func touched(events []Event, res *Result, agent, system string) bool {
	for i, e := range events {
		if strings.EqualFold(e.Agent, agent) && e.System == system && e.ChangesStatus() && !res.Repeats[i] {
			return true
		}
	}
	return false
}

func decidedInAny(readings []map[string]string, system string) bool {
	for _, r := range readings {
		if _, ok := r[system]; ok {
			return true
		}
	}
	return false
}

// isVendorState reports whether status is one only the system's vendor sets.
func isVendorState(cfg *policy.Config, system, status string) bool {
	if c := cfg.Systems[system].Catalog; c != nil {
		if s, ok := c.ByID(status); ok {
			return s.Category == presence.CategorySystem || !s.Settable
		}
	}
	return false
}

func containsReading(readings []map[string]string, got map[string]string) bool {
	for _, r := range readings {
		same := true
		for sys, id := range r {
			if got[sys] != id {
				same = false
			}
		}
		for sys, id := range got {
			if r[sys] != id {
				same = false
			}
		}
		if same {
			return true
		}
	}
	return false
}

func names(cfg *policy.Config, m map[string]string) map[string]string {
	out := map[string]string{}
	for sys, id := range m {
		out[sys] = id
		if c := cfg.Systems[sys].Catalog; c != nil {
			if s, ok := c.ByID(id); ok {
				out[sys] = s.Name
			}
		}
	}
	return out
}

func namesAll(cfg *policy.Config, ms []map[string]string) []map[string]string {
	out := make([]map[string]string, len(ms))
	for i, m := range ms {
		out[i] = names(cfg, m)
	}
	return out
}

// stepCount counts the steps of kind the run recorded.
func stepCount(t *testing.T, res *Result, kind engine.StepKind) int {
	t.Helper()
	recs, err := res.Store.Audit(context.Background(), "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := engine.DecodeSteps(recs)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range steps {
		if s.Kind == kind {
			n++
		}
	}
	return n
}

// echoStepKinds returns, for every echo event the simulated systems emitted, the kinds of the
// decision steps recorded for it.
func echoStepKinds(t *testing.T, res *Result) map[int64][]engine.StepKind {
	t.Helper()
	recs, err := res.Store.Audit(context.Background(), "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := engine.DecodeSteps(recs)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]engine.StepKind{}
	for seq := range res.EchoOf {
		out[seq] = nil
	}
	for _, s := range steps {
		if _, ok := out[s.EventSeq]; !ok {
			continue
		}
		switch s.Kind {
		case engine.StepWrite, engine.StepWriteOK, engine.StepRetry, engine.StepDeferred, engine.StepFailed, engine.StepCorrection:
			// about a write whose cause is this event's seq, not about the event itself
		default:
			out[s.EventSeq] = append(out[s.EventSeq], s.Kind)
		}
	}
	return out
}
