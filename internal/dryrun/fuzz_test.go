package dryrun

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseEvents feeds arbitrary bytes to the events parser: it must never panic, and it
// either returns events that each name a known system and a valid type, or line errors.
func FuzzParseEvents(f *testing.F) {
	cfg := loadConfig(f, "two-way.yaml")
	f.Add([]byte(`{"at":"2026-03-02T09:00:00Z","system":"sf","agent":"ana@example.com","type":"status_changed","status":"Lunch"}`))
	f.Add([]byte(`{"at":"2026-03-02T09:05:00Z","system":"gc","agent":"x","type":"conversation_started","data":{"queueId":null,"a":{"b":[1,2]}}}` + "\n\n"))
	f.Add([]byte("{\"at\":\"bad\"}\nnot json\n{}"))
	f.Add([]byte(`{"at":"2026-03-02T09:00:00Z","system":"sf","agent":"a","type":"logout"} {"x":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		evs, err := ParseEvents("f.jsonl", bytes.NewReader(data), cfg)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.jsonl:") {
				t.Fatalf("error without FILE:LINE: %v", err)
			}
			if evs != nil {
				t.Fatal("events returned together with an error")
			}
			return
		}
		for _, ev := range evs {
			if cfg.Systems[ev.System] == nil || !ev.Type.Valid() || ev.Agent == "" || ev.At.IsZero() {
				t.Fatalf("invalid event accepted: %+v", ev)
			}
		}
	})
}
