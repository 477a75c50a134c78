package policy

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// FuzzLoad loads arbitrary bytes as a policy file: it must never panic, and it either returns a
// config or positioned diagnostics.
func FuzzLoad(f *testing.F) {
	for _, glob := range []string{"testdata/valid/*.yaml", "testdata/valid/*/*.y*ml", "testdata/invalid/*.yaml", "testdata/invalid/*/*.y*ml"} {
		files, _ := filepath.Glob(glob)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte("version: 1\nsystems: {a: &x {kind: genesys, <<: *x}}\n"))
	f.Add([]byte("version: 1\npolicies: [{name: p, rules: [{name: r, on: a.login, when: '!!!'}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Load(path, Options{})
		if err != nil {
			var ds Diagnostics
			if !errors.As(err, &ds) || len(ds) == 0 {
				t.Fatalf("error %v is not Diagnostics", err)
			}
			for _, d := range ds {
				if d.File != path || d.Line < 1 || d.Col < 1 || d.Message == "" {
					t.Fatalf("badly positioned diagnostic %+v", d)
				}
			}
			return
		}
		for _, p := range cfg.Policies {
			for _, typ := range presence.EventTypes {
				for _, sys := range cfg.SystemNames {
					p.Evaluate(Input{Event: presence.Event{System: sys, Type: typ, Status: "x"}})
				}
			}
		}
	})
}

// FuzzEvaluate evaluates arbitrary events under the example policy: it must never panic, and an
// unmapped evaluation has no intents and no activity hits.
func FuzzEvaluate(f *testing.F) {
	cfg := loadValid(f, "testdata/valid/full.yaml", Options{})
	f.Add("sf", "status_changed", "AvailableforVoice", "Busy", `{}`)
	f.Add("sf", "workload_changed", "", "", `{"newWorkload":100,"configuredCapacity":"x"}`)
	f.Add("sf", "work_accepted", "", "", `{"channel":5}`)
	f.Add("gc", "conversation_started", "", "", `{"conversationId":1,"queueId":null,"mediaType":["VOICE"]}`)
	f.Add("connect", "status_changed", "st-acw", "Lunch", `{"a":{"b":1}}`)
	f.Add("sf", "logout", "", "", `null`)
	f.Fuzz(func(t *testing.T, system, typ, status, old, data string) {
		var d map[string]any
		_ = json.Unmarshal([]byte(data), &d)
		in := Input{
			Event:   presence.Event{System: system, Type: presence.EventType(typ), Status: status, Data: d},
			New:     presence.Status{Name: status, ID: status},
			Old:     presence.Status{Name: old},
			Current: map[string]presence.Status{"sf": {Name: old}, "connect": {Name: status}},
		}
		for _, p := range cfg.Policies {
			e := p.Evaluate(in)
			if e.Unmapped != (len(e.Intents) == 0 && len(e.Starts) == 0 && len(e.Ends) == 0) {
				t.Fatalf("Unmapped = %v with %d intents", e.Unmapped, len(e.Intents))
			}
			seen := map[string]bool{}
			for _, it := range e.Intents {
				if seen[it.System] {
					t.Fatalf("two intents for %s", it.System)
				}
				seen[it.System] = true
				if it.System == system && strings.HasPrefix(it.Rule, p.Name+"/map ") {
					t.Fatalf("a map targets the event's own system: %+v", it)
				}
			}
		}
	})
}
