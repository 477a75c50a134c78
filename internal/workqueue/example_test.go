package workqueue_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/omnipresence/omnipresence/internal/workqueue"
)

// A worker loop in the shape the engine uses: Done always, Forget on success or when giving up,
// AddRateLimited on a failure worth retrying, AddAfter to look again later.
func Example() {
	q := workqueue.New(workqueue.Options[string]{
		RateLimiter: workqueue.ItemExponential[string](time.Millisecond, 10*time.Millisecond),
	})
	attempts := map[string]int{}
	reconcile := func(agent string) error {
		attempts[agent]++
		if agent == "bob@example.com" && attempts[agent] < 3 {
			return errors.New("vendor busy")
		}
		return nil
	}

	q.Add("amy@example.com")
	q.Add("bob@example.com")
	q.Add("amy@example.com") // already queued: deduplicated
	for done := 0; done < 2; {
		agent, shutdown := q.Get()
		if shutdown {
			break
		}
		if err := reconcile(agent); err != nil && q.NumRequeues(agent) < 5 {
			fmt.Printf("%s: %v, retry %d\n", agent, err, q.NumRequeues(agent)+1)
			q.AddRateLimited(agent)
		} else {
			fmt.Printf("%s: in sync after %d attempt(s)\n", agent, attempts[agent])
			q.Forget(agent)
			done++
		}
		q.Done(agent)
	}
	q.ShutDownWithDrain()
	// Output:
	// amy@example.com: in sync after 1 attempt(s)
	// bob@example.com: vendor busy, retry 1
	// bob@example.com: vendor busy, retry 2
	// bob@example.com: in sync after 3 attempt(s)
}
