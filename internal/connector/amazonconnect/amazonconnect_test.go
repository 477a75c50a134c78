package amazonconnect

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	sim "github.com/omnipresence/omnipresence/internal/vendorsim/amazonconnect"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// watcher runs Watch until the test ends and hands over its events.
type watcher struct {
	events chan presence.Event
	done   chan error
	// held are events next passed over, in order.
	held []presence.Event
}

func watchAll(t *testing.T, c *Connector) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{events: make(chan presence.Event, 1024), done: make(chan error, 1)}
	go func() {
		w.done <- c.Watch(ctx, func(_ context.Context, ev presence.Event) error { w.events <- ev; return nil })
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return w
}

// next returns the next event of type typ for agent.
func (w *watcher) next(t *testing.T, agent string, typ presence.EventType) presence.Event {
	t.Helper()
	for i, ev := range w.held {
		if ev.Agent == agent && ev.Type == typ {
			w.held = append(w.held[:i:i], w.held[i+1:]...)
			return ev
		}
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-w.events:
			if ev.Agent == agent && ev.Type == typ {
				return ev
			}
			w.held = append(w.held, ev)
		case <-deadline:
			t.Fatalf("no %s event for %s", typ, agent)
		}
	}
}

// subscribed changes the agent's status until the watcher reports it (a watcher starting at
// the newest record misses what came before it).
func (e *env) subscribed(t *testing.T, w *watcher) {
	t.Helper()
	for i := 0; i < 100; i++ {
		status := []string{sim.TrainingID, sim.BreakID}[i%2]
		if err := e.sim.SetStatus(e.ana, status); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-w.events:
			if ev.Agent == e.ana && ev.Type == presence.StatusChanged {
				return
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the watcher never reported a change")
}

// TestContactsMoveThroughSystemStates follows a contact as Connect reports it: the agent is
// PendingBusy while it rings, Busy once answered, in AfterCallWork once it ended, and back to
// their status when after-contact work is cleared, with conversation_started and
// conversation_ended around it; an outbound call is CallingCustomer.
func TestContactsMoveThroughSystemStates(t *testing.T) {
	e := newEnv(t, sim.Config{})
	c := e.connector(t)
	w := watchAll(t, c)
	e.subscribed(t, w)
	if err := e.sim.SetStatus(e.ana, sim.AvailableID); err != nil {
		t.Fatal(err)
	}
	avail := w.next(t, e.ana, presence.StatusChanged)
	if avail.Status != sim.AvailableID || avail.Version == "" {
		t.Fatalf("status event %+v", avail)
	}
	id, err := e.sim.StartContact(sim.ContactRequest{User: e.ana, Channel: "VOICE"})
	if err != nil {
		t.Fatal(err)
	}
	started := w.next(t, e.ana, presence.ConversationStarted)
	if started.Data["contactId"] != id || started.Data["channel"] != "VOICE" || started.Data["queue"] != "BasicQueue" {
		t.Errorf("conversation_started data %v", started.Data)
	}
	for _, step := range []struct {
		do   func(string) error
		want string
	}{{nil, "PendingBusy"}, {e.sim.AnswerContact, "Busy"}, {e.sim.EndContact, "AfterCallWork"}} {
		if step.do != nil {
			if err := step.do(id); err != nil {
				t.Fatal(err)
			}
		}
		if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != step.want || ev.Version != "" {
			t.Errorf("status event %+v, want %s without a version", ev, step.want)
		}
	}
	if ended := w.next(t, e.ana, presence.ConversationEnded); ended.Data["contactId"] != id {
		t.Errorf("conversation_ended data %v", ended.Data)
	}
	cur, err := c.CurrentStatuses(context.Background(), []string{e.ana})
	if err != nil || cur[e.ana].StatusID != "AfterCallWork" || cur[e.ana].Since.IsZero() {
		t.Errorf("CurrentStatuses in after-call work = %+v, %v", cur, err)
	}
	if err := e.sim.ClearContact(id); err != nil {
		t.Fatal(err)
	}
	back := w.next(t, e.ana, presence.StatusChanged)
	if back.Status != sim.AvailableID || back.Version != "" || !back.At.After(avail.At) {
		t.Errorf("back from the contact: %+v; want Available, dated by the event (after %s), no version", back, avail.At)
	}
	if _, err := e.sim.StartContact(sim.ContactRequest{User: e.ana, Direction: "OUTBOUND"}); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != "CallingCustomer" {
		t.Errorf("outbound call: %+v", ev)
	}
}

// TestLoginLogout reports the agent event stream's LOGIN (with the status it shows, unless
// Offline) and LOGOUT, and reads a logged-out agent as Offline, undated.
func TestLoginLogout(t *testing.T) {
	e := newEnv(t, sim.Config{})
	c := e.connector(t)
	w := watchAll(t, c)
	e.subscribed(t, w)
	if err := e.sim.Logout(e.ana); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != sim.OfflineID {
		t.Errorf("before logging out: %+v, want Offline", ev)
	}
	if ev := w.next(t, e.ana, presence.Logout); ev.Status != sim.OfflineID {
		t.Errorf("logout %+v", ev)
	}
	cur, err := c.CurrentStatuses(context.Background(), []string{e.ana})
	if err != nil || cur[e.ana].StatusID != sim.OfflineID || !cur[e.ana].Since.IsZero() {
		t.Errorf("CurrentStatuses of a logged-out agent = %+v, %v", cur, err)
	}
	if err := e.sim.SetStatus(e.ana, sim.LunchID); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t, e.ana, presence.Login); ev.Status != sim.LunchID {
		t.Errorf("login by picking Lunch: %+v", ev)
	}
	if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != sim.LunchID {
		t.Errorf("after login %+v", ev)
	}
	// Logging in while Offline changes no status: the login carries none.
	if err := e.sim.Logout(e.ana); err != nil {
		t.Fatal(err)
	}
	w.next(t, e.ana, presence.Logout)
	if err := e.sim.Login(e.ana); err != nil {
		t.Fatal(err)
	}
	if ev := w.next(t, e.ana, presence.Login); ev.Status != "" {
		t.Errorf("login while Offline: %+v, want no status", ev)
	}
}

// TestReshardingIsFollowed splits every shard while watching: the children are read once their
// parents are read to the end, from their first record, and a restarted watcher neither replays
// the parents nor misses the children.
func TestReshardingIsFollowed(t *testing.T) {
	e := newEnv(t, sim.Config{})
	c := e.connector(t)
	w := watchAll(t, c)
	e.subscribed(t, w)
	e.sim.Reshard()
	for _, status := range []string{sim.LunchID, sim.TrainingID} {
		if err := e.sim.SetStatus(e.ana, status); err != nil {
			t.Fatal(err)
		}
		if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != status {
			t.Fatalf("after resharding: %+v, want %s", ev, status)
		}
	}
	cps := e.opts.Checkpoints.(*connector.MemoryCheckpoints).All()
	ended := 0
	for _, v := range cps {
		if v == shardEnd {
			ended++
		}
	}
	if ended != 2 {
		t.Errorf("checkpoints %v: want both parents read to the end", cps)
	}
	w2 := watchAll(t, e.connector(t))
	if err := e.sim.SetStatus(e.ana, sim.BreakID); err != nil {
		t.Fatal(err)
	}
	if ev := w2.next(t, e.ana, presence.StatusChanged); ev.Status != sim.BreakID {
		t.Errorf("a restarted watcher reported %+v first, want the new Break", ev)
	}
}

// TestExpiredIteratorsAreRenewed reads with a shard iterator lifetime shorter than the wait
// between reads: every read renews it after the last record read, and no change is missed.
func TestExpiredIteratorsAreRenewed(t *testing.T) {
	e := newEnv(t, sim.Config{IteratorTTL: 100 * time.Millisecond})
	e.opts.PollInterval = 150 * time.Millisecond
	c := e.connector(t)
	w := watchAll(t, c)
	e.subscribed(t, w)
	before := e.sim.Requests("GetShardIterator")
	for _, status := range []string{sim.LunchID, sim.TrainingID, sim.BreakID, sim.LunchID} {
		if err := e.sim.SetStatus(e.ana, status); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // longer than an iterator lives
		if ev := w.next(t, e.ana, presence.StatusChanged); ev.Status != status {
			t.Fatalf("%+v, want %s", ev, status)
		}
	}
	if e.sim.Requests("GetShardIterator") == before {
		t.Error("no iterator was renewed")
	}
}

// TestShardReadsStayUnderTheLimit polls as fast as allowed against Kinesis's 5 reads a second
// per shard: the simulator never refuses a read.
func TestShardReadsStayUnderTheLimit(t *testing.T) {
	e := newEnv(t, sim.Config{ShardReads: 5})
	e.opts.ShardReads, e.opts.PollInterval = 5, time.Millisecond
	c := e.connector(t)
	w := watchAll(t, c)
	e.subscribed(t, w)
	if err := e.sim.SetStatus(e.ana, sim.LunchID); err != nil {
		t.Fatal(err)
	}
	w.next(t, e.ana, presence.StatusChanged)
	// Polling every millisecond, the reader reaches the shard's limit many times over; it must
	// pace itself so that none of those reads is refused.
	for deadline := time.Now().Add(30 * time.Second); e.sim.Requests("GetRecords") < 12; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads in 30 s", e.sim.Requests("GetRecords"))
		}
	}
	if n := e.sim.Throttled(); n != 0 {
		t.Errorf("%d reads refused", n)
	}
}

// TestAccountsReadEmailsOfOtherUsernames: a username that is not an email is looked up with
// DescribeUser.
func TestAccountsReadEmailsOfOtherUsernames(t *testing.T) {
	seed := sim.DemoSeed()
	seed.Users = []sim.SeedUser{{Email: "ana@example.com", Username: "ana"}, {Email: "bo@example.com"}}
	e := newEnv(t, sim.Config{Seed: &seed})
	accts, err := e.connector(t).Accounts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 2 || accts[0].Email != "ana@example.com" || accts[1].Email != "bo@example.com" {
		t.Errorf("accounts %+v", accts)
	}
	if n := e.sim.Requests("DescribeUser"); n != 1 {
		t.Errorf("%d DescribeUser calls, want 1", n)
	}
}

// TestErrorsAreTyped: a system state, an unknown status and an unknown account are permanent;
// a 503, an unknown key, a wrong secret and a refused connection certainly did not apply the
// write; a throttle says how long to wait.
func TestErrorsAreTyped(t *testing.T) {
	e := newEnv(t, sim.Config{})
	c := e.connector(t)
	ctx := context.Background()
	for _, status := range []string{"AfterCallWork", "no-such-status"} {
		if _, err := c.SetStatus(ctx, e.ana, status); !connector.IsPermanent(err) {
			t.Errorf("status %s: %v, want permanent", status, err)
		}
	}
	if err := e.sim.Faults().Apply(fault.Settings{ErrorRate: 1, ErrorStatus: 503}); err != nil {
		t.Fatal(err)
	}
	_, err := c.SetStatus(ctx, e.ana, sim.LunchID)
	var na *connector.NotAppliedError
	if !errors.As(err, &na) {
		t.Errorf("503: %v, want not applied", err)
	}
	const storm = 300 * time.Millisecond
	if err := e.sim.Faults().Apply(fault.Settings{StormFor: storm, RetryAfter: 1500 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if d, ok := connector.RetryAfter(func() error { _, err := c.SetStatus(ctx, e.ana, sim.LunchID); return err }()); !ok || d != 1500*time.Millisecond {
		t.Errorf("throttled: wait %v (%v), want x-amz-retry-after's 1.5s", d, ok)
	}
	time.Sleep(storm) // the storm passes
	if err := e.sim.Faults().Apply(fault.Settings{}); err != nil {
		t.Fatal(err)
	}
	o := e.opts
	o.AccessKeyID = "AKIAUNKNOWNKEY000000"
	stranger, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.SetStatus(ctx, e.ana, sim.LunchID); !errors.As(err, &na) {
		t.Errorf("unknown key: %v, want not applied", err)
	}
	o = e.opts
	o.SecretAccessKey = "wrong"
	forger, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := forger.SetStatus(ctx, e.ana, sim.LunchID); !errors.As(err, &na) {
		t.Errorf("wrong secret: %v, want not applied", err)
	}
	o = e.opts
	o.Endpoint = "http://127.0.0.1:1"
	nowhere, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nowhere.SetStatus(ctx, e.ana, sim.LunchID); !errors.As(err, &na) {
		t.Errorf("refused connection: %v, want not applied", err)
	}
	if err := c.Healthy(ctx); err != nil {
		t.Errorf("Healthy: %v", err)
	}
}
