package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

// unreachable is a vendor that cannot be reached until up is called: every call fails.
type unreachable struct {
	*fakevendor.Connector
	mu       sync.Mutex
	down     bool
	attempts int
	// addressed records the accounts writes were addressed to.
	addressed []string
}

var errRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func (u *unreachable) isDown() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.attempts++
	return u.down
}

func (u *unreachable) up() {
	u.mu.Lock()
	u.down = false
	u.mu.Unlock()
}

func (u *unreachable) Accounts(ctx context.Context) ([]presence.Account, error) {
	if u.isDown() {
		return nil, errRefused
	}
	return u.Connector.Accounts(ctx)
}

func (u *unreachable) Watch(ctx context.Context, emit connector.Emit) error {
	if u.isDown() {
		return errRefused
	}
	return u.Connector.Watch(ctx, emit)
}

func (u *unreachable) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	u.mu.Lock()
	u.addressed = append(u.addressed, account)
	u.mu.Unlock()
	if u.isDown() {
		return connector.Receipt{}, errRefused
	}
	return u.Connector.SetStatus(ctx, account, statusID)
}

// TestSystemDownDelaysOnlyItself runs the engine while Genesys cannot be reached: Salesforce is
// watched and its changes are decided at once; the writes to Genesys wait for its account
// directory (never addressed by email); the engine says which system is not ready and why; when
// Genesys answers, the write goes out to the account id.
func TestSystemDownDelaysOnlyItself(t *testing.T) {
	cfg, err := policy.Load("testdata/two-way.yaml", policy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	const gcAna = "u-ana"
	sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), []presence.Account{{ID: "005ana", Email: ana}})
	gc := &unreachable{Connector: fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(),
		[]presence.Account{{ID: gcAna, Email: ana}}), down: true}
	eng, err := New(Config{Policy: cfg, Store: memory.New(), Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	health := func(name string) SystemHealth {
		for _, s := range eng.Systems() {
			if s.Name == name {
				return s
			}
		}
		t.Fatalf("no system %s", name)
		return SystemHealth{}
	}
	waitFor(t, "sf ready and gc waiting", func() bool {
		g := health("gc")
		return health("sf").Ready && g.State == SystemWaiting && g.Retries >= 2
	})
	g := health("gc")
	if !strings.Contains(g.Reason, "connection refused") || g.Accounts != -1 || g.LastError == "" {
		t.Errorf("gc health = %+v", g)
	}
	var degraded *DegradedError
	if err := eng.Ready(); !errors.As(err, &degraded) || len(degraded.Systems) != 1 || degraded.Systems[0].Name != "gc" {
		t.Errorf("Ready = %v, want gc named as not ready", err)
	}

	sf.Act("005ana", "0N5000000000003") // Lunch: gc should show Meal
	waitFor(t, "the Salesforce change decided", func() bool {
		v, ok, _ := eng.Agent(ctx, ana)
		return ok && v.Systems["sf"].Observed == "Lunch" && v.Systems["gc"].Desired == "Meal"
	})
	// The watcher counts an event once the engine took it, just after the decision is visible.
	waitFor(t, "sf's events counted", func() bool { return health("sf").Events > 0 })
	gc.mu.Lock()
	addressed := append([]string(nil), gc.addressed...)
	gc.mu.Unlock()
	if len(addressed) != 0 {
		t.Fatalf("writes went to gc before its accounts were known: %v", addressed)
	}

	gc.up()
	waitFor(t, "gc Meal", func() bool { return gc.Status(gcAna) == "3fd96123-badb-4f69-bc03-1b1ccc6d8014" })
	waitFor(t, "every system ready", func() bool { return eng.Ready() == nil })
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for _, a := range gc.addressed {
		if a != gcAna {
			t.Errorf("a write to gc was addressed to %q, not the account id %q", a, gcAna)
		}
	}
}
