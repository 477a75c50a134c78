package store

import "sync"

// Gate lets a backend's operations run until Close, which waits for the running ones. Unlike a
// held read lock, it lets a read nested in an Update fail with ErrClosed instead of
// deadlocking Close. The zero value is open.
type Gate struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Enter admits one operation, or returns ErrClosed once Close began.
func (g *Gate) Enter() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return ErrClosed
	}
	g.wg.Add(1)
	return nil
}

// Leave ends an operation Enter admitted.
func (g *Gate) Leave() { g.wg.Done() }

// Close reports whether it was the first call, after every running operation has left.
func (g *Gate) Close() bool {
	g.mu.Lock()
	first := !g.closed
	g.closed = true
	g.mu.Unlock()
	g.wg.Wait()
	return first
}

// NonNil returns b, or an empty slice for nil (for NOT NULL blob columns).
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
