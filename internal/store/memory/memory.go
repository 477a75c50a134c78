// Package memory is an in-memory store.Store for simulate, tests and benchmarks. Nothing survives
// the process. Retention can be capped so that long runs use bounded memory.
package memory

import (
	"context"
	"errors"
	"slices"
	"sync"

	"github.com/omnipresence/omnipresence/internal/store"
)

// Option configures a Store.
type Option func(*Store)

// WithMaxEvents keeps at most n events, dropping the oldest first. The key of a dropped event
// is still deduplicated for a while: it is forgotten at the latest after 2n newer events.
// n <= 0 means unlimited, the default.
func WithMaxEvents(n int) Option { return func(s *Store) { s.maxEvents = max(n, 0) } }

// WithMaxAudit keeps at most n audit records, dropping the oldest first. n <= 0 means unlimited,
// the default.
func WithMaxAudit(n int) Option { return func(s *Store) { s.maxAudit = max(n, 0) } }

// Store is an in-memory store.Store. Update buffers a transaction's changes and applies them
// under a write lock on commit, so readers never see part of a transaction.
type Store struct {
	maxEvents, maxAudit int

	// wmu serializes Update. Only its holder touches tx, dedupe and arena.
	wmu    sync.Mutex
	tx     tx
	dedupe dedupe
	arena  arena

	// mu guards everything below; readers hold it shared.
	mu          sync.RWMutex
	closed      bool
	events      log[store.Event]
	audit       log[store.AuditRecord]
	agents      map[string]*entry
	checkpoints map[string]string
}

// entry is what the store keeps per agent key: the committed state, if any, and the seqs of
// the agent's retained events and audit records, oldest first. Entries are created only by
// commit; between commits only the holder of wmu looks them up, so a transaction can hold on
// to them without a lock.
type entry struct {
	state         store.Agent
	hasState      bool
	events, audit []int64
}

// New returns an empty Store.
func New(opts ...Option) *Store {
	s := &Store{
		events:      log[store.Event]{base: 1},
		audit:       log[store.AuditRecord]{base: 1},
		agents:      make(map[string]*entry),
		checkpoints: make(map[string]string),
	}
	for _, o := range opts {
		o(s)
	}
	s.dedupe = dedupe{cur: make(map[string]int64), limit: s.maxEvents}
	s.tx.s = s
	return s
}

var _ store.Store = (*Store)(nil)

// Update implements store.Store.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return store.ErrClosed
	}
	t := &s.tx
	t.reset()
	committed := false
	defer func() {
		// Also runs when fn panics: forget the keys this transaction claimed.
		if !committed {
			for _, p := range t.events {
				s.dedupe.forget(p.ev.DedupeKey)
			}
		}
		t.reset()
	}()
	if err := fn(t); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.commit(t)
	s.dedupe.rotate()
	committed = true
	return nil
}

func (s *Store) commit(t *tx) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range t.created {
		s.agents[k] = e
	}
	for _, p := range t.events {
		s.events.append(p.ev)
		p.e.events = append(p.e.events, p.ev.Seq)
	}
	for _, p := range t.audit {
		s.audit.append(p.rec)
		p.e.audit = append(p.e.audit, p.rec.Seq)
	}
	for _, p := range t.agents {
		// Readers only ever get copies of a state, so its buffer can be reused in place.
		buf := append(p.e.state.State[:0], t.scratch[p.start:p.end]...)
		p.e.state, p.e.hasState = p.a, true
		p.e.state.State = buf
	}
	for _, c := range t.checkpoints {
		s.checkpoints[c[0]] = c[1]
	}
	if s.maxEvents > 0 {
		s.events.trim(s.maxEvents, func(ev *store.Event) {
			e := s.agents[ev.Agent]
			e.events = dropFirst(e.events)
			s.forget(ev.Agent, e)
		})
	}
	if s.maxAudit > 0 {
		s.audit.trim(s.maxAudit, func(r *store.AuditRecord) {
			e := s.agents[r.Agent]
			e.audit = dropFirst(e.audit)
			s.forget(r.Agent, e)
		})
	}
}

// dedupe maps the keys of recent events to their seqs. With a cap on events it keeps two
// generations of keys and drops the older one whole once the newer one holds limit keys:
// deleting keys one by one as events are dropped leaves a hash map full of tombstones that
// slow every lookup. The two generations always cover the newest limit events.
type dedupe struct {
	cur, prev map[string]int64
	limit     int // 0: one generation, never dropped
}

func (d *dedupe) get(key string) (int64, bool) {
	if seq, ok := d.cur[key]; ok {
		return seq, true
	}
	seq, ok := d.prev[key]
	return seq, ok
}

// forget removes a key of a rolled-back transaction; such keys are all in cur, because rotate
// runs only after a commit.
func (d *dedupe) forget(key string) { delete(d.cur, key) }

func (d *dedupe) rotate() {
	if d.limit > 0 && len(d.cur) >= d.limit {
		d.prev, d.cur = d.cur, make(map[string]int64, d.limit)
	}
}

// forget removes an entry that no longer holds anything.
func (s *Store) forget(agent string, e *entry) {
	if !e.hasState && len(e.events) == 0 && len(e.audit) == 0 {
		delete(s.agents, agent)
	}
}

// dropFirst removes the first seq; the backing array is reclaimed when append next grows it.
func dropFirst(seqs []int64) []int64 {
	if len(seqs) == 1 {
		return nil
	}
	return seqs[1:]
}

func (s *Store) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	return nil
}

// Agent implements store.Store.
func (s *Store) Agent(ctx context.Context, key string) (store.Agent, bool, error) {
	if err := s.rlock(); err != nil {
		return store.Agent{}, false, err
	}
	defer s.mu.RUnlock()
	e := s.agents[key]
	if e == nil || !e.hasState {
		return store.Agent{}, false, nil
	}
	a := e.state
	a.State = clone(a.State)
	return a, true, nil
}

// Agents implements store.Store.
func (s *Store) Agents(ctx context.Context) ([]store.Agent, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make([]store.Agent, 0, len(s.agents))
	for _, e := range s.agents {
		if e.hasState {
			a := e.state
			a.State = clone(a.State)
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b store.Agent) int {
		switch {
		case a.Key < b.Key:
			return -1
		case a.Key > b.Key:
			return 1
		}
		return 0
	})
	return out, nil
}

// Events implements store.Store. limit <= 0 means all.
func (s *Store) Events(ctx context.Context, agent string, limit int) ([]store.Event, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return newest(&s.events, s.agents, agent, limit, func(e *entry) []int64 { return e.events },
		func(e store.Event) store.Event { e.Body = clone(e.Body); return e }), nil
}

// Audit implements store.Store. limit <= 0 means all; agent "" means every agent.
func (s *Store) Audit(ctx context.Context, agent string, limit int) ([]store.AuditRecord, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	return newest(&s.audit, s.agents, agent, limit, func(e *entry) []int64 { return e.audit },
		func(r store.AuditRecord) store.AuditRecord { r.Body = clone(r.Body); return r }), nil
}

func newest[T any](l *log[T], agents map[string]*entry, agent string, limit int,
	seqsOf func(*entry) []int64, copyOut func(T) T) []T {
	if agent == "" {
		n := l.len()
		if limit > 0 && limit < n {
			n = limit
		}
		out := make([]T, 0, n)
		for i := l.len() - 1; len(out) < n; i-- {
			out = append(out, copyOut(*l.at(i)))
		}
		return out
	}
	e := agents[agent]
	if e == nil {
		return nil
	}
	seqs := seqsOf(e)
	n := len(seqs)
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]T, 0, n)
	for i := len(seqs) - 1; len(out) < n; i-- {
		out = append(out, copyOut(*l.get(seqs[i])))
	}
	return out
}

// RecentDedupeKeys implements store.Store.
func (s *Store) RecentDedupeKeys(ctx context.Context, n int) ([]string, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	n = min(max(n, 0), s.events.len())
	out := make([]string, 0, n)
	for i := s.events.len() - 1; len(out) < n; i-- {
		out = append(out, s.events.at(i).DedupeKey)
	}
	return out, nil
}

// Checkpoint implements store.Store.
func (s *Store) Checkpoint(ctx context.Context, name string) (string, error) {
	if err := s.rlock(); err != nil {
		return "", err
	}
	defer s.mu.RUnlock()
	return s.checkpoints[name], nil
}

// SetCheckpoint implements store.Store.
func (s *Store) SetCheckpoint(ctx context.Context, name, value string) error {
	return s.Update(ctx, func(tx store.Tx) error { return tx.SetCheckpoint(ctx, name, value) })
}

// Close implements store.Store. It drops every retained record.
func (s *Store) Close() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.events, s.audit = log[store.Event]{}, log[store.AuditRecord]{}
	s.agents, s.checkpoints, s.dedupe = nil, nil, dedupe{}
	s.arena = arena{}
	return nil
}

// tx buffers one Update's changes. It is reused across Updates to avoid allocations.
type tx struct {
	s           *Store
	events      []pendingEvent
	audit       []pendingAudit
	agents      []pendingAgent
	checkpoints [][2]string
	// created holds entries for agents the store does not know yet; commit publishes them.
	created map[string]*entry
	// scratch holds the agent states put in this transaction; commit copies each into its
	// entry's buffer, so that steady-state puts allocate nothing.
	scratch []byte
	// lastKey and last cache the most recent entry lookup: the engine touches one agent's
	// event, state and audit in a row.
	lastKey string
	last    *entry
}

type pendingEvent struct {
	ev store.Event
	e  *entry
}

type pendingAudit struct {
	rec store.AuditRecord
	e   *entry
}

// pendingAgent is a PutAgent; its state is scratch[start:end] of the transaction.
type pendingAgent struct {
	a          store.Agent
	e          *entry
	start, end int
}

func (t *tx) reset() {
	clear(t.events)
	clear(t.audit)
	clear(t.agents)
	t.events, t.audit, t.agents, t.checkpoints = t.events[:0], t.audit[:0], t.agents[:0], t.checkpoints[:0]
	clear(t.created)
	t.lastKey, t.last = "", nil
	if cap(t.scratch) > maxScratch {
		t.scratch = nil
	} else {
		t.scratch = t.scratch[:0]
	}
}

// maxScratch bounds the state buffer a transaction keeps for the next one.
const maxScratch = 1 << 20

// entry finds or creates the entry of key without publishing it.
func (t *tx) entry(key string) *entry {
	if t.last != nil && t.lastKey == key {
		return t.last
	}
	e := t.s.agents[key]
	if e == nil {
		e = t.created[key]
	}
	if e == nil {
		e = &entry{}
		if t.created == nil {
			t.created = make(map[string]*entry)
		}
		t.created[key] = e
	}
	t.lastKey, t.last = key, e
	return e
}

var errEmptyDedupeKey = errors.New("memory: event has an empty dedupe key")

// InsertEvent implements store.Tx.
func (t *tx) InsertEvent(ctx context.Context, ev *store.Event) (bool, error) {
	if ev.DedupeKey == "" {
		return false, errEmptyDedupeKey
	}
	s := t.s
	if seq, ok := s.dedupe.get(ev.DedupeKey); ok {
		ev.Seq = seq
		return false, nil
	}
	// Only commit, also under wmu, moves the log's end, so reading it here needs no lock.
	ev.Seq = s.events.next() + int64(len(t.events))
	s.dedupe.cur[ev.DedupeKey] = ev.Seq
	p := pendingEvent{ev: *ev, e: t.entry(ev.Agent)}
	p.ev.Body = s.arena.copy(ev.Body)
	p.ev.At = p.ev.At.UTC()
	t.events = append(t.events, p)
	return true, nil
}

// PutAgent implements store.Tx.
func (t *tx) PutAgent(ctx context.Context, a store.Agent) error {
	if a.Key == "" {
		return errors.New("memory: agent has an empty key")
	}
	start := len(t.scratch)
	t.scratch = append(t.scratch, a.State...)
	a.State = nil
	a.UpdatedAt = a.UpdatedAt.UTC()
	t.agents = append(t.agents, pendingAgent{a: a, e: t.entry(a.Key), start: start, end: len(t.scratch)})
	return nil
}

// AppendAudit implements store.Tx.
func (t *tx) AppendAudit(ctx context.Context, recs []store.AuditRecord) error {
	next := t.s.audit.next() + int64(len(t.audit))
	for i := range recs {
		recs[i].Seq = next + int64(i)
		p := pendingAudit{rec: recs[i], e: t.entry(recs[i].Agent)}
		p.rec.Body = t.s.arena.copy(p.rec.Body)
		p.rec.At = p.rec.At.UTC()
		t.audit = append(t.audit, p)
	}
	return nil
}

// SetCheckpoint implements store.Tx.
func (t *tx) SetCheckpoint(ctx context.Context, name, value string) error {
	t.checkpoints = append(t.checkpoints, [2]string{name, value})
	return nil
}

// log holds records with consecutive seqs, oldest first, in fixed-size chunks so that appending
// never copies what is already stored. The record with seq base is chunks[0][off].
type log[T any] struct {
	chunks [][]T
	base   int64
	off    int
	n      int
}

const logChunk = 1024

func (l *log[T]) len() int    { return l.n }
func (l *log[T]) next() int64 { return l.base + int64(l.n) }

func (l *log[T]) append(v T) {
	if last := len(l.chunks) - 1; last >= 0 && len(l.chunks[last]) < logChunk {
		l.chunks[last] = append(l.chunks[last], v)
	} else {
		c := make([]T, 1, logChunk)
		c[0] = v
		l.chunks = append(l.chunks, c)
	}
	l.n++
}

// at returns the i-th retained record, 0 being the oldest.
func (l *log[T]) at(i int) *T {
	i += l.off
	return &l.chunks[i/logChunk][i%logChunk]
}

func (l *log[T]) get(seq int64) *T { return l.at(int(seq - l.base)) }

// trim drops the oldest records beyond keep, calling dropped for each before it goes.
func (l *log[T]) trim(keep int, dropped func(*T)) {
	var zero T
	for ; l.n > keep; l.n-- {
		v := &l.chunks[0][l.off]
		dropped(v)
		*v = zero
		l.base++
		if l.off++; l.off == logChunk {
			l.chunks[0] = nil
			l.chunks = l.chunks[1:]
			l.off = 0
		}
	}
}

// arena copies small bodies into shared chunks: one allocation per chunk instead of per body.
// Bodies are immutable once stored, so sharing a chunk is safe; a chunk is collected when every
// body in it has been dropped.
type arena struct {
	buf []byte
}

const arenaChunk = 64 << 10

func (a *arena) copy(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	if len(b) > arenaChunk/8 {
		return clone(b)
	}
	if len(a.buf)+len(b) > cap(a.buf) {
		a.buf = make([]byte, 0, arenaChunk)
	}
	start := len(a.buf)
	a.buf = append(a.buf, b...)
	return a.buf[start:len(a.buf):len(a.buf)]
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}
