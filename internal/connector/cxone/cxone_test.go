package cxone

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/vendorsim/cxone"
)

// watchAll runs Watch until the test ends and hands its events over a channel.
func watchAll(t *testing.T, c *Connector) <-chan presence.Event {
	t.Helper()
	out := make(chan presence.Event, 256)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = c.Watch(ctx, func(_ context.Context, ev presence.Event) error {
			out <- ev
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return out
}

func nextOf(t *testing.T, evs <-chan presence.Event, agent string, typ presence.EventType) presence.Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-evs:
			if ev.Agent == agent && ev.Type == typ {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s event for %s", typ, agent)
		}
	}
}

// TestContact: a call becomes conversation_started and the contact state, a write meanwhile is
// deferred, and the call's end becomes conversation_ended and the state from before it.
func TestContact(t *testing.T) {
	e := newEnv(t, cxone.Config{})
	ana := strconv.Itoa(cxone.DemoAgentID(1))
	if err := e.sim.SetStatus(ana, "Available"); err != nil {
		t.Fatal(err)
	}
	c := e.connect(t, Options{PollInterval: 20 * time.Millisecond})
	defer c.Close()
	evs := watchAll(t, c)
	ctx := context.Background()
	// The first poll is the baseline: change until a change is reported, ending at Lunch.
	for i := 0; ; i++ {
		if i == 100 {
			t.Fatal("no change was reported")
		}
		if err := e.sim.SetStatus(ana, []string{"Break", "Lunch"}[i%2]); err != nil {
			t.Fatal(err)
		}
		select {
		case ev := <-evs:
			if ev.Status != strconv.Itoa(cxone.LunchCode) {
				if err := e.sim.SetStatus(ana, "Lunch"); err != nil {
					t.Fatal(err)
				}
				for nextOf(t, evs, ana, presence.StatusChanged).Status != strconv.Itoa(cxone.LunchCode) {
				}
			}
		case <-time.After(100 * time.Millisecond):
			continue
		}
		break
	}
	id, err := e.sim.StartContact(ana, false, "Sales")
	if err != nil {
		t.Fatal(err)
	}
	started := nextOf(t, evs, ana, presence.ConversationStarted)
	if started.Data["contactId"] != strconv.FormatInt(id, 10) || started.Data["direction"] != "inbound" {
		t.Errorf("conversation_started data = %v", started.Data)
	}
	if st := nextOf(t, evs, ana, presence.StatusChanged); st.Status != "3" {
		t.Errorf("status during the call = %s, want InboundContact", st.Status)
	}
	_, err = c.SetStatus(ctx, ana, "1")
	if d, ok := connector.IsDeferred(err); !ok || d.Reason != "on a contact" {
		t.Errorf("a write during a call: %v, want deferred on a contact", err)
	}
	if err := e.sim.EndContact(id); err != nil {
		t.Fatal(err)
	}
	if ended := nextOf(t, evs, ana, presence.ConversationEnded); ended.Data["contactId"] != strconv.FormatInt(id, 10) {
		t.Errorf("conversation_ended data = %v", ended.Data)
	}
	if st := nextOf(t, evs, ana, presence.StatusChanged); st.Status != strconv.Itoa(cxone.LunchCode) {
		t.Errorf("status after the call = %s, want Lunch's id", st.Status)
	}
	if _, err := c.SetStatus(ctx, ana, "1"); err != nil {
		t.Errorf("a write after the call: %v", err)
	}
}

// TestCatalogAndTeams: after-call work cannot be set, a code only some teams offer says which,
// contact states and LoggedOut are ACD states, and accounts carry their team.
func TestCatalogAndTeams(t *testing.T) {
	e := newEnv(t, cxone.Config{})
	c := e.connect(t, Options{})
	defer c.Close()
	ctx := context.Background()
	cat, err := c.Catalog(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]presence.Status{}
	for _, s := range cat {
		byName[s.Name] = s
	}
	for name, settable := range map[string]bool{"Available": true, "Unavailable": true, "Lunch": true, "ACW": false,
		"LoggedOut": false, "InboundContact": false, "OutboundContact": false} {
		if s, ok := byName[name]; !ok || s.Settable != settable {
			t.Errorf("catalog entry %s = %+v, want settable %v", name, s, settable)
		}
		if !settable && !Vendor.Catalog.IsSystemState(name) && name != "ACW" {
			t.Errorf("%s must be one of the vendor's system states", name)
		}
	}
	if l := byName["Coaching"].Label; l != "Coaching (teams voice, blended)" {
		t.Errorf("Coaching label = %q", l)
	}
	if byName["Lunch"].Category != presence.CategoryMeal {
		t.Errorf("Lunch category = %s", byName["Lunch"].Category)
	}
	accts, err := c.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(accts) != 50 || accts[0].Email != "ana@example.com" || len(accts[0].Teams) != 1 || accts[0].Teams[0] != "voice" {
		t.Errorf("accounts: %d, first %+v", len(accts), accts[0])
	}
	// A code Bo's team (chat) does not offer is refused for good.
	bo := strconv.Itoa(cxone.DemoAgentID(2))
	if err := e.sim.SetStatus(bo, "Available"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetStatus(ctx, bo, strconv.Itoa(cxone.CoachingCode)); !connector.IsPermanent(err) {
		t.Errorf("Coaching for a chat agent: %v, want permanent", err)
	}
}

// TestCodeIDs: a code whose outStateId reads as an ACD state's id gets an id of its own.
func TestCodeIDs(t *testing.T) {
	for out, want := range map[int]string{5: "outstate-5", 8: "outstate-8", 9: "9", 4471: "4471"} {
		if got := codeID(out); got != want {
			t.Errorf("codeID(%d) = %q, want %q", out, got, want)
		}
	}
	for name, want := range map[string]string{"LoggedOut": "0", "Available": "1", "Unavailable": "2", "LoggedIn": "8", "DialerPending": "DialerPending"} {
		if got := stateID(name); got != want {
			t.Errorf("stateID(%s) = %q, want %q", name, got, want)
		}
	}
}
