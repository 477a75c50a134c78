package server

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/omnipresence/omnipresence/internal/presence"
)

const secret = "hook-secret"

const (
	goodEvent  = `{"system":"sf","agent":"bob@example.com","type":"status_changed","status":"Online","at":"2026-03-02T09:00:00Z"}`
	goodLogout = `{"system":"gc","agent":"bob@example.com","type":"logout","at":"2026-03-02T09:01:00Z","data":{"reason":"idle"}}`
)

func TestWebhook(t *testing.T) {
	tests := []struct {
		name       string
		secret     string
		body       string
		sig        string // "" signs body with secret; "-" sends no header
		maxBody    int64
		want       int
		wantErr    string // substring of the error
		wantDetail string // substring of the JSON detail
		wantStored int
	}{
		{name: "single event", secret: secret, body: goodEvent, want: 200, wantStored: 1},
		{name: "batch", secret: secret, body: "[" + goodEvent + "," + goodLogout + "]", want: 200, wantStored: 2},
		{name: "surrounding whitespace", secret: secret, body: "\n " + goodEvent + "\n", want: 200, wantStored: 1},
		{name: "secret unset refuses even a signed body", secret: "", body: goodEvent,
			want: 401, wantErr: "webhook disabled", wantDetail: "secret"},
		{name: "missing signature", secret: secret, body: goodEvent, sig: "-", want: 401, wantErr: "invalid signature"},
		{name: "signature with another secret", secret: secret, body: goodEvent, sig: Sign("other", []byte(goodEvent)),
			want: 401, wantErr: "invalid signature"},
		{name: "signature of another body", secret: secret, body: goodEvent, sig: Sign(secret, []byte(goodLogout)),
			want: 401, wantErr: "invalid signature"},
		{name: "signature without prefix", secret: secret, body: goodEvent,
			sig: strings.TrimPrefix(Sign(secret, []byte(goodEvent)), "sha256="), want: 401},
		{name: "signature not hex", secret: secret, body: goodEvent, sig: "sha256=zz", want: 401},
		{name: "body over the limit", secret: secret, body: "[" + goodEvent + "," + goodEvent + "]", maxBody: 150,
			want: 413, wantErr: "too large", wantDetail: "150"},
		{name: "body at the limit", secret: secret, body: goodEvent, maxBody: int64(len(goodEvent)), want: 200, wantStored: 1},
		{name: "malformed JSON", secret: secret, body: `{"system":`, want: 400, wantErr: "invalid JSON"},
		{name: "empty body", secret: secret, body: "", want: 400, wantErr: "invalid JSON"},
		{name: "empty array", secret: secret, body: "[]", want: 400, wantDetail: "no events"},
		{name: "unknown field", secret: secret, body: strings.Replace(goodEvent, `"system"`, `"sytem":"x","system"`, 1),
			want: 400, wantDetail: "sytem"},
		{name: "trailing data", secret: secret, body: goodEvent + goodEvent, want: 400, wantDetail: "after the JSON value"},
		{name: "bad batch stores nothing", secret: secret,
			body: "[" + goodEvent + `,{"system":"","agent":"","type":"status_changed","at":"2026-03-02T09:00:00Z"},` + goodLogout + "]",
			want: 400, wantErr: "none were ingested", wantDetail: `"index":1`},
		{name: "missing at", secret: secret, body: `{"system":"sf","agent":"a@x","type":"login"}`,
			want: 400, wantDetail: "at is required"},
		{name: "unknown type", secret: secret, body: `{"system":"sf","agent":"a@x","type":"teleported","at":"2026-03-02T09:00:00Z"}`,
			want: 400, wantDetail: "teleported"},
		{name: "missing type", secret: secret, body: `{"system":"sf","agent":"a@x","at":"2026-03-02T09:00:00Z"}`,
			want: 400, wantDetail: "type is required"},
		{name: "status_changed without status", secret: secret,
			body: `{"system":"sf","agent":"a@x","type":"status_changed","at":"2026-03-02T09:00:00Z"}`,
			want: 400, wantDetail: "status is required"},
		{name: "bad time", secret: secret, body: `{"system":"sf","agent":"a@x","type":"login","at":"yesterday"}`,
			want: 400, wantErr: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeEngine()
			s := New(Options{Engine: f, WebhookSecret: tt.secret, MaxBodyBytes: tt.maxBody})
			hdr := map[string]string{"Content-Type": "application/json"}
			switch tt.sig {
			case "":
				hdr[SignatureHeader] = Sign(secret, []byte(tt.body))
			case "-":
			default:
				hdr[SignatureHeader] = tt.sig
			}
			// Webhooks authenticate by signature, so a remote sender needs no admin token.
			w := do(t, s.Handler(), request{method: "POST", path: "/api/v1/webhooks/events", body: tt.body,
				header: hdr, remote: "198.51.100.7:443", host: "omnipresence.example"})
			if w.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.want, w.Body)
			}
			if got := len(f.Ingested()); got != tt.wantStored {
				t.Errorf("ingested %d events, want %d", got, tt.wantStored)
			}
			if tt.want != 200 {
				errorOf(t, w.Body.Bytes())
				if !strings.Contains(w.Body.String(), tt.wantErr) || !strings.Contains(w.Body.String(), tt.wantDetail) {
					t.Errorf("body %s lacks %q / %q", w.Body, tt.wantErr, tt.wantDetail)
				}
				return
			}
			if want := `{"ingested":` + strconv.Itoa(tt.wantStored) + `}`; strings.TrimSpace(w.Body.String()) != want {
				t.Errorf("body %s, want %s", w.Body, want)
			}
		})
	}
}

func TestWebhookStoresEventsAsSent(t *testing.T) {
	f := newFakeEngine()
	s := New(Options{Engine: f, WebhookSecret: secret})
	body := "[" + goodEvent + "," + goodLogout + "]"
	w := do(t, s.Handler(), request{method: "POST", path: "/api/v1/webhooks/events", body: body,
		header: map[string]string{SignatureHeader: Sign(secret, []byte(body))}})
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	want := []presence.Event{
		{System: "sf", Agent: "bob@example.com", Type: presence.StatusChanged, Status: "Online", At: t0},
		{System: "gc", Agent: "bob@example.com", Type: presence.Logout, At: t0.Add(60e9), Data: map[string]any{"reason": "idle"}},
	}
	if diff := cmp.Diff(want, f.Ingested()); diff != "" {
		t.Errorf("ingested (-want +got):\n%s", diff)
	}
}

func TestWebhookIngestFailure(t *testing.T) {
	f := newFakeEngine()
	f.ingestErr = errors.New("disk full")
	f.failAt = 1
	s := New(Options{Engine: f, WebhookSecret: secret})
	body := "[" + goodEvent + "," + goodLogout + "]"
	w := do(t, s.Handler(), request{method: "POST", path: "/api/v1/webhooks/events", body: body,
		header: map[string]string{SignatureHeader: Sign(secret, []byte(body))}})
	if w.Code != 503 {
		t.Fatalf("status %d, want 503: %s", w.Code, w.Body)
	}
	if !strings.Contains(w.Body.String(), `"ingested":1`) || !strings.Contains(w.Body.String(), "disk full") {
		t.Errorf("body %s does not say how far ingest got and why it stopped", w.Body)
	}
}

func FuzzDecodeEvents(f *testing.F) {
	f.Add([]byte(goodEvent))
	f.Add([]byte("[" + goodEvent + "," + goodLogout + "]"))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"at":"x"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		events, err := decodeEvents(body)
		if err == nil && len(events) == 0 {
			t.Fatal("decodeEvents returned no events and no error")
		}
		validateEvents(events)
	})
}
