package engine

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// The engine stores every event's normalized JSON, so its encoding is on the hot path.
// encoding/json spends most of that time in reflection; these encoders append the same JSON
// (same field names and omissions as the struct tags, which remain the way it is read back)
// without it. TestEncodersMatchEncodingJSON pins the match. Decision records (steps) are
// stored in a binary form (appendStep).

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

// stepFormatV1 is the first byte of a step stored in the binary form; earlier versions stored
// steps as JSON objects, which DecodeSteps still reads.
const stepFormatV1 = 0x01

// appendStep appends s in the binary form: its strings, each as a length and the bytes. Its
// time and event seq are the audit record's own, and its seq is the record's.
func appendStep(b []byte, s *Step) []byte {
	str := func(v string) {
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	b = append(b, stepFormatV1)
	str(string(s.Kind))
	str(s.System)
	str(s.Status)
	str(s.Rule)
	str(s.Cause)
	str(s.Summary)
	b = binary.AppendUvarint(b, uint64(len(s.Details)))
	for _, d := range s.Details {
		str(d)
	}
	return b
}

// decodeStep reads a step in the binary form (after its format byte) into s.
func decodeStep(b []byte, s *Step) error {
	d := stateDecoder{b: b}
	str := func() string { return string(d.bytes()) }
	s.Kind = StepKind(str())
	s.System, s.Status, s.Rule, s.Cause, s.Summary = str(), str(), str(), str(), str()
	if n := d.count(); n > 0 {
		s.Details = make([]string, n)
		for i := range s.Details {
			s.Details[i] = str()
		}
	}
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("step: %d unread bytes", len(d.b))
	}
	return nil
}
