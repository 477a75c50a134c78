package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// An agent's state is written on every commit that changes it, and its history repeats the same
// few strings (systems, status ids, rules) many times, so it is stored in a compact binary form
// rather than as JSON: varints, times as seconds after the previous time written and
// nanoseconds, and every string after its first use as a back-reference. The first byte tells the forms apart: JSON (written by earlier
// versions, and still read) starts with '{', the binary form with stateFormatV1.
// TestStateCodecRoundTrip pins that the binary form keeps everything the JSON form keeps.

// stateFormatV1 is the first byte of a binary agent state.
const stateFormatV1 = 0x01

// The flags of a timeline mark.
const (
	markEstimated = 1 << iota
	markReading
	markReport
)

// stateEncoder appends an agentState in the binary form.
type stateEncoder struct {
	b []byte
	// strs are the strings written so far, in order; an agent's state holds few distinct ones,
	// so a scan beats a map (index holds them too once there are many).
	strs  []string
	index map[string]int
	// last is the previous time written, in Unix seconds; lastSeq the previous event seq.
	last, lastSeq int64
}

// encoderScan is how many strings are looked up by a scan before the map takes over.
const encoderScan = 32

func (e *stateEncoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *stateEncoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }

// seq writes an event seq as the difference from the previous one.
func (e *stateEncoder) seq(v int64) {
	e.int(v - e.lastSeq)
	e.lastSeq = v
}

func (e *stateEncoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}

// str writes 0 for "", 1 and the string the first time, then its index + 2.
func (e *stateEncoder) str(s string) {
	if s == "" {
		e.b = append(e.b, 0)
		return
	}
	if len(e.strs) <= encoderScan {
		for i, t := range e.strs {
			if t == s {
				e.uint(uint64(i) + 2)
				return
			}
		}
	} else if i, ok := e.index[s]; ok {
		e.uint(uint64(i) + 2)
		return
	}
	e.strs = append(e.strs, s)
	if len(e.strs) > encoderScan {
		if len(e.index) == 0 {
			for i, t := range e.strs {
				e.index[t] = i
			}
		}
		e.index[s] = len(e.strs) - 1
	}
	e.b = append(e.b, 1)
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *stateEncoder) time(t time.Time) {
	if t.IsZero() {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	sec := t.Unix()
	e.int(sec - e.last)
	e.last = sec
	e.uint(uint64(t.Nanosecond()))
}

func (e *stateEncoder) event(ev *presence.Event) error {
	e.str(ev.ID)
	e.str(ev.System)
	e.str(ev.Agent)
	e.str(string(ev.Type))
	e.str(ev.Status)
	e.time(ev.At)
	if len(ev.Data) == 0 {
		e.uint(0)
	} else {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return err
		}
		e.uint(uint64(len(data)))
		e.b = append(e.b, data...)
	}
	e.str(ev.Origin)
	e.str(ev.Version)
	return nil
}

func (e *stateEncoder) changes(cs []change) error {
	e.uint(uint64(len(cs)))
	for i := range cs {
		c := &cs[i]
		e.seq(c.Seq)
		if err := e.event(&c.Event); err != nil {
			return err
		}
		e.uint(uint64(len(c.Ext)))
		for _, x := range c.Ext {
			e.str(x.System)
			e.str(x.Status)
		}
	}
	return nil
}

func (e *stateEncoder) cause(c *cause) {
	e.time(c.At)
	e.str(c.System)
	e.str(c.Rule)
	e.str(c.Text)
	e.int(c.Seq)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (e *stateEncoder) fold(f *foldState) {
	if f == nil {
		e.b = append(e.b, 0)
		return
	}
	e.b = append(e.b, 1)
	e.uint(uint64(len(f.Systems)))
	for _, name := range sortedKeys(f.Systems) {
		fs := f.Systems[name]
		e.str(name)
		e.str(fs.Target)
		e.cause(&fs.Cause)
		e.str(fs.State)
		e.time(fs.StateSince)
		if fs.Overlay == nil {
			e.b = append(e.b, 0)
		} else {
			e.b = append(e.b, 1)
			e.str(fs.Overlay.Base)
			e.cause(&fs.Overlay.BaseWhy)
			e.bool(fs.Overlay.Released)
		}
	}
	e.uint(uint64(len(f.Activities)))
	for _, a := range f.Activities {
		e.str(a.Name)
		e.str(a.Key)
		e.time(a.Since)
		if a.Statuses == nil {
			e.uint(0)
		} else {
			e.uint(uint64(len(a.Statuses)) + 1)
			for _, k := range sortedKeys(a.Statuses) {
				e.str(k)
				e.str(a.Statuses[k])
			}
		}
	}
	e.uint(uint64(len(f.Ended)))
	for _, x := range f.Ended {
		e.str(x.Name)
		e.str(x.Key)
		e.time(x.At)
	}
}

func (e *stateEncoder) write(w *Write) {
	e.int(w.ID)
	e.str(w.Agent)
	e.str(w.System)
	e.str(w.Account)
	e.str(w.StatusID)
	e.str(w.Status)
	e.time(w.SentAt)
	e.int(int64(w.Attempt))
	e.str(w.Rule)
	e.str(w.Cause)
	e.int(w.CauseSeq)
}

func (e *stateEncoder) system(ss *systemState) error {
	e.uint(uint64(len(ss.Timeline)))
	for i := range ss.Timeline {
		mk := &ss.Timeline[i]
		e.time(mk.At)
		e.str(mk.Status)
		e.int(mk.Write)
		e.seq(mk.Seq)
		var flags byte
		if mk.Estimated {
			flags |= markEstimated
		}
		if mk.Reading {
			flags |= markReading
		}
		if mk.Report != nil {
			flags |= markReport
		}
		e.b = append(e.b, flags)
		if mk.Report != nil {
			if err := e.event(mk.Report); err != nil {
				return err
			}
		}
	}
	e.uint(uint64(len(ss.Writes)))
	for i := range ss.Writes {
		w := &ss.Writes[i]
		e.int(w.ID)
		e.str(w.StatusID)
		e.time(w.SentAt)
		e.bool(w.Answered)
		e.time(w.AnsweredAt)
		e.str(w.Version)
		e.bool(w.Unsure)
		e.str(w.Queued)
		if err := e.changes(w.Maybes); err != nil {
			return err
		}
	}
	if ss.InFlight == nil {
		e.b = append(e.b, 0)
	} else {
		e.b = append(e.b, 1)
		e.write(ss.InFlight)
	}
	e.str(ss.Target)
	e.time(ss.TargetSince)
	e.bool(ss.Moved)
	e.str(ss.Deferred)
	e.str(ss.DeferredFor)
	e.int(ss.DeferredHead)
	e.int(int64(ss.Attempts))
	e.time(ss.NextAttempt)
	e.str(ss.Failed)
	e.str(ss.FailedFor)
	return nil
}

// stateScratch is appendState's reusable space.
type stateScratch struct {
	strs  []string
	index map[string]int
}

// appendState appends st in the binary form.
func appendState(b []byte, st *agentState, sc *stateScratch) ([]byte, error) {
	if sc.index == nil {
		sc.index = map[string]int{}
	}
	clear(sc.index)
	e := stateEncoder{b: append(b, stateFormatV1), strs: sc.strs[:0], index: sc.index}
	defer func() { clear(e.strs); sc.strs = e.strs[:0] }()
	e.str(st.Email)
	e.uint(uint64(len(st.Systems)))
	for _, name := range sortedKeys(st.Systems) {
		e.str(name)
		if err := e.system(st.Systems[name]); err != nil {
			return nil, err
		}
	}
	if err := e.changes(st.History); err != nil {
		return nil, err
	}
	e.fold(st.Base)
	e.time(st.BaseAt)
	e.time(st.UpdatedAt)
	return e.b, nil
}

// stateDecoder reads the binary form; the first error sticks and zero values follow it.
type stateDecoder struct {
	b             []byte
	strs          []string
	last, lastSeq int64
	err           error
}

var errTruncated = errors.New("truncated agent state")

func (d *stateDecoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *stateDecoder) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errTruncated)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *stateDecoder) seq() int64 {
	d.lastSeq += d.int()
	return d.lastSeq
}

func (d *stateDecoder) byte() byte {
	if len(d.b) == 0 {
		d.fail(errTruncated)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *stateDecoder) bool() bool { return d.byte() != 0 }

// count reads a length, bounded by the bytes left (every element takes at least one).
func (d *stateDecoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail(errTruncated)
		return 0
	}
	return int(n)
}

func (d *stateDecoder) bytes() []byte {
	n := d.count()
	out := d.b[:n:n]
	d.b = d.b[n:]
	return out
}

func (d *stateDecoder) str() string {
	switch ref := d.uint(); {
	case ref == 0:
		return ""
	case ref == 1:
		s := string(d.bytes())
		d.strs = append(d.strs, s)
		return s
	case ref-2 < uint64(len(d.strs)):
		return d.strs[ref-2]
	default:
		d.fail(fmt.Errorf("agent state: string reference %d of %d", ref-2, len(d.strs)))
		return ""
	}
}

func (d *stateDecoder) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	sec := d.last + d.int()
	d.last = sec
	nsec := d.uint()
	if nsec >= uint64(time.Second) {
		d.fail(errors.New("agent state: bad time"))
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

func (d *stateDecoder) intn() int {
	v := d.int()
	if int64(int(v)) != v {
		d.fail(errors.New("agent state: number out of range"))
		return 0
	}
	return int(v)
}

func (d *stateDecoder) event() presence.Event {
	var ev presence.Event
	ev.ID = d.str()
	ev.System = d.str()
	ev.Agent = d.str()
	ev.Type = presence.EventType(d.str())
	ev.Status = d.str()
	ev.At = d.time()
	if data := d.bytes(); len(data) > 0 && d.err == nil {
		if err := json.Unmarshal(data, &ev.Data); err != nil {
			d.fail(fmt.Errorf("agent state: event data: %w", err))
		}
	}
	ev.Origin = d.str()
	ev.Version = d.str()
	return ev
}

func (d *stateDecoder) changes() []change {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]change, n)
	for i := range out {
		c := &out[i]
		c.Seq = d.seq()
		c.Event = d.event()
		if k := d.count(); k > 0 {
			c.Ext = make([]extTarget, k)
			for j := range c.Ext {
				c.Ext[j] = extTarget{System: d.str(), Status: d.str()}
			}
		}
	}
	return out
}

func (d *stateDecoder) cause() cause {
	return cause{At: d.time(), System: d.str(), Rule: d.str(), Text: d.str(), Seq: d.int()}
}

func (d *stateDecoder) fold() *foldState {
	if d.byte() == 0 {
		return nil
	}
	f := &foldState{}
	if n := d.count(); n > 0 {
		f.Systems = make(map[string]*foldSystem, n)
		for range n {
			name := d.str()
			fs := &foldSystem{Target: d.str(), Cause: d.cause(), State: d.str(), StateSince: d.time()}
			if d.bool() {
				fs.Overlay = &overlay{Base: d.str(), BaseWhy: d.cause(), Released: d.bool()}
			}
			f.Systems[name] = fs
		}
	}
	if n := d.count(); n > 0 {
		f.Activities = make([]*activityInstance, n)
		for i := range f.Activities {
			a := &activityInstance{Name: d.str(), Key: d.str(), Since: d.time()}
			if k := d.count(); k > 0 {
				a.Statuses = make(map[string]string, k-1)
				for range k - 1 {
					key := d.str()
					a.Statuses[key] = d.str()
				}
			}
			f.Activities[i] = a
		}
	}
	if n := d.count(); n > 0 {
		f.Ended = make([]endedActivity, n)
		for i := range f.Ended {
			f.Ended[i] = endedActivity{Name: d.str(), Key: d.str(), At: d.time()}
		}
	}
	return f
}

func (d *stateDecoder) write() *Write {
	return &Write{ID: d.int(), Agent: d.str(), System: d.str(), Account: d.str(), StatusID: d.str(), Status: d.str(),
		SentAt: d.time(), Attempt: d.intn(), Rule: d.str(), Cause: d.str(), CauseSeq: d.int()}
}

func (d *stateDecoder) system() *systemState {
	ss := &systemState{}
	if n := d.count(); n > 0 {
		ss.Timeline = make([]mark, n)
		for i := range ss.Timeline {
			mk := &ss.Timeline[i]
			mk.At, mk.Status, mk.Write, mk.Seq = d.time(), d.str(), d.int(), d.seq()
			flags := d.byte()
			if flags&^(markEstimated|markReading|markReport) != 0 {
				d.fail(errors.New("agent state: bad timeline mark"))
			}
			mk.Estimated, mk.Reading = flags&markEstimated != 0, flags&markReading != 0
			if flags&markReport != 0 {
				ev := d.event()
				mk.Report = &ev
			}
		}
	}
	if n := d.count(); n > 0 {
		ss.Writes = make([]openWrite, n)
		for i := range ss.Writes {
			w := &ss.Writes[i]
			w.ID, w.StatusID, w.SentAt, w.Answered, w.AnsweredAt = d.int(), d.str(), d.time(), d.bool(), d.time()
			w.Version, w.Unsure, w.Queued = d.str(), d.bool(), d.str()
			w.Maybes = d.changes()
		}
	}
	if d.bool() {
		ss.InFlight = d.write()
	}
	ss.Target, ss.TargetSince, ss.Moved = d.str(), d.time(), d.bool()
	ss.Deferred, ss.DeferredFor, ss.DeferredHead = d.str(), d.str(), d.int()
	ss.Attempts, ss.NextAttempt, ss.Failed, ss.FailedFor = d.intn(), d.time(), d.str(), d.str()
	return ss
}

// decodeState reads an agent state in either form into st.
func decodeState(b []byte, st *agentState) error {
	if len(b) == 0 || b[0] != stateFormatV1 {
		return json.Unmarshal(b, st)
	}
	d := stateDecoder{b: b[1:]}
	st.Email = d.str()
	if n := d.count(); n > 0 {
		st.Systems = make(map[string]*systemState, n)
		for range n {
			name := d.str()
			st.Systems[name] = d.system()
		}
	}
	st.History = d.changes()
	st.Base = d.fold()
	st.BaseAt = d.time()
	st.UpdatedAt = d.time()
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("agent state: %d unread bytes", len(d.b))
	}
	return nil
}
