package workqueue

import (
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter decides how long an item waits before it is retried.
type RateLimiter[T comparable] interface {
	// When returns how long item should wait now, and records the attempt.
	When(item T) time.Duration
	// Forget clears item's history, as after a success.
	Forget(item T)
	// NumRequeues returns how many attempts were recorded for item since its last Forget.
	NumRequeues(item T) int
}

// DefaultRateLimiter combines a per-item exponential backoff from 5 ms to 1000 s with an overall
// bucket of 10 retries per second and a burst of 100, taking the larger delay of the two.
func DefaultRateLimiter[T comparable]() RateLimiter[T] {
	return MaxOf[T](
		ItemExponential[T](5*time.Millisecond, 1000*time.Second),
		Bucket[T](rate.Limit(10), 100),
	)
}

// ExponentialOption tunes ItemExponential.
type ExponentialOption func(*exponentialConfig)

type exponentialConfig struct {
	jitter float64
}

// WithJitter spreads each delay upward by a random fraction of up to f (0.1 = up to 10 % more),
// never past the maximum, so items failing together do not retry in lockstep.
func WithJitter(f float64) ExponentialOption {
	return func(c *exponentialConfig) { c.jitter = max(0, f) }
}

// ItemExponentialLimiter backs off per item: base, 2·base, 4·base, … capped at max.
type ItemExponentialLimiter[T comparable] struct {
	base, max time.Duration
	cfg       exponentialConfig

	mu       sync.Mutex
	failures map[T]int
}

// ItemExponential returns a per-item exponential backoff from base up to max.
func ItemExponential[T comparable](base, max time.Duration, opts ...ExponentialOption) *ItemExponentialLimiter[T] {
	l := &ItemExponentialLimiter[T]{
		base:     base,
		max:      max,
		failures: map[T]int{},
	}
	for _, o := range opts {
		o(&l.cfg)
	}
	return l
}

// When returns base·2^n for the item's n-th attempt, jittered if configured, capped at max.
func (l *ItemExponentialLimiter[T]) When(item T) time.Duration {
	l.mu.Lock()
	n := l.failures[item]
	l.failures[item] = n + 1
	l.mu.Unlock()

	d := float64(l.base) * math.Pow(2, float64(n))
	if l.cfg.jitter > 0 {
		d += d * l.cfg.jitter * rand.Float64()
	}
	if d > float64(l.max) || math.IsInf(d, 0) || math.IsNaN(d) {
		return l.max
	}
	return time.Duration(d)
}

// Forget clears the item's failure count.
func (l *ItemExponentialLimiter[T]) Forget(item T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, item)
}

// NumRequeues returns the item's failure count.
func (l *ItemExponentialLimiter[T]) NumRequeues(item T) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failures[item]
}

// BucketLimiter limits retries of all items together with a token bucket.
type BucketLimiter[T comparable] struct {
	limiter *rate.Limiter
}

// Bucket returns a limiter allowing qps retries per second overall with the given burst.
func Bucket[T comparable](qps rate.Limit, burst int) *BucketLimiter[T] {
	return &BucketLimiter[T]{limiter: rate.NewLimiter(qps, burst)}
}

// When reserves a token and returns how long until it is available.
func (b *BucketLimiter[T]) When(T) time.Duration { return b.limiter.Reserve().Delay() }

// Forget does nothing: the bucket keeps no per-item history.
func (b *BucketLimiter[T]) Forget(T) {}

// NumRequeues is always 0: the bucket keeps no per-item history.
func (b *BucketLimiter[T]) NumRequeues(T) int { return 0 }

// MaxOfLimiter asks several limiters and takes the longest delay.
type MaxOfLimiter[T comparable] struct {
	limiters []RateLimiter[T]
}

// MaxOf returns a limiter whose delay is the largest of the given limiters'.
func MaxOf[T comparable](limiters ...RateLimiter[T]) *MaxOfLimiter[T] {
	return &MaxOfLimiter[T]{limiters: limiters}
}

// When asks every limiter (so each records the attempt) and returns the largest delay.
func (m *MaxOfLimiter[T]) When(item T) time.Duration {
	var d time.Duration
	for _, l := range m.limiters {
		d = max(d, l.When(item))
	}
	return d
}

// Forget forgets the item in every limiter.
func (m *MaxOfLimiter[T]) Forget(item T) {
	for _, l := range m.limiters {
		l.Forget(item)
	}
}

// NumRequeues returns the largest count any limiter reports.
func (m *MaxOfLimiter[T]) NumRequeues(item T) int {
	var n int
	for _, l := range m.limiters {
		n = max(n, l.NumRequeues(item))
	}
	return n
}
