package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
)

// Flush writes every agent changed since the last flush and the decision records made since,
// inside tx (stores copy what they are handed, so the encoding buffer is reused). Agent states
// go in the compact binary form (statecodec.go). It returns the decisions, for the live stream,
// once the caller has committed.
func (m *Machine) Flush(ctx context.Context, tx store.Tx) ([]Decision, error) {
	if len(m.dirty) > 0 {
		keys := make([]string, 0, len(m.dirty))
		for k := range m.dirty {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			st := m.agents[k]
			if st == nil {
				continue
			}
			b, err := appendState(m.stateBuf[:0], st, &m.stateScratch)
			if err != nil {
				return nil, fmt.Errorf("encoding agent %s: %w", k, err)
			}
			m.stateBuf = b
			if err := tx.PutAgent(ctx, store.Agent{Key: k, State: b, UpdatedAt: st.UpdatedAt}); err != nil {
				return nil, err
			}
		}
		clear(m.dirty)
	}
	if len(m.records) == 0 {
		return nil, nil
	}
	recs := make([]store.AuditRecord, len(m.records))
	out := make([]Decision, len(m.records))
	// One buffer holds every body (stores copy what they are handed, so it is reused).
	buf := m.stepBuf[:0]
	for i, r := range m.records {
		start := len(buf)
		buf = appendStep(buf, &r.step)
		recs[i] = store.AuditRecord{Agent: r.agent, At: r.at, Kind: string(r.step.Kind), EventSeq: r.eventSeq}
		recs[i].Body = buf[start:len(buf):len(buf)]
		out[i] = Decision{Agent: r.agent, Step: r.step}
	}
	m.records = m.records[:0]
	m.stepBuf = buf
	if err := tx.AppendAudit(ctx, recs); err != nil {
		return nil, err
	}
	for i := range recs {
		out[i].Seq = recs[i].Seq
	}
	return out, nil
}

// storedEvent is an event as the store took it: the agent it resolved to and, once inserted,
// its seq and whether it was new.
type storedEvent struct {
	ev       presence.Event
	email    string
	known    bool
	rec      store.Event
	inserted bool
}

// storeEvents resolves and encodes evs and inserts them into tx (in one statement where the
// store can), filling out.
func (m *Machine) storeEvents(ctx context.Context, tx store.Tx, evs []presence.Event, out []storedEvent) error {
	recs := make([]store.Event, len(evs))
	for i, ev := range evs {
		email, known := m.resolveAgent(ev.System, ev.Agent)
		body, err := appendEvent(nil, ev)
		if err != nil {
			return fmt.Errorf("encoding event: %w", err)
		}
		recs[i] = store.Event{DedupeKey: ev.DedupeKey(), Agent: email, System: ev.System, Type: string(ev.Type), At: ev.At, Body: body}
		if !known {
			recs[i].Agent = ev.Agent
		}
		out[i] = storedEvent{ev: ev, email: email, known: known}
	}
	inserted := make([]bool, len(evs))
	if err := store.InsertEvents(ctx, tx, recs, inserted); err != nil {
		return err
	}
	for i := range out {
		out[i].rec, out[i].inserted = recs[i], inserted[i]
	}
	return nil
}

// storeBatch stores the events of a batch's ingests up front, in one statement where the store
// can, and returns them in order; the ingests then apply them in their turn. A batch that loads
// a directory stores nothing up front, since the directory decides whose events they are.
func (m *Machine) storeBatch(ctx context.Context, tx store.Tx, batch []*request) ([]storedEvent, error) {
	var evs []presence.Event
	for _, r := range batch {
		switch r.kind {
		case opAccounts:
			return nil, nil
		case opIngest:
			evs = append(evs, r.ev)
		}
	}
	if len(evs) < 2 {
		return nil, nil
	}
	out := make([]storedEvent, len(evs))
	return out, m.storeEvents(ctx, tx, evs, out)
}

// applyStored applies an event storeEvents stored, as Ingest does.
func (m *Machine) applyStored(se *storedEvent, now time.Time) string {
	m.Stats.Events.Add(1)
	if !se.inserted {
		m.Stats.Duplicates.Add(1)
		return ""
	}
	return m.apply(se.ev, se.email, se.known, se.rec.Seq, now)
}

// Discard drops changes recorded since the last Flush after a failed transaction, by reloading
// the affected agents from what the store committed.
func (m *Machine) Discard(ctx context.Context, s store.Store) error {
	m.records = m.records[:0]
	m.extCalls = nil
	for k := range m.dirty {
		a, ok, err := s.Agent(ctx, k)
		if err != nil {
			return err
		}
		if !ok {
			delete(m.agents, k)
			continue
		}
		st, err := decodeAgent(a)
		if err != nil {
			return err
		}
		m.refold(st)
		m.agents[k] = st
	}
	clear(m.dirty)
	return nil
}

// Restore loads every committed agent after a start. A write that was in flight when the
// process stopped may or may not have landed: its echo is still recognised for a while, and
// when the target has moved on since, the system is assumed to show it, so the target is
// written over it. Restore returns the agents that need a reconcile.
func (m *Machine) Restore(ctx context.Context, s store.Store) ([]string, error) {
	agents, err := s.Agents(ctx)
	if err != nil {
		return nil, err
	}
	var todo []string
	for _, a := range agents {
		st, err := decodeAgent(a)
		if err != nil {
			return nil, err
		}
		needs := false
		for _, ss := range st.Systems {
			// Write ids stay unique: marks and open writes name writes by them.
			for _, w := range ss.Writes {
				m.nextWrite = max(m.nextWrite, w.ID)
			}
			for _, mk := range ss.Timeline {
				m.nextWrite = max(m.nextWrite, mk.Write)
			}
			if w := ss.InFlight; w != nil {
				m.nextWrite = max(m.nextWrite, w.ID)
				ow := ss.openWrite(w.ID)
				if ow != nil {
					ow.Answered, ow.AnsweredAt, ow.Unsure = true, w.SentAt, true
				}
				if ss.Target != w.StatusID && (ow == nil || len(ow.Maybes) == 0) {
					// Assumed landed, unless an event taken for its echo says where it did.
					ss.addMark(mark{At: w.SentAt, Status: w.StatusID, Write: w.ID, Estimated: true})
				}
				ss.InFlight = nil
			}
		}
		m.agents[a.Key] = st
		m.refold(st)
		for _, ss := range st.Systems {
			if ss.needsWrite() {
				needs = true
			}
		}
		if needs {
			todo = append(todo, a.Key)
		}
	}
	return todo, nil
}

func decodeAgent(a store.Agent) (*agentState, error) {
	st := &agentState{}
	if err := decodeState(a.State, st); err != nil {
		return nil, fmt.Errorf("decoding agent %s: %w", a.Key, err)
	}
	if st.Systems == nil {
		st.Systems = map[string]*systemState{}
	}
	return st, nil
}

// View returns one agent as the API shows it.
func (m *Machine) View(email string) (AgentView, bool) {
	st := m.agents[email]
	if st == nil {
		return AgentView{}, false
	}
	return m.view(st), true
}

// Views returns every known agent, sorted by email.
func (m *Machine) Views() []AgentView {
	out := make([]AgentView, 0, len(m.agents))
	for _, st := range m.agents {
		out = append(out, m.view(st))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out
}

func (m *Machine) view(st *agentState) AgentView {
	v := AgentView{Email: st.Email, Systems: map[string]SystemView{}, UpdatedAt: st.UpdatedAt, InSync: true}
	if p := m.cfg.PolicyFor(st.Email); p != nil {
		v.Policy = p.Name
	}
	for name, ss := range st.Systems {
		observed := ss.observed()
		sv := SystemView{Observed: m.statusByID(name, observed).Name, ObservedID: observed,
			ObservedSince: ss.observedAt(), Deferred: ss.Deferred, Covered: ss.Target != ""}
		if acct, ok := m.account(name, st.Email); ok {
			sv.Account = acct
		}
		desired := ss.Target
		if desired == "" {
			desired = observed
		}
		sv.Desired, sv.DesiredID = m.statusByID(name, desired).Name, desired
		sv.InSync = desired == observed && (ss.InFlight == nil || ss.InFlight.StatusID == desired)
		if ss.InFlight != nil {
			sv.Pending = ss.InFlight.Status
		}
		if ss.Failed != "" && ss.FailedFor == ss.Target {
			sv.Failed = ss.Failed
		}
		if st.fold != nil {
			if fs := st.fold.Systems[name]; fs != nil && fs.Target != "" {
				sv.Rule, sv.Cause = fs.Cause.Rule, fs.Cause.Text
			}
		}
		v.InSync = v.InSync && sv.InSync
		v.Systems[name] = sv
	}
	if st.fold != nil {
		for _, inst := range st.fold.Activities {
			av := ActivityView{Name: inst.Name, Key: inst.Key, Since: inst.Since}
			for sys := range inst.Statuses {
				av.Systems = append(av.Systems, sys)
			}
			sort.Strings(av.Systems)
			v.Activities = append(v.Activities, av)
		}
	}
	return v
}

// DecodeSteps turns stored audit records into explain steps, oldest first. It reads both the
// binary form (appendStep) and the JSON earlier versions stored.
func DecodeSteps(recs []store.AuditRecord) ([]Step, error) {
	out := make([]Step, 0, len(recs))
	for i := len(recs) - 1; i >= 0; i-- {
		var s Step
		r := &recs[i]
		if b := r.Body; len(b) > 0 && b[0] == stepFormatV1 {
			if err := decodeStep(b[1:], &s); err != nil {
				return nil, fmt.Errorf("decoding audit record %d: %w", r.Seq, err)
			}
			s.At, s.EventSeq = r.At, r.EventSeq
		} else if err := json.Unmarshal(b, &s); err != nil {
			return nil, fmt.Errorf("decoding audit record %d: %w", r.Seq, err)
		}
		s.Seq = r.Seq
		out = append(out, s)
	}
	return out, nil
}
