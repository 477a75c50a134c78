package engine

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// The engine writes one or more decision records for every event, so their JSON is on the hot
// path. encoding/json spends most of that time in reflection; these
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

func (s *Step) appendJSON(b []byte) []byte {
	o := beginObject(b)
	o.int("seq", s.Seq)
	o.timeOmit("at", s.At)
	o.str("kind", string(s.Kind))
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
	o.strOmit("version", ev.Version)
	return o.end(), nil
}
