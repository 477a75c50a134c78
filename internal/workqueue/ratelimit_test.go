package workqueue

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/time/rate"
)

func TestItemExponential(t *testing.T) {
	tests := []struct {
		name      string
		base, max time.Duration
		want      []time.Duration
	}{
		{"doubles then caps", time.Millisecond, 10 * time.Millisecond,
			[]time.Duration{1, 2, 4, 8, 10, 10}},
		{"base equal to max", 5 * time.Millisecond, 5 * time.Millisecond,
			[]time.Duration{5, 5, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ItemExponential[string](tt.base, tt.max)
			var got []time.Duration
			for range tt.want {
				got = append(got, l.When("a")/time.Millisecond)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("delays in ms (-want +got):\n%s", diff)
			}
			if n := l.NumRequeues("a"); n != len(tt.want) {
				t.Fatalf("NumRequeues = %d, want %d", n, len(tt.want))
			}
			if n := l.NumRequeues("b"); n != 0 {
				t.Fatalf("NumRequeues of another item = %d, want 0", n)
			}
			l.Forget("a")
			if d := l.When("a"); d != tt.base {
				t.Fatalf("first delay after Forget = %v, want %v", d, tt.base)
			}
		})
	}
}

func TestItemExponentialDoesNotOverflow(t *testing.T) {
	l := ItemExponential[int](time.Second, time.Hour)
	for range 200 {
		if d := l.When(1); d <= 0 || d > time.Hour {
			t.Fatalf("delay %v outside (0, 1h]", d)
		}
	}
}

func TestItemExponentialJitter(t *testing.T) {
	l := ItemExponential[int](100*time.Millisecond, 300*time.Millisecond, WithJitter(0.5))
	spread := map[time.Duration]bool{}
	for i := range 500 {
		first := l.When(i)
		if first < 100*time.Millisecond || first > 150*time.Millisecond {
			t.Fatalf("first jittered delay %v outside [100ms, 150ms]", first)
		}
		spread[first] = true
		second := l.When(i)
		if second < 200*time.Millisecond || second > 300*time.Millisecond {
			t.Fatalf("second jittered delay %v outside [200ms, 300ms]", second)
		}
		if third := l.When(i); third != 300*time.Millisecond {
			t.Fatalf("third jittered delay %v, want capped at 300ms", third)
		}
	}
	if len(spread) < 100 {
		t.Fatalf("jitter produced only %d distinct delays in 500 draws", len(spread))
	}
}

func TestBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := Bucket[string](rate.Limit(2), 2) // 2 per second, burst 2
		var got []time.Duration
		for _, item := range []string{"a", "b", "c", "d"} {
			got = append(got, b.When(item))
		}
		want := []time.Duration{0, 0, 500 * time.Millisecond, time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("bucket delays (-want +got):\n%s", diff)
		}
		if n := b.NumRequeues("a"); n != 0 {
			t.Fatalf("NumRequeues = %d, want 0", n)
		}
	})
}

func TestMaxOf(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := MaxOf[string](
			ItemExponential[string](10*time.Millisecond, time.Second),
			Bucket[string](rate.Limit(1), 1),
		)
		got := []time.Duration{m.When("a"), m.When("a"), m.When("b")}
		// a: exp 10ms vs bucket 0; a: exp 20ms vs bucket 1s; b: exp 10ms vs bucket 2s.
		want := []time.Duration{10 * time.Millisecond, time.Second, 2 * time.Second}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("MaxOf delays (-want +got):\n%s", diff)
		}
		if n := m.NumRequeues("a"); n != 2 {
			t.Fatalf("NumRequeues = %d, want 2", n)
		}
		m.Forget("a")
		if n := m.NumRequeues("a"); n != 0 {
			t.Fatalf("NumRequeues after Forget = %d, want 0", n)
		}
	})
}

func TestDefaultRateLimiter(t *testing.T) {
	l := DefaultRateLimiter[string]()
	if d := l.When("a"); d != 5*time.Millisecond {
		t.Fatalf("first default delay = %v, want 5ms", d)
	}
	if d := l.When("a"); d != 10*time.Millisecond {
		t.Fatalf("second default delay = %v, want 10ms", d)
	}
}
