package genesys

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
)

// TestServerErrorsSayWhetherTheWriteWasApplied checks that every way a write can fail tells
// the engine whether the write certainly did not land (it may then retry without waiting for
// an echo) or may have landed all the same (its echo may still come).
func TestServerErrorsSayWhetherTheWriteWasApplied(t *testing.T) {
	const wire = time.Millisecond
	cases := []struct {
		name string
		// token and write are the HTTP statuses of the token and the presence write; 0 is a success.
		token, write int
		retryAfter   string
		hang         bool // the write's answer never comes: the client gives up
		closed       bool // nothing listens
		notApplied   bool
		after        time.Duration
	}{
		{name: "503", write: 503, notApplied: true},
		{name: "503 with Retry-After", write: 503, retryAfter: "3", notApplied: true, after: 3 * wire},
		{name: "429", write: 429, retryAfter: "2", notApplied: true, after: 2 * wire},
		{name: "400", write: 400, notApplied: true},
		{name: "500", write: 500},
		{name: "502", write: 502},
		{name: "504", write: 504},
		{name: "500 with Retry-After", write: 500, retryAfter: "1"},
		{name: "token 500", token: 500, notApplied: true},
		{name: "token 401", token: 401, notApplied: true},
		{name: "connection refused", closed: true, notApplied: true},
		{name: "answer lost", hang: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var writes atomic.Int32
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/oauth/token" {
					if tc.token != 0 {
						http.Error(w, `{"error":"unavailable"}`, tc.token)
						return
					}
					_, _ = w.Write([]byte(`{"access_token":"t","expires_in":3600}`))
					return
				}
				writes.Add(1)
				if tc.hang {
					select {
					case <-release:
					case <-r.Context().Done():
					}
					return
				}
				if tc.retryAfter != "" {
					w.Header().Set("Retry-After", tc.retryAfter)
				}
				if tc.write != 0 {
					w.WriteHeader(tc.write)
					_, _ = w.Write([]byte(`{"code":"x","message":"y"}`))
					return
				}
				_, _ = w.Write([]byte(`{"id":"u1","presenceDefinition":{"id":"busy"},"modifiedDate":"2026-01-01T00:00:00.000Z"}`))
			}))
			url := srv.URL
			if tc.closed {
				srv.Close()
			} else {
				defer srv.Close()
				defer close(release)
			}
			c, err := New(Options{APIURL: url, ClientID: "id", ClientSecret: "secret", WireSecond: wire, HTTPClient: &http.Client{}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := context.Background()
			if tc.hang {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
			}
			_, err = c.SetStatus(ctx, "u1", "busy")
			if err == nil {
				t.Fatal("write succeeded")
			}
			if got := connector.IsNotApplied(err); got != tc.notApplied {
				t.Fatalf("IsNotApplied(%v) = %v, want %v", err, got, tc.notApplied)
			}
			after, ok := connector.RetryAfter(err)
			if ok != (tc.after > 0) || after != tc.after {
				t.Fatalf("RetryAfter(%v) = %v, %v; want %v", err, after, ok, tc.after)
			}
			if tc.token != 0 && writes.Load() != 0 {
				t.Fatal("a write was sent without a token")
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}
