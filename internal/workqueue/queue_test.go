package workqueue

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// step is one action of a scripted queue test.
type step struct {
	op   string // add, get, done, len, shutdown
	item string
	// want is the item get must return, or the length len must report.
	want     string
	wantLen  int
	wantShut bool
}

func TestQueueSemantics(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"fifo order", []step{
			{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "add", item: "c"},
			{op: "get", want: "a"}, {op: "get", want: "b"}, {op: "get", want: "c"},
		}},
		{"dedupe while dirty", []step{
			{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "add", item: "a"},
			{op: "len", wantLen: 2},
			{op: "get", want: "a"}, {op: "get", want: "b"}, {op: "len", wantLen: 0},
		}},
		{"re-add while processing waits for done", []step{
			{op: "add", item: "a"}, {op: "get", want: "a"},
			{op: "add", item: "a"}, {op: "add", item: "a"},
			{op: "len", wantLen: 0},
			{op: "done", item: "a"},
			{op: "len", wantLen: 1},
			{op: "get", want: "a"}, {op: "done", item: "a"}, {op: "len", wantLen: 0},
		}},
		{"re-added item goes behind those already waiting", []step{
			{op: "add", item: "a"}, {op: "add", item: "b"},
			{op: "get", want: "a"}, {op: "add", item: "a"}, {op: "add", item: "c"},
			{op: "done", item: "a"},
			{op: "get", want: "b"}, {op: "get", want: "c"}, {op: "get", want: "a"},
		}},
		{"done without re-add does not requeue", []step{
			{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "done", item: "a"},
			{op: "len", wantLen: 0},
		}},
		{"get after shutdown hands out what is queued then reports shutdown", []step{
			{op: "add", item: "a"}, {op: "add", item: "b"}, {op: "shutdown"},
			{op: "add", item: "c"},
			{op: "get", want: "a"}, {op: "get", want: "b"}, {op: "get", wantShut: true},
			{op: "get", wantShut: true},
		}},
		{"dirty item still requeued by done after shutdown", []step{
			{op: "add", item: "a"}, {op: "get", want: "a"}, {op: "add", item: "a"},
			{op: "shutdown"}, {op: "done", item: "a"},
			{op: "get", want: "a"}, {op: "done", item: "a"}, {op: "get", wantShut: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := New(Options[string]{})
			defer q.ShutDown()
			for i, s := range tt.steps {
				switch s.op {
				case "add":
					q.Add(s.item)
				case "done":
					q.Done(s.item)
				case "shutdown":
					q.ShutDown()
				case "len":
					if got := q.Len(); got != s.wantLen {
						t.Fatalf("step %d: Len() = %d, want %d", i, got, s.wantLen)
					}
				case "get":
					got, shut := q.Get()
					if got != s.want || shut != s.wantShut {
						t.Fatalf("step %d: Get() = %q, %v; want %q, %v", i, got, shut, s.want, s.wantShut)
					}
				default:
					t.Fatalf("step %d: unknown op %q", i, s.op)
				}
			}
		})
	}
}

func TestGetBlocksUntilAddOrShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New(Options[string]{})
		got := make(chan string, 2)
		go func() {
			for {
				item, shut := q.Get()
				if shut {
					close(got)
					return
				}
				got <- item
				q.Done(item)
			}
		}()
		synctest.Wait()
		if len(got) != 0 {
			t.Fatal("Get returned from an empty queue")
		}
		q.Add("a")
		synctest.Wait()
		if item := <-got; item != "a" {
			t.Fatalf("got %q, want a", item)
		}
		q.ShutDown()
		if _, ok := <-got; ok {
			t.Fatal("worker received an item after shutdown of an empty queue")
		}
	})
}

func TestAddAfter(t *testing.T) {
	type add struct {
		item string
		d    time.Duration
	}
	tests := []struct {
		name string
		adds []add
		// ready maps an elapsed time to the items expected queued by then, in order.
		checks []struct {
			at   time.Duration
			want []string
		}
	}{
		{
			name: "ready after its delay",
			adds: []add{{"a", time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{999 * time.Millisecond, nil}, {time.Second, []string{"a"}}},
		},
		{
			name: "zero and negative delays are immediate",
			adds: []add{{"a", 0}, {"b", -time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{0, []string{"a", "b"}}},
		},
		{
			name: "earlier ready time wins when re-added sooner",
			adds: []add{{"a", 10 * time.Second}, {"a", time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{time.Second, []string{"a"}}, {20 * time.Second, []string{"a"}}},
		},
		{
			name: "earlier ready time wins when re-added later",
			adds: []add{{"a", time.Second}, {"a", 10 * time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{time.Second, []string{"a"}}, {20 * time.Second, []string{"a"}}},
		},
		{
			name: "ordered by ready time, not by add order",
			adds: []add{{"c", 3 * time.Second}, {"a", time.Second}, {"b", 2 * time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{1500 * time.Millisecond, []string{"a"}}, {3 * time.Second, []string{"a", "b", "c"}}},
		},
		{
			name: "delayed item already queued is not duplicated",
			adds: []add{{"a", 0}, {"a", time.Second}},
			checks: []struct {
				at   time.Duration
				want []string
			}{{0, []string{"a"}}, {2 * time.Second, []string{"a"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				q := New(Options[string]{})
				defer q.ShutDown()
				start := time.Now()
				for _, a := range tt.adds {
					q.AddAfter(a.item, a.d)
				}
				for _, c := range tt.checks {
					time.Sleep(c.at - time.Since(start))
					synctest.Wait()
					if diff := cmp.Diff(c.want, snapshot(q)); diff != "" {
						t.Fatalf("at %v queued items (-want +got):\n%s", c.at, diff)
					}
				}
			})
		})
	}
}

// snapshot returns the queued items in order without taking them.
func snapshot[T comparable](q *Queue[T]) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.queue) == 0 {
		return nil
	}
	return append([]T(nil), q.queue...)
}

func TestShutDownDropsDelayedItems(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New(Options[string]{})
		q.AddAfter("a", time.Second)
		q.ShutDown()
		q.AddAfter("b", time.Second)
		time.Sleep(2 * time.Second)
		if _, shut := q.Get(); !shut {
			t.Fatal("delayed item delivered after shutdown")
		}
	})
}

func TestShutDownWithDrainWaitsForInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New(Options[string]{})
		q.Add("a")
		q.Add("b")
		a, _ := q.Get()
		b, _ := q.Get()
		var returned atomic.Bool
		go func() {
			q.ShutDownWithDrain()
			returned.Store(true)
		}()
		synctest.Wait()
		if returned.Load() {
			t.Fatal("ShutDownWithDrain returned with two items in flight")
		}
		q.Add("c") // ignored: shutting down
		q.Done(a)
		synctest.Wait()
		if returned.Load() {
			t.Fatal("ShutDownWithDrain returned with one item in flight")
		}
		q.Done(b)
		synctest.Wait()
		if !returned.Load() {
			t.Fatal("ShutDownWithDrain still waiting after every item was done")
		}
		if _, shut := q.Get(); !shut {
			t.Fatal("item added during drain was delivered")
		}
	})
}

func TestShutDownIsIdempotent(t *testing.T) {
	q := New(Options[int]{})
	q.ShutDown()
	q.ShutDown()
	q.ShutDownWithDrain()
	if !q.ShuttingDown() {
		t.Fatal("ShuttingDown() = false after ShutDown")
	}
}

func TestAddRateLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		q := New(Options[string]{RateLimiter: ItemExponential[string](time.Second, 4*time.Second)})
		defer q.ShutDown()
		start := time.Now()
		var gaps []time.Duration
		last := start
		for range 5 {
			q.AddRateLimited("a")
			item, _ := q.Get()
			now := time.Now()
			gaps = append(gaps, now.Sub(last))
			last = now
			q.Done(item)
		}
		want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second}
		if diff := cmp.Diff(want, gaps); diff != "" {
			t.Fatalf("retry delays (-want +got):\n%s", diff)
		}
		if n := q.NumRequeues("a"); n != 5 {
			t.Fatalf("NumRequeues = %d, want 5", n)
		}
		q.Forget("a")
		if n := q.NumRequeues("a"); n != 0 {
			t.Fatalf("NumRequeues after Forget = %d, want 0", n)
		}
		q.AddRateLimited("a")
		before := time.Now()
		q.Get()
		if d := time.Since(before); d != time.Second {
			t.Fatalf("delay after Forget = %v, want 1s", d)
		}
	})
}

// recordingMetrics records every call, for checking what a queue reports.
type recordingMetrics struct {
	adds, retries int
	depths        []int
	latencies     []time.Duration
	works         []time.Duration
}

func (m *recordingMetrics) Add()                         { m.adds++ }
func (m *recordingMetrics) Depth(n int)                  { m.depths = append(m.depths, n) }
func (m *recordingMetrics) QueueLatency(d time.Duration) { m.latencies = append(m.latencies, d) }
func (m *recordingMetrics) WorkDuration(d time.Duration) { m.works = append(m.works, d) }
func (m *recordingMetrics) Retry()                       { m.retries++ }

func TestMetricsHook(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &recordingMetrics{}
		q := New(Options[string]{Metrics: m, RateLimiter: ItemExponential[string](time.Second, time.Minute)})
		defer q.ShutDown()
		q.Add("a")
		q.Add("a") // deduplicated: not counted
		q.Add("b")
		time.Sleep(2 * time.Second)
		a, _ := q.Get()
		time.Sleep(3 * time.Second)
		q.Done(a)
		q.AddRateLimited("a")
		got, _ := q.Get() // b
		q.Done(got)
		got, _ = q.Get() // a, after 1s backoff
		q.Done(got)

		want := &recordingMetrics{
			adds:      3,
			retries:   1,
			depths:    []int{1, 2, 1, 0, 1, 0},
			latencies: []time.Duration{2 * time.Second, 5 * time.Second, 0},
			works:     []time.Duration{3 * time.Second, 0, 0},
		}
		if diff := cmp.Diff(want, m, cmp.AllowUnexported(recordingMetrics{})); diff != "" {
			t.Fatalf("metrics (-want +got):\n%s", diff)
		}
	})
}

// TestStressNoConcurrentProcessing runs many producers and workers on few keys and checks the
// two promises that matter: a key is never held by two workers at once, and every add is
// followed by a processing that saw it.
func TestStressNoConcurrentProcessing(t *testing.T) {
	const (
		keys      = 16
		producers = 8
		workers   = 8
		addsEach  = 2000
	)
	q := New(Options[int]{})
	var added, seen [keys]atomic.Int64
	var holding [keys]atomic.Int32
	var violations atomic.Int32

	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				k, shut := q.Get()
				if shut {
					return
				}
				if holding[k].Add(1) != 1 {
					violations.Add(1)
				}
				seen[k].Store(added[k].Load())
				holding[k].Add(-1)
				q.Done(k)
			}
		})
	}
	var pw sync.WaitGroup
	for p := range producers {
		pw.Go(func() {
			for i := range addsEach {
				k := (i*7 + p) % keys
				added[k].Add(1)
				q.Add(k)
			}
		})
	}
	pw.Wait()
	q.ShutDownWithDrain()
	wg.Wait()

	if v := violations.Load(); v != 0 {
		t.Fatalf("%d times a key was held by two workers", v)
	}
	for k := range keys {
		if a, s := added[k].Load(), seen[k].Load(); a != s {
			t.Errorf("key %d: last processing saw %d adds of %d", k, s, a)
		}
	}
}

func BenchmarkAddGetDone(b *testing.B) {
	q := New(Options[int]{})
	defer q.ShutDown()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		q.Add(i & 1023)
		k, _ := q.Get()
		q.Done(k)
	}
}

func BenchmarkParallelWorkers(b *testing.B) {
	for _, workers := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			q := New(Options[int]{})
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for {
						k, shut := q.Get()
						if shut {
							return
						}
						q.Done(k)
					}
				})
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				q.Add(i & 4095)
			}
			q.ShutDownWithDrain()
			wg.Wait()
		})
	}
}
