package server

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestBridgeMount(t *testing.T) {
	reached := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusTeapot)
	})
	tests := []struct {
		name   string
		bridge http.Handler
		method string
		path   string
		want   int
	}{
		{"off: 404", nil, http.MethodPost, "/api/v1/bridge/events", http.StatusNotFound},
		{"off: stream 404", nil, http.MethodGet, "/api/v1/bridge/stream", http.StatusNotFound},
		{"on: events reach the bridge without the admin token", reached, http.MethodPost, "/api/v1/bridge/events", http.StatusTeapot},
		{"on: preflight reaches the bridge", reached, http.MethodOptions, "/api/v1/bridge/ack", http.StatusTeapot},
		{"on: the admin API still needs the token", reached, http.MethodGet, "/api/v1/agents", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Engine: newFakeEngine(), AdminToken: "admin", Bridge: tt.bridge})
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(tt.method, "http://svc.example"+tt.path, nil))
			if rec.Code != tt.want {
				t.Errorf("status = %d (%s), want %d", rec.Code, rec.Body, tt.want)
			}
		})
	}
}
