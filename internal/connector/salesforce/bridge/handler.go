// Package bridge is the service side of the Salesforce Omni-Channel bridge: the agent's browser
// runs a small bridge next to the Omni-Channel widget that reports Omni events and applies
// status writes, because no server API sets Omni-Channel presence. The package verifies the
// bridge tokens minted in Salesforce, stores the reported events through the engine, streams
// commands to the bridge (Server-Sent Events), turns their acks into write outcomes, and
// knows from the bridge's calls whether each agent's console is there (consoles.go).
package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Prefix is the path under which the bridge routes are served.
const Prefix = "/api/v1/bridge/"

// Limits of the wire contract.
const (
	MaxEvents    = 100
	MaxBodyBytes = 64 << 10
	// DefaultHeartbeat is the interval of the stream's comment heartbeats.
	DefaultHeartbeat = 15 * time.Second
)

// Options configure a Handler.
type Options struct {
	// Verifier checks the bridge tokens; required.
	Verifier *bridgetoken.Verifier
	// Origins are the browser origins allowed by CORS (https://acme.lightning.force.com).
	Origins []string
	// System is the configured name of the Salesforce system; required.
	System string
	// Hub carries commands to the streams; required.
	Hub *Hub
	// Ingest stores one event durably (the engine's Ingest); required.
	Ingest func(ctx context.Context, ev presence.Event) error
	// DisconnectAfter lists the on_disconnect afters of the policies watching this system's
	// consoles; a console_disconnected event is stored when a console has been gone for each
	// (and for DisconnectGrace).
	DisconnectAfter []time.Duration
	// Checkpoints keeps the console state across restarts; nil keeps it in memory.
	Checkpoints connector.Checkpoints
	// Registerer receives the bridge's metrics; nil for none.
	Registerer prometheus.Registerer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// OnConnect, when set, is told the Salesforce user id of every console that opens its
	// command stream: writes that waited for a bridge can go out now.
	OnConnect func(user string)
	// Heartbeat defaults to DefaultHeartbeat.
	Heartbeat time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// Handler serves the bridge routes under Prefix. Create it with NewHandler; Run tracks the
// consoles.
type Handler struct {
	opts     Options
	origins  map[string]bool
	consoles *consoles
}

// NewHandler checks opts and returns the bridge's HTTP handler.
func NewHandler(opts Options) (*Handler, error) {
	switch {
	case opts.Verifier == nil:
		return nil, errors.New("bridge: a token verifier (certificate or development secret) is required")
	case opts.System == "":
		return nil, errors.New("bridge: the Salesforce system name is required")
	case opts.Hub == nil || opts.Ingest == nil:
		return nil, errors.New("bridge: a hub and an ingest function are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	cs, err := newConsoles(opts.System, opts.DisconnectAfter, opts.Checkpoints, opts.Ingest, opts.Registerer, opts.Logger)
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, origins: map[string]bool{}, consoles: cs}
	for _, o := range opts.Origins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("bridge: origin %q: %w", o, err)
		}
		h.origins[norm] = true
	}
	return h, nil
}

// normalizeOrigin checks that o is scheme://host[:port] and lowercases it.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", errors.New("want scheme://host[:port], such as https://acme.lightning.force.com")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// allowedMethods maps each route to its method.
var allowedMethods = map[string]string{"events": http.MethodPost, "stream": http.MethodGet, "ack": http.MethodPost,
	"heartbeat": http.MethodPost}

// ServeHTTP answers CORS preflights for the allowed origins and serves the authenticated routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, Prefix)
	method, known := allowedMethods[name]
	if !ok || !known {
		writeError(w, http.StatusNotFound, "not found", nil)
		return
	}
	origin := r.Header.Get("Origin")
	allowed := origin != "" && h.origins[strings.ToLower(origin)]
	if allowed {
		w.Header().Set("Access-Control-Allow-Origin", origin)
		w.Header().Add("Vary", "Origin")
	}
	if r.Method == http.MethodOptions {
		if !allowed {
			writeError(w, http.StatusForbidden, "origin not allowed", "add it with --bridge-origin")
			return
		}
		w.Header().Set("Access-Control-Allow-Methods", method)
		w.Header().Set("Access-Control-Allow-Headers", "Authorization, Cache-Control, Content-Type, Last-Event-ID")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method+", OPTIONS")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed", nil)
		return
	}
	claims, err := h.authenticate(r)
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="omnipresence-bridge"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	switch name {
	case "events":
		h.consoles.seen(claims.Sub, h.opts.Now())
		h.events(w, r, claims.Sub)
	case "stream":
		h.stream(w, r, claims)
	case "ack":
		h.consoles.seen(claims.Sub, h.opts.Now())
		h.ackCommand(w, r, claims.Sub)
	case "heartbeat":
		// The body is ignored; it may be empty.
		if _, ok := readBody(w, r); !ok {
			return
		}
		h.consoles.heartbeat(claims.Sub, h.opts.Now())
		w.WriteHeader(http.StatusNoContent)
	}
}

func (h *Handler) authenticate(r *http.Request) (bridgetoken.Claims, error) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return bridgetoken.Claims{}, errors.New("send the bridge token as 'Authorization: Bearer <token>'")
	}
	return h.opts.Verifier.Verify(strings.TrimSpace(token), h.opts.Now())
}

// readBody reads a size-limited JSON body, answering the error itself when it fails.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, "body too large", fmt.Sprintf("at most %d bytes", MaxBodyBytes))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading the body failed", err.Error())
		return nil, false
	}
	return b, true
}

func (h *Handler) events(w http.ResponseWriter, r *http.Request, sub string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var batch struct {
		Events []json.RawMessage `json:"events"`
	}
	if err := strictDecode(body, &batch); err != nil {
		writeError(w, http.StatusBadRequest, "invalid batch", err.Error())
		return
	}
	if len(batch.Events) == 0 || len(batch.Events) > MaxEvents {
		writeError(w, http.StatusBadRequest, "invalid batch", fmt.Sprintf("send 1 to %d events, not %d", MaxEvents, len(batch.Events)))
		return
	}
	evs, problems := h.parseEvents(batch.Events, sub)
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid events; none was stored", problems)
		return
	}
	for i, ev := range evs {
		if err := h.opts.Ingest(r.Context(), ev); err != nil {
			h.opts.Logger.ErrorContext(r.Context(), "storing a bridge event failed", "agent", sub, "event", ev.ID, "err", err)
			writeError(w, http.StatusServiceUnavailable, "storing the events failed; send the batch again",
				map[string]any{"stored": i, "reason": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]int{"accepted": len(evs)})
}

func (h *Handler) ackCommand(w http.ResponseWriter, r *http.Request, sub string) {
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	var a struct {
		ID     string `json:"id"`
		Result string `json:"result"`
		Reason string `json:"reason"`
	}
	if err := strictDecode(body, &a); err != nil {
		writeError(w, http.StatusBadRequest, "invalid ack", err.Error())
		return
	}
	var problems []string
	if a.ID == "" || len(a.ID) > 128 {
		problems = append(problems, "id must be a command id")
	}
	switch a.Result {
	case ResultApplied, ResultDeferred, ResultFailed:
	default:
		problems = append(problems, fmt.Sprintf("result %q must be applied, deferred or failed", a.Result))
	}
	if len(a.Reason) > maxReason {
		problems = append(problems, fmt.Sprintf("reason is longer than %d bytes", maxReason))
	}
	if len(problems) > 0 {
		writeError(w, http.StatusBadRequest, "invalid ack", problems)
		return
	}
	// An ack of a command no longer pending (acknowledged before, or replaced) changes nothing:
	// acks are safe to retry.
	h.opts.Hub.ack(sub, a.ID, a.Result, a.Reason)
	w.WriteHeader(http.StatusNoContent)
}

// stream sends the user's commands until the client goes, the service shuts down or the token
// expires (the bridge then reconnects with a fresh one and is sent what is unacknowledged).
func (h *Handler) stream(w http.ResponseWriter, r *http.Request, claims bridgetoken.Claims) {
	sub := claims.Sub
	rc := http.NewResponseController(w)
	s := h.opts.Hub.open(sub)
	if s == nil {
		writeError(w, http.StatusServiceUnavailable, "the service is shutting down", nil)
		return
	}
	h.consoles.opened(sub, h.opts.Now())
	if h.opts.OnConnect != nil {
		h.opts.OnConnect(sub)
	}
	defer func() {
		h.opts.Hub.close(sub, s)
		// Streams the shutdown ends are not consoles going away.
		if !h.opts.Hub.isClosed() {
			h.consoles.closedStream(sub, h.opts.Now())
		}
	}()
	hdr := w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if _, err := io.WriteString(w, ": connected\n\n"); err != nil || rc.Flush() != nil {
		return
	}
	beat := time.NewTicker(h.opts.Heartbeat)
	defer beat.Stop()
	expiry := time.NewTimer(time.Unix(claims.Exp, 0).Add(bridgetoken.ClockSkew).Sub(h.opts.Now()))
	defer expiry.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-expiry.C:
			return
		case <-h.opts.Hub.done:
			return
		case <-beat.C:
			if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil || rc.Flush() != nil {
				return
			}
		case <-s.notify:
			for _, c := range h.opts.Hub.take(s) {
				b, _ := json.Marshal(c) // strings only
				if _, err := fmt.Fprintf(w, "event: command\nid: %s\ndata: %s\n\n", c.ID, b); err != nil {
					return
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}

func strictDecode(b []byte, v any) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

func writeError(w http.ResponseWriter, code int, msg string, detail any) {
	body := map[string]any{"error": msg}
	if detail != nil {
		body["detail"] = detail
	}
	writeJSON(w, code, body)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
