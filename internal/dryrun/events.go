// Package dryrun (the `simulate` command) dry-runs policies on recorded or hand-written events with a virtual clock:
// the engine's own Machine decides, and simulated systems answer its writes after a latency with
// their own status-change event (the echo) or refuse them while a system state blocks writes.
// No network, no sleeping, the same output for the same input.
package dryrun

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
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

// lineFields are the keys of an events line, in the order the messages list them.
var lineFields = []string{"at", "received", "system", "agent", "type", "status", "data", "id", "origin"}

// parseLine checks one line field by field, so that every message names the field and what it
// should hold, never a Go type.
func parseLine(line []byte, cfg *policy.Config) (Event, string) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(line))
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return Event{}, "malformed event: " + jsonProblem(line, err)
	}
	if dec.More() {
		return Event{}, "malformed event: more than one JSON value on the line"
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if !slices.Contains(lineFields, k) {
			hint := ""
			if c := policy.Closest(k, lineFields); c != "" {
				hint = fmt.Sprintf("; did you mean %q?", c)
			}
			bad("unknown field %q%s (an event has %s)", k, hint, strings.Join(lineFields, ", "))
		}
	}
	str := func(field, want string) string {
		v, ok := raw[field]
		if !ok || string(v) == "null" {
			return ""
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			bad("%q must be a string (%s), not %s", field, want, jsonKind(v))
			return ""
		}
		return s
	}
	ev := presence.Event{ID: str("id", "an event id"), System: str("system", "a system of the policy"),
		Agent: str("agent", "an email or an account id"), Status: str("status", "a catalog name or id"),
		Origin: str("origin", "who caused it")}
	atText := str("at", "an RFC 3339 time such as 2026-03-02T09:00:00Z")
	if v, ok := raw["data"]; ok && string(v) != "null" {
		if json.Unmarshal(v, &ev.Data) != nil {
			bad(`"data" must be an object of the vendor's fields, not %s`, jsonKind(v))
		}
	}
	if _, ok := raw["at"]; !ok {
		bad(`"at" is required (an RFC 3339 time such as 2026-03-02T09:00:00Z)`)
	} else if atText != "" {
		at, err := time.Parse(time.RFC3339Nano, atText)
		if err != nil {
			bad(`"at" %q is not an RFC 3339 time such as 2026-03-02T09:00:00Z`, atText)
		}
		ev.At = at.UTC()
	}
	var received time.Time
	if text := str("received", "an RFC 3339 time, when the engine learns of the event"); text != "" {
		t, err := time.Parse(time.RFC3339Nano, text)
		switch {
		case err != nil:
			bad(`"received" %q is not an RFC 3339 time such as 2026-03-02T09:00:05Z`, text)
		case !ev.At.IsZero() && t.Before(ev.At):
			bad(`"received" is before "at": an event cannot arrive before it happens`)
		default:
			received = t.UTC()
		}
	}
	sys := cfg.Systems[ev.System]
	if _, ok := raw["system"]; !ok {
		bad(`"system" is required (one of %s)`, strings.Join(cfg.SystemNames, ", "))
	} else if ev.System != "" && sys == nil {
		bad("unknown system %q%s (the policy has %s)", ev.System, didYouMean(ev.System, cfg.SystemNames), strings.Join(cfg.SystemNames, ", "))
	}
	if _, ok := raw["agent"]; !ok {
		bad(`"agent" is required (an email or an account id)`)
	} else if ev.Agent != "" && sys != nil {
		if msg := checkAgent(cfg, sys, ev.Agent); msg != "" {
			bad("%s", msg)
		}
	}
	typ := str("type", "an event type")
	ev.Type = presence.EventType(typ)
	switch {
	case typ == "":
		if _, ok := raw["type"]; !ok {
			bad(`"type" is required (one of %s)`, typeList())
		}
	case !ev.Type.Valid():
		bad("unknown type %q%s (one of %s)", typ, didYouMean(typ, typeNames()), typeList())
	case ev.Type == presence.StatusChanged && ev.Status == "":
		bad(`"status" is required for status_changed (a name or id of %s's catalog)`, ev.System)
	}
	if ev.Status != "" && sys != nil && sys.Catalog != nil {
		if _, ok := sys.Catalog.Resolve(ev.Status); !ok {
			names := catalogNames(sys.Catalog)
			bad("status %q is not in %s's catalog%s", ev.Status, ev.System, didYouMean(ev.Status, names))
		}
	}
	if len(problems) > 0 {
		return Event{}, strings.Join(problems, "; ")
	}
	return Event{Event: ev, Received: received}, ""
}

// checkAgent reports an agent the run could not link: an account id where the system lists no
// accounts, or a person neither the system's accounts nor the agents directory know.
func checkAgent(cfg *policy.Config, sys *policy.System, agent string) string {
	email := strings.Contains(agent, "@")
	if sys.Accounts == nil {
		if !email {
			return fmt.Sprintf("agent %q is not an email, and %s lists no accounts to find the id in; "+
				"use the email or add the account under %s's accounts", agent, sys.Name, sys.Name)
		}
		if cfg.Agents != nil && !inDirectory(cfg, agent) {
			return fmt.Sprintf("agent %q is not in the policy's agents directory%s", agent, didYouMean(agent, directory(cfg)))
		}
		return ""
	}
	var known []string
	for _, a := range sys.Accounts {
		if strings.EqualFold(a.ID, agent) || email && strings.EqualFold(a.Email, agent) {
			return ""
		}
		if email {
			known = append(known, a.Email)
		} else {
			known = append(known, a.ID)
		}
	}
	what := "account id"
	if email {
		what = "email"
	}
	return fmt.Sprintf("agent %q is not among %s's accounts (by %s)%s", agent, sys.Name, what, didYouMean(agent, known))
}

func inDirectory(cfg *policy.Config, email string) bool {
	for _, a := range cfg.Agents {
		if strings.EqualFold(a.Email, email) {
			return true
		}
	}
	return false
}

func directory(cfg *policy.Config) []string {
	out := make([]string, len(cfg.Agents))
	for i, a := range cfg.Agents {
		out[i] = a.Email
	}
	return out
}

func catalogNames(c *policy.Catalog) []string {
	var out []string
	for _, s := range c.Statuses() {
		out = append(out, s.Name)
	}
	return out
}

func didYouMean(word string, candidates []string) string {
	if c := policy.Closest(word, candidates); c != "" {
		return fmt.Sprintf("; did you mean %q?", c)
	}
	return ""
}

// jsonProblem says why a line is not a JSON object, with the column of a syntax error.
func jsonProblem(line []byte, err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("not valid JSON at column %d (each line must be one JSON object)", syn.Offset)
	}
	if err == nil || errors.As(err, new(*json.UnmarshalTypeError)) {
		return fmt.Sprintf("each line must be one JSON object, not %s", jsonKind(bytes.TrimSpace(line)))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "the JSON object is cut short (each line must be one whole JSON object)"
	}
	return "each line must be one JSON object"
}

// jsonKind names the kind of a JSON value in the user's words.
func jsonKind(v []byte) string {
	if len(v) == 0 {
		return "nothing"
	}
	switch v[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 't', 'f':
		return "true or false"
	case 'n':
		return "null"
	}
	if v[0] == '-' || v[0] >= '0' && v[0] <= '9' {
		return "a number"
	}
	return "text that is not JSON"
}

func typeNames() []string {
	s := make([]string, len(presence.EventTypes))
	for i, t := range presence.EventTypes {
		s[i] = string(t)
	}
	return s
}

func typeList() string { return strings.Join(typeNames(), ", ") }

// sortEvents orders events by time, file order among equal times.
func sortEvents(evs []Event) {
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
}
