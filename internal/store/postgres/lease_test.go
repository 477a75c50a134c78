package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
)

// TestLeaseFencesADeposedLeader: one replica leads at a time; a takeover needs the lease to
// expire and increments the epoch; the old leader's writes then commit nothing and fail with a
// FencedError, while the new leader's commit.
func TestLeaseFencesADeposedLeader(t *testing.T) {
	ctx := context.Background()
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	const ttl = 300 * time.Millisecond
	ea, ok, err := a.AcquireLease(ctx, "a", ttl)
	if err != nil || !ok || ea != 1 {
		t.Fatalf("first acquire: epoch %d ok %v err %v; want epoch 1", ea, ok, err)
	}
	if _, ok, err := b.AcquireLease(ctx, "b", ttl); err != nil || ok {
		t.Fatalf("acquire of a held lease: ok %v err %v; want refused", ok, err)
	}
	if ok, err := a.RenewLease(ctx, "a", ea, ttl); err != nil || !ok {
		t.Fatalf("renew: ok %v err %v", ok, err)
	}
	l, err := b.CurrentLease(ctx)
	if err != nil || l.Holder != "a" || l.Epoch != 1 {
		t.Fatalf("lease %+v err %v; want a at epoch 1", l, err)
	}
	fa := a.Fenced(ea, time.Second)
	if err := fa.SetCheckpoint(ctx, "k", "from a"); err != nil {
		t.Fatalf("the leader's write: %v", err)
	}

	time.Sleep(ttl + 50*time.Millisecond)
	eb, ok, err := b.AcquireLease(ctx, "b", ttl)
	if err != nil || !ok || eb != 2 {
		t.Fatalf("takeover after expiry: epoch %d ok %v err %v; want epoch 2", eb, ok, err)
	}
	if ok, err := a.RenewLease(ctx, "a", ea, ttl); err != nil || ok {
		t.Fatalf("the deposed leader renewed: ok %v err %v", ok, err)
	}
	err = fa.Update(ctx, func(tx store.Tx) error {
		_, err := tx.InsertEvent(ctx, &store.Event{DedupeKey: "x", Agent: "ana", System: "sf", Type: "status_changed"})
		return err
	})
	var fenced *postgres.FencedError
	if !errors.As(err, &fenced) || fenced.Epoch != 1 || fenced.Current != 2 || !postgres.IsFenced(err) {
		t.Fatalf("deposed leader's write: %v; want a FencedError 1 -> 2", err)
	}
	if err := fa.SetCheckpoint(ctx, "k", "late"); !postgres.IsFenced(err) {
		t.Fatalf("deposed leader's checkpoint: %v; want fenced", err)
	}
	if evs, _ := b.Events(ctx, "", 0); len(evs) != 0 {
		t.Fatalf("a fenced write committed %d events", len(evs))
	}
	if v, _ := b.Checkpoint(ctx, "k"); v != "from a" {
		t.Fatalf("checkpoint %q; want the one written while a led", v)
	}
	if err := b.Fenced(eb, time.Second).SetCheckpoint(ctx, "k", "from b"); err != nil {
		t.Fatalf("the new leader's write: %v", err)
	}

	// A release hands over at once, with a new epoch.
	if err := b.ReleaseLease(ctx, "b", eb); err != nil {
		t.Fatal(err)
	}
	if l, _ := a.CurrentLease(ctx); l.Holder != "" {
		t.Fatalf("released lease still held by %q", l.Holder)
	}
	if e, ok, err := a.AcquireLease(ctx, "a", ttl); err != nil || !ok || e != 3 {
		t.Fatalf("acquire after release: epoch %d ok %v err %v; want 3", e, ok, err)
	}
}

// TestFencedTransactionIdleIsBounded: a leader stopped inside a write transaction holds the
// lease row's share lock; the server ends the transaction after the fence's idle time, so a
// takeover waits at most that long.
func TestFencedTransactionIdleIsBounded(t *testing.T) {
	ctx := context.Background()
	u := freshSchema(t)
	a, b := open(t, u), open(t, u)
	const ttl = 200 * time.Millisecond
	ea, _, err := a.AcquireLease(ctx, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	held := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- a.Fenced(ea, 300*time.Millisecond).Update(ctx, func(tx store.Tx) error {
			close(held)
			time.Sleep(2 * time.Second) // as if the process were stopped (SIGSTOP)
			return tx.SetCheckpoint(ctx, "k", "v")
		})
	}()
	<-held
	time.Sleep(ttl)
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, ok, err := b.AcquireLease(actx, "b", time.Second); err != nil || !ok {
		t.Fatalf("takeover while the old leader sat in a transaction: ok %v err %v", ok, err)
	}
	if err := <-done; err == nil {
		t.Fatal("the stopped leader's transaction committed")
	}
	if v, _ := b.Checkpoint(ctx, "k"); v != "" {
		t.Fatalf("checkpoint %q committed by a deposed leader", v)
	}
}

// TestInbox keeps events in order until they are deleted.
func TestInbox(t *testing.T) {
	ctx := context.Background()
	s := open(t, freshSchema(t))
	for _, b := range []string{"one", "two", "three"} {
		if err := s.PutInbox(ctx, []byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	items, err := s.Inbox(ctx, 2)
	if err != nil || len(items) != 2 || string(items[0].Body) != "one" || string(items[1].Body) != "two" {
		t.Fatalf("inbox %+v err %v", items, err)
	}
	if err := s.DeleteInbox(ctx, []int64{items[0].Seq, items[1].Seq}); err != nil {
		t.Fatal(err)
	}
	items, err = s.Inbox(ctx, 10)
	if err != nil || len(items) != 1 || string(items[0].Body) != "three" {
		t.Fatalf("inbox after delete %+v err %v", items, err)
	}
}

// TestCrashedLeaderIsReplacedAtOnce: a leader whose session is gone (its process crashed and
// its connections closed) is replaced before its lease expires; one whose session lives is not.
func TestCrashedLeaderIsReplacedAtOnce(t *testing.T) {
	ctx := context.Background()
	u := freshSchema(t)
	a, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	b := open(t, u)
	if _, ok, err := a.AcquireLease(ctx, "a", time.Hour); err != nil || !ok {
		t.Fatalf("acquire: ok %v err %v", ok, err)
	}
	if _, ok, err := b.AcquireLease(ctx, "b", time.Hour); err != nil || ok {
		t.Fatalf("acquire while a lives: ok %v err %v; want refused", ok, err)
	}
	a.Close() // its sessions end, as a killed process's do
	e, ok, err := b.AcquireLease(ctx, "b", time.Hour)
	if err != nil || !ok || e != 2 {
		t.Fatalf("acquire after a's sessions ended: epoch %d ok %v err %v; want epoch 2 at once", e, ok, err)
	}
	if ok, err := b.RenewLease(ctx, "b", e, time.Hour); err != nil || !ok {
		t.Fatalf("renew: ok %v err %v", ok, err)
	}
}
