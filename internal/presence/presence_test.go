package presence

import (
	"testing"
	"time"
)

func TestDedupeKey(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	base := Event{System: "gc", Agent: "u1", Type: StatusChanged, Status: "Busy", At: at, Data: map[string]any{"a": 1, "b": "x"}}
	same := base
	same.At = at.In(time.FixedZone("CET", 3600))
	same.Data = map[string]any{"b": "x", "a": 1}
	if base.DedupeKey() != same.DedupeKey() {
		t.Error("the same event in another time zone or map order must have the same key")
	}
	variants := map[string]func(*Event){
		"system": func(e *Event) { e.System = "sf" },
		"agent":  func(e *Event) { e.Agent = "u2" },
		"type":   func(e *Event) { e.Type = Login },
		"status": func(e *Event) { e.Status = "Break" },
		"time":   func(e *Event) { e.At = e.At.Add(time.Nanosecond) },
		"origin": func(e *Event) { e.Origin = OriginSelf },
		"data":   func(e *Event) { e.Data = map[string]any{"a": 2, "b": "x"} },
		"field boundary": func(e *Event) {
			e.Agent, e.Type = "u1s", "tatus_changed"
		},
	}
	for name, change := range variants {
		e := base
		e.Data = map[string]any{"a": 1, "b": "x"}
		change(&e)
		if e.DedupeKey() == base.DedupeKey() {
			t.Errorf("changing %s must change the key", name)
		}
	}
	withID := base
	withID.ID = "evt-1"
	if got := withID.DedupeKey(); got != "gc:evt-1" {
		t.Errorf("key with a vendor id = %q, want gc:evt-1", got)
	}
}

func TestChangesStatusAndDescribe(t *testing.T) {
	tests := []struct {
		ev       Event
		changes  bool
		describe string
	}{
		{Event{System: "sf", Type: StatusChanged, Status: "Lunch"}, true, "sf status_changed Lunch"},
		{Event{System: "sf", Type: Logout}, true, "sf logout"},
		{Event{System: "sf", Type: Login, Status: "Online"}, true, "sf login Online"},
		{Event{System: "sf", Type: Login}, false, "sf login"},
		{Event{System: "gc", Type: ConversationStarted}, false, "gc conversation_started"},
		{Event{System: "sf", Type: WorkloadChanged}, false, "sf workload_changed"},
		{Event{System: "sf", Type: Logout, Data: map[string]any{"reason": "OmniSupervisorLogout"}}, true, "sf logout (OmniSupervisorLogout)"},
		{Event{System: "sf", Type: ConsoleDisconnected, Data: map[string]any{"after": "2m0s"}}, false, "sf console_disconnected"},
		{Event{System: "sf", Type: SessionMoved, Data: map[string]any{"reason": "DuplicateLogin"}}, false, "sf session_moved (DuplicateLogin)"},
	}
	for _, tt := range tests {
		if got := tt.ev.ChangesStatus(); got != tt.changes {
			t.Errorf("%s: ChangesStatus = %v", tt.describe, got)
		}
		if got := tt.ev.Describe(); got != tt.describe {
			t.Errorf("Describe = %q, want %q", got, tt.describe)
		}
	}
}

func TestDataValue(t *testing.T) {
	e := Event{Data: map[string]any{"queueId": "q1", "participant": map[string]any{"purpose": "agent"}, "n": nil}}
	for path, want := range map[string]any{"queueId": "q1", "participant.purpose": "agent"} {
		if got, ok := e.DataValue(path); !ok || got != want {
			t.Errorf("DataValue(%q) = %v, %v", path, got, ok)
		}
	}
	for _, path := range []string{"missing", "queueId.x", "participant.missing"} {
		if _, ok := e.DataValue(path); ok {
			t.Errorf("DataValue(%q) should not exist", path)
		}
	}
}

func TestValidity(t *testing.T) {
	for _, c := range Categories {
		if !c.Valid() {
			t.Errorf("%s should be valid", c)
		}
	}
	for _, et := range EventTypes {
		if !et.Valid() {
			t.Errorf("%s should be valid", et)
		}
	}
	if Category("lunch").Valid() || EventType("nap").Valid() {
		t.Error("unknown category or type accepted")
	}
}

func TestCategoryOfName(t *testing.T) {
	for name, want := range map[string]Category{
		"Lunch": CategoryMeal, "Meal": CategoryMeal, "Coffee Break": CategoryBreak, "Training": CategoryTraining,
		"Coaching": CategoryTraining, "Meeting": CategoryMeeting, "Team Huddle": CategoryMeeting, "Busy": CategoryBusy,
		"Back Office": CategoryAway, "Training break": CategoryBreak,
	} {
		if got := CategoryOfName(name); got != want {
			t.Errorf("CategoryOfName(%q) = %s, want %s", name, got, want)
		}
	}
}
