package e2e

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	cxconn "github.com/omnipresence/omnipresence/internal/connector/cxone"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	cxsim "github.com/omnipresence/omnipresence/internal/vendorsim/cxone"
)

var (
	cxAgents  = flag.Int("cxshift.agents", 2000, "agents changing status at once in BenchmarkCXoneShiftStart")
	cxWindow  = flag.Duration("cxshift.window", 6*time.Second, "how long one CXone rate-limit minute lasts in BenchmarkCXoneShiftStart")
	cxSamples = flag.Int("cxlatency.samples", 20, "changes each way in BenchmarkCXoneLatency")
)

// cxoneRig is the engine between a fake Salesforce and the CXone simulator (through the
// connector), for n agents logged in to CXone.
type cxoneRig struct {
	sim  *cxsim.Server
	sf   *fakevendor.Connector
	eng  *engine.Engine
	ids  []string // CXone agent ids, as Salesforce account ids too
	stop func()
}

func newCXoneRig(b testing.TB, n int, rateLimit int, window time.Duration) *cxoneRig {
	seed := cxsim.DemoSeed()
	seed.Agents = nil
	var accounts []presence.Account
	var ids []string
	for i := 1; i <= n; i++ {
		id := 500000 + i
		email := fmt.Sprintf("agent%05d@example.com", i)
		seed.Agents = append(seed.Agents, cxsim.SeedUser{ID: id, FirstName: "Agent", LastName: strconv.Itoa(i), Email: email,
			Team: "voice", State: "Unavailable"})
		accounts = append(accounts, presence.Account{ID: strconv.Itoa(id), Email: email})
		ids = append(ids, strconv.Itoa(id))
	}
	sim, err := cxsim.New(cxsim.Config{Seed: &seed, RateLimit: rateLimit, RateWindow: window})
	if err != nil {
		b.Fatal(err)
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	cx, err := cxconn.New(cxconn.Options{System: "cx", APIURL: url, AuthURL: url, AccessKeyID: "demo-access-key",
		AccessKeySecret: "demo-access-secret", ClientID: "demo-client", ClientSecret: "demo-secret",
		RateLimit: rateLimit, RateWindow: window, HTTPClient: &http.Client{Timeout: time.Minute}})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := policy.Load("testdata/cxshift.yaml", policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts)
	eng, err := engine.New(engine.Config{Policy: cfg, Store: memory.New(),
		Connectors: map[string]connector.Connector{"sf": sf, "cx": cx}, WriteTimeout: 10 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	for eng.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	return &cxoneRig{sim: sim, sf: sf, eng: eng, ids: ids, stop: func() { cancel(); <-done; sim.Close() }}
}

// BenchmarkCXoneShiftStart: every agent picks a status in Salesforce at once and the engine
// brings the CXone simulator (600 requests per minute per token, on a scaled clock) in sync.
// It reports the time until every agent shows Available in CXone in CXone minutes (the scaled
// clock) and wall seconds, the requests the simulator counted, and how many it refused.
//
//	go test ./internal/e2e -run '^$' -bench CXoneShiftStart -benchtime 1x
func BenchmarkCXoneShiftStart(b *testing.B) {
	for range b.N {
		r := newCXoneRig(b, *cxAgents, 600, *cxWindow)
		start := time.Now()
		for _, id := range r.ids {
			r.sf.Act(id, "0N5000000000001")
		}
		deadline := start.Add(20 * time.Minute)
		for {
			synced := 0
			for _, u := range r.sim.Users() {
				if u.Status == cxsim.Available {
					synced++
				}
			}
			if synced == *cxAgents {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("only %d of %d agents in sync after %s", synced, *cxAgents, time.Since(start))
			}
			time.Sleep(20 * time.Millisecond)
		}
		elapsed := time.Since(start)
		b.ReportMetric(float64(elapsed)/float64(*cxWindow), "cxone-min")
		b.ReportMetric(elapsed.Seconds(), "wall-s")
		b.ReportMetric(float64(r.sim.Throttled()), "throttled")
		r.stop()
	}
}

// BenchmarkCXoneLatency: one agent changes status in CXone and then in Salesforce, one after
// the other; it reports p50 and p99 of the time from the change to the mapped status showing
// in the other system, each way, with the connector's default 2 s poll of agent states.
//
//	go test ./internal/e2e -run '^$' -bench CXoneLatency -benchtime 1x
func BenchmarkCXoneLatency(b *testing.B) {
	for range b.N {
		r := newCXoneRig(b, 1, 600, time.Minute)
		id := r.ids[0]
		var toSF, toCX []time.Duration
		statuses := []struct{ cx, sfID string }{{"Lunch", "0N5000000000002"}, {"Available", "0N5000000000001"}}
		for range *cxSamples {
			st := statuses[0] // CXone goes to Lunch, Salesforce back to Available
			// At a random point of the 2 s poll cycle, as people do.
			time.Sleep(rand.N(2 * time.Second))
			start := time.Now()
			if err := r.sim.SetStatus(id, st.cx); err != nil {
				b.Fatal(err)
			}
			for r.sf.Status(id) != st.sfID {
				time.Sleep(time.Millisecond)
			}
			toSF = append(toSF, time.Since(start))
			settle(b, r, id)
			st = statuses[1]
			start = time.Now()
			r.sf.Act(id, st.sfID)
			for {
				if s, _, _ := r.sim.Status(id); s == st.cx {
					break
				}
				time.Sleep(time.Millisecond)
			}
			toCX = append(toCX, time.Since(start))
			settle(b, r, id)
		}
		p := func(d []time.Duration, q float64) float64 {
			slices.Sort(d)
			return float64(d[min(len(d)-1, int(q*float64(len(d))))].Milliseconds())
		}
		b.ReportMetric(p(toSF, 0.5), "cx-to-sf-p50-ms")
		b.ReportMetric(p(toSF, 0.99), "cx-to-sf-p99-ms")
		b.ReportMetric(p(toCX, 0.5), "sf-to-cx-p50-ms")
		b.ReportMetric(p(toCX, 0.99), "sf-to-cx-p99-ms")
		r.stop()
	}
}

// settle waits until the engine has seen the echoes of its writes for the agent.
func settle(b *testing.B, r *cxoneRig, account string) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v, ok, _ := r.eng.Agent(context.Background(), fmt.Sprintf("agent%05d@example.com", atoiOr(account)-500000))
		if ok && v.Systems["cx"].InSync && v.Systems["cx"].Pending == "" && v.Systems["sf"].InSync && v.Systems["sf"].Pending == "" {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatal("the agent never settled")
}

func atoiOr(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
