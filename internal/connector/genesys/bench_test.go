package genesys

import (
	"context"
	"flag"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	sim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

var (
	benchAgents = flag.Int("bench.agents", 10000, "agents whose presence changes at shift start")
	benchWindow = flag.Duration("bench.window", 600*time.Millisecond, "the simulator's rate window standing in for one minute")
)

// BenchmarkShiftStart puts every agent On Queue at once against a simulator allowing 300
// requests per (scaled) minute, writing one agent per request or 50 per bulk request, and
// measures the time until Genesys shows every agent On Queue. Reported metrics: the scaled
// wall time, that time in Genesys minutes (wall time / window), the lower bound the fixed-window
// limit allows, requests made and 429s received.
//
//	go test -run '^$' -bench ShiftStart -benchtime 1x ./internal/connector/genesys
func BenchmarkShiftStart(b *testing.B) {
	for _, mode := range []string{"single", "bulk"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				shiftStart(b, mode)
			}
		})
	}
}

func shiftStart(b *testing.B, mode string) {
	b.StopTimer()
	n, window := *benchAgents, *benchWindow
	const limit = 300
	e := newEnv(b, sim.Config{Seed: seedOf(n), RateLimitPerMinute: limit, RateWindow: window}, Options{})
	e.client.o.WireSecond = window / 60
	e.client.setAllowed(limit)
	writes := make([]connector.StatusWrite, n)
	for i := range writes {
		writes[i] = connector.StatusWrite{Account: id(i + 1), StatusID: sim.OnQueueID}
	}
	ctx := context.Background()
	// Authenticate outside the measurement.
	if _, err := e.client.accessToken(ctx); err != nil {
		b.Fatal(err)
	}
	b.StartTimer()
	start := time.Now()
	requests := 0
	switch mode {
	case "single":
		requests = n
		writeSingly(ctx, b, e.client, writes)
	case "bulk":
		requests = (n + e.client.o.BulkSize - 1) / e.client.o.BulkSize
		writeInBulk(ctx, b, e.client, writes)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	for _, u := range e.sim.Users() {
		if u.PresenceID != sim.OnQueueID {
			b.Fatalf("%s is not On Queue", u.Email)
		}
	}
	windows := math.Ceil(float64(requests) / limit)
	b.ReportMetric(elapsed.Seconds(), "s_scaled")
	b.ReportMetric(float64(elapsed)/float64(window), "genesys_min")
	b.ReportMetric(windows-1, "bound_min")
	b.ReportMetric(float64(requests), "requests")
	b.ReportMetric(float64(e.counts.throttled()), "429s")
	b.Logf("%s: %d agents, %d requests, %v at window %v = %.2f Genesys minutes (bound %.0f)", mode, n, requests,
		elapsed.Round(time.Millisecond), window, float64(elapsed)/float64(window), windows-1)
}

// retry repeats f until it succeeds, waiting as a 429 asks or briefly after other failures.
func retry(ctx context.Context, b *testing.B, f func() error) {
	for {
		err := f()
		if err == nil {
			return
		}
		if connector.IsPermanent(err) {
			b.Fatal(err)
		}
		wait := 5 * time.Millisecond
		if d, ok := connector.RetryAfter(err); ok {
			wait = d
		}
		select {
		case <-ctx.Done():
			b.Fatal(ctx.Err())
		case <-time.After(wait):
		}
	}
}

func writeSingly(ctx context.Context, b *testing.B, c *Client, writes []connector.StatusWrite) {
	jobs := make(chan connector.StatusWrite)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range jobs {
				retry(ctx, b, func() error { _, err := c.SetStatus(ctx, w.Account, w.StatusID); return err })
			}
		}()
	}
	for _, w := range writes {
		jobs <- w
	}
	close(jobs)
	wg.Wait()
}

func writeInBulk(ctx context.Context, b *testing.B, c *Client, writes []connector.StatusWrite) {
	pending := writes
	for len(pending) > 0 {
		errs, err := c.SetStatuses(ctx, pending)
		if err != nil {
			b.Fatal(err)
		}
		var again []connector.StatusWrite
		var wait time.Duration
		for i, r := range errs {
			err := r.Err
			if err == nil {
				continue
			}
			if connector.IsPermanent(err) {
				b.Fatal(err)
			}
			if d, ok := connector.RetryAfter(err); ok {
				wait = max(wait, d)
			}
			again = append(again, pending[i])
		}
		if len(again) > 0 {
			time.Sleep(max(wait, 5*time.Millisecond))
		}
		pending = again
	}
}
