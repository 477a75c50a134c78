package engine

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
)

func TestEncodersMatchEncodingJSON(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	ev := presence.Event{ID: "e1", System: "gc", Agent: "u\"1", Type: presence.ConversationStarted, Status: "s", Version: "v7",
		At: at, Data: map[string]any{"queueId": nil, "n": 1.5, "nested": map[string]any{"a": []any{"x"}}}, Origin: "omnipresence"}
	for name, tc := range map[string]struct {
		ours []byte
		std  any
	}{
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

// TestStepsReadInBothForms stores steps in the binary form and as the JSON earlier versions
// stored, and reads the same steps back from both.
func TestStepsReadInBothForms(t *testing.T) {
	at := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	steps := []Step{
		{Seq: 3, At: at, Kind: StepEvent, EventSeq: 9, System: "sf", Status: "Lunch", Rule: "r",
			Cause: "c \"q\"", Summary: "s\n", Details: []string{"✓ a", "· b \x00", ""}},
		{Seq: 4, At: at.Add(time.Second), Kind: "k"},
	}
	var bin, old []store.AuditRecord
	for _, s := range steps {
		rec := store.AuditRecord{Seq: s.Seq, Agent: "a@x", At: s.At, Kind: string(s.Kind), EventSeq: s.EventSeq}
		rec.Body = appendStep(nil, &s)
		bin = append(bin, rec)
		js := s
		js.Seq = 0
		b, err := json.Marshal(js)
		if err != nil {
			t.Fatal(err)
		}
		rec.Body = b
		old = append(old, rec)
	}
	slices.Reverse(bin) // stores return newest first
	slices.Reverse(old)
	for name, recs := range map[string][]store.AuditRecord{"binary": bin, "json": old} {
		got, err := DecodeSteps(recs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if diff := cmp.Diff(steps, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	// A cut body is an error, not a wrong step.
	b := bin[1].Body
	for n := 1; n < len(b); n++ {
		cut := bin[1]
		cut.Body = b[:n]
		if _, err := DecodeSteps([]store.AuditRecord{cut}); err == nil {
			t.Fatalf("%d of %d bytes decoded", n, len(b))
		}
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
