package pause

import (
	"context"
	"testing"
)

func TestForReportsWhetherTheDurationPassed(t *testing.T) {
	if !For(context.Background(), 0) {
		t.Error("For(live ctx, 0) = false, want true")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if For(ctx, 1<<62) {
		t.Error("For(ended ctx, long) = true, want false")
	}
}
