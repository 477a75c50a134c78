package engine

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// The engine writes an agent's state and one or more decision records for every event, so
// their JSON is on the hot path. encoding/json spends most of that time in reflection; these
// encoders append the same JSON (same field names and omissions as the struct tags, which
// remain the way it is read back) without it. TestEncodersMatchEncodingJSON pins the match.

// jsonObject appends one JSON object's fields.
type jsonObject struct {
	b     []byte
	empty bool
}

func beginObject(b []byte) jsonObject { return jsonObject{b: append(b, '{'), empty: true} }

func (o *jsonObject) end() []byte { return append(o.b, '}') }

func (o *jsonObject) key(k string) {
	if !o.empty {
		o.b = append(o.b, ',')
	}
	o.empty = false
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

func (o *jsonObject) str(k, v string) {
	o.key(k)
	o.b = appendJSONString(o.b, v)
}

func (o *jsonObject) strOmit(k, v string) {
	if v != "" {
		o.str(k, v)
	}
}

func (o *jsonObject) int(k string, v int64) {
	o.key(k)
	o.b = strconv.AppendInt(o.b, v, 10)
}

func (o *jsonObject) intOmit(k string, v int64) {
	if v != 0 {
		o.int(k, v)
	}
}

func (o *jsonObject) boolOmit(k string, v bool) {
	if v {
		o.key(k)
		o.b = append(o.b, "true"...)
	}
}

func (o *jsonObject) timeOmit(k string, t time.Time) {
	if !t.IsZero() {
		o.key(k)
		o.b = append(o.b, '"')
		o.b = t.AppendFormat(o.b, time.RFC3339Nano)
		o.b = append(o.b, '"')
	}
}

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD as in encoding/json.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, "\\ufffd"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func (st *agentState) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("email", st.Email)
	o.key("systems")
	if st.Systems == nil {
		o.b = append(o.b, "null"...)
	} else {
		names := make([]string, 0, len(st.Systems))
		for name := range st.Systems {
			names = append(names, name)
		}
		slices.Sort(names)
		so := beginObject(o.b)
		for _, name := range names {
			so.key(name)
			so.b = st.Systems[name].appendJSON(so.b)
		}
		o.b = so.end()
	}
	if len(st.Activities) > 0 {
		o.key("activities")
		o.b = append(o.b, '[')
		for i, a := range st.Activities {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = a.appendJSON(o.b)
		}
		o.b = append(o.b, ']')
	}
	o.timeOmit("updated_at", st.UpdatedAt)
	return o.end()
}

func (ss *systemState) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.strOmit("observed", ss.Observed)
	o.timeOmit("observed_at", ss.ObservedAt)
	o.strOmit("target", ss.Target)
	o.timeOmit("cause_at", ss.CauseAt)
	o.strOmit("cause_system", ss.CauseSystem)
	o.strOmit("cause_rule", ss.CauseRule)
	o.strOmit("cause_text", ss.CauseText)
	o.intOmit("cause_seq", ss.CauseSeq)
	o.timeOmit("target_since", ss.TargetSince)
	if ss.InFlight != nil {
		o.key("in_flight")
		o.b = ss.InFlight.appendJSON(o.b)
	}
	if len(ss.Pending) > 0 {
		o.key("pending")
		o.b = append(o.b, '[')
		for i, p := range ss.Pending {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			po := beginObject(o.b)
			po.str("status_id", p.StatusID)
			po.timeOmit("sent_at", p.SentAt)
			o.b = po.end()
		}
		o.b = append(o.b, ']')
	}
	o.strOmit("deferred", ss.Deferred)
	o.strOmit("deferred_for", ss.DeferredFor)
	o.intOmit("attempts", int64(ss.Attempts))
	o.timeOmit("next_attempt", ss.NextAttempt)
	o.strOmit("failed", ss.Failed)
	o.strOmit("failed_for", ss.FailedFor)
	if ss.Overlay != nil {
		o.key("overlay")
		oo := beginObject(o.b)
		oo.strOmit("base", ss.Overlay.Base)
		oo.timeOmit("base_at", ss.Overlay.BaseAt)
		oo.strOmit("base_why", ss.Overlay.BaseWhy)
		oo.boolOmit("released", ss.Overlay.Released)
		o.b = oo.end()
	}
	return o.end()
}

func (w *Write) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.int("id", w.ID)
	o.str("agent", w.Agent)
	o.str("system", w.System)
	o.str("account", w.Account)
	o.str("status_id", w.StatusID)
	o.str("status", w.Status)
	o.timeOmit("sent_at", w.SentAt)
	o.int("attempt", int64(w.Attempt))
	o.strOmit("rule", w.Rule)
	o.strOmit("cause", w.Cause)
	o.intOmit("cause_seq", w.CauseSeq)
	o.boolOmit("echoed", w.Echoed)
	o.timeOmit("echoed_at", w.EchoedAt)
	return o.end()
}

func (a *activityInstance) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.str("name", a.Name)
	o.strOmit("key", a.Key)
	o.timeOmit("since", a.Since)
	o.key("statuses")
	if a.Statuses == nil {
		o.b = append(o.b, "null"...)
	} else {
		keys := make([]string, 0, len(a.Statuses))
		for k := range a.Statuses {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		so := beginObject(o.b)
		for _, k := range keys {
			so.str(k, a.Statuses[k])
		}
		o.b = so.end()
	}
	return o.end()
}

func (s *Step) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.int("seq", s.Seq)
	o.timeOmit("at", s.At)
	o.str("kind", s.Kind)
	o.intOmit("event_seq", s.EventSeq)
	o.strOmit("system", s.System)
	o.strOmit("status", s.Status)
	o.strOmit("rule", s.Rule)
	o.strOmit("cause", s.Cause)
	o.str("summary", s.Summary)
	if len(s.Details) > 0 {
		o.key("details")
		o.b = append(o.b, '[')
		for i, d := range s.Details {
			if i > 0 {
				o.b = append(o.b, ',')
			}
			o.b = appendJSONString(o.b, d)
		}
		o.b = append(o.b, ']')
	}
	return o.end()
}

// appendEvent appends ev as presence.Event's JSON; its free-form vendor data goes through
// encoding/json.
func appendEvent(b []byte, ev presence.Event) ([]byte, error) {
	o := beginObject(b)
	o.strOmit("id", ev.ID)
	o.str("system", ev.System)
	o.str("agent", ev.Agent)
	o.str("type", string(ev.Type))
	o.strOmit("status", ev.Status)
	o.key("at")
	o.b = append(o.b, '"')
	o.b = ev.At.AppendFormat(o.b, time.RFC3339Nano)
	o.b = append(o.b, '"')
	if len(ev.Data) > 0 {
		data, err := json.Marshal(ev.Data)
		if err != nil {
			return nil, err
		}
		o.key("data")
		o.b = append(o.b, data...)
	}
	o.strOmit("origin", ev.Origin)
	return o.end(), nil
}
