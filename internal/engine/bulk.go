package engine

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// batcher gathers the writes due for one system whose vendor takes many agents in one call
// (connector.BulkSetter): a shift start becomes a few bulk requests instead of one per agent.
// The vendor's request budget applies per call here, not per write.
type batcher struct {
	system  string
	conn    connector.BulkSetter
	limiter *rate.Limiter // nil: no budget known
	window  time.Duration
	max     int
	timeout time.Duration
	in      chan bulkItem
}

type bulkItem struct {
	write connector.StatusWrite
	// deadline is the write's own: the call that carries it must not outlast it, so that a
	// write whose answer is lost cannot land after its timeout.
	deadline time.Time
	result   chan connector.WriteResult
}

// submit hands one write to the batcher and waits for its own result.
func (b *batcher) submit(ctx context.Context, w Write) (connector.Receipt, error) {
	item := bulkItem{write: connector.StatusWrite{Account: w.Account, StatusID: w.StatusID}, result: make(chan connector.WriteResult, 1)}
	item.deadline, _ = ctx.Deadline()
	select {
	case b.in <- item:
	case <-ctx.Done():
		return connector.Receipt{}, &connector.NotAppliedError{Err: ctx.Err()} // never handed over
	}
	select {
	case r := <-item.result:
		return r.Receipt, r.Err
	case <-ctx.Done():
		return connector.Receipt{}, ctx.Err()
	}
}

// run sends batches until ctx ends.
func (b *batcher) run(ctx context.Context) {
	for {
		var batch []bulkItem
		select {
		case <-ctx.Done():
			return
		case it := <-b.in:
			batch = append(batch, it)
		}
		timer := time.NewTimer(b.window)
	gather:
		for len(batch) < b.max {
			select {
			case it := <-b.in:
				batch = append(batch, it)
			case <-timer.C:
				break gather
			case <-ctx.Done():
				break gather
			}
		}
		timer.Stop()
		b.send(ctx, batch)
	}
}

func (b *batcher) send(ctx context.Context, batch []bulkItem) {
	fail := func(err error) {
		for _, it := range batch {
			it.result <- connector.WriteResult{Err: err}
		}
	}
	if b.limiter != nil {
		if err := b.limiter.Wait(ctx); err != nil {
			fail(err)
			return
		}
	}
	// A write whose own time ran out while it waited is not sent: its caller has gone, and
	// took it for unanswered.
	deadline := time.Now().Add(b.timeout)
	live := batch[:0]
	for _, it := range batch {
		if !it.deadline.IsZero() && !time.Now().Before(it.deadline) {
			it.result <- connector.WriteResult{Err: &connector.NotAppliedError{Err: context.DeadlineExceeded}}
			continue
		}
		if !it.deadline.IsZero() && it.deadline.Before(deadline) {
			deadline = it.deadline
		}
		live = append(live, it)
	}
	batch = live
	if len(batch) == 0 {
		return
	}
	writes := make([]connector.StatusWrite, len(batch))
	for i, it := range batch {
		writes[i] = it.write
	}
	callCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	errs, err := b.conn.SetStatuses(callCtx, writes)
	if err != nil {
		fail(err)
		return
	}
	if len(errs) != len(batch) {
		fail(fmt.Errorf("%s: bulk write answered %d results for %d writes", b.system, len(errs), len(batch)))
		return
	}
	for i, it := range batch {
		it.result <- errs[i]
	}
}
