package e2e

import (
	"context"
	"flag"
	"fmt"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	gcconn "github.com/omnipresence/omnipresence/internal/connector/genesys"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

var (
	shiftAgents = flag.Int("shift.agents", 2000, "agents changing status at once in BenchmarkShiftStart")
	shiftWindow = flag.Duration("shift.window", 600*time.Millisecond, "how long one Genesys rate-limit minute lasts")
)

// singleWriter hides a connector's bulk API, for comparison.
type singleWriter struct{ connector.Connector }

// BenchmarkShiftStart: every agent picks a status in Salesforce at once and the engine brings
// the Genesys simulator (300 requests per minute, on a scaled clock) in sync. It reports the
// time until every agent shows the mapped presence in Genesys minutes (the scaled clock) and
// wall seconds, next to the least the rate limit allows. Engine work is not scaled, so when the
// rate limit is not what binds (bulk), wall seconds are the meaningful number.
//
//	go test ./internal/e2e -run '^$' -bench ShiftStart -benchtime 1x -args -shift.agents=10000
func BenchmarkShiftStart(b *testing.B) {
	for _, mode := range []string{"bulk", "single"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				elapsed, requests := shiftStart(b, *shiftAgents, mode == "bulk")
				// 300 requests per one-minute window: the last request can go out at the start
				// of window ceil(requests/300), so that many minutes minus one is the least.
				bound := float64((requests+299)/300 - 1)
				b.ReportMetric(float64(elapsed)/float64(*shiftWindow), "genesys-min")
				b.ReportMetric(bound, "bound-min")
				b.ReportMetric(float64(requests), "requests")
				b.ReportMetric(elapsed.Seconds(), "wall-s")
			}
		})
	}
}

func shiftStart(b *testing.B, n int, bulk bool) (elapsed time.Duration, requests int) {
	seed := &gcsim.Seed{}
	var accounts []presence.Account
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		email := fmt.Sprintf("agent%05d@example.com", i)
		seed.Users = append(seed.Users, gcsim.SeedUser{ID: id, Name: "Agent", Email: email, Presence: "Available"})
		accounts = append(accounts, presence.Account{ID: email, Email: email})
	}
	sim, err := gcsim.New(gcsim.Config{Seed: seed, RateLimitPerMinute: 300, RateWindow: *shiftWindow})
	if err != nil {
		b.Fatal(err)
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer sim.Close()
	gc, err := gcconn.New(gcconn.Options{System: "gc", APIURL: url, ClientID: "demo-client", ClientSecret: "demo-secret",
		WireSecond: *shiftWindow / 60})
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := policy.Load("testdata/shift.yaml", policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts)
	var target connector.Connector = gc
	if !bulk {
		target = singleWriter{gc}
	}
	eng, err := engine.New(engine.Config{Policy: cfg, Store: memory.New(),
		Connectors: map[string]connector.Connector{"sf": sf, "gc": target}, WriteTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for eng.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	start := time.Now()
	for _, a := range accounts {
		sf.Act(a.ID, "0N5000000000001") // AvailableforVoice → On Queue
	}
	awaitSynced(b, start, n, 5*time.Millisecond, func() (synced int) {
		for _, u := range sim.Users() {
			if u.Presence == "On Queue" {
				synced++
			}
		}
		return synced
	})
	requests = n
	if bulk {
		requests = (n + 49) / 50
	}
	return time.Since(start), requests
}

// awaitSynced polls synced every poll until all n agents are in sync, failing b ten minutes
// after start.
func awaitSynced(b *testing.B, start time.Time, n int, poll time.Duration, synced func() int) {
	b.Helper()
	deadline := start.Add(10 * time.Minute)
	for {
		got := synced()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d agents in sync after %s", got, n, time.Since(start))
		}
		time.Sleep(poll)
	}
}
