package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/omnipresence/omnipresence/internal/presence"
)

func fullAgentState() *agentState {
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	return &agentState{
		Email: "ana@example.com",
		Systems: map[string]*systemState{
			"gc": {Observed: "x", ObservedAt: at, Target: "y", CauseAt: at, CauseSystem: "sf", CauseRule: "p/map sf -> gc",
				CauseText: "sf status_changed \"Lunch\" \\ <&> \n\t\x01 é 😀 \xff", CauseSeq: 42, TargetSince: at,
				InFlight: &Write{ID: 7, Agent: "ana@example.com", System: "gc", Account: "u1", StatusID: "y", Status: "Meal",
					SentAt: at, Attempt: 2, Rule: "r", Cause: "c", CauseSeq: 42, Echoed: true, EchoedAt: at},
				Pending:  []pendingWrite{{StatusID: "a", SentAt: at}, {StatusID: "b"}},
				Deferred: "AfterCallWork", DeferredFor: "y", Attempts: 3, NextAttempt: at, Failed: "boom", FailedFor: "y",
				Overlay: &overlay{Base: "x", BaseAt: at, BaseWhy: "why", Released: true}},
			"sf": {},
		},
		Activities: []*activityInstance{{Name: "p/activity call", Key: "c1", Since: at, Statuses: map[string]string{"gc": "b", "sf": "a"}}},
		UpdatedAt:  at,
	}
}

func TestEncodersMatchEncodingJSON(t *testing.T) {
	st := fullAgentState()
	ev := presence.Event{ID: "e1", System: "gc", Agent: "u\"1", Type: presence.ConversationStarted, Status: "s",
		At: st.UpdatedAt, Data: map[string]any{"queueId": nil, "n": 1.5, "nested": map[string]any{"a": []any{"x"}}}, Origin: "omnipresence"}
	step := Step{Seq: 3, At: st.UpdatedAt, Kind: "event", EventSeq: 9, System: "sf", Status: "Lunch", Rule: "r",
		Cause: "c \"q\"", Summary: "s\n", Details: []string{"✓ a", "· b \x00"}}
	for name, tc := range map[string]struct {
		ours []byte
		std  any
	}{
		"agent state":       {st.appendJSON(nil), st},
		"empty agent state": {(&agentState{Email: "e"}).appendJSON(nil), &agentState{Email: "e"}},
		"step":              {step.appendJSON(nil), step},
		"bare step":         {(&Step{Kind: "k"}).appendJSON(nil), Step{Kind: "k"}},
		"event":             {mustEvent(t, ev), ev},
		"bare event":        {mustEvent(t, presence.Event{}), presence.Event{}},
	} {
		t.Run(name, func(t *testing.T) {
			std, err := json.Marshal(tc.std)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			if err := json.Unmarshal(tc.ours, &a); err != nil {
				t.Fatalf("our JSON does not parse: %v\n%s", err, tc.ours)
			}
			if err := json.Unmarshal(std, &b); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, a); diff != "" {
				t.Errorf("differs from encoding/json (-std +ours):\n%s", diff)
			}
		})
	}
	var back agentState
	if err := json.Unmarshal(st.appendJSON(nil), &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(fullAgentState(), &back, cmp.AllowUnexported(agentState{}, systemState{}, pendingWrite{}, overlay{}, activityInstance{}),
		cmpopts.IgnoreFields(systemState{}, "CauseText")); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain")
	f.Add("\"\\\n\x00\xff é 😀 <&>")
	f.Fuzz(func(t *testing.T, s string) {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		want, _ := json.Marshal(s)
		var std string
		_ = json.Unmarshal(want, &std)
		if got != std {
			t.Fatalf("%q: got %q, encoding/json gives %q", s, got, std)
		}
	})
}

func mustEvent(t *testing.T, ev presence.Event) []byte {
	t.Helper()
	b, err := appendEvent(nil, ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
