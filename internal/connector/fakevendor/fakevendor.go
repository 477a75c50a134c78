// Package fakevendor is an in-process vendor for tests and benchmarks: a tiny vendor that keeps each account's
// status, answers writes, and reports every change (a person's or an accepted write's) on
// Watch, the way a real vendor's event stream does. Tests can block writes with system
// states and inject errors.
package fakevendor

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Connector is a fake vendor. The zero value is not usable; call New.
type Connector struct {
	system   string
	catalog  []presence.Status
	accounts []presence.Account
	now      func() time.Time

	mu       sync.Mutex
	status   map[string]string // account → status id
	writes   []connector.StatusWrite
	failNext []error
	events   chan presence.Event
}

// New returns a fake vendor for the named system.
func New(system string, catalog []presence.Status, accounts []presence.Account) *Connector {
	return &Connector{system: system, catalog: catalog, accounts: accounts, now: time.Now,
		status: map[string]string{}, events: make(chan presence.Event, 1024)}
}

var _ connector.Connector = (*Connector)(nil)

// Catalog returns the configured statuses.
func (c *Connector) Catalog(context.Context) ([]presence.Status, error) { return c.catalog, nil }

// Accounts returns the configured accounts.
func (c *Connector) Accounts(context.Context) ([]presence.Account, error) { return c.accounts, nil }

// Watch emits every change until ctx ends. An event that could not be stored is offered again,
// as a vendor redelivers what was not acknowledged.
func (c *Connector) Watch(ctx context.Context, emit connector.Emit) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-c.events:
			for {
				err := emit(ctx, ev)
				if err == nil {
					break
				}
				if ctx.Err() != nil {
					return nil
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	}
}

// SetStatus applies a write unless an injected error or a system state refuses it; an accepted
// write is reported on Watch like any change.
func (c *Connector) SetStatus(_ context.Context, account, statusID string) (connector.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failNext) > 0 {
		err := c.failNext[0]
		c.failNext = c.failNext[1:]
		return connector.Receipt{}, err
	}
	if cur, ok := c.find(c.status[account]); ok && (cur.Category == presence.CategorySystem || !cur.Settable) {
		return connector.Receipt{}, &connector.DeferredError{Reason: cur.Name}
	}
	if _, ok := c.find(statusID); !ok {
		return connector.Receipt{}, &connector.PermanentError{Err: errors.New("unknown status " + statusID)}
	}
	c.writes = append(c.writes, connector.StatusWrite{Account: account, StatusID: statusID})
	c.change(account, statusID)
	return connector.Receipt{}, nil
}

// Close does nothing: the fake vendor holds nothing.
func (c *Connector) Close() error { return nil }

// Act changes an account's status as a person (or the vendor itself) would.
func (c *Connector) Act(account, statusID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.change(account, statusID)
}

// Emit reports an arbitrary event (conversations, workload) as the vendor would.
func (c *Connector) Emit(ev presence.Event) {
	ev.System = c.system
	if ev.At.IsZero() {
		ev.At = c.now()
	}
	c.events <- ev
}

// FailNext makes the next writes fail with errs, in order.
func (c *Connector) FailNext(errs ...error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.failNext = append(c.failNext, errs...)
}

// Status returns what an account shows.
func (c *Connector) Status(account string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[account]
}

// Writes returns the writes the vendor accepted, in order.
func (c *Connector) Writes() []connector.StatusWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]connector.StatusWrite(nil), c.writes...)
}

func (c *Connector) change(account, statusID string) {
	if c.status[account] == statusID {
		return
	}
	c.status[account] = statusID
	c.events <- presence.Event{System: c.system, Agent: account, Type: presence.StatusChanged, Status: statusID, At: c.now()}
}

func (c *Connector) find(id string) (presence.Status, bool) {
	for _, s := range c.catalog {
		if s.ID == id {
			return s, true
		}
	}
	return presence.Status{}, false
}

// Bulk is a fake vendor with a bulk write API (connector.BulkSetter) that records the size of
// every bulk call.
type Bulk struct {
	*Connector
	callsMu sync.Mutex
	calls   []int
}

var _ connector.BulkSetter = (*Bulk)(nil)

// NewBulk adds a bulk API to a fake vendor.
func NewBulk(c *Connector) *Bulk { return &Bulk{Connector: c} }

// SetStatuses applies each write as SetStatus would, answering one result per write.
func (b *Bulk) SetStatuses(ctx context.Context, writes []connector.StatusWrite) ([]connector.WriteResult, error) {
	b.callsMu.Lock()
	b.calls = append(b.calls, len(writes))
	b.callsMu.Unlock()
	out := make([]connector.WriteResult, len(writes))
	for i, w := range writes {
		out[i].Receipt, out[i].Err = b.SetStatus(ctx, w.Account, w.StatusID)
	}
	return out, nil
}

// Calls returns the size of every bulk call, in order.
func (b *Bulk) Calls() []int {
	b.callsMu.Lock()
	defer b.callsMu.Unlock()
	return append([]int(nil), b.calls...)
}
