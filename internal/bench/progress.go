package bench

import (
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a bar of done out of total on w every 100ms until the returned function is
// called, which draws it once more and ends the line. A nil w draws nothing.
func progress(w io.Writer, total int, done *atomic.Int64) func() {
	if w == nil {
		return func() {}
	}
	const width = 30
	draw := func() {
		n := min(int(done.Load()), total)
		filled := width * n / total
		fmt.Fprintf(w, "\r[%s%s] %3d%% %d/%d events", strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
			100*n/total, n, total)
	}
	stop, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				draw()
			}
		}
	}()
	return func() {
		close(stop)
		<-exited
		draw()
		fmt.Fprintln(w)
	}
}
