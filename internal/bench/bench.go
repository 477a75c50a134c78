// Package bench is `omnipresence bench`: it drives the engine on a store with synthetic agents
// whose Salesforce status changes, against an in-process fake vendor or the Genesys simulator,
// and measures what an operator sizes a deployment by: events per second, the time from an
// event to its durable decision and to the vendor call it causes, allocations and storage per
// event.
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	gcconn "github.com/omnipresence/omnipresence/internal/connector/genesys"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

// Options configure a run.
type Options struct {
	// Store is the store to drive (it should be empty); StoreName says what it is.
	Store     store.Store
	StoreName string
	// Agents and Events: Events status changes are spread over Agents agents, round robin.
	Agents, Events int
	// Against is "fake" (the in-process fake vendor) or "simulators" (the Genesys simulator
	// through the real Genesys connector, with its rate limit scaled up so that the engine,
	// not the limit, is measured).
	Against string
	// Callers is how many events are in flight at once, as watchers and webhooks deliver them
	// (default 64).
	Callers int
	// Progress, when not nil, receives a progress bar.
	Progress io.Writer
	// Timeout bounds the wait for every agent to converge after the last event (default 2 min).
	Timeout time.Duration
}

// Result is what a run measured. Events are every event the engine took in: the status changes
// and the vendor's echoes of the writes they caused.
type Result struct {
	EventsPerSecond float64 `json:"events_per_second"`
	IngestP50Ms     float64 `json:"ingest_p50_ms"`
	IngestP99Ms     float64 `json:"ingest_p99_ms"`
	VendorCallP50Ms float64 `json:"vendor_call_p50_ms"`
	VendorCallP99Ms float64 `json:"vendor_call_p99_ms"`
	AllocsPerEvent  float64 `json:"allocs_per_event"`
	BytesPerEvent   float64 `json:"bytes_per_event"`
	Store           string  `json:"store"`
	Against         string  `json:"against"`
	Agents          int     `json:"agents"`
	Events          int64   `json:"events"`
	VendorCalls     int     `json:"vendor_calls"`
	Seconds         float64 `json:"seconds"`
}

// The policy: Salesforce statuses mapped to Genesys presences (the simulator's ids).
var (
	sfStatuses = []presence.Status{
		{ID: "0N5000000000001", Name: "AvailableforVoice", Category: presence.CategoryAvailable, Settable: true},
		{ID: "0N5000000000002", Name: "Busy", Category: presence.CategoryBusy, Settable: true},
		{ID: "0N5000000000003", Name: "Lunch", Category: presence.CategoryMeal, Settable: true},
		{ID: "0N5000000000004", Name: "Break", Category: presence.CategoryBreak, Settable: true},
	}
	gcStatuses = []presence.Status{
		{ID: gcsim.OnQueueID, Name: "On Queue", Category: presence.CategoryOnQueue, Settable: true},
		{ID: gcsim.BusyID, Name: "Busy", Category: presence.CategoryBusy, Settable: true},
		{ID: gcsim.MealID, Name: "Meal", Category: presence.CategoryMeal, Settable: true},
		{ID: gcsim.BreakID, Name: "Break", Category: presence.CategoryBreak, Settable: true},
	}
)

const policyYAML = `version: 1
systems:
  sf:
    kind: salesforce
    catalog:
%s  gc:
    kind: genesys
    catalog:
%spolicies:
  - name: bench
    map:
      - from: sf
        to: gc
        states: {AvailableforVoice: On Queue, Busy: Busy, Lunch: Meal, Break: Break}
`

func loadPolicy(dir string) (*policy.Config, error) {
	cat := func(ss []presence.Status) string {
		var b strings.Builder
		for _, s := range ss {
			fmt.Fprintf(&b, "      - {id: %q, name: %q, category: %s}\n", s.ID, s.Name, s.Category)
		}
		return b.String()
	}
	path := filepath.Join(dir, "bench.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, policyYAML, cat(sfStatuses), cat(gcStatuses)), 0o600); err != nil {
		return nil, err
	}
	return policy.Load(path, policy.Options{})
}

// timed records when the last status change of each Genesys account was handed to the engine,
// and the time to the vendor call it caused.
type timed struct {
	mu    sync.Mutex
	since map[string]time.Time // account → when its latest change was ingested
	lat   []time.Duration
	calls int
}

func (t *timed) start(account string, at time.Time) {
	t.mu.Lock()
	t.since[account] = at
	t.mu.Unlock()
}

func (t *timed) called(accounts ...string) {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.calls++
	for _, a := range accounts {
		if s, ok := t.since[a]; ok {
			t.lat = append(t.lat, now.Sub(s))
			delete(t.since, a)
		}
	}
}

// fakeTarget is the fake vendor with its calls timed.
type fakeTarget struct {
	*fakevendor.Connector
	t *timed
}

func (f fakeTarget) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	f.t.called(account)
	return f.Connector.SetStatus(ctx, account, statusID)
}

// simTarget is the Genesys connector with its calls timed; embedding keeps its capabilities
// (bulk writes, rate limit, health).
type simTarget struct {
	*gcconn.Client
	t *timed
}

func (s simTarget) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	s.t.called(account)
	return s.Client.SetStatus(ctx, account, statusID)
}

func (s simTarget) SetStatuses(ctx context.Context, writes []connector.StatusWrite) ([]connector.WriteResult, error) {
	accounts := make([]string, len(writes))
	for i, w := range writes {
		accounts[i] = w.Account
	}
	s.t.called(accounts...)
	return s.Client.SetStatuses(ctx, writes)
}

// Run drives the engine and measures.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Agents < 1 || o.Events < 1 {
		return Result{}, errors.New("bench: --agents and --events must be at least 1")
	}
	if o.Callers <= 0 {
		o.Callers = 64
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	dir, err := os.MkdirTemp("", "omnipresence-bench-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(dir)
	cfg, err := loadPolicy(dir)
	if err != nil {
		return Result{}, err
	}
	sfAccounts := make([]presence.Account, o.Agents)
	gcAccounts := make([]presence.Account, o.Agents)
	sfOf := make(map[string]string, o.Agents) // email → sf account
	for i := range o.Agents {
		email := fmt.Sprintf("agent%06d@example.com", i)
		sfAccounts[i] = presence.Account{ID: fmt.Sprintf("005%012d", i), Email: email}
		gcAccounts[i] = presence.Account{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Email: email}
		sfOf[email] = sfAccounts[i].ID
	}
	tm := &timed{since: make(map[string]time.Time, o.Agents)}
	sf := fakevendor.New("sf", sfStatuses, sfAccounts)
	var gc connector.Connector
	switch o.Against {
	case "fake":
		gc = fakeTarget{fakevendor.New("gc", gcStatuses, gcAccounts), tm}
	case "simulators":
		target, stop, err := startSimulator(gcAccounts, tm)
		if err != nil {
			return Result{}, err
		}
		defer stop()
		gc = target
	default:
		return Result{}, fmt.Errorf("bench: --against %q: want fake or simulators", o.Against)
	}
	eng, err := engine.New(engine.Config{Policy: cfg, Store: o.Store,
		Connectors: map[string]connector.Connector{"sf": sf, "gc": gc}, WriteTimeout: time.Minute})
	if err != nil {
		return Result{}, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	for eng.Ready() != nil {
		select {
		case err := <-done:
			done <- err
			return Result{}, fmt.Errorf("bench: engine stopped: %v", err)
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	sizeBefore, err := size(ctx, o.Store)
	if err != nil {
		return Result{}, err
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	eventsBefore := eng.Stats().Events.Load()

	ingest := make([]time.Duration, o.Events)
	var next, finished atomic.Int64
	stopProgress := progress(o.Progress, o.Events, &finished)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, o.Callers)
	for range o.Callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.Events || ctx.Err() != nil {
					return
				}
				agent, round := i%o.Agents, i/o.Agents
				email := sfAccounts[agent].Email
				ev := presence.Event{System: "sf", Agent: sfOf[email], Type: presence.StatusChanged,
					Status: sfStatuses[(agent+round)%len(sfStatuses)].ID, At: time.Now()}
				t0 := time.Now()
				tm.start(gcAccounts[agent].ID, t0)
				if err := eng.Ingest(ctx, ev); err != nil {
					errs <- err
					return
				}
				ingest[i] = time.Since(t0)
				finished.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		stopProgress()
		return Result{}, fmt.Errorf("bench: ingest: %w", err)
	}
	err = converge(ctx, eng, o.Timeout)
	elapsed := time.Since(start)
	stopProgress()
	if err != nil {
		return Result{}, err
	}
	runtime.ReadMemStats(&after)
	events := eng.Stats().Events.Load() - eventsBefore
	sizeAfter, err := size(ctx, o.Store)
	if err != nil {
		return Result{}, err
	}
	tm.mu.Lock()
	vendor := slices.Clone(tm.lat)
	calls := tm.calls
	tm.mu.Unlock()
	res := Result{
		EventsPerSecond: float64(events) / elapsed.Seconds(),
		IngestP50Ms:     quantile(ingest, 0.50),
		IngestP99Ms:     quantile(ingest, 0.99),
		VendorCallP50Ms: quantile(vendor, 0.50),
		VendorCallP99Ms: quantile(vendor, 0.99),
		AllocsPerEvent:  float64(after.Mallocs-before.Mallocs) / float64(max(events, 1)),
		BytesPerEvent:   float64(max(sizeAfter-sizeBefore, 0)) / float64(max(events, 1)),
		Store:           o.StoreName,
		Against:         o.Against,
		Agents:          o.Agents,
		Events:          events,
		VendorCalls:     calls,
		Seconds:         elapsed.Seconds(),
	}
	return res, nil
}

// converge waits until every agent shows in Genesys what its Salesforce status maps to, and
// the echoes of the writes have come in (no event for a while).
func converge(ctx context.Context, eng *engine.Engine, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last := int64(-1)
	for {
		views, err := eng.Agents(ctx)
		if err != nil {
			return err
		}
		synced := 0
		for _, v := range views {
			if v.InSync {
				synced++
			}
		}
		n := eng.Stats().Events.Load()
		if synced == len(views) && n == last {
			return nil
		}
		last = n
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %d of %d agents still out of sync %s after the last event", len(views)-synced, len(views), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// size is the store's size on disk, or for a store that cannot tell (memory) the heap in use.
func size(ctx context.Context, s store.Store) (int64, error) {
	if sz, ok := s.(store.Sizer); ok {
		return sz.Size(ctx)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc), nil
}

func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(int(q*float64(len(s))), len(s)-1)]) / float64(time.Millisecond)
}

// startSimulator serves the Genesys simulator with the bench's users, and returns the real
// Genesys connector to it. The rate limit is scaled up (a one-minute window lasts 60 ms) so that
// the engine, not the limit, is what is measured.
func startSimulator(accounts []presence.Account, tm *timed) (connector.Connector, func(), error) {
	seed := &gcsim.Seed{}
	for _, a := range accounts {
		seed.Users = append(seed.Users, gcsim.SeedUser{ID: a.ID, Name: "Agent", Email: a.Email, Presence: "Available"})
	}
	const window = 60 * time.Millisecond
	sim, err := gcsim.New(gcsim.Config{Seed: seed, RateWindow: window})
	if err != nil {
		return nil, nil, err
	}
	url, err := sim.Start("127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	c, err := gcconn.New(gcconn.Options{System: "gc", APIURL: url, ClientID: "demo-client", ClientSecret: "demo-secret",
		WireSecond: window / 60})
	if err != nil {
		sim.Close()
		return nil, nil, err
	}
	return simTarget{c, tm}, func() { c.Close(); sim.Close() }, nil
}
