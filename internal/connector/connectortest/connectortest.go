// Package connectortest is the conformance suite every connector passes against its own
// simulator, as storetest is for stores: what the engine relies on a connector for, checked on
// the wire. A connector's test builds an Env (a connector facing a fresh simulator, and the
// simulator's hands) and calls Run.
//
// The contract it checks (see connector.Connector):
//   - the catalog and the accounts are well formed, and a status is Settable exactly when the
//     vendor lets it be set;
//   - Watch reports what people change, dated by the vendor; emit returns once the event is
//     stored, and an event whose emit failed is reported again after a restart (replayed, or
//     read back as the current status), so the vendor checkpoint never passes an event that was
//     not stored;
//   - CurrentStatuses reads what accounts show, dated by the vendor (not the local clock);
//   - a write's receipt, when it has a Version, is the Version of the event that reports the
//     write (the echo), so the engine pairs them exactly;
//   - errors are typed: *RetryAfterError when the vendor asks to wait, *PermanentError when
//     retrying cannot help, *DeferredError when the write must wait for the agent (or, for a
//     vendor that holds such a write itself, a Queued receipt and the status once released);
//   - an expired access token is replaced without the caller noticing;
//   - a connector that knows its vendor's request budget (connector.Limiter) stays within it
//     up front: the vendor never has to refuse it.
package connectortest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Env is a connector facing its simulator, with the simulator's hands.
type Env struct {
	// Connect opens a connector to the simulator as serve does. Every call shares the same
	// checkpoints, as a restarted service does; the suite closes what it opens.
	Connect func(t *testing.T) connector.Connector
	// Account is an account of the simulator's org; StatusA and StatusB are two settable
	// statuses of its catalog (ids), neither of which Account shows at the start.
	Account          string
	StatusA, StatusB string
	// Act makes an account show a status (id) as the person would, in the vendor's own client.
	Act func(t *testing.T, account, statusID string)
	// Epoch is the simulator's clock at the start, far from the local clock (a year back or
	// more), so that the suite tells a vendor's time from a local one. Vendor times fall in
	// [Epoch, Epoch+24h].
	Epoch time.Time
	// Faults is the simulator's fault injector, the one POST /_sim/faults drives.
	Faults *fault.Injector
	// ExpireTokens expires every access token the simulator issued.
	ExpireTokens func()
	// Throttled reports how many requests the simulator refused with 429 so far.
	Throttled func() int
	// WritesBypassAPI says the connector's writes do not reach the vendor's API (Salesforce's
	// go through the agent's browser bridge): faults and unknown accounts then concern reads.
	WritesBypassAPI bool
	// Deferred returns a write the vendor cannot apply now (the agent's bridge is not
	// connected, the agent is on a contact); nil for a vendor that applies every write at once.
	Deferred func(t *testing.T) (account, statusID string)
	// Release, for a vendor that accepts such a write and holds it (Amazon Connect's
	// NextStatus: the receipt is Queued), ends what holds it (clears the contact); the watcher
	// must then report the status.
	Release func(t *testing.T)
}

// Run runs every check, each against a fresh simulator from open.
func Run(t *testing.T, open func(t *testing.T) *Env) {
	t.Helper()
	checks := []struct {
		name string
		fn   func(t *testing.T, e *Env)
	}{
		{"CatalogAndAccounts", testCatalogAndAccounts},
		{"SettableAgreesWithVendor", testSettable},
		{"WatchReportsChangesWithVendorTime", testWatch},
		{"FailedEmitIsReportedAgain", testFailedEmit},
		{"CurrentStatusesAreVendorDated", testCurrent},
		{"ReceiptMatchesEcho", testReceipt},
		{"RetryAfterIsTyped", testRetryAfter},
		{"UnknownAccountIsNotRetried", testUnknownAccount},
		{"DeferredIsTyped", testDeferred},
		{"ExpiredTokenIsReplaced", testTokenExpiry},
		{"RateLimitAppliedUpFront", testRateLimit},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.fn(t, open(t)) })
	}
}

// connect opens a connector that is closed when the test ends.
func (e *Env) connect(t *testing.T) connector.Connector {
	t.Helper()
	c := e.Connect(t)
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

// vendorTime fails the test unless at is on the simulator's clock.
func (e *Env) vendorTime(t *testing.T, what string, at time.Time) {
	t.Helper()
	if at.Before(e.Epoch) || at.After(e.Epoch.Add(24*time.Hour)) {
		t.Errorf("%s is %s, not a time of the vendor's clock (from %s): a local time, or none", what, at, e.Epoch)
	}
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func testCatalogAndAccounts(t *testing.T, e *Env) {
	c := e.connect(t)
	ctx := ctxFor(t)
	cat, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(cat) == 0 {
		t.Fatal("empty catalog")
	}
	ids, names := map[string]bool{}, map[string]bool{}
	for _, s := range cat {
		if s.ID == "" || s.Name == "" || ids[s.ID] || names[s.Name] {
			t.Errorf("status %+v: ids and names must be present and unique", s)
		}
		if s.Category != "" && !s.Category.Valid() {
			t.Errorf("status %s: unknown category %q", s.Name, s.Category)
		}
		ids[s.ID], names[s.Name] = true, true
	}
	for _, id := range []string{e.StatusA, e.StatusB} {
		if !settable(cat, id) {
			t.Errorf("status %s is not a settable status of the catalog", id)
		}
	}
	accts, err := c.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	found := false
	for _, a := range accts {
		if a.ID == "" || seen[a.ID] {
			t.Errorf("account %+v: ids must be present and unique", a)
		}
		seen[a.ID] = true
		found = found || a.ID == e.Account && a.Email != ""
	}
	if !found {
		t.Errorf("account %s (with an email) is not among the %d accounts", e.Account, len(accts))
	}
}

func settable(cat []presence.Status, id string) bool {
	for _, s := range cat {
		if s.ID == id {
			return s.Settable
		}
	}
	return false
}

// testSettable writes every status of the catalog: the vendor takes exactly those marked
// settable, and refuses the others for good.
func testSettable(t *testing.T, e *Env) {
	c := e.connect(t)
	ctx := ctxFor(t)
	cat, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cat {
		_, err := c.SetStatus(ctx, e.Account, s.ID)
		switch {
		case s.Settable && err != nil:
			t.Errorf("status %s is marked settable, but the vendor refused it: %v", s.Name, err)
		case !s.Settable && err == nil:
			t.Errorf("status %s is marked not settable, but the vendor took it", s.Name)
		case !s.Settable && !connector.IsPermanent(err):
			t.Errorf("status %s cannot be set: the error must be permanent, got %v", s.Name, err)
		}
	}
}

// watch runs Watch with emit until the test ends; the watcher's own end is checked then.
type watch struct {
	events chan presence.Event
	done   chan error
	cancel context.CancelFunc
	// fail, when set, makes emit refuse the next event of that account.
	mu       sync.Mutex
	failNext string
	failed   chan presence.Event
}

func (e *Env) watch(t *testing.T, c connector.Connector) *watch {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{events: make(chan presence.Event, 4096), done: make(chan error, 1), cancel: cancel,
		failed: make(chan presence.Event, 1)}
	go func() {
		w.done <- c.Watch(ctx, func(_ context.Context, ev presence.Event) error {
			w.mu.Lock()
			fail := w.failNext != "" && ev.Agent == w.failNext && ev.Type == presence.StatusChanged
			if fail {
				w.failNext = ""
			}
			w.mu.Unlock()
			if fail {
				w.failed <- ev
				return errors.New("store unavailable")
			}
			w.events <- ev
			return nil
		})
	}()
	t.Cleanup(w.stop)
	return w
}

// stop ends Watch and waits for it.
func (w *watch) stop() {
	if w.cancel == nil {
		return
	}
	w.cancel()
	<-w.done
	w.cancel = nil
}

// next returns the next event of account, failing after 20 s (which only a hung connector
// reaches).
func (w *watch) next(t *testing.T, account string) presence.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		select {
		case ev := <-w.events:
			if ev.Agent == account {
				return ev
			}
		case <-deadline:
			t.Fatalf("no event for %s", account)
		}
	}
}

// until returns the first event of account showing statusID.
func (w *watch) until(t *testing.T, account, statusID string) presence.Event {
	t.Helper()
	for {
		if ev := w.next(t, account); ev.Status == statusID && ev.Type == presence.StatusChanged {
			return ev
		}
	}
}

// barrier changes the account's status until the watcher reports the change, which proves the
// watcher is subscribed, and leaves the account showing StatusB.
func (e *Env) barrier(t *testing.T, w *watch) {
	t.Helper()
	for i := 0; i < 50; i++ {
		id := e.StatusA
		if i%2 == 1 {
			id = e.StatusB
		}
		e.Act(t, e.Account, id)
		deadline := time.After(200 * time.Millisecond)
	wait:
		for {
			select {
			case ev := <-w.events:
				if ev.Agent == e.Account && ev.Status == id && ev.Type == presence.StatusChanged && !ev.IsResync() {
					if id != e.StatusB {
						e.Act(t, e.Account, e.StatusB)
						w.until(t, e.Account, e.StatusB)
					}
					return
				}
			case <-deadline:
				break wait
			}
		}
	}
	t.Fatal("the watcher never reported a change")
}

func testWatch(t *testing.T, e *Env) {
	c := e.connect(t)
	w := e.watch(t, c)
	e.barrier(t, w)
	e.Act(t, e.Account, e.StatusA)
	ev := w.until(t, e.Account, e.StatusA)
	if ev.System == "" {
		t.Errorf("event %+v names no system", ev)
	}
	e.vendorTime(t, "the event's time", ev.At)
}

// testFailedEmit refuses to store one event, stops the watcher, and restarts with a new
// connector on the same checkpoints: the change must come again.
func testFailedEmit(t *testing.T, e *Env) {
	c := e.connect(t)
	w := e.watch(t, c)
	e.barrier(t, w)
	w.mu.Lock()
	w.failNext = e.Account
	w.mu.Unlock()
	e.Act(t, e.Account, e.StatusA)
	select {
	case <-w.failed:
	case <-time.After(20 * time.Second):
		t.Fatal("the change was never emitted")
	}
	w.stop()
	w2 := e.watch(t, e.connect(t))
	ev := w2.until(t, e.Account, e.StatusA)
	e.vendorTime(t, "the reported-again event's time", ev.At)
}

func testCurrent(t *testing.T, e *Env) {
	c := e.connect(t)
	cr, ok := c.(connector.CurrentReader)
	if !ok {
		t.Log("the connector cannot read current statuses (no connector.CurrentReader)")
		return
	}
	w := e.watch(t, c)
	e.barrier(t, w)
	e.Act(t, e.Account, e.StatusA)
	ev := w.until(t, e.Account, e.StatusA)
	cur, err := cr.CurrentStatuses(ctxFor(t), []string{e.Account})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := cur[e.Account]
	if !ok || got.StatusID != e.StatusA {
		t.Fatalf("CurrentStatuses = %+v, want %s showing %s", cur, e.Account, e.StatusA)
	}
	if got.Since.IsZero() {
		t.Errorf("current status of %s has no time; the vendor dates it", e.Account)
	} else {
		e.vendorTime(t, "the current status's Since", got.Since)
		if !got.Since.Equal(ev.At) {
			t.Errorf("Since %s differs from the time %s of the event that reported the change", got.Since, ev.At)
		}
	}
	if got.Version != "" && ev.Version != "" && got.Version != ev.Version {
		t.Errorf("Version %q differs from the event's %q", got.Version, ev.Version)
	}
	all, err := cr.CurrentStatuses(ctxFor(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if all[e.Account].StatusID != e.StatusA {
		t.Errorf("CurrentStatuses of every account shows %+v for %s", all[e.Account], e.Account)
	}
}

func testReceipt(t *testing.T, e *Env) {
	c := e.connect(t)
	w := e.watch(t, c)
	e.barrier(t, w)
	r, err := c.SetStatus(ctxFor(t), e.Account, e.StatusA)
	if err != nil {
		t.Fatal(err)
	}
	ev := w.until(t, e.Account, e.StatusA)
	if r.Version != "" && ev.Version != r.Version {
		t.Errorf("the receipt's Version %q is not the echo's %q", r.Version, ev.Version)
	}
	if !r.At.IsZero() {
		e.vendorTime(t, "the receipt's time", r.At)
		if !r.At.Equal(ev.At) {
			t.Errorf("the receipt's time %s is not the echo's %s", r.At, ev.At)
		}
	}
	if bs, ok := c.(connector.BulkSetter); ok {
		res, err := bs.SetStatuses(ctxFor(t), []connector.StatusWrite{{Account: e.Account, StatusID: e.StatusB}})
		if err != nil || len(res) != 1 || res[0].Err != nil {
			t.Fatalf("SetStatuses = %+v, %v", res, err)
		}
		ev := w.until(t, e.Account, e.StatusB)
		if v := res[0].Receipt.Version; v != "" && ev.Version != v {
			t.Errorf("the bulk receipt's Version %q is not the echo's %q", v, ev.Version)
		}
	}
}

// call is the request the typed-error checks provoke: a write, or a read for a connector whose
// writes do not reach the vendor's API.
func (e *Env) call(ctx context.Context, c connector.Connector, account string) error {
	if e.WritesBypassAPI {
		_, err := c.Catalog(ctx)
		return err
	}
	_, err := c.SetStatus(ctx, account, e.StatusA)
	return err
}

// setFaults puts the faults in force.
func (e *Env) setFaults(t *testing.T, s fault.Settings) {
	t.Helper()
	if err := e.Faults.Apply(s); err != nil {
		t.Fatal(err)
	}
}

func testRetryAfter(t *testing.T, e *Env) {
	c := e.connect(t)
	if _, err := c.Catalog(ctxFor(t)); err != nil { // signed in before the storm
		t.Fatal(err)
	}
	e.setFaults(t, fault.Settings{StormFor: time.Minute, RetryAfter: 7 * time.Second})
	err := e.call(ctxFor(t), c, e.Account)
	d, ok := connector.RetryAfter(err)
	if !ok || d <= 0 {
		t.Fatalf("during a 429 storm with Retry-After: %v, want a *RetryAfterError", err)
	}
	if connector.IsPermanent(err) {
		t.Errorf("a throttled call is not permanent: %v", err)
	}
	e.setFaults(t, fault.Settings{})
	e.setFaults(t, fault.Settings{ErrorRate: 1, ErrorStatus: 500})
	if err := e.call(ctxFor(t), c, e.Account); err == nil || connector.IsPermanent(err) {
		t.Errorf("a server error must be retryable: %v", err)
	}
	e.setFaults(t, fault.Settings{})
}

func testUnknownAccount(t *testing.T, e *Env) {
	c := e.connect(t)
	const nobody = "no-such-account"
	_, err := c.SetStatus(ctxFor(t), nobody, e.StatusA)
	if _, deferred := connector.IsDeferred(err); !connector.IsPermanent(err) && !(e.WritesBypassAPI && deferred) {
		t.Errorf("a write to an account the vendor does not have: %v, want a *PermanentError (or, through a browser bridge, a *DeferredError until that agent's bridge connects)", err)
	}
}

func testDeferred(t *testing.T, e *Env) {
	if e.Deferred == nil {
		t.Log("the vendor applies every write at once")
		return
	}
	c := e.connect(t)
	var w *watch
	if e.Release != nil {
		w = e.watch(t, c)
		e.barrier(t, w)
	}
	account, status := e.Deferred(t)
	r, err := c.SetStatus(ctxFor(t), account, status)
	if err == nil && r.Queued != "" {
		if e.Release == nil {
			t.Fatalf("the vendor holds the write (%q) but the Env has no Release", r.Queued)
		}
		e.Release(t)
		ev := w.until(t, account, status)
		e.vendorTime(t, "the held write's event time", ev.At)
		return
	}
	if d, ok := connector.IsDeferred(err); !ok || d.Reason == "" {
		t.Errorf("a write the vendor cannot apply now: %v (receipt %+v), want a *DeferredError with a reason or a Queued receipt", err, r)
	}
}

func testTokenExpiry(t *testing.T, e *Env) {
	c := e.connect(t)
	ctx := ctxFor(t)
	if _, err := c.Catalog(ctx); err != nil {
		t.Fatal(err)
	}
	e.ExpireTokens()
	if _, err := c.Accounts(ctx); err != nil {
		t.Errorf("after the token expired: %v", err)
	}
	e.ExpireTokens()
	if _, err := c.SetStatus(ctx, e.Account, e.StatusA); err != nil {
		t.Errorf("writing after the token expired: %v", err)
	}
}

func testRateLimit(t *testing.T, e *Env) {
	c := e.connect(t)
	l, ok := c.(connector.Limiter)
	if !ok {
		t.Log("the connector knows no request budget (no connector.Limiter)")
		return
	}
	ctx := ctxFor(t)
	// One call first: a vendor may tell its budget only in its answers.
	if _, err := c.Catalog(ctx); err != nil {
		t.Fatal(err)
	}
	perSecond, burst := l.WriteLimit()
	if perSecond <= 0 || burst < 1 {
		t.Fatalf("WriteLimit = %v/s, burst %d", perSecond, burst)
	}
	before := e.Throttled()
	// More writes than one window allows, as fast as the connector lets them go.
	n := 2*burst + 5
	if n > 200 {
		n = 200
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		status := e.StatusA
		if i%2 == 1 {
			status = e.StatusB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.SetStatus(ctx, e.Account, status); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("write: %v", err)
	}
	if got := e.Throttled() - before; got != 0 {
		t.Errorf("the vendor refused %d of %d requests with 429: the budget (%v/s, burst %d) was not applied up front", got, n, perSecond, burst)
	}
}
