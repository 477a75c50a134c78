// Package sqlite is the embedded store.Store: one SQLite file in WAL mode, written through a
// single connection and read through a separate pool, using the pure-Go modernc.org/sqlite
// driver so that the binary needs no cgo.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/omnipresence/omnipresence/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Option configures Open.
type Option func(*config)

type config struct {
	syncFull    bool
	busyTimeout time.Duration
	readConns   int
}

// WithSynchronousFull makes every commit wait for fsync of the WAL (synchronous=FULL). The
// default, NORMAL, survives a process crash but may lose the last commits on power loss.
func WithSynchronousFull() Option { return func(c *config) { c.syncFull = true } }

// WithBusyTimeout sets how long a connection waits for a lock held by another process before
// failing with SQLITE_BUSY. The default is 10 seconds.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

// WithReadConns sets the size of the read pool. The default is 4.
func WithReadConns(n int) Option { return func(c *config) { c.readConns = n } }

// Store is a SQLite store.Store.
type Store struct {
	path   string
	writer *sql.DB // one connection; every transaction on it is BEGIN IMMEDIATE
	reader *sql.DB // query_only connections

	stmt struct {
		event, eventSeq, agent, audit, auditNext, checkpoint *sql.Stmt
	}

	gate store.Gate
	// wmu serializes Update (the one-connection writer pool would too, less visibly).
	wmu     sync.Mutex
	commits int // under wmu

	// A background connection checkpoints the WAL, so that commits do not pay for copying
	// pages into the database file; the writer's own autocheckpoint is off.
	ckpt       *sql.DB
	kick       chan struct{}
	stopCkpt   context.CancelFunc
	ckptExited chan struct{}
}

// checkpointEvery is how many commits pass between two background WAL checkpoints.
const checkpointEvery = 64

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database file at path and applies pending migrations.
// path must name a file; SQLite's ":memory:" is not supported because the read pool would see a
// different database.
func Open(path string, opts ...Option) (*Store, error) {
	cfg := config{busyTimeout: 10 * time.Second, readConns: 4}
	for _, o := range opts {
		o(&cfg)
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: invalid database path %q: want a file path", path)
	}
	if cfg.readConns < 1 {
		return nil, fmt.Errorf("sqlite: read pool size %d, want at least 1", cfg.readConns)
	}
	busy := strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10)
	syncMode := "NORMAL"
	if cfg.syncFull {
		syncMode = "FULL"
	}
	wq := url.Values{"_pragma": {
		"busy_timeout(" + busy + ")", "journal_mode(WAL)", "synchronous(" + syncMode + ")", "foreign_keys(1)",
		"cache_size(-32768)",           // 32 MiB of page cache keeps the dedupe and agent indexes hot
		"wal_autocheckpoint(0)",        // commits never copy pages: Store.ckpt keeps the WAL short
		"journal_size_limit(67108864)", // give back WAL space beyond 64 MiB after a checkpoint
	}, "_txlock": {"immediate"}}
	writer, err := sql.Open("sqlite", fileURI(path, wq))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)
	s := &Store{path: path, writer: writer}
	if err := s.migrate(context.Background()); err != nil {
		writer.Close()
		return nil, err
	}
	// Readers open after migrate has switched the file to WAL (a persistent setting).
	rq := url.Values{"_pragma": {"busy_timeout(" + busy + ")", "query_only(1)"}}
	s.reader, err = sql.Open("sqlite", fileURI(path, rq))
	if err != nil {
		writer.Close()
		return nil, fmt.Errorf("sqlite: open %s for reading: %w", path, err)
	}
	s.reader.SetMaxOpenConns(cfg.readConns)
	s.reader.SetMaxIdleConns(cfg.readConns)
	s.ckpt, err = sql.Open("sqlite", fileURI(path, url.Values{"_pragma": {"busy_timeout(" + busy + ")"}}))
	if err != nil {
		writer.Close()
		s.reader.Close()
		return nil, fmt.Errorf("sqlite: open %s for checkpoints: %w", path, err)
	}
	s.ckpt.SetMaxOpenConns(1)
	if err := s.prepare(); err != nil {
		s.writer.Close()
		s.reader.Close()
		s.ckpt.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.kick, s.stopCkpt, s.ckptExited = make(chan struct{}, 1), cancel, make(chan struct{})
	go s.checkpointer(ctx)
	return s, nil
}

// checkpointer copies committed WAL frames into the database file whenever Update kicks it. A
// PASSIVE checkpoint never blocks the writer or readers; whatever it could not copy is copied by
// a later one, or by SQLite when the last connection closes.
func (s *Store) checkpointer(ctx context.Context) {
	defer close(s.ckptExited)
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
			// An error (busy, interrupted by Close) only delays the copy; the data is safe in
			// the WAL either way.
			_, _ = s.ckpt.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// fileURI makes a SQLite URI filename of path, escaping what a URI would otherwise read as a
// query, a fragment or an escape.
func fileURI(path string, q url.Values) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path) + "?" + q.Encode()
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, in file name
// order, in one immediate transaction, so that two processes opening the same file at once
// apply each migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	migs, err := store.Migrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin migration: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at INTEGER NOT NULL
	)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	applied := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("sqlite: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: read schema_migrations: %w", err)
	}
	for _, mig := range migs {
		version, base := mig.Version, mig.Name
		if applied[version] {
			continue
		}
		if _, err := tx.ExecContext(ctx, mig.SQL); err != nil {
			return fmt.Errorf("sqlite: apply migration %s: %w", base, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			version, base, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("sqlite: record migration %s: %w", base, err)
		}
	}
	if err := fillDedupeHashes(ctx, tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit migrations: %w", err)
	}
	return nil
}

// fillDedupeHashes gives the events stored before migration 0002 their dedupe hash, a chunk of
// rows at a time so that a large file does not need its keys in memory at once.
func fillDedupeHashes(ctx context.Context, tx *sql.Tx) error {
	type row struct {
		seq int64
		key string
	}
	for {
		rows, err := tx.QueryContext(ctx, `SELECT seq, dedupe_key FROM events WHERE dedupe_hash IS NULL ORDER BY seq LIMIT 10000`)
		if err != nil {
			return fmt.Errorf("sqlite: read events to hash: %w", err)
		}
		var todo []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.seq, &r.key); err != nil {
				rows.Close()
				return fmt.Errorf("sqlite: read events to hash: %w", err)
			}
			todo = append(todo, r)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("sqlite: read events to hash: %w", err)
		}
		if len(todo) == 0 {
			return nil
		}
		for _, r := range todo {
			if err := hashEvent(ctx, tx, r.seq, r.key); err != nil {
				return err
			}
		}
	}
}

// hashEvent sets one event's dedupe hash, at the first probe no other key holds.
func hashEvent(ctx context.Context, tx *sql.Tx, seq int64, key string) error {
	for probe := 0; ; probe++ {
		h := store.DedupeHash(key, probe)
		var other string
		err := tx.QueryRowContext(ctx, `SELECT dedupe_key FROM events WHERE dedupe_hash = ?`, h).Scan(&other)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := tx.ExecContext(ctx, `UPDATE events SET dedupe_hash = ? WHERE seq = ?`, h, seq); err != nil {
				return fmt.Errorf("sqlite: hash event %d: %w", seq, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("sqlite: hash event %d: %w", seq, err)
		}
		if other == key {
			// Earlier versions kept keys unique; a second copy cannot exist.
			return fmt.Errorf("sqlite: event %d repeats dedupe key %q", seq, key)
		}
	}
}

func (s *Store) prepare() error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.stmt.event, `INSERT INTO events (dedupe_key, dedupe_hash, agent, system, type, at, body) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (dedupe_hash) DO NOTHING`},
		{&s.stmt.eventSeq, `SELECT seq, dedupe_key FROM events WHERE dedupe_hash = ?`},
		{&s.stmt.agent, `INSERT INTO agents (key, state, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at`},
		{&s.stmt.audit, `INSERT INTO audit (seq, agent, at, kind, event_seq, body, n) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&s.stmt.auditNext, `SELECT seq + n FROM audit ORDER BY seq DESC LIMIT 1`},
		{&s.stmt.checkpoint, `INSERT INTO checkpoints (name, value) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`},
	} {
		st, err := s.writer.Prepare(p.sql)
		if err != nil {
			return fmt.Errorf("sqlite: prepare: %w", err)
		}
		*p.dst = st
	}
	return nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	sqlTx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: begin: %w", err)
	}
	// Roll back on every way out but a commit, panics in fn included: the one writer
	// connection must not stay inside a transaction.
	defer sqlTx.Rollback()
	if err := fn(&tx{s: s, tx: sqlTx}); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("sqlite: commit: %w", err)
	}
	if s.commits++; s.commits%checkpointEvery == 0 {
		select {
		case s.kick <- struct{}{}:
		default: // a checkpoint is already due
		}
	}
	return nil
}

// Agent implements store.Store.
func (s *Store) Agent(ctx context.Context, key string) (store.Agent, bool, error) {
	if err := s.gate.Enter(); err != nil {
		return store.Agent{}, false, err
	}
	defer s.gate.Leave()
	a := store.Agent{Key: key}
	var at sql.NullInt64
	err := s.reader.QueryRowContext(ctx, `SELECT state, updated_at FROM agents WHERE key = ?`, key).Scan(&a.State, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return store.Agent{}, false, nil
	}
	if err != nil {
		return store.Agent{}, false, fmt.Errorf("sqlite: agent %q: %w", key, err)
	}
	a.UpdatedAt = fromNanos(at)
	return a, true, nil
}

// Agents implements store.Store.
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	rows, err := s.reader.QueryContext(ctx, `SELECT key, state, updated_at FROM agents ORDER BY key`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: agents: %w", err)
	}
	defer rows.Close()
	var out []store.Agent
	for rows.Next() {
		var a store.Agent
		var at sql.NullInt64
		if err := rows.Scan(&a.Key, &a.State, &at); err != nil {
			return nil, fmt.Errorf("sqlite: agents: %w", err)
		}
		a.UpdatedAt = fromNanos(at)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: agents: %w", err)
	}
	return out, nil
}

// sqlLimit maps "limit <= 0 means all" to SQLite's LIMIT -1.
func sqlLimit(limit int) int {
	if limit <= 0 {
		return -1
	}
	return limit
}

// Events implements store.Store. limit <= 0 means all.
func (s *Store) Events(ctx context.Context, agent string, limit int) ([]store.Event, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	const cols = `SELECT seq, dedupe_key, agent, system, type, at, body FROM events`
	var rows *sql.Rows
	var err error
	if agent == "" {
		rows, err = s.reader.QueryContext(ctx, cols+` ORDER BY seq DESC LIMIT ?`, sqlLimit(limit))
	} else {
		rows, err = s.reader.QueryContext(ctx, cols+` WHERE agent = ? ORDER BY seq DESC LIMIT ?`, agent, sqlLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var e store.Event
		var at sql.NullInt64
		if err := rows.Scan(&e.Seq, &e.DedupeKey, &e.Agent, &e.System, &e.Type, &at, &e.Body); err != nil {
			return nil, fmt.Errorf("sqlite: events: %w", err)
		}
		e.At = fromNanos(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: events: %w", err)
	}
	return out, nil
}

// Audit implements store.Store. limit <= 0 means all; agent "" means every agent.
func (s *Store) Audit(ctx context.Context, agent string, limit int) ([]store.AuditRecord, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	// A row holds one record or more, so limit rows hold at least limit records.
	const cols = `SELECT seq, agent, at, kind, event_seq, body, n FROM audit`
	var rows *sql.Rows
	var err error
	if agent == "" {
		rows, err = s.reader.QueryContext(ctx, cols+` ORDER BY seq DESC LIMIT ?`, sqlLimit(limit))
	} else {
		rows, err = s.reader.QueryContext(ctx, cols+` WHERE agent = ? ORDER BY seq DESC LIMIT ?`, agent, sqlLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	defer rows.Close()
	var out, run []store.AuditRecord
	for rows.Next() && (limit <= 0 || len(out) < limit) {
		var r store.AuditRecord
		var at sql.NullInt64
		var n int
		if err := rows.Scan(&r.Seq, &r.Agent, &at, &r.Kind, &r.EventSeq, &r.Body, &n); err != nil {
			return nil, fmt.Errorf("sqlite: audit: %w", err)
		}
		r.At = fromNanos(at)
		if run, err = store.UnpackAudit(run[:0], r, n); err != nil {
			return nil, fmt.Errorf("sqlite: audit: %w", err)
		}
		for i := len(run) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
			out = append(out, run[i])
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: audit: %w", err)
	}
	return out, nil
}

// RecentDedupeKeys implements store.Store.
func (s *Store) RecentDedupeKeys(ctx context.Context, n int) ([]string, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	if n <= 0 {
		return nil, nil
	}
	rows, err := s.reader.QueryContext(ctx, `SELECT dedupe_key FROM events ORDER BY seq DESC LIMIT ?`, n)
	if err != nil {
		return nil, fmt.Errorf("sqlite: recent dedupe keys: %w", err)
	}
	defer rows.Close()
	out := make([]string, 0, n)
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return nil, fmt.Errorf("sqlite: recent dedupe keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: recent dedupe keys: %w", err)
	}
	return out, nil
}

// Checkpoint implements store.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (string, error) {
	if err := s.gate.Enter(); err != nil {
		return "", err
	}
	defer s.gate.Leave()
	var v string
	err := s.reader.QueryRowContext(ctx, `SELECT value FROM checkpoints WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sqlite: checkpoint %q: %w", name, err)
	}
	return v, nil
}

// SetCheckpoint implements store.Store.
func (s *Store) SetCheckpoint(ctx context.Context, name, value string) error {
	return s.Update(ctx, func(tx store.Tx) error { return tx.SetCheckpoint(ctx, name, value) })
}

// Close implements store.Store. It waits for running operations to finish.
func (s *Store) Close() error {
	if !s.gate.Close() {
		return nil
	}
	var errs []error
	for _, st := range []*sql.Stmt{s.stmt.event, s.stmt.eventSeq, s.stmt.agent, s.stmt.audit, s.stmt.auditNext, s.stmt.checkpoint} {
		errs = append(errs, st.Close())
	}
	s.stopCkpt()
	<-s.ckptExited
	// The writer goes last: closing the last connection checkpoints and removes the WAL.
	errs = append(errs, s.ckpt.Close(), s.reader.Close(), s.writer.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: close: %w", err)
	}
	return nil
}

// tx is one Update's transaction. Statements are bound to it lazily: most transactions use
// only some of them.
type tx struct {
	s  *Store
	tx *sql.Tx

	event, eventSeq, agent, audit, auditNext, checkpoint *sql.Stmt
	// nextAudit is the seq of the next audit record, 0 until read; pack is scratch space.
	nextAudit int64
	pack      []byte
}

func (t *tx) stmt(ctx context.Context, dst **sql.Stmt, prepared *sql.Stmt) *sql.Stmt {
	if *dst == nil {
		*dst = t.tx.StmtContext(ctx, prepared)
	}
	return *dst
}

// InsertEvent implements store.Tx.
func (t *tx) InsertEvent(ctx context.Context, ev *store.Event) (bool, error) {
	if ev.DedupeKey == "" {
		return false, errors.New("sqlite: event has an empty dedupe key")
	}
	at, err := toNanos(ev.At)
	if err != nil {
		return false, fmt.Errorf("sqlite: event %q: %w", ev.DedupeKey, err)
	}
	for probe := 0; ; probe++ {
		h := store.DedupeHash(ev.DedupeKey, probe)
		res, err := t.stmt(ctx, &t.event, t.s.stmt.event).ExecContext(ctx,
			ev.DedupeKey, h, ev.Agent, ev.System, ev.Type, at, store.NonNil(ev.Body))
		if err != nil {
			return false, fmt.Errorf("sqlite: insert event %q: %w", ev.DedupeKey, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, fmt.Errorf("sqlite: insert event %q: %w", ev.DedupeKey, err)
		}
		if n == 1 {
			if ev.Seq, err = res.LastInsertId(); err != nil {
				return false, fmt.Errorf("sqlite: insert event %q: %w", ev.DedupeKey, err)
			}
			return true, nil
		}
		var seq int64
		var key string
		if err := t.stmt(ctx, &t.eventSeq, t.s.stmt.eventSeq).QueryRowContext(ctx, h).Scan(&seq, &key); err != nil {
			return false, fmt.Errorf("sqlite: find duplicate event %q: %w", ev.DedupeKey, err)
		}
		if key == ev.DedupeKey {
			ev.Seq = seq
			return false, nil
		}
		// Another key has this hash: try the next probe.
	}
}

// PutAgent implements store.Tx.
func (t *tx) PutAgent(ctx context.Context, a store.Agent) error {
	if a.Key == "" {
		return errors.New("sqlite: agent has an empty key")
	}
	at, err := toNanos(a.UpdatedAt)
	if err != nil {
		return fmt.Errorf("sqlite: agent %q: %w", a.Key, err)
	}
	if _, err := t.stmt(ctx, &t.agent, t.s.stmt.agent).ExecContext(ctx, a.Key, store.NonNil(a.State), at); err != nil {
		return fmt.Errorf("sqlite: put agent %q: %w", a.Key, err)
	}
	return nil
}

// AppendAudit implements store.Tx. A run of records of one agent and one event goes in one row
// (store.PackAudit).
func (t *tx) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	if t.nextAudit == 0 {
		err := t.stmt(ctx, &t.auditNext, t.s.stmt.auditNext).QueryRowContext(ctx).Scan(&t.nextAudit)
		if errors.Is(err, sql.ErrNoRows) {
			t.nextAudit, err = 1, nil
		}
		if err != nil {
			return fmt.Errorf("sqlite: next audit seq: %w", err)
		}
	}
	for i := range recs {
		if _, err := toNanos(recs[i].At); err != nil {
			return fmt.Errorf("sqlite: audit record of %q: %w", recs[i].Agent, err)
		}
		recs[i].Seq = t.nextAudit + int64(i)
	}
	st := t.stmt(ctx, &t.audit, t.s.stmt.audit)
	for _, run := range store.AuditRuns(recs) {
		rs := recs[run.First:run.End]
		r := &rs[0]
		at, _ := toNanos(r.At)
		t.pack = store.PackAudit(t.pack[:0], rs)
		if _, err := st.ExecContext(ctx, r.Seq, r.Agent, at, r.Kind, r.EventSeq, store.NonNil(t.pack), len(rs)); err != nil {
			return fmt.Errorf("sqlite: append audit of %q: %w", r.Agent, err)
		}
	}
	t.nextAudit += int64(len(recs))
	return nil
}

// SetCheckpoint implements store.Tx.
func (t *tx) SetCheckpoint(ctx context.Context, name, value string) error {
	if _, err := t.stmt(ctx, &t.checkpoint, t.s.stmt.checkpoint).ExecContext(ctx, name, value); err != nil {
		return fmt.Errorf("sqlite: set checkpoint %q: %w", name, err)
	}
	return nil
}

// The times UnixNano can represent.
var minTime, maxTime = time.Unix(0, math.MinInt64).UTC(), time.Unix(0, math.MaxInt64).UTC()

// toNanos encodes t as nanoseconds since the Unix epoch; the zero time is NULL.
func toNanos(t time.Time) (sql.NullInt64, error) {
	if t.IsZero() {
		return sql.NullInt64{}, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return sql.NullInt64{}, fmt.Errorf("time %v outside the storable range %v to %v", t, minTime, maxTime)
	}
	return sql.NullInt64{Int64: t.UnixNano(), Valid: true}, nil
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}
