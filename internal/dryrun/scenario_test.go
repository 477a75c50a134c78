package dryrun

import (
	"context"
	"fmt"

	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

func loadConfig(t testing.TB, name string) *policy.Config {
	t.Helper()
	cfg, err := policy.Load(filepath.Join("testdata", name), policy.Options{})
	if err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	return cfg
}

// ev builds an event at 09:00 plus offset.
func ev(offset string, system, agent string, typ presence.EventType, status string, data ...string) presence.Event {
	d, err := time.ParseDuration(offset)
	if err != nil {
		panic(err)
	}
	e := presence.Event{At: base.Add(d), System: system, Agent: agent, Type: typ, Status: status}
	if len(data) > 0 {
		e.Data = map[string]any{}
		for _, kv := range data {
			k, v, _ := strings.Cut(kv, "=")
			e.Data[k] = v
		}
	}
	return e
}

var base = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

const ana = "ana@example.com"

// writeList renders writes as "offset system status" for compact comparisons.
func writeList(res *Result) []string {
	out := make([]string, len(res.Writes))
	for i, w := range res.Writes {
		out[i] = fmt.Sprintf("%s %s %s", w.At.Sub(base), w.System, w.Status)
	}
	return out
}

func TestScenarios(t *testing.T) {
	tests := []struct {
		name    string
		config  string
		latency time.Duration
		events  []presence.Event
		writes  []string
		final   map[string]string
		echoes  int64
		defer_  int64
	}{
		{
			name:   "a change is written once and its echo is not evaluated again",
			config: "two-way.yaml",
			events: []presence.Event{ev("0s", "sf", ana, presence.StatusChanged, "AvailableforVoice")},
			writes: []string{"50ms gc On Queue"},
			final:  map[string]string{"sf": "AvailableforVoice", "gc": "On Queue"},
			echoes: 1,
		},
		{
			name:   "non-involutive maps do not ping-pong (sf Busy -> gc Busy, gc Busy -> sf Offline)",
			config: "two-way.yaml",
			events: []presence.Event{ev("0s", "sf", ana, presence.StatusChanged, "Busy")},
			writes: []string{"50ms gc Busy"},
			final:  map[string]string{"sf": "Busy", "gc": "Busy"},
			echoes: 1,
		},
		{
			name:   "a person changing the target while our write is in flight wins on both systems",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "sf", ana, presence.StatusChanged, "AvailableforVoice"),
				ev("20ms", "gc", ana, presence.StatusChanged, "Meal"),
			},
			// our On Queue lands at 50ms over the person's Meal; Meal is written back and mapped.
			writes: []string{"50ms gc On Queue", "70ms sf Lunch", "100ms gc Meal"},
			final:  map[string]string{"sf": "Lunch", "gc": "Meal"},
		},
		{
			name:   "an older event arriving late does not override a newer change",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("10s", "sf", ana, presence.StatusChanged, "Lunch"),
				// gc's change happened earlier but was delivered later: file order is not time order.
				ev("5s", "gc", ana, presence.StatusChanged, "Break"),
			},
			writes: []string{"5.05s sf Break", "10.05s gc Meal"},
			final:  map[string]string{"sf": "Lunch", "gc": "Meal"},
		},
		{
			name:   "changes made before a write goes out coalesce into the latest",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "sf", ana, presence.StatusChanged, "AvailableforVoice"),
				ev("0s", "sf", ana, presence.StatusChanged, "Lunch"),
				ev("0s", "sf", ana, presence.StatusChanged, "Break"),
			},
			writes: []string{"50ms gc Break"},
			final:  map[string]string{"sf": "Break", "gc": "Break"},
		},
		{
			name:   "a duplicate delivery changes nothing",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "sf", ana, presence.StatusChanged, "Lunch"),
				ev("0s", "sf", ana, presence.StatusChanged, "Lunch"),
			},
			writes: []string{"50ms gc Meal"},
			final:  map[string]string{"sf": "Lunch", "gc": "Meal"},
		},
		{
			name:   "a non-ACD call overlays Busy and restores the status before it",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "gc", ana, presence.StatusChanged, "On Queue"),
				ev("1m", "gc", ana, presence.ConversationStarted, "", "conversationId=c1"),
				ev("5m", "gc", ana, presence.ConversationEnded, "", "conversationId=c1"),
			},
			writes: []string{"50ms sf AvailableforVoice", "1m0.05s gc Busy", "5m0.05s gc On Queue"},
			final:  map[string]string{"sf": "AvailableforVoice", "gc": "On Queue"},
		},
		{
			name:   "an ACD call changes nothing",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "gc", ana, presence.StatusChanged, "On Queue"),
				ev("1m", "gc", ana, presence.ConversationStarted, "", "conversationId=c1", "queueId=q1"),
				ev("5m", "gc", ana, presence.ConversationEnded, "", "conversationId=c1", "queueId=q1"),
			},
			writes: []string{"50ms sf AvailableforVoice"},
			final:  map[string]string{"sf": "AvailableforVoice", "gc": "On Queue"},
		},
		{
			name:   "overlapping calls restore once, when the last one ends",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "gc", ana, presence.StatusChanged, "On Queue"),
				ev("1m", "gc", ana, presence.ConversationStarted, "", "conversationId=c1"),
				ev("2m", "gc", ana, presence.ConversationStarted, "", "conversationId=c2"),
				ev("3m", "gc", ana, presence.ConversationEnded, "", "conversationId=c1"),
				ev("4m", "gc", ana, presence.ConversationEnded, "", "conversationId=c2"),
			},
			writes: []string{"50ms sf AvailableforVoice", "1m0.05s gc Busy", "4m0.05s gc On Queue"},
			final:  map[string]string{"sf": "AvailableforVoice", "gc": "On Queue"},
		},
		{
			name:   "a manual change during a call wins over the restore",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "gc", ana, presence.StatusChanged, "On Queue"),
				ev("1m", "gc", ana, presence.ConversationStarted, "", "conversationId=c1"),
				ev("2m", "gc", ana, presence.StatusChanged, "Break"),
				ev("3m", "gc", ana, presence.ConversationEnded, "", "conversationId=c1"),
			},
			writes: []string{"50ms sf AvailableforVoice", "1m0.05s gc Busy", "2m0.05s sf Break"},
			final:  map[string]string{"sf": "Break", "gc": "Break"},
		},
		{
			name:   "a mapped change during a call is held and becomes the status restored",
			config: "two-way.yaml",
			events: []presence.Event{
				ev("0s", "gc", ana, presence.StatusChanged, "On Queue"),
				ev("1m", "gc", ana, presence.ConversationStarted, "", "conversationId=c1"),
				ev("2m", "sf", ana, presence.StatusChanged, "Lunch"),
				ev("3m", "gc", ana, presence.ConversationEnded, "", "conversationId=c1"),
			},
			writes: []string{"50ms sf AvailableforVoice", "1m0.05s gc Busy", "3m0.05s gc Meal"},
			final:  map[string]string{"sf": "Lunch", "gc": "Meal"},
		},
		{
			name:   "a write refused during a system state is deferred and applied when it ends",
			config: "connect.yaml",
			events: []presence.Event{
				ev("0s", "connect", ana, presence.StatusChanged, "Available"),
				ev("1m", "connect", ana, presence.StatusChanged, "Busy"),
				ev("2m", "sf", ana, presence.StatusChanged, "Lunch"),
				ev("3m", "connect", ana, presence.StatusChanged, "AfterCallWork"),
				ev("4m", "connect", ana, presence.StatusChanged, "Available"),
			},
			writes: []string{"4m0.05s connect Lunch"},
			final:  map[string]string{"sf": "Lunch", "connect": "Lunch"},
			echoes: 1,
			defer_: 1,
		},
		{
			name:   "a logout rule fires on a Salesforce logout",
			config: "connect.yaml",
			events: []presence.Event{
				ev("0s", "sf", ana, presence.StatusChanged, "Available"),
				ev("8h", "sf", ana, presence.Logout, ""),
			},
			writes: []string{"50ms connect Available", "8h0m0.05s connect Offline"},
			final:  map[string]string{"sf": "Offline", "connect": "Offline"},
			echoes: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := loadConfig(t, tt.config)
			events := OnTime(tt.events)
			sortEvents(events)
			res, err := Run(context.Background(), cfg, events, Options{WriteLatency: tt.latency})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.writes, writeList(res)); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.final, res.Summary.Final[ana]); diff != "" {
				t.Errorf("final (-want +got):\n%s", diff)
			}
			if tt.echoes != 0 && res.Summary.Echoes != tt.echoes {
				t.Errorf("echoes = %d, want %d", res.Summary.Echoes, tt.echoes)
			}
			if res.Summary.Deferred != tt.defer_ {
				t.Errorf("deferred = %d, want %d", res.Summary.Deferred, tt.defer_)
			}
			if res.Summary.Echoes != res.Summary.Writes {
				t.Errorf("echoes = %d, writes = %d: every accepted write must echo exactly once", res.Summary.Echoes, res.Summary.Writes)
			}
		})
	}
}
