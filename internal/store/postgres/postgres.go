// Package postgres is the shared store.Store for production and scale-out: several replicas
// use one PostgreSQL database through pgx. Updates are serialized within a process and are
// ordinary transactions across processes.
//
// Seqs come from sequences. Within one process they follow commit order; when replicas commit
// at the same time, a transaction holding a lower seq may become visible after one holding a
// higher seq, so a reader that resumes "after seq N" may miss rows across replicas.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/omnipresence/omnipresence/internal/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key that serializes migrations of replicas starting at once.
const migrationLock = 0x6f6d6e69 // "omni"

// Store is a PostgreSQL store.Store.
type Store struct {
	pool *pgxpool.Pool
	gate store.Gate
	wmu  sync.Mutex // serializes Update within this process
	// session is the leader's own connection, whose advisory lock says it is alive (lease.go).
	session leaderSession
}

var _ store.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or key=value string, as pgx parses
// it; a search_path parameter selects the schema) and applies pending migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse url: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// migrate applies the embedded migrations not yet recorded in schema_migrations, in file name
// order, in one transaction that first takes an advisory lock, so that replicas starting at once
// apply each migration exactly once.
func (s *Store) migrate(ctx context.Context) error {
	migs, err := store.Migrations(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: %w", err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin migration: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres: lock migrations: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT   NOT NULL,
		applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
	)`); err != nil {
		return fmt.Errorf("postgres: create schema_migrations: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("postgres: read schema_migrations: %w", err)
	}
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("postgres: read schema_migrations: %w", err)
	}
	applied := map[int64]bool{}
	for _, v := range versions {
		applied[v] = true
	}
	for _, mig := range migs {
		version, base := mig.Version, mig.Name
		if applied[version] {
			continue
		}
		if _, err := tx.Exec(ctx, mig.SQL); err != nil {
			return fmt.Errorf("postgres: apply migration %s: %w", base, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, version, base); err != nil {
			return fmt.Errorf("postgres: record migration %s: %w", base, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit migrations: %w", err)
	}
	return nil
}

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.update(ctx, nil, fn)
}

// update runs fn in one write transaction; with a fence, the transaction first checks that the
// lease still has the fence's epoch (lease.go), and commits nothing otherwise.
func (s *Store) update(ctx context.Context, f *fence, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.gate.Enter(); err != nil {
		return err
	}
	defer s.gate.Leave()
	s.wmu.Lock()
	defer s.wmu.Unlock()
	pgTx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	// Roll back on every way out but a commit, panics in fn included, without depending on
	// ctx, which may be what failed. After a commit it is a no-op.
	defer pgTx.Rollback(context.WithoutCancel(ctx))
	if f != nil {
		if err := f.check(ctx, pgTx); err != nil {
			return err
		}
	}
	t := &tx{tx: pgTx}
	if err := fn(t); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.flushAgents(ctx); err != nil {
		return err
	}
	if err := pgTx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: commit: %w", err)
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
	var at *int64
	err := s.pool.QueryRow(ctx, `SELECT state, updated_at_ns FROM agents WHERE key = $1`, key).Scan(&a.State, &at)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Agent{}, false, nil
	}
	if err != nil {
		return store.Agent{}, false, fmt.Errorf("postgres: agent %q: %w", key, err)
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
	rows, err := s.pool.Query(ctx, `SELECT key, state, updated_at_ns FROM agents ORDER BY key COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("postgres: agents: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Agent, error) {
		var a store.Agent
		var at *int64
		err := r.Scan(&a.Key, &a.State, &at)
		a.UpdatedAt = fromNanos(at)
		return a, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: agents: %w", err)
	}
	return out, nil
}

// sqlLimit maps "limit <= 0 means all" to LIMIT NULL.
func sqlLimit(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	n := int64(limit)
	return &n
}

// Events implements store.Store. limit <= 0 means all.
func (s *Store) Events(ctx context.Context, agent string, limit int) ([]store.Event, error) {
	if err := s.gate.Enter(); err != nil {
		return nil, err
	}
	defer s.gate.Leave()
	const cols = `SELECT seq, dedupe_key, agent, system, type, at_ns, body FROM events`
	var rows pgx.Rows
	var err error
	if agent == "" {
		rows, err = s.pool.Query(ctx, cols+` ORDER BY seq DESC LIMIT $1`, sqlLimit(limit))
	} else {
		rows, err = s.pool.Query(ctx, cols+` WHERE agent = $1 ORDER BY seq DESC LIMIT $2`, agent, sqlLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Event, error) {
		var e store.Event
		var at *int64
		err := r.Scan(&e.Seq, &e.DedupeKey, &e.Agent, &e.System, &e.Type, &at, &e.Body)
		e.At = fromNanos(at)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: events: %w", err)
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
	const cols = `SELECT seq, agent, at_ns, kind, event_seq, body, n FROM audit`
	var rows pgx.Rows
	var err error
	if agent == "" {
		rows, err = s.pool.Query(ctx, cols+` ORDER BY seq DESC LIMIT $1`, sqlLimit(limit))
	} else {
		rows, err = s.pool.Query(ctx, cols+` WHERE agent = $1 ORDER BY seq DESC LIMIT $2`, agent, sqlLimit(limit))
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
	}
	defer rows.Close()
	var out, run []store.AuditRecord
	for rows.Next() && (limit <= 0 || len(out) < limit) {
		var a store.AuditRecord
		var at *int64
		var n int32
		if err := rows.Scan(&a.Seq, &a.Agent, &at, &a.Kind, &a.EventSeq, &a.Body, &n); err != nil {
			return nil, fmt.Errorf("postgres: audit: %w", err)
		}
		a.At = fromNanos(at)
		if run, err = store.UnpackAudit(run[:0], a, int(n)); err != nil {
			return nil, fmt.Errorf("postgres: audit: %w", err)
		}
		for i := len(run) - 1; i >= 0 && (limit <= 0 || len(out) < limit); i-- {
			out = append(out, run[i])
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: audit: %w", err)
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
	rows, err := s.pool.Query(ctx, `SELECT dedupe_key FROM events ORDER BY seq DESC LIMIT $1`, n)
	if err != nil {
		return nil, fmt.Errorf("postgres: recent dedupe keys: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: recent dedupe keys: %w", err)
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
	err := s.pool.QueryRow(ctx, `SELECT value FROM checkpoints WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("postgres: checkpoint %q: %w", name, err)
	}
	return v, nil
}

// SetCheckpoint implements store.Store.
func (s *Store) SetCheckpoint(ctx context.Context, name, value string) error {
	return s.Update(ctx, func(tx store.Tx) error { return tx.SetCheckpoint(ctx, name, value) })
}

// Close implements store.Store. It waits for running operations to finish.
func (s *Store) Close() error {
	if s.gate.Close() {
		s.session.drop()
		s.pool.Close()
	}
	return nil
}

// tx is one Update's transaction. Agent puts are collected, last one per key winning, and
// written in one statement before the commit: nothing in a transaction reads them back, and it
// saves a round trip per event.
type tx struct {
	tx     pgx.Tx
	agents map[string]agentRow
}

type agentRow struct {
	state []byte
	at    *int64
}

// InsertEvent implements store.Tx.
func (t *tx) InsertEvent(ctx context.Context, ev *store.Event) (bool, error) {
	if ev.DedupeKey == "" {
		return false, errors.New("postgres: event has an empty dedupe key")
	}
	at, err := toNanos(ev.At)
	if err != nil {
		return false, fmt.Errorf("postgres: event %q: %w", ev.DedupeKey, err)
	}
	err = t.tx.QueryRow(ctx, `INSERT INTO events (dedupe_key, agent, system, type, at_ns, body)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq`,
		ev.DedupeKey, ev.Agent, ev.System, ev.Type, at, store.NonNil(ev.Body)).Scan(&ev.Seq)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return false, fmt.Errorf("postgres: insert event %q: %w", ev.DedupeKey, err)
	}
	if err := t.tx.QueryRow(ctx, `SELECT seq FROM events WHERE dedupe_key = $1`, ev.DedupeKey).Scan(&ev.Seq); err != nil {
		return false, fmt.Errorf("postgres: find duplicate event %q: %w", ev.DedupeKey, err)
	}
	return false, nil
}

// InsertEvents implements store.EventBatcher: one statement inserts them all, and one more finds
// the seqs of those already stored, if any.
func (t *tx) InsertEvents(ctx context.Context, evs []store.Event, inserted []bool) error {
	if len(evs) == 0 {
		return nil
	}
	keys := make([]string, len(evs))
	agents := make([]string, len(evs))
	systems := make([]string, len(evs))
	types := make([]string, len(evs))
	ats := make([]*int64, len(evs))
	bodies := make([][]byte, len(evs))
	for i := range evs {
		ev := &evs[i]
		if ev.DedupeKey == "" {
			return errors.New("postgres: event has an empty dedupe key")
		}
		at, err := toNanos(ev.At)
		if err != nil {
			return fmt.Errorf("postgres: event %q: %w", ev.DedupeKey, err)
		}
		keys[i], agents[i], systems[i], types[i], ats[i], bodies[i] = ev.DedupeKey, ev.Agent, ev.System, ev.Type, at, store.NonNil(ev.Body)
	}
	// The seqs are drawn in the input's order (volatile functions run after the ordering).
	rows, err := t.tx.Query(ctx, `INSERT INTO events (seq, dedupe_key, agent, system, type, at_ns, body)
		SELECT nextval('events_seq_seq'), k, a, s, ty, at, b
		FROM (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bytea[])
			WITH ORDINALITY AS u(k, a, s, ty, at, b, i) ORDER BY i) AS input
		ON CONFLICT (dedupe_key) DO NOTHING RETURNING seq, dedupe_key`,
		keys, agents, systems, types, ats, bodies)
	if err != nil {
		return fmt.Errorf("postgres: insert %d events: %w", len(evs), err)
	}
	seqs := make(map[string]int64, len(evs))
	var seq int64
	var key string
	_, err = pgx.ForEachRow(rows, []any{&seq, &key}, func() error { seqs[key] = seq; return nil })
	if err != nil {
		return fmt.Errorf("postgres: insert %d events: %w", len(evs), err)
	}
	var missing []string
	var missingAt []int
	for i := range evs {
		s, ok := seqs[keys[i]]
		inserted[i] = ok && s > 0
		if inserted[i] {
			evs[i].Seq = s
			seqs[keys[i]] = -s // later copies in evs are duplicates of this one
			continue
		}
		if ok {
			evs[i].Seq = -s
			continue
		}
		missing, missingAt = append(missing, keys[i]), append(missingAt, i)
	}
	if len(missing) == 0 {
		return nil
	}
	rows, err = t.tx.Query(ctx, `SELECT seq, dedupe_key FROM events WHERE dedupe_key = ANY($1)`, missing)
	if err != nil {
		return fmt.Errorf("postgres: find duplicate events: %w", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&seq, &key}, func() error { seqs[key] = -seq; return nil })
	if err != nil {
		return fmt.Errorf("postgres: find duplicate events: %w", err)
	}
	for _, i := range missingAt {
		s, ok := seqs[keys[i]]
		if !ok {
			return fmt.Errorf("postgres: event %q neither inserted nor found", keys[i])
		}
		evs[i].Seq = -s
	}
	return nil
}

// PutAgent implements store.Tx.
func (t *tx) PutAgent(ctx context.Context, a store.Agent) error {
	if a.Key == "" {
		return errors.New("postgres: agent has an empty key")
	}
	at, err := toNanos(a.UpdatedAt)
	if err != nil {
		return fmt.Errorf("postgres: agent %q: %w", a.Key, err)
	}
	if t.agents == nil {
		t.agents = make(map[string]agentRow)
	}
	// The caller may reuse its buffer before the commit.
	t.agents[a.Key] = agentRow{state: append([]byte{}, a.State...), at: at}
	return nil
}

// flushAgents writes the collected agent puts in key order, so that two replicas touching the
// same agents lock them in the same order.
func (t *tx) flushAgents(ctx context.Context) error {
	if len(t.agents) == 0 {
		return nil
	}
	keys := make([]string, 0, len(t.agents))
	for k := range t.agents {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	states := make([][]byte, len(keys))
	ats := make([]*int64, len(keys))
	for i, k := range keys {
		states[i], ats[i] = t.agents[k].state, t.agents[k].at
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO agents (key, state, updated_at_ns)
		SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[])
		ON CONFLICT (key) DO UPDATE SET state = excluded.state, updated_at_ns = excluded.updated_at_ns`,
		keys, states, ats); err != nil {
		return fmt.Errorf("postgres: put %d agents: %w", len(keys), err)
	}
	return nil
}

// AppendAudit implements store.Tx. The seqs are taken in one round trip and the records written
// in another, a run of one agent's records for one event to a row (store.PackAudit).
func (t *tx) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	if len(recs) == 0 {
		return nil
	}
	for i := range recs {
		if _, err := toNanos(recs[i].At); err != nil {
			return fmt.Errorf("postgres: audit record of %q: %w", recs[i].Agent, err)
		}
	}
	rows, err := t.tx.Query(ctx, `SELECT nextval('audit_seq_seq') FROM generate_series(1, $1)`, len(recs))
	if err != nil {
		return fmt.Errorf("postgres: audit seqs: %w", err)
	}
	seqs, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("postgres: audit seqs: %w", err)
	}
	if len(seqs) != len(recs) {
		return fmt.Errorf("postgres: audit seqs: got %d for %d records", len(seqs), len(recs))
	}
	// nextval gives increasing values within one session; sorting keeps that order whatever
	// order the rows came in.
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i := range recs {
		recs[i].Seq = seqs[i]
	}
	runs := store.AuditRuns(recs)
	var (
		seq, eventSeq []int64
		agents, kinds []string
		ats           []*int64
		bodies        [][]byte
		ns            []int32
	)
	for _, run := range runs {
		rs := recs[run.First:run.End]
		r := &rs[0]
		at, _ := toNanos(r.At)
		seq, agents, ats, kinds = append(seq, r.Seq), append(agents, r.Agent), append(ats, at), append(kinds, r.Kind)
		eventSeq, ns = append(eventSeq, r.EventSeq), append(ns, int32(len(rs)))
		bodies = append(bodies, store.NonNil(store.PackAudit(nil, rs)))
	}
	if _, err := t.tx.Exec(ctx, `INSERT INTO audit (seq, agent, at_ns, kind, event_seq, body, n)
		SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::bytea[], $7::int[])`,
		seq, agents, ats, kinds, eventSeq, bodies, ns); err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
	}
	return nil
}

// SetCheckpoint implements store.Tx.
func (t *tx) SetCheckpoint(ctx context.Context, name, value string) error {
	if _, err := t.tx.Exec(ctx, `INSERT INTO checkpoints (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return fmt.Errorf("postgres: set checkpoint %q: %w", name, err)
	}
	return nil
}

// The times UnixNano can represent.
var minTime, maxTime = time.Unix(0, math.MinInt64).UTC(), time.Unix(0, math.MaxInt64).UTC()

// toNanos encodes t as nanoseconds since the Unix epoch; the zero time is NULL.
func toNanos(t time.Time) (*int64, error) {
	if t.IsZero() {
		return nil, nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		return nil, fmt.Errorf("time %v outside the storable range %v to %v", t, minTime, maxTime)
	}
	n := t.UnixNano()
	return &n, nil
}

func fromNanos(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}
