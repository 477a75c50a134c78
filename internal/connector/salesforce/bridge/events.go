package bridge

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Field limits of the events.
const (
	maxReason  = 255
	maxIDLen   = 128
	maxName    = 80
	maxFuture  = 5 * time.Minute
	maxWorkVal = 1e6
)

// Omni-Channel reasons that name someone other than the bridge: a change carrying one is a
// person's (or Salesforce's), never the echo of a command, whatever the bridge tagged.
var notOurs = map[string]bool{
	"OmniManualStatusChange":     true,
	"OmniSupervisorStatusChange": true,
	"OmniSupervisorLogout":       true,
	"MaintenanceLogout":          true,
}

// sessionMoved are the logout reasons meaning the agent's Omni-Channel session moved to
// another browser or tab: this console is logged out, the agent is not.
var sessionMoved = map[string]bool{"DuplicateLogin": true, "DuplicateLoginInSameBrowser": true}

// wireEvent is one event as the bridge posts it.
type wireEvent struct {
	ID                 string   `json:"id"`
	Type               string   `json:"type"`
	At                 string   `json:"at"`
	StatusID           string   `json:"statusId"`
	StatusAPIName      string   `json:"statusApiName"`
	Reason             string   `json:"reason"`
	CommandID          string   `json:"commandId"`
	Channel            string   `json:"channel"`
	PreviousWorkload   *float64 `json:"previousWorkload"`
	NewWorkload        *float64 `json:"newWorkload"`
	ConfiguredCapacity *float64 `json:"configuredCapacity"`
}

// eventProblem names what is wrong with one event of a batch.
type eventProblem struct {
	Index    int      `json:"index"`
	ID       string   `json:"id,omitempty"`
	Problems []string `json:"problems"`
}

// parseEvents validates every event of a batch and maps them to presence events for user sub.
func (h *Handler) parseEvents(raw []json.RawMessage, sub string) ([]presence.Event, []eventProblem) {
	var problems []eventProblem
	out := make([]presence.Event, 0, len(raw))
	seen := map[string]bool{}
	for i, r := range raw {
		var we wireEvent
		if err := strictDecode(r, &we); err != nil {
			problems = append(problems, eventProblem{Index: i, Problems: []string{err.Error()}})
			continue
		}
		ev, errs := h.mapEvent(we, sub)
		if we.ID != "" && seen[we.ID] {
			errs = append(errs, "id appears twice in the batch")
		}
		seen[we.ID] = true
		if len(errs) > 0 {
			problems = append(problems, eventProblem{Index: i, ID: we.ID, Problems: errs})
			continue
		}
		out = append(out, ev)
	}
	return out, problems
}

// mapEvent checks one event and maps it to a presence event.
func (h *Handler) mapEvent(we wireEvent, sub string) (presence.Event, []string) {
	var errs []string
	bad := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if !token(we.ID, maxIDLen) {
		bad("id must be 1 to %d letters, digits, '-', '_', '.' or ':'", maxIDLen)
	}
	at, err := time.Parse(time.RFC3339Nano, we.At)
	switch {
	case err != nil:
		bad("at %q is not an RFC 3339 time", we.At)
	case at.After(h.opts.Now().Add(maxFuture)):
		bad("at %s is more than %v ahead of the service's clock", we.At, maxFuture)
	}
	typ := presence.EventType(we.Type)
	workload := we.PreviousWorkload != nil || we.NewWorkload != nil || we.ConfiguredCapacity != nil
	switch typ {
	case presence.StatusChanged:
		if we.StatusID == "" {
			bad("status_changed needs statusId")
		}
	case presence.Login:
	case presence.Logout:
		if we.StatusID != "" || we.StatusAPIName != "" {
			bad("logout carries no status")
		}
	case presence.WorkAccepted:
	case presence.WorkloadChanged:
		for _, f := range []struct {
			name string
			v    *float64
		}{{"previousWorkload", we.PreviousWorkload}, {"newWorkload", we.NewWorkload}, {"configuredCapacity", we.ConfiguredCapacity}} {
			if f.v == nil || *f.v < 0 || *f.v > maxWorkVal {
				bad("workload_changed needs %s, a number from 0 to %g", f.name, float64(maxWorkVal))
			}
		}
	default:
		bad("type %q must be status_changed, login, logout, work_accepted or workload_changed", we.Type)
	}
	if workload && typ != presence.WorkloadChanged {
		bad("workload numbers belong to workload_changed events")
	}
	if we.Channel != "" && typ != presence.WorkAccepted {
		bad("channel belongs to work_accepted events")
	}
	if we.StatusID != "" && !sfid.Is(we.StatusID, "0N5") {
		bad("statusId %q is not a presence status id (0N5…)", we.StatusID)
	}
	if we.StatusAPIName != "" && !apiName(we.StatusAPIName) {
		bad("statusApiName %q is not an API name", we.StatusAPIName)
	}
	if we.Channel != "" && !apiName(we.Channel) {
		bad("channel %q is not a service channel DeveloperName", we.Channel)
	}
	if len(we.Reason) > maxReason {
		bad("reason is longer than %d bytes", maxReason)
	}
	if we.CommandID != "" {
		if !token(we.CommandID, maxIDLen) {
			bad("commandId is not a command id")
		}
		if typ != presence.StatusChanged && typ != presence.Logout {
			bad("commandId belongs to status_changed and logout events")
		}
	}
	if len(errs) > 0 {
		return presence.Event{}, errs
	}
	if typ == presence.Logout && sessionMoved[we.Reason] {
		typ = presence.SessionMoved
	}
	ev := presence.Event{ID: "bridge:" + we.ID, System: h.opts.System, Agent: sub, Type: typ, At: at.UTC()}
	if typ != presence.Logout && we.StatusID != "" {
		ev.Status = sfid.Normalize(we.StatusID)
	}
	data := map[string]any{}
	for k, v := range map[string]string{"statusApiName": we.StatusAPIName, "reason": we.Reason,
		"commandId": we.CommandID, "channel": we.Channel} {
		if v != "" {
			data[k] = v
		}
	}
	for k, v := range map[string]*float64{"previousWorkload": we.PreviousWorkload, "newWorkload": we.NewWorkload,
		"configuredCapacity": we.ConfiguredCapacity} {
		if v != nil {
			data[k] = *v
		}
	}
	if len(data) > 0 {
		ev.Data = data
	}
	if we.CommandID != "" && typ != presence.SessionMoved && !notOurs[we.Reason] {
		ev.Origin, ev.Version = presence.OriginSelf, we.CommandID
	}
	return ev, nil
}

// token reports whether s is 1 to max characters of [A-Za-z0-9-_.:].
func token(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// apiName reports whether s is a Salesforce API name: a letter, then letters, digits and '_'.
func apiName(s string) bool {
	if s == "" || len(s) > maxName || !(s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_') {
			return false
		}
	}
	return true
}
