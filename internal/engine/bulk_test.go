package engine

import (
	"context"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// deadlineSetter records the deadline of the bulk call it gets.
type deadlineSetter struct{ deadline chan time.Time }

func (d deadlineSetter) SetStatuses(ctx context.Context, writes []connector.StatusWrite) ([]connector.WriteResult, error) {
	dl, _ := ctx.Deadline()
	d.deadline <- dl
	return make([]connector.WriteResult, len(writes)), nil
}

// TestBulkCallEndsWithItsWrites checks that a bulk call never outlasts the writes it carries,
// so that a write whose answer was lost cannot land after its own timeout.
func TestBulkCallEndsWithItsWrites(t *testing.T) {
	conn := deadlineSetter{deadline: make(chan time.Time, 1)}
	b := &batcher{system: "gc", conn: conn, window: time.Millisecond, max: 50, timeout: time.Hour, in: make(chan bulkItem)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	want, _ := wctx.Deadline()
	if _, err := b.submit(wctx, Write{Account: "u1", StatusID: "busy"}); err != nil {
		t.Fatal(err)
	}
	if got := <-conn.deadline; got.After(want) {
		t.Fatalf("the bulk call may run until %v, after its write's deadline %v", got, want)
	}
}
