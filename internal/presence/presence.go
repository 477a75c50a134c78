// Package presence holds the domain types every other package shares: statuses, accounts and
// normalized events. It does no I/O and imports nothing of ours.
package presence

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"sort"
	"strings"
	"time"
)

// Category groups statuses across vendors so policies and the UI can reason about them.
type Category string

// The status categories of CONTRACTS.md.
const (
	CategoryAvailable Category = "available"
	CategoryOnQueue   Category = "on_queue"
	CategoryBusy      Category = "busy"
	CategoryAway      Category = "away"
	CategoryBreak     Category = "break"
	CategoryMeal      Category = "meal"
	CategoryMeeting   Category = "meeting"
	CategoryTraining  Category = "training"
	CategoryOffline   Category = "offline"
	CategorySystem    Category = "system"
)

// Categories lists every valid category, in documentation order.
var Categories = []Category{
	CategoryAvailable, CategoryOnQueue, CategoryBusy, CategoryAway, CategoryBreak,
	CategoryMeal, CategoryMeeting, CategoryTraining, CategoryOffline, CategorySystem,
}

// nameWords are the words a status name is searched for, in order, to guess its category.
var nameWords = []struct {
	word string
	cat  Category
}{{"lunch", CategoryMeal}, {"meal", CategoryMeal}, {"break", CategoryBreak}, {"train", CategoryTraining},
	{"coaching", CategoryTraining}, {"meet", CategoryMeeting}, {"huddle", CategoryMeeting}, {"busy", CategoryBusy}}

// CategoryOfName guesses the category of a status that is not available from its name (Lunch,
// Coffee Break, Training, Team Huddle, …); away when the name says nothing known.
func CategoryOfName(name string) Category {
	n := strings.ToLower(name)
	for _, w := range nameWords {
		if strings.Contains(n, w.word) {
			return w.cat
		}
	}
	return CategoryAway
}

// Valid reports whether c is one of Categories.
func (c Category) Valid() bool {
	for _, k := range Categories {
		if c == k {
			return true
		}
	}
	return false
}

// Status is one entry of a system's status catalog.
type Status struct {
	// ID is the vendor's identifier (Salesforce 0N5…, Genesys definition UUID, Connect status ARN id).
	ID string `json:"id"`
	// Name is the stable name policies use (Salesforce DeveloperName, Genesys label, Connect Name).
	Name string `json:"name"`
	// Label is the human label; it defaults to Name.
	Label string `json:"label,omitempty"`
	// Category groups the status across vendors.
	Category Category `json:"category,omitempty"`
	// Settable is false for states only the vendor may enter (Connect AfterCallWork, Genesys Idle).
	Settable bool `json:"settable"`
	// SystemPresence is the Genesys system presence behind a (possibly secondary) definition.
	SystemPresence string `json:"system_presence,omitempty"`
}

// Account is one user of one system, linked to an agent by email.
type Account struct {
	ID    string `json:"id"`
	Email string `json:"email"`
	Name  string `json:"name,omitempty"`
	// Teams are the vendor's teams the user belongs to (CXone's team), which policies'
	// applies_to may name as the agents directory's teams are.
	Teams []string `json:"teams,omitempty"`
}

// EventType is the kind of a normalized observation.
type EventType string

// The event types of CONTRACTS.md.
const (
	StatusChanged       EventType = "status_changed"
	Login               EventType = "login"
	Logout              EventType = "logout"
	WorkAccepted        EventType = "work_accepted"
	WorkloadChanged     EventType = "workload_changed"
	ConversationStarted EventType = "conversation_started"
	ConversationEnded   EventType = "conversation_ended"
	// ConsoleConnected: the agent's console (the Salesforce bridge) is connected again.
	ConsoleConnected EventType = "console_connected"
	// ConsoleDisconnected: the agent's console has been gone for the duration in data "after"
	// (data "since" says when it went away); At is since + after.
	ConsoleDisconnected EventType = "console_disconnected"
	// SessionMoved: the agent's session moved to another browser or tab (Salesforce logs the
	// old one out of Omni-Channel with reason DuplicateLogin); the status did not change.
	SessionMoved EventType = "session_moved"
)

// EventTypes lists every valid event type.
var EventTypes = []EventType{
	StatusChanged, Login, Logout, WorkAccepted, WorkloadChanged, ConversationStarted, ConversationEnded,
	ConsoleConnected, ConsoleDisconnected, SessionMoved,
}

// Valid reports whether t is one of EventTypes.
func (t EventType) Valid() bool {
	for _, k := range EventTypes {
		if t == k {
			return true
		}
	}
	return false
}

// OfflineName is the status name a logged-out agent shows (Salesforce status id "0").
const OfflineName = "Offline"

// OriginSelf marks an event the vendor attributes to one of our own writes (for example
// Salesforce reason OmniToolkitStatusChange raised by our bridge). Such events are echoes.
const OriginSelf = "omnipresence"

// SourceResync is the data "source" of an event that reports what a system shows after a
// (re)connect or a restart rather than a change as it happened. For an agent the engine has
// not seen on that system it is a baseline and decides nothing; otherwise it is a change the
// engine missed, or no change.
const SourceResync = "resync"

// IsResync reports whether the event is a resync read (data source "resync").
func (e Event) IsResync() bool { return e.Data["source"] == SourceResync }

// Event is a normalized observation from one system about one agent.
type Event struct {
	// ID is the vendor's event id, when it has one; duplicates with the same ID are dropped.
	ID string `json:"id,omitempty"`
	// System is the configured system name (sf, gc, …).
	System string `json:"system"`
	// Agent is the agent's email or their account id in System.
	Agent string `json:"agent"`
	// Type is the kind of observation.
	Type EventType `json:"type"`
	// Status is the new status (catalog name or id) for status events.
	Status string `json:"status,omitempty"`
	// At is the vendor's time of the change; it orders causes.
	At time.Time `json:"at"`
	// Data keeps the vendor payload fields (queueId, newWorkload, channel, …).
	Data map[string]any `json:"data,omitempty"`
	// Origin is OriginSelf when the vendor marks the change as made by us.
	Origin string `json:"origin,omitempty"`
	// Version is the vendor's marker of this change (Genesys presence modifiedDate, the
	// Salesforce bridge's commandId, Connect's status StartTimestamp), when it gives one. The
	// echo of a write carries the Version of the write's connector.Receipt.
	Version string `json:"version,omitempty"`
}

// DedupeKey identifies the event across redeliveries: the vendor id when present, otherwise a
// hash of its content.
func (e Event) DedupeKey() string {
	if e.ID != "" {
		return e.System + ":" + e.ID
	}
	h := sha256.New()
	for _, part := range []string{e.System, e.Agent, string(e.Type), e.Status, e.At.UTC().Format(time.RFC3339Nano), e.Origin} {
		io.WriteString(h, part)
		h.Write([]byte{0})
	}
	if len(e.Data) > 0 {
		keys := make([]string, 0, len(e.Data))
		for k := range e.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			b, _ := json.Marshal(e.Data[k])
			io.WriteString(h, k)
			h.Write([]byte{'='})
			h.Write(b)
			h.Write([]byte{0})
		}
	}
	return e.System + ":h:" + hex.EncodeToString(h.Sum(nil)[:16])
}

// ChangesStatus reports whether the event carries a new status for its system: a status change,
// a login with a status, or a logout (which means Offline).
func (e Event) ChangesStatus() bool {
	switch e.Type {
	case StatusChanged, Logout:
		return true
	case Login:
		return e.Status != ""
	}
	return false
}

// DataValue returns the value at a dotted path of Data ("participant.queueId").
func (e Event) DataValue(path string) (any, bool) {
	var cur any = e.Data
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// Describe renders the event the way explain and simulate name a cause:
// "sf status_changed AvailableforVoice", with the vendor's reason when the event carries one
// ("sf logout (OmniSupervisorLogout)").
func (e Event) Describe() string {
	s := e.System + " " + string(e.Type)
	if e.Status != "" {
		s += " " + e.Status
	}
	if r, _ := e.Data["reason"].(string); r != "" {
		s += " (" + r + ")"
	}
	return s
}
