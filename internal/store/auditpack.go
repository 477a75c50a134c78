package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The engine records several audit steps per event (the event, the intents, the writes it
// caused), all for one agent and one event. The SQL backends keep such a run in one row, so an
// event costs one row and one index entry rather than several: the row carries the first
// record's seq, agent, time, kind and event seq, and n, the number of records; a row of one
// record keeps its body as is (rows of earlier versions are such rows), and a row of several
// holds them all, packed as below. Readers see the records one by one, each with its own seq.

// AuditRun is a run of consecutive records with the same agent and event seq.
type AuditRun struct {
	// First and End delimit the run in the slice AuditRuns was given.
	First, End int
}

// AuditRuns splits recs into runs of the same agent and event seq; records of no event
// (EventSeq 0) each stand alone.
func AuditRuns(recs []AuditRecord) []AuditRun {
	var out []AuditRun
	for i := 0; i < len(recs); {
		j := i + 1
		for recs[i].EventSeq != 0 && j < len(recs) && recs[j].Agent == recs[i].Agent && recs[j].EventSeq == recs[i].EventSeq {
			j++
		}
		out = append(out, AuditRun{First: i, End: j})
		i = j
	}
	return out
}

// PackAudit appends the body of a row holding run (records with seqs already set, sharing an
// agent and an event seq): per record, the seq and time after the first record's, the kind
// and the body. A run of one record is its body.
func PackAudit(b []byte, run []AuditRecord) []byte {
	if len(run) == 1 {
		return append(b, run[0].Body...)
	}
	first := run[0]
	for _, r := range run {
		b = binary.AppendUvarint(b, uint64(r.Seq-first.Seq))
		b = binary.AppendVarint(b, r.At.Sub(first.At).Nanoseconds())
		b = binary.AppendUvarint(b, uint64(len(r.Kind)))
		b = append(b, r.Kind...)
		b = binary.AppendUvarint(b, uint64(len(r.Body)))
		b = append(b, r.Body...)
	}
	return b
}

var errBadPack = errors.New("malformed packed audit row")

// UnpackAudit appends the n records of row (as read: its seq, agent, time, kind, event seq and
// body) to out, oldest first.
func UnpackAudit(out []AuditRecord, row AuditRecord, n int) ([]AuditRecord, error) {
	if n <= 1 {
		return append(out, row), nil
	}
	b := row.Body
	uv := func() uint64 {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			b = nil
			return 0
		}
		b = b[k:]
		return v
	}
	bytes := func() []byte {
		l := uv()
		if l > uint64(len(b)) {
			b = nil
			return nil
		}
		v := b[:l:l]
		b = b[l:]
		return v
	}
	for range n {
		if len(b) == 0 {
			return out, fmt.Errorf("audit row %d: %w", row.Seq, errBadPack)
		}
		r := AuditRecord{Agent: row.Agent, EventSeq: row.EventSeq}
		r.Seq = row.Seq + int64(uv())
		d, k := binary.Varint(b)
		if k <= 0 {
			return out, fmt.Errorf("audit row %d: %w", row.Seq, errBadPack)
		}
		b = b[k:]
		r.At = row.At.Add(time.Duration(d))
		r.Kind = string(bytes())
		r.Body = bytes()
		if r.Body == nil {
			return out, fmt.Errorf("audit row %d: %w", row.Seq, errBadPack)
		}
		out = append(out, r)
	}
	if len(b) != 0 {
		return out, fmt.Errorf("audit row %d: %w", row.Seq, errBadPack)
	}
	return out, nil
}
