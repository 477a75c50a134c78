package engine

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/presence"
)

func TestEncodersMatchEncodingJSON(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	ev := presence.Event{ID: "e1", System: "gc", Agent: "u\"1", Type: presence.ConversationStarted, Status: "s", Version: "v7",
		At: at, Data: map[string]any{"queueId": nil, "n": 1.5, "nested": map[string]any{"a": []any{"x"}}}, Origin: "omnipresence"}
	step := Step{Seq: 3, At: at, Kind: StepEvent, EventSeq: 9, System: "sf", Status: "Lunch", Rule: "r",
		Cause: "c \"q\"", Summary: "s\n", Details: []string{"✓ a", "· b \x00"}}
	for name, tc := range map[string]struct {
		ours []byte
		std  any
	}{
		"step":       {step.appendJSON(nil), step},
		"bare step":  {(&Step{Kind: "k"}).appendJSON(nil), Step{Kind: "k"}},
		"event":      {mustEvent(t, ev), ev},
		"bare event": {mustEvent(t, presence.Event{}), presence.Event{}},
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
