package dryrun

import (
	"context"
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

// randomWorld is a random policy over 2 or 3 systems with random (often non-involutive) maps.
type randomWorld struct {
	systems []string
	// maps[from][to][status] = target status
	maps map[string]map[string]map[string]string
	yaml string
}

const statusesPerSystem = 4

func statusName(sys string, i int) string { return fmt.Sprintf("%s%d", strings.ToUpper(sys), i) }

func newRandomWorld(rnd *rand.Rand) randomWorld {
	w := randomWorld{maps: map[string]map[string]map[string]string{}}
	n := 2 + rnd.IntN(2)
	for i := range n {
		w.systems = append(w.systems, string(rune('a'+i)))
	}
	var b strings.Builder
	b.WriteString("version: 1\nsystems:\n")
	for _, s := range w.systems {
		fmt.Fprintf(&b, "  %s:\n    kind: genesys\n    catalog:\n", s)
		for i := range statusesPerSystem {
			fmt.Fprintf(&b, "      - {id: %q, name: %s, category: away}\n", s+"-id-"+fmt.Sprint(i), statusName(s, i))
		}
	}
	b.WriteString("policies:\n  - name: random\n    map:\n")
	for _, from := range w.systems {
		w.maps[from] = map[string]map[string]string{}
		for _, to := range w.systems {
			if from == to {
				continue
			}
			states := map[string]string{}
			for i := range statusesPerSystem {
				if rnd.IntN(4) == 0 {
					continue // unmapped: no change
				}
				states[statusName(from, i)] = statusName(to, rnd.IntN(statusesPerSystem))
			}
			if len(states) == 0 {
				continue
			}
			w.maps[from][to] = states
			keys := make([]string, 0, len(states))
			for k := range states {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fmt.Fprintf(&b, "      - from: %s\n        to: %s\n        states: {", from, to)
			for i, k := range keys {
				if i > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(&b, "%s: %s", k, states[k])
			}
			b.WriteString("}\n")
		}
	}
	w.yaml = b.String()
	return w
}

func TestPropertyConvergesWithoutEchoesOrExtraWrites(t *testing.T) {
	iterations := 400
	if testing.Short() {
		iterations = 60
	}
	dir := t.TempDir()
	for seed := range uint64(iterations) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		w := newRandomWorld(rnd)
		path := filepath.Join(dir, fmt.Sprintf("p%d.yaml", seed))
		if err := os.WriteFile(path, []byte(w.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := policy.Load(path, policy.Options{})
		if err != nil {
			t.Fatalf("seed %d: generated policy does not load: %v\n%s", seed, err, w.yaml)
		}
		latency := time.Duration(5+rnd.IntN(300)) * time.Millisecond
		agents := []string{"ana@example.com", "bo@example.com"}[:1+rnd.IntN(2)]
		var events []presence.Event
		used := map[time.Duration]bool{}
		humans := 5 + rnd.IntN(25)
		for range humans {
			var at time.Duration
			for at = time.Duration(rnd.IntN(4000)) * time.Millisecond; used[at]; at++ {
			}
			used[at] = true
			sys := w.systems[rnd.IntN(len(w.systems))]
			events = append(events, presence.Event{At: base.Add(at), System: sys, Agent: agents[rnd.IntN(len(agents))],
				Type: presence.StatusChanged, Status: statusName(sys, rnd.IntN(statusesPerSystem))})
		}
		sortEvents(events)
		opts := Options{WriteLatency: latency, SkipIndistinguishable: true}
		if rnd.IntN(2) == 0 { // the vendor's answer and its event arrive in either order
			opts.AnswerLag = time.Duration(rnd.IntN(int(latency)))
		} else {
			opts.EchoLag = time.Duration(rnd.IntN(int(latency)))
		}
		res, err := Run(context.Background(), cfg, events, opts)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		fail := func(format string, args ...any) {
			t.Helper()
			var evs strings.Builder
			for _, e := range events {
				fmt.Fprintf(&evs, "  %s %s %s %s\n", e.At.Sub(base), e.Agent, e.System, e.Status)
			}
			var ws strings.Builder
			for _, x := range res.Writes {
				fmt.Fprintf(&ws, "  %s %s %s %s (%s; %s)\n", x.At.Sub(base), x.Agent, x.System, x.Status, x.Rule, x.Cause)
			}
			t.Fatalf("seed %d (latency %s): %s\npolicy:\n%s\nevents:\n%swrites:\n%s", seed, latency,
				fmt.Sprintf(format, args...), w.yaml, evs.String(), ws.String())
		}

		// 1. Converges to the newest human change of each agent (an event that repeats what its
		// system already showed is no change).
		for _, agent := range agents {
			var newest *presence.Event
			for i := range events {
				if events[i].Agent == agent && !slices.ContainsFunc(res.Repeats[agent], events[i].At.Equal) &&
					!slices.ContainsFunc(res.Skipped[agent], events[i].At.Equal) {
					newest = &events[i]
				}
			}
			if newest == nil {
				continue
			}
			final := res.Summary.Final[agent]
			if got := final[newest.System]; got != newest.Status {
				fail("%s: %s shows %s, want the newest change %s", agent, newest.System, got, newest.Status)
			}
			for to, states := range w.maps[newest.System] {
				if want, ok := states[newest.Status]; ok && final[to] != want {
					fail("%s: %s shows %s, want %s (newest change %s on %s, mapped)", agent, to, final[to], want, newest.Status, newest.System)
				}
			}
		}
		// 2. No write is caused by an echo.
		echoSeqs, causeSeqs := stepSeqs(t, res)
		for seq := range causeSeqs {
			if echoSeqs[seq] {
				fail("a write was caused by event %d, an echo", seq)
			}
		}
		// 3. Writes are bounded by the human changes (plus one correction per raced write).
		bound := humans*(len(w.systems)-1) + res.Raced
		if got := int(res.Summary.Writes); got > bound {
			fail("%d writes for %d human changes over %d systems and %d raced writes (bound %d)", got, humans, len(w.systems), res.Raced, bound)
		}
		// 4. Every event a system emitted for one of our writes was recognised as its echo.
		for seq, kinds := range echoEventKinds(t, res) {
			for _, k := range kinds {
				if k != "echo" && k != "stale" {
					fail("the echo event %d was handled as %v", seq, kinds)
				}
			}
		}
		if res.Summary.Echoes < res.Summary.Writes {
			fail("echoes %d < writes %d", res.Summary.Echoes, res.Summary.Writes)
		}
	}
}

// stepSeqs returns the event seqs recognised as echoes and the cause seqs of every write.
func stepSeqs(t *testing.T, res *Result) (echoes, causes map[int64]bool) {
	t.Helper()
	recs, err := res.Store.Audit(context.Background(), "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	steps, err := engine.DecodeSteps(recs)
	if err != nil {
		t.Fatal(err)
	}
	echoes, causes = map[int64]bool{}, map[int64]bool{}
	for _, s := range steps {
		switch s.Kind {
		case "echo":
			echoes[s.EventSeq] = true
		case "write":
			causes[s.EventSeq] = true
		}
	}
	return echoes, causes
}

// echoEventKinds returns, for every echo event the simulated systems emitted, the kinds of the
// steps recorded for it.
func echoEventKinds(t *testing.T, res *Result) map[int64][]string {
	t.Helper()
	ctx := context.Background()
	evs, err := res.Store.Events(ctx, "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64][]string{}
	for _, e := range evs {
		if strings.Contains(e.DedupeKey, ":"+EchoIDPrefix) {
			out[e.Seq] = nil
		}
	}
	recs, err := res.Store.Audit(ctx, "", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if _, ok := out[r.EventSeq]; ok && r.Kind != "write" && r.Kind != "write_ok" && r.Kind != "retry" && r.Kind != "deferred" && r.Kind != "failed" {
			out[r.EventSeq] = append(out[r.EventSeq], r.Kind)
		}
	}
	return out
}
