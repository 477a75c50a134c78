package cluster

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeLease is a lease in memory, with the database's rules.
type fakeLease struct {
	mu      sync.Mutex
	holder  string
	epoch   int64
	expires time.Time
	down    bool // every call fails, as while the database is unreachable
}

var errDown = errors.New("database unreachable")

func (f *fakeLease) AcquireLease(_ context.Context, holder string, ttl time.Duration) (int64, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return 0, false, errDown
	}
	if f.holder != "" && time.Now().Before(f.expires) {
		return 0, false, nil
	}
	f.holder, f.epoch, f.expires = holder, f.epoch+1, time.Now().Add(ttl)
	return f.epoch, true, nil
}

func (f *fakeLease) RenewLease(_ context.Context, holder string, epoch int64, ttl time.Duration) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return false, errDown
	}
	if f.holder != holder || f.epoch != epoch {
		return false, nil
	}
	f.expires = time.Now().Add(ttl)
	return true, nil
}

func (f *fakeLease) ReleaseLease(_ context.Context, holder string, epoch int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.holder == holder && f.epoch == epoch {
		f.holder = ""
	}
	return nil
}

func (f *fakeLease) set(fn func(f *fakeLease)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

type leadTerm struct {
	id    string
	epoch int64
}

// elect runs an elector whose terms are reported on starts and ends.
func elect(ctx context.Context, lease Lease, id string, starts, ends chan<- leadTerm) chan error {
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ID: id, TTL: 100 * time.Millisecond, Lease: lease,
			Lead: func(ctx context.Context, epoch int64) error {
				starts <- leadTerm{id, epoch}
				<-ctx.Done()
				ends <- leadTerm{id, epoch}
				return nil
			}})
	}()
	return done
}

// leadAlone runs replica "a" alone on a fresh lease until its first term starts; finish stops
// it and checks that its term ended and Run returned nil.
func leadAlone(t *testing.T) (lease *fakeLease, starts, ends chan leadTerm, finish func()) {
	t.Helper()
	lease = &fakeLease{}
	starts, ends = make(chan leadTerm, 10), make(chan leadTerm, 10)
	ctx, stop := context.WithCancel(context.Background())
	t.Cleanup(stop)
	done := elect(ctx, lease, "a", starts, ends)
	<-starts
	return lease, starts, ends, func() {
		t.Helper()
		stop()
		<-ends
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestOneLeaderAndHandover: one of two replicas leads; when it stops it gives the lease up and
// the other leads at the next epoch.
func TestOneLeaderAndHandover(t *testing.T) {
	lease := &fakeLease{}
	starts, ends := make(chan leadTerm, 10), make(chan leadTerm, 10)
	ctxA, stopA := context.WithCancel(context.Background())
	ctxB, stopB := context.WithCancel(context.Background())
	defer stopB()
	doneA := elect(ctxA, lease, "a", starts, ends)
	first := <-starts
	if first != (leadTerm{"a", 1}) {
		t.Fatalf("first term %+v; want a at epoch 1", first)
	}
	doneB := elect(ctxB, lease, "b", starts, ends)
	stopA()
	if e := <-ends; e != first {
		t.Fatalf("ended %+v; want %+v", e, first)
	}
	if err := <-doneA; err != nil {
		t.Fatalf("a: %v", err)
	}
	if next := <-starts; next != (leadTerm{"b", 2}) {
		t.Fatalf("next term %+v; want b at epoch 2", next)
	}
	stopB()
	<-ends
	if err := <-doneB; err != nil {
		t.Fatalf("b: %v", err)
	}
}

// TestStepsDownWhenTakenOver: a leader whose lease another replica took ends its term and
// campaigns again.
func TestStepsDownWhenTakenOver(t *testing.T) {
	lease, starts, ends, finish := leadAlone(t)
	lease.set(func(f *fakeLease) {
		f.holder, f.epoch, f.expires = "b", f.epoch+1, time.Now().Add(150*time.Millisecond)
	})
	if e := <-ends; e != (leadTerm{"a", 1}) {
		t.Fatalf("ended %+v", e)
	}
	if next := <-starts; next != (leadTerm{"a", 3}) {
		t.Fatalf("after b's lease expired: %+v; want a at epoch 3", next)
	}
	finish()
}

// TestStepsDownWhenTheLeaseCannotBeRenewed: without the database, a leader ends its term, and
// leads again once the database answers.
func TestStepsDownWhenTheLeaseCannotBeRenewed(t *testing.T) {
	lease, starts, ends, finish := leadAlone(t)
	lease.set(func(f *fakeLease) { f.down = true })
	<-ends
	lease.set(func(f *fakeLease) { f.down = false })
	if next := <-starts; next.epoch != 2 {
		t.Fatalf("next term %+v; want epoch 2", next)
	}
	finish()
}

// TestWorkThatDoesNotStopEndsRun: a leader whose work outlives its term's end by the step-down
// time must not go on: Run fails (the process exits).
func TestWorkThatDoesNotStopEndsRun(t *testing.T) {
	lease := &fakeLease{}
	ctx, stop := context.WithCancel(context.Background())
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{ID: "a", TTL: 100 * time.Millisecond, Lease: lease, StepDownTimeout: 50 * time.Millisecond,
			Lead: func(context.Context, int64) error { close(started); <-release; return nil }})
	}()
	<-started
	stop()
	if err := <-done; err == nil {
		t.Fatal("Run returned nil although the leader's work never stopped")
	}
}

// TestFatalErrorEndsRun: an error Fatal marks ends Run; another ends only the term.
func TestFatalErrorEndsRun(t *testing.T) {
	lease := &fakeLease{}
	fatal := errors.New("bad configuration")
	calls := 0
	err := Run(context.Background(), Options{ID: "a", TTL: 20 * time.Millisecond, Lease: lease,
		Fatal: func(err error) bool { return errors.Is(err, fatal) },
		Lead: func(context.Context, int64) error {
			calls++
			if calls == 1 {
				return errors.New("passing trouble")
			}
			return fatal
		}})
	if !errors.Is(err, fatal) || calls != 2 {
		t.Fatalf("Run: %v after %d terms; want the fatal error after 2", err, calls)
	}
	if lease.holder != "" {
		t.Errorf("the lease is still held by %q after Run ended", lease.holder)
	}
}
