package engine

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

const (
	gcMeal  = "3fd96123-badb-4f69-bc03-1b1ccc6d8014"
	gcBreak = "227b37e2-f1d0-4dd0-8f50-badd7cf6d158"
)

// extensionRequest is the request of the CX Cloud status-sync contract, as the blueprint's
// extension reads it.
type extensionRequest struct {
	Agent            string `json:"agent"`
	SalesforceStatus struct {
		CurrentStatus sfStatus `json:"currentStatus"`
		TargetStatus  sfStatus `json:"targetStatus"`
	} `json:"salesforceStatus"`
	GenesysCloudStatus struct {
		CurrentStatus gcStatus `json:"currentStatus"`
		TargetStatus  gcStatus `json:"targetStatus"`
	} `json:"genesysCloudStatus"`
}

type sfStatus struct {
	StatusAPIName string `json:"statusApiName"`
	StatusID      string `json:"statusId"`
	StatusName    string `json:"statusName"`
}

type gcStatus struct {
	ID             string `json:"id"`
	SystemPresence string `json:"systemPresence"`
}

func TestExtensionWebhook(t *testing.T) {
	tests := []struct {
		name    string
		answer  func(w http.ResponseWriter, req extensionRequest)
		wantGC  string
		wantKnd StepKind
	}{
		{"a new target overrides the map", func(w http.ResponseWriter, _ extensionRequest) {
			io.WriteString(w, `{"salesforceStatus":{"targetStatus":{}},"genesysCloudStatus":{"targetStatus":{"id":"`+gcBreak+`"}}}`)
		}, gcBreak, "extension"},
		{"the target sent back means no change", func(w http.ResponseWriter, req extensionRequest) {
			json.NewEncoder(w).Encode(map[string]any{"genesysCloudStatus": map[string]any{"targetStatus": map[string]any{"id": req.GenesysCloudStatus.TargetStatus.ID}}})
		}, gcMeal, "extension"},
		{"a failure leaves the map's decision", func(w http.ResponseWriter, _ extensionRequest) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, gcMeal, "extension_failed"},
		{"a timeout leaves the map's decision", func(w http.ResponseWriter, _ extensionRequest) {
			time.Sleep(600 * time.Millisecond)
		}, gcMeal, "extension_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			var got []extensionRequest
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var req extensionRequest
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
					t.Errorf("extension got bad JSON: %v", err)
				}
				if req.SalesforceStatus.TargetStatus.StatusAPIName != "Lunch" {
					io.WriteString(w, `{}`) // not the change under test: no change
					return
				}
				mu.Lock()
				got = append(got, req)
				mu.Unlock()
				tt.answer(w, req)
			}))
			defer srv.Close()
			t.Setenv("EXT_URL", srv.URL)
			cfg, err := policy.Load("testdata/extension.yaml", policy.Options{})
			if err != nil {
				t.Fatal(err)
			}
			accounts := []presence.Account{{ID: ana, Email: ana}}
			sf := fakevendor.New("sf", cfg.Systems["sf"].Catalog.Statuses(), accounts)
			gc := fakevendor.New("gc", cfg.Systems["gc"].Catalog.Statuses(), accounts)
			gc.Act(ana, "e08eaf1b-ee47-4fa9-a231-1200e284798f")
			eng, err := New(Config{Policy: cfg, Store: memory.New(), Connectors: map[string]connector.Connector{"sf": sf, "gc": gc},
				Machine: Options{DeferredRecheck: time.Hour}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			defer func() { cancel(); <-done }()
			waitFor(t, "ready", func() bool { return eng.Ready() == nil })
			waitFor(t, "gc On Queue seen", func() bool {
				v, ok, _ := eng.Agent(ctx, ana)
				return ok && v.Systems["gc"].Observed == "On Queue"
			})

			sf.Act(ana, "0N5000000000003") // Lunch in Salesforce; the map says gc Meal
			waitFor(t, "the extension's answer", func() bool {
				steps, _ := eng.Explain(ctx, ana, 100)
				for _, s := range steps {
					if s.Kind == tt.wantKnd && s.Cause == "sf status_changed Lunch" {
						return true
					}
				}
				return false
			})
			waitFor(t, "gc to settle", func() bool { return gc.Status(ana) == tt.wantGC })
			mu.Lock()
			defer mu.Unlock()
			if len(got) == 0 {
				t.Fatal("the extension was not called")
			}
			req := got[len(got)-1]
			if req.Agent != ana || req.SalesforceStatus.TargetStatus.StatusAPIName != "Lunch" ||
				req.GenesysCloudStatus.CurrentStatus.SystemPresence != "On Queue" || req.GenesysCloudStatus.TargetStatus.ID != gcMeal {
				t.Errorf("request = %+v", req)
			}
		})
	}
}
