package server

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/omnipresence/omnipresence/internal/presence"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the raw body>" on webhook requests.
const SignatureHeader = "X-Omnipresence-Signature"

// Sign returns the SignatureHeader value for body under secret, for webhook senders and tests.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// eventError names what is wrong with one event of a batch.
type eventError struct {
	Index  int      `json:"index"`
	Errors []string `json:"errors"`
}

// webhookResult is the body of a successful webhook call.
type webhookResult struct {
	Ingested int `json:"ingested"`
}

func (s *Server) webhook(w http.ResponseWriter, r *http.Request) {
	if s.opts.WebhookSecret == "" {
		writeJSONError(w, http.StatusUnauthorized, "webhook disabled",
			"no webhook secret is configured; set one in the server settings to accept signed events")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeJSONError(w, http.StatusRequestEntityTooLarge, "body too large",
				fmt.Sprintf("the limit is %d bytes", tooBig.Limit))
			return
		}
		writeJSONError(w, http.StatusBadRequest, "reading the body failed", err.Error())
		return
	}
	if !validSignature(s.opts.WebhookSecret, body, r.Header.Get(SignatureHeader)) {
		writeJSONError(w, http.StatusUnauthorized, "invalid signature",
			"send "+SignatureHeader+": sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>")
		return
	}
	events, err := decodeEvents(body)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "invalid JSON", err.Error())
		return
	}
	if bad := validateEvents(events); len(bad) > 0 {
		writeJSONError(w, http.StatusBadRequest, "invalid events; none were ingested", bad)
		return
	}
	for i, ev := range events {
		if err := s.opts.Engine.Ingest(r.Context(), ev); err != nil {
			s.log.ErrorContext(r.Context(), "webhook ingest failed", "index", i, "system", ev.System, "err", err)
			// Events before i are stored; they deduplicate when the sender retries the batch.
			writeJSONError(w, http.StatusServiceUnavailable, "ingest failed; retry the request",
				map[string]any{"ingested": i, "index": i, "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, webhookResult{Ingested: len(events)})
}

// validSignature checks header against the HMAC of body in constant time.
func validSignature(secret string, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// decodeEvents reads one event object or an array of them, refusing unknown fields and
// trailing data.
func decodeEvents(body []byte) ([]presence.Event, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errors.New("the body is empty; send an event object or an array of events")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	var events []presence.Event
	if trimmed[0] == '[' {
		if err := dec.Decode(&events); err != nil {
			return nil, err
		}
		if len(events) == 0 {
			return nil, errors.New("the array holds no events")
		}
	} else {
		var ev presence.Event
		if err := dec.Decode(&ev); err != nil {
			return nil, err
		}
		events = []presence.Event{ev}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return events, nil
}

// validateEvents returns every problem of every event; nil when all are fit to ingest.
func validateEvents(events []presence.Event) []eventError {
	var bad []eventError
	for i, ev := range events {
		var errs []string
		if strings.TrimSpace(ev.System) == "" {
			errs = append(errs, "system is required")
		}
		if strings.TrimSpace(ev.Agent) == "" {
			errs = append(errs, "agent is required")
		}
		switch {
		case ev.Type == "":
			errs = append(errs, "type is required")
		case !ev.Type.Valid():
			errs = append(errs, fmt.Sprintf("type %q is not one of %v", ev.Type, presence.EventTypes))
		}
		if ev.At.IsZero() {
			errs = append(errs, "at is required (RFC 3339 time of the change)")
		}
		if ev.Type == presence.StatusChanged && strings.TrimSpace(ev.Status) == "" {
			errs = append(errs, "status is required for status_changed")
		}
		if len(errs) > 0 {
			bad = append(bad, eventError{Index: i, Errors: errs})
		}
	}
	return bad
}
