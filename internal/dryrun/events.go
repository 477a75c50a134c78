// Package dryrun (the `simulate` command) dry-runs policies on recorded or hand-written events with a virtual clock:
// the engine's own Machine decides, and simulated systems answer its writes after a latency with
// their own status-change event (the echo) or refuse them while a system state blocks writes.
// No network, no sleeping, the same output for the same input.
package dryrun

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// LineError is a problem with one line of an events file.
type LineError struct {
	File    string
	Line    int
	Message string
}

func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Message) }

// LineErrors are every problem of an events file.
type LineErrors []*LineError

func (es LineErrors) Error() string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// eventLine is the JSON Lines format of CONTRACTS.md.
type eventLine struct {
	ID       string         `json:"id"`
	At       *time.Time     `json:"at"`
	Received *time.Time     `json:"received"`
	System   string         `json:"system"`
	Agent    string         `json:"agent"`
	Type     string         `json:"type"`
	Status   string         `json:"status"`
	Data     map[string]any `json:"data"`
	Origin   string         `json:"origin"`
}

// maxLine bounds one events line (vendor payloads included).
const maxLine = 1 << 20

// ParseEvents reads JSON Lines events, checking each against cfg, and returns them ordered by
// time (file order among equal times). Every bad line is reported, as FILE:LINE: message.
func ParseEvents(name string, r io.Reader, cfg *policy.Config) ([]Event, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxLine)
	var out []Event
	var errs LineErrors
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		ev, msg := parseLine(line, cfg)
		if msg != "" {
			errs = append(errs, &LineError{File: name, Line: n, Message: msg})
			continue
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, &LineError{File: name, Line: n + 1, Message: "reading: " + err.Error()})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	sortEvents(out)
	return out, nil
}

func parseLine(line []byte, cfg *policy.Config) (Event, string) {
	var l eventLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return Event{}, "malformed event: " + strings.TrimPrefix(err.Error(), "json: ")
	}
	if dec.More() {
		return Event{}, "malformed event: more than one JSON value on the line"
	}
	var problems []string
	if l.At == nil {
		problems = append(problems, `"at" is required (RFC 3339 time)`)
	} else if l.Received != nil && l.Received.Before(*l.At) {
		problems = append(problems, `"received" is before "at": an event cannot arrive before it happens`)
	}
	if l.System == "" {
		problems = append(problems, `"system" is required`)
	} else if cfg.Systems[l.System] == nil {
		problems = append(problems, fmt.Sprintf("unknown system %q (the policy has %s)", l.System, strings.Join(cfg.SystemNames, ", ")))
	}
	if l.Agent == "" {
		problems = append(problems, `"agent" is required (an email or an account id)`)
	}
	t := presence.EventType(l.Type)
	switch {
	case l.Type == "":
		problems = append(problems, `"type" is required`)
	case !t.Valid():
		problems = append(problems, fmt.Sprintf("unknown type %q (one of %s)", l.Type, typeList()))
	case t == presence.StatusChanged && l.Status == "":
		problems = append(problems, `"status" is required for status_changed`)
	}
	if len(problems) > 0 {
		return Event{}, strings.Join(problems, "; ")
	}
	ev := Event{Event: presence.Event{ID: l.ID, At: l.At.UTC(), System: l.System, Agent: l.Agent, Type: t,
		Status: l.Status, Data: l.Data, Origin: l.Origin}}
	if l.Received != nil {
		ev.Received = l.Received.UTC()
	}
	return ev, ""
}

func typeList() string {
	s := make([]string, len(presence.EventTypes))
	for i, t := range presence.EventTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// sortEvents orders events by time, file order among equal times.
func sortEvents(evs []Event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
}
