package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnipresence/omnipresence/internal/store"
)

// Replicas of one database elect a leader through the lease row (migration 0003): holder,
// expiry in the database's clock (so replicas' clocks do not matter) and a fencing epoch that
// every takeover increments. The leader writes through Fenced(epoch): each of its write
// transactions first reads the lease row FOR SHARE and commits nothing when the epoch moved
// on, and a takeover's UPDATE of the row waits for such a transaction to end. So a leader that
// was paused or cut off past its lease can never commit after another replica took over. The
// leader also holds an advisory lock of its epoch on a session of its own: when its process
// dies, the session and the lock go with it, and another replica takes over without waiting
// for the lease to expire.

// FencedError is the error of a write through Fenced after another replica took the lease.
type FencedError struct {
	// Epoch is the fence the write carried; Current the lease's epoch now.
	Epoch, Current int64
}

func (e *FencedError) Error() string {
	return fmt.Sprintf("postgres: fenced: this replica's lease (epoch %d) was taken over (epoch now %d); it no longer leads",
		e.Epoch, e.Current)
}

// IsFenced reports whether err is, or wraps, a *FencedError.
func IsFenced(err error) bool {
	var f *FencedError
	return errors.As(err, &f)
}

// Lease is the state of the lease row.
type Lease struct {
	// Holder is the leading replica's id, "" when none holds an unexpired lease.
	Holder string
	// Epoch is the fencing epoch of the latest takeover.
	Epoch int64
	// Addr is the leader's advertised URL, when it said one (see Heartbeat).
	Addr string
}

// Replica is one replica that said it is alive.
type Replica struct {
	ID       string
	Addr     string
	LastSeen time.Time
}

// interval renders d for a PostgreSQL interval parameter.
func interval(d time.Duration) string {
	return strconv.FormatInt(d.Microseconds(), 10) + " microseconds"
}

// AcquireLease makes holder the leader for ttl when no replica holds a lease that is both
// unexpired and alive, and returns the new epoch; ok is false when another replica leads. A
// leader is alive while its own database session holds the advisory lock of its epoch: a
// leader that crashed (its connections closed) is replaced at once, one that is paused or cut
// off when its lease expires.
func (s *Store) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (epoch int64, ok bool, err error) {
	if err := s.gate.Enter(); err != nil {
		return 0, false, err
	}
	defer s.gate.Leave()
	s.session.mu.Lock()
	defer s.session.mu.Unlock()
	s.session.dropLocked()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("postgres: acquire the lease: %w", err)
	}
	epoch, err = acquireOn(ctx, conn, holder, ttl)
	if err != nil || epoch == 0 {
		conn.Release()
		return 0, false, err
	}
	s.session.conn, s.session.epoch = conn, epoch
	return epoch, true, nil
}

// acquireOn takes the lease on conn when it is free, with the advisory lock of the new epoch;
// the epoch is 0 when another replica leads.
func acquireOn(ctx context.Context, conn *pgxpool.Conn, holder string, ttl time.Duration) (int64, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("postgres: acquire the lease: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// clock_timestamp, not now(): an UPDATE that waited for the old leader's share lock
	// rechecks the expiry at the time the lock was freed, not when it began waiting. The lock
	// of the new epoch is taken before the commit makes the epoch visible, so that no other
	// replica ever sees the new lease without it.
	var epoch int64
	err = tx.QueryRow(ctx, `UPDATE lease l SET holder = $1, epoch = epoch + 1, expires_at = clock_timestamp() + $2::interval
		WHERE name = 'leader' AND (holder = '' OR expires_at <= clock_timestamp() OR NOT EXISTS (`+aliveLock+`))
		RETURNING epoch`, holder, interval(ttl)).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err == nil {
		_, err = tx.Exec(ctx, `SELECT pg_try_advisory_lock(hashtext(current_schema()), ($1::bigint % 2147483647)::int)`, epoch)
	}
	if err == nil {
		err = tx.Commit(ctx)
	}
	if err != nil {
		return 0, fmt.Errorf("postgres: acquire the lease: %w", err)
	}
	return epoch, nil
}

// aliveLock finds the advisory lock of the lease l's epoch, held by its leader's session.
const aliveLock = `SELECT 1 FROM pg_locks k WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 2
	AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND k.classid = hashtext(current_schema())::oid AND k.objid = ((l.epoch % 2147483647)::int)::oid`

// RenewLease extends holder's lease of epoch by ttl from now; ok is false when the lease is no
// longer holder's (another replica took it over). It renews through the leader's own session,
// and opens a new one, with the lock, when that one broke (a database restart).
func (s *Store) RenewLease(ctx context.Context, holder string, epoch int64, ttl time.Duration) (ok bool, err error) {
	if err := s.gate.Enter(); err != nil {
		return false, err
	}
	defer s.gate.Leave()
	s.session.mu.Lock()
	defer s.session.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if s.session.conn == nil || s.session.epoch != epoch {
			s.session.dropLocked()
			conn, err := s.pool.Acquire(ctx)
			if err != nil {
				return false, fmt.Errorf("postgres: renew the lease: %w", err)
			}
			if _, err := conn.Exec(ctx, `SELECT pg_try_advisory_lock(hashtext(current_schema()), ($1::bigint % 2147483647)::int)`, epoch); err != nil {
				conn.Release()
				return false, fmt.Errorf("postgres: renew the lease: %w", err)
			}
			s.session.conn, s.session.epoch = conn, epoch
		}
		tag, err := s.session.conn.Exec(ctx, `UPDATE lease SET expires_at = clock_timestamp() + $3::interval
			WHERE name = 'leader' AND holder = $1 AND epoch = $2`, holder, epoch, interval(ttl))
		if err == nil {
			return tag.RowsAffected() == 1, nil
		}
		s.session.dropLocked()
		if attempt > 0 || ctx.Err() != nil {
			return false, fmt.Errorf("postgres: renew the lease: %w", err)
		}
	}
}

// leaderSession is the connection a leader holds its epoch's advisory lock on.
type leaderSession struct {
	mu    sync.Mutex
	conn  *pgxpool.Conn
	epoch int64
}

func (l *leaderSession) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropLocked()
}

// dropLocked gives the connection back without its lock; a broken one the pool discards.
func (l *leaderSession) dropLocked() {
	if l.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
		// A connection that may still hold the lock must not go back to the pool.
		_ = l.conn.Hijack().Close(ctx)
	} else {
		l.conn.Release()
	}
	l.conn = nil
}

// ReleaseLease gives up holder's lease of epoch, so that another replica takes over at once.
func (s *Store) ReleaseLease(ctx context.Context, holder string, epoch int64) error {
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	s.session.drop()
	if _, err := s.pool.Exec(ctx, `UPDATE lease SET holder = '', expires_at = '-infinity'
		WHERE name = 'leader' AND holder = $1 AND epoch = $2`, holder, epoch); err != nil {
		return fmt.Errorf("postgres: release the lease: %w", err)
	}
	return nil
}

// CurrentLease reads the lease: who leads now (an expired lease has no holder), the latest
// epoch, and the leader's advertised URL.
func (s *Store) CurrentLease(ctx context.Context) (Lease, error) {
	if err := s.gate.Enter(); err != nil {
		return Lease{}, err
	}
	defer s.gate.Leave()
	var l Lease
	var addr *string
	err := s.pool.QueryRow(ctx, `SELECT CASE WHEN l.expires_at > now() THEN l.holder ELSE '' END, l.epoch, r.addr
		FROM lease l LEFT JOIN replicas r ON r.id = l.holder AND l.expires_at > now() WHERE l.name = 'leader'`).Scan(&l.Holder, &l.Epoch, &addr)
	if err != nil {
		return Lease{}, fmt.Errorf("postgres: read the lease: %w", err)
	}
	if addr != nil {
		l.Addr = *addr
	}
	return l, nil
}

// Heartbeat records that the replica id, serving at addr, is alive now.
func (s *Store) Heartbeat(ctx context.Context, id, addr string) error {
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	if _, err := s.pool.Exec(ctx, `INSERT INTO replicas (id, addr, last_seen) VALUES ($1, $2, now())
		ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, last_seen = excluded.last_seen`, id, addr); err != nil {
		return fmt.Errorf("postgres: replica heartbeat: %w", err)
	}
	return nil
}

// Forget removes a replica from the list (at a clean stop) and the replicas silent for longer
// than an hour.
func (s *Store) Forget(ctx context.Context, id string) error {
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	if _, err := s.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1 OR last_seen < now() - interval '1 hour'`, id); err != nil {
		return fmt.Errorf("postgres: forget replica: %w", err)
	}
	return nil
}

// Replicas lists the replicas seen within the last window, by id.
func (s *Store) Replicas(ctx context.Context, window time.Duration) ([]Replica, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	rows, err := s.pool.Query(ctx, `SELECT id, addr, last_seen FROM replicas
		WHERE last_seen > now() - $1::interval ORDER BY id COLLATE "C"`, interval(window))
	if err != nil {
		return nil, fmt.Errorf("postgres: replicas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Replica, error) {
		var rep Replica
		err := r.Scan(&rep.ID, &rep.Addr, &rep.LastSeen)
		rep.LastSeen = rep.LastSeen.UTC()
		return rep, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: replicas: %w", err)
	}
	return out, nil
}

// fence is the lease epoch a leader's writes carry, and how long one of its transactions may
// sit idle before the server ends it: a leader paused inside a transaction would otherwise
// hold the lease row's share lock, and no other replica could take over.
type fence struct {
	epoch int64
	idle  time.Duration
}

// check runs first in a fenced transaction.
func (f *fence) check(ctx context.Context, tx pgx.Tx) error {
	var current int64
	err := tx.QueryRow(ctx, `SELECT epoch, set_config('idle_in_transaction_session_timeout', $1, true)
		FROM lease WHERE name = 'leader' FOR SHARE`, strconv.FormatInt(max(f.idle.Milliseconds(), 1), 10)).Scan(&current, nil)
	if err != nil {
		return fmt.Errorf("postgres: check the lease: %w", err)
	}
	if current != f.epoch {
		return &FencedError{Epoch: f.epoch, Current: current}
	}
	return nil
}

// Fenced is the store as the leader of epoch writes to it: Update and SetCheckpoint fail with
// a *FencedError, committing nothing, once another replica took the lease over. idle bounds
// how long one of its transactions may sit idle (at most the lease's time is right).
func (s *Store) Fenced(epoch int64, idle time.Duration) store.Store {
	return &fencedStore{Store: s, fence: fence{epoch: epoch, idle: idle}}
}

type fencedStore struct {
	*Store
	fence fence
}

// Update implements store.Store.
func (f *fencedStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return f.Store.update(ctx, &f.fence, fn)
}

// SetCheckpoint implements store.Store.
func (f *fencedStore) SetCheckpoint(ctx context.Context, name, value string) error {
	return f.Update(ctx, func(tx store.Tx) error { return tx.SetCheckpoint(ctx, name, value) })
}

// Close implements store.Store: the fenced view leaves the store open.
func (f *fencedStore) Close() error { return nil }

// InboxItem is one event a replica accepted for the leader.
type InboxItem struct {
	Seq  int64
	Body []byte
}

// PutInbox stores an event for the leader to apply.
func (s *Store) PutInbox(ctx context.Context, body []byte) error {
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	if _, err := s.pool.Exec(ctx, `INSERT INTO inbox (body) VALUES ($1)`, store.NonNil(body)); err != nil {
		return fmt.Errorf("postgres: store an event for the leader: %w", err)
	}
	return nil
}

// Inbox returns up to n of the oldest events waiting for the leader, oldest first.
func (s *Store) Inbox(ctx context.Context, n int) ([]InboxItem, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	rows, err := s.pool.Query(ctx, `SELECT seq, body FROM inbox ORDER BY seq LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (InboxItem, error) {
		var it InboxItem
		return it, r.Scan(&it.Seq, &it.Body)
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: inbox: %w", err)
	}
	return out, nil
}

// DeleteInbox removes applied events from the inbox.
func (s *Store) DeleteInbox(ctx context.Context, seqs []int64) error {
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	if _, err := s.pool.Exec(ctx, `DELETE FROM inbox WHERE seq = ANY($1)`, seqs); err != nil {
		return fmt.Errorf("postgres: delete applied inbox events: %w", err)
	}
	return nil
}
