// Package workqueue is a generic work queue that deduplicates, delays and rate-limits keys.
//
// The rules are those of a level-triggered controller queue:
//
//   - An item added while it already waits in the queue is stored once (the "dirty" set).
//   - An item is handed to at most one worker at a time. Adding it while a worker holds it marks it
//     dirty; it is queued again when that worker calls Done.
//   - AddAfter keeps an item aside until its ready time; adding it again while it waits keeps the
//     earlier of the two ready times.
//   - AddRateLimited asks the queue's RateLimiter how long to wait; Forget resets that history.
//   - After ShutDown, adds are ignored, Get hands out what is still queued and then reports
//     shutdown, and delayed items are dropped.
package workqueue

import (
	"container/heap"
	"sync"
	"time"
)

// Clock tells the time and makes timers. The default is the real clock; tests usually keep it
// and run inside testing/synctest instead.
type Clock interface {
	Now() time.Time
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer the queue uses.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// RealClock is the Clock of package time.
type RealClock struct{}

// Now returns time.Now().
func (RealClock) Now() time.Time { return time.Now() }

// NewTimer returns a time.Timer that fires after d.
func (RealClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Options configure a Queue. The zero value is usable.
type Options[T comparable] struct {
	// RateLimiter decides AddRateLimited delays; nil means DefaultRateLimiter.
	RateLimiter RateLimiter[T]
	// Metrics receives the queue's measurements; nil means none.
	Metrics Metrics
	// Clock defaults to RealClock.
	Clock Clock
}

// Queue is a deduplicating, delaying, rate-limited work queue of keys of type T. It is safe for
// concurrent use; create it with New and stop it with ShutDown or ShutDownWithDrain.
type Queue[T comparable] struct {
	limiter RateLimiter[T]
	metrics Metrics
	clock   Clock

	mu           sync.Mutex
	cond         *sync.Cond
	queue        []T
	dirty        map[T]struct{}
	processing   map[T]struct{}
	addedAt      map[T]time.Time // when each queued item entered the queue (metrics only)
	startedAt    map[T]time.Time // when each processing item was handed out (metrics only)
	shuttingDown bool

	waiting      waitHeap[T]
	waitingIndex map[T]*waitEntry[T]
	wake         chan struct{}
	stop         chan struct{}
	loopDone     chan struct{}
}

// New returns a running queue. Its delay loop runs until ShutDown.
func New[T comparable](opts Options[T]) *Queue[T] {
	q := &Queue[T]{
		limiter:      opts.RateLimiter,
		metrics:      opts.Metrics,
		clock:        opts.Clock,
		dirty:        map[T]struct{}{},
		processing:   map[T]struct{}{},
		waitingIndex: map[T]*waitEntry[T]{},
		wake:         make(chan struct{}, 1),
		stop:         make(chan struct{}),
		loopDone:     make(chan struct{}),
	}
	if q.limiter == nil {
		q.limiter = DefaultRateLimiter[T]()
	}
	if q.clock == nil {
		q.clock = RealClock{}
	}
	if q.metrics != nil {
		q.addedAt = map[T]time.Time{}
		q.startedAt = map[T]time.Time{}
	}
	q.cond = sync.NewCond(&q.mu)
	go q.delayLoop()
	return q
}

// Add queues item unless it is already queued. An item being processed is queued again when its
// worker calls Done. Adds after shutdown are ignored.
func (q *Queue[T]) Add(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(item)
}

func (q *Queue[T]) addLocked(item T) {
	if q.shuttingDown {
		return
	}
	if _, ok := q.dirty[item]; ok {
		return
	}
	if q.metrics != nil {
		q.metrics.Add()
		q.addedAt[item] = q.clock.Now()
	}
	q.dirty[item] = struct{}{}
	if _, ok := q.processing[item]; ok {
		return
	}
	q.queue = append(q.queue, item)
	q.depthChanged()
	q.cond.Signal()
}

func (q *Queue[T]) depthChanged() {
	if q.metrics != nil {
		q.metrics.Depth(len(q.queue))
	}
}

// Get blocks until an item is available and hands it to the caller, who must call Done with it.
// shutdown is true, and item the zero value, once the queue is shut down and empty.
func (q *Queue[T]) Get() (item T, shutdown bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.queue) == 0 && !q.shuttingDown {
		q.cond.Wait()
	}
	if len(q.queue) == 0 {
		return item, true
	}
	item = q.queue[0]
	var zero T
	q.queue[0] = zero
	q.queue = q.queue[1:]
	q.processing[item] = struct{}{}
	delete(q.dirty, item)
	if q.metrics != nil {
		now := q.clock.Now()
		if t, ok := q.addedAt[item]; ok {
			q.metrics.QueueLatency(now.Sub(t))
			delete(q.addedAt, item)
		}
		q.startedAt[item] = now
		q.depthChanged()
	}
	return item, false
}

// Done marks item as processed. If it was added again meanwhile, it is queued again now.
func (q *Queue[T]) Done(item T) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.metrics != nil {
		if t, ok := q.startedAt[item]; ok {
			q.metrics.WorkDuration(q.clock.Now().Sub(t))
			delete(q.startedAt, item)
		}
	}
	delete(q.processing, item)
	requeued := false
	if _, ok := q.dirty[item]; ok {
		q.queue = append(q.queue, item)
		q.depthChanged()
		requeued = true
	}
	switch {
	case q.shuttingDown:
		// Wake a ShutDownWithDrain waiting for the last worker, and any worker in Get.
		q.cond.Broadcast()
	case requeued:
		q.cond.Signal()
	}
}

// Len returns the number of items ready to be handed out (not those delayed or in process).
func (q *Queue[T]) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)
}

// ShuttingDown reports whether ShutDown or ShutDownWithDrain was called.
func (q *Queue[T]) ShuttingDown() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.shuttingDown
}

// ShutDown makes the queue ignore new items, drops delayed ones, stops the delay loop and lets
// Get return what is still queued and then report shutdown. It does not wait for workers.
func (q *Queue[T]) ShutDown() {
	q.mu.Lock()
	first := !q.shuttingDown
	q.shuttingDown = true
	q.cond.Broadcast()
	q.mu.Unlock()
	if first {
		close(q.stop)
	}
	<-q.loopDone
}

// ShutDownWithDrain shuts the queue down like ShutDown, then waits until no item handed out by
// Get is still in process. Workers keep receiving what is still queued meanwhile.
func (q *Queue[T]) ShutDownWithDrain() {
	q.ShutDown()
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.processing) > 0 {
		q.cond.Wait()
	}
}

// AddAfter queues item once d has passed. If the item already waits, the earlier ready time
// wins. d <= 0 is Add.
func (q *Queue[T]) AddAfter(item T, d time.Duration) {
	if d <= 0 {
		q.Add(item)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.shuttingDown {
		return
	}
	readyAt := q.clock.Now().Add(d)
	if e, ok := q.waitingIndex[item]; ok {
		if readyAt.Before(e.readyAt) {
			e.readyAt = readyAt
			heap.Fix(&q.waiting, e.index)
		}
	} else {
		e := &waitEntry[T]{item: item, readyAt: readyAt}
		heap.Push(&q.waiting, e)
		q.waitingIndex[item] = e
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// AddRateLimited queues item after the delay its RateLimiter gives and counts a retry.
func (q *Queue[T]) AddRateLimited(item T) {
	if q.metrics != nil {
		q.metrics.Retry()
	}
	q.AddAfter(item, q.limiter.When(item))
}

// Forget clears item's retry history in the RateLimiter; call it when the item succeeded or was
// given up. It does not remove the item from the queue.
func (q *Queue[T]) Forget(item T) { q.limiter.Forget(item) }

// NumRequeues returns how many times item went through AddRateLimited since its last Forget.
func (q *Queue[T]) NumRequeues(item T) int { return q.limiter.NumRequeues(item) }

// delayLoop moves delayed items into the queue when they become ready.
func (q *Queue[T]) delayLoop() {
	defer close(q.loopDone)
	for {
		q.mu.Lock()
		now := q.clock.Now()
		for len(q.waiting) > 0 && !q.waiting[0].readyAt.After(now) {
			e := heap.Pop(&q.waiting).(*waitEntry[T])
			delete(q.waitingIndex, e.item)
			q.addLocked(e.item)
		}
		next := time.Duration(-1)
		if len(q.waiting) > 0 {
			next = q.waiting[0].readyAt.Sub(now)
		}
		q.mu.Unlock()

		var timer Timer
		var fire <-chan time.Time
		if next >= 0 {
			timer = q.clock.NewTimer(next)
			fire = timer.C()
		}
		select {
		case <-q.stop:
			if timer != nil {
				timer.Stop()
			}
			q.mu.Lock()
			q.waiting = nil
			clear(q.waitingIndex)
			q.mu.Unlock()
			return
		case <-q.wake:
		case <-fire:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

type waitEntry[T comparable] struct {
	item    T
	readyAt time.Time
	index   int
}

// waitHeap orders delayed items by ready time.
type waitHeap[T comparable] []*waitEntry[T]

func (h waitHeap[T]) Len() int           { return len(h) }
func (h waitHeap[T]) Less(i, j int) bool { return h[i].readyAt.Before(h[j].readyAt) }
func (h waitHeap[T]) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *waitHeap[T]) Push(x any) {
	e := x.(*waitEntry[T])
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *waitHeap[T]) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	*h = old[:n-1]
	return e
}
