// Package server is the HTTP surface of `omnipresence serve`: the JSON API under /api/v1, the
// HMAC-signed webhook ingress, the live decision stream (Server-Sent Events), the admin UI,
// /metrics, /healthz and /readyz. It reaches the engine only through the Engine interface.
package server

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// Engine is what the server needs from the engine.
type Engine interface {
	// Agents returns every known agent.
	Agents(ctx context.Context) ([]engine.AgentView, error)
	// Agent returns one agent by email; ok is false when it is unknown.
	Agent(ctx context.Context, email string) (view engine.AgentView, ok bool, err error)
	// Explain returns the agent's last limit decision steps, oldest first.
	Explain(ctx context.Context, email string, limit int) ([]engine.Step, error)
	// Subscribe streams live decisions into a channel of the given buffer until cancel is called.
	Subscribe(buffer int) (decisions <-chan engine.Decision, cancel func())
	// Ingest stores one event and returns once it is durable.
	Ingest(ctx context.Context, ev presence.Event) error
	// Ready returns nil when the engine can serve and every system is ready; an
	// *engine.DegradedError when it serves without some systems; otherwise why it cannot serve.
	Ready() error
}

// DefaultMaxBodyBytes limits request bodies when Options.MaxBodyBytes is 0.
const DefaultMaxBodyBytes = 1 << 20

// Options configure a Server.
type Options struct {
	// Engine serves the data; required.
	Engine Engine
	// Registry is served at /metrics; nil serves an empty registry.
	Registry *prometheus.Registry
	// AdminToken, when set, is required as "Authorization: Bearer <token>" on /api/v1 (except
	// the webhook). When empty, only loopback clients are served.
	AdminToken string
	// WebhookSecret keys the HMAC-SHA256 webhook signatures; empty disables the webhook.
	WebhookSecret string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Version is shown by the UI and the OpenAPI document.
	Version string
	// MaxBodyBytes limits request bodies; 0 means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Policy is the loaded policy; the console shows it and judges the board with it. Nil
	// shows the board without teams, categories or map checks.
	Policy *policy.Config
	// Systems names the configured systems with their vendors' titles, in display order; empty
	// derives them from Policy.
	Systems []SystemInfo
	// Health reports each connected system's health; nil reports what the engine's views show.
	Health SystemHealth
	// Bridge, when set, serves everything under BridgePrefix with its own authentication, CORS
	// and body limits (the admin token does not apply); without it those paths answer 404.
	Bridge http.Handler
	// Consoles, when set, answers GET /api/v1/consoles (behind the admin token) with the
	// agents' console connections ({"systems":[…]}); without it the list is empty.
	Consoles http.Handler
}

// BridgePrefix is where Options.Bridge is mounted.
const BridgePrefix = "/api/v1/bridge/"

// Server serves the HTTP API. Create it with New.
type Server struct {
	opts    Options
	log     *slog.Logger
	mux     *http.ServeMux
	handler http.Handler
	openapi []byte

	// streamsDone is closed when the server shuts down, ending the event streams, which would
	// otherwise keep their connections busy forever.
	streamsDone chan struct{}
	closeOnce   sync.Once

	// loaded is the policy with the systems' catalogs, once SetPolicy gives it; until then
	// opts.Policy (which may lack them) is used.
	loaded atomic.Pointer[policy.Config]
}

// SetPolicy replaces the policy the server describes agents with, once the systems' catalogs
// are loaded: the board names statuses and checks maps through it.
func (s *Server) SetPolicy(cfg *policy.Config) { s.loaded.Store(cfg) }

// policy is the policy in force: the loaded one, else the one the server started with.
func (s *Server) policy() *policy.Config {
	if cfg := s.loaded.Load(); cfg != nil {
		return cfg
	}
	return s.opts.Policy
}

// New returns a Server for opts. It panics if opts.Engine is nil, a programming error.
func New(opts Options) *Server {
	if opts.Engine == nil {
		panic("server: Options.Engine is nil")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		opts:        opts,
		log:         opts.Logger,
		mux:         http.NewServeMux(),
		streamsDone: make(chan struct{}),
	}
	s.openapi = openAPIDocument(opts.Version)
	s.routes()
	s.handler = securityHeaders(http.HandlerFunc(s.dispatch))
	return s
}

// route is one entry of the route table; the OpenAPI test checks the document against it.
type route struct {
	pattern string
	handler http.HandlerFunc
	auth    bool
}

func (s *Server) routeTable() []route {
	metrics := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError)})
	return []route{
		{"GET /healthz", s.healthz, false},
		{"GET /readyz", s.readyz, false},
		{"GET /metrics", metrics.ServeHTTP, false},
		{"GET /api/v1/openapi.json", s.openAPI, false},
		{"GET /api/v1/agents", s.listAgents, true},
		{"GET /api/v1/agents/{email}", s.getAgent, true},
		{"GET /api/v1/agents/{email}/explain", s.explain, true},
		{"GET /api/v1/agents/{email}/history", s.history, true},
		{"POST /api/v1/agents/{email}/resync", s.resync, true},
		{"POST /api/v1/agents/{email}/systems/{system}/retry", s.retry, true},
		{"GET /api/v1/board", s.board, true},
		{"GET /api/v1/systems", s.systems, true},
		{"GET /api/v1/writes", s.writes, true},
		{"GET /api/v1/policy", s.policyView, true},
		{"GET /api/v1/events", s.events, true},
		{"GET /api/v1/consoles", s.consoles, true},
		{"POST /api/v1/webhooks/events", s.webhook, false},
		{"GET /{$}", s.uiIndex, false},
		{"GET /ui/{file}", s.uiAsset, false},
	}
}

func (s *Server) routes() {
	for _, r := range s.routeTable() {
		h := r.handler
		if r.auth {
			h = s.requireAuth(h)
		}
		s.mux.HandleFunc(r.pattern, h)
	}
	if s.opts.Bridge != nil {
		s.mux.Handle(BridgePrefix, s.opts.Bridge)
	}
}

// consoles lists the agents' console connections (the Omni-Channel bridge's), when known.
func (s *Server) consoles(w http.ResponseWriter, r *http.Request) {
	if s.opts.Consoles != nil {
		s.opts.Consoles.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("{\"systems\":[]}\n"))
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves on ln until ctx ends, then shuts down gracefully: it ends the event streams,
// stops accepting connections and waits up to 10 s for requests in flight.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(s.closeStreams)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		s.closeStreams()
		return err
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutCtx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	if err != nil {
		srv.Close()
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

// closeStreams ends every event stream, now and for streams opened later.
func (s *Server) closeStreams() {
	s.closeOnce.Do(func() { close(s.streamsDone) })
}

// dispatch routes the request, turning the mux's own 404 and 405 answers into JSON errors.
func (s *Server) dispatch(w http.ResponseWriter, r *http.Request) {
	if _, pattern := s.mux.Handler(r); pattern == "" {
		s.mux.ServeHTTP(&jsonErrorWriter{ResponseWriter: w}, r)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// jsonErrorWriter replaces the plain-text body of the mux's 404 and 405 answers with a JSON
// error and passes anything else (such as redirects) through.
type jsonErrorWriter struct {
	http.ResponseWriter
	replaced bool
}

func (j *jsonErrorWriter) WriteHeader(code int) {
	if code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		j.ResponseWriter.WriteHeader(code)
		return
	}
	j.replaced = true
	msg := "not found"
	var detail any
	if code == http.StatusMethodNotAllowed {
		msg = "method not allowed"
		detail = map[string]string{"allow": j.Header().Get("Allow")}
	}
	j.Header().Del("Content-Length")
	writeJSONError(j.ResponseWriter, code, msg, detail)
}

func (j *jsonErrorWriter) Write(b []byte) (int, error) {
	if j.replaced {
		return len(b), nil
	}
	return j.ResponseWriter.Write(b)
}

// contentSecurityPolicy allows the UI's own script, style and API calls and nothing else.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; " +
	"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		next.ServeHTTP(w, r)
	})
}

// errorBody is the JSON shape of every API error.
type errorBody struct {
	Error  string `json:"error"`
	Detail any    `json:"detail,omitempty"`
}

func writeJSONError(w http.ResponseWriter, code int, msg string, detail any) {
	writeJSON(w, code, errorBody{Error: msg, Detail: detail})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"encoding the response failed"}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// engineError answers a failed engine call with 500 and logs it.
func (s *Server) engineError(w http.ResponseWriter, r *http.Request, err error) {
	s.log.ErrorContext(r.Context(), "engine call failed", "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSONError(w, http.StatusInternalServerError, "engine error", err.Error())
}

// requireAuth enforces the /api/v1 rule: with an admin token, a matching bearer token; without
// one, a loopback client addressing the server by a loopback name (which also defeats DNS
// rebinding from a browser on the same machine).
func (s *Server) requireAuth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.AdminToken != "" {
			got, ok := bearerToken(r)
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AdminToken)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="omnipresence"`)
				writeJSONError(w, http.StatusUnauthorized, "unauthorized",
					"send the admin token as 'Authorization: Bearer <token>'")
				return
			}
			next(w, r)
			return
		}
		if !isLoopbackAddr(r.RemoteAddr) {
			writeJSONError(w, http.StatusUnauthorized, "unauthorized",
				"no admin token is configured, so only loopback clients are served; "+
					"set an admin token in the server settings to allow remote access")
			return
		}
		if !isLoopbackHost(r.Host) {
			writeJSONError(w, http.StatusUnauthorized, "unauthorized",
				fmt.Sprintf("no admin token is configured, so the server must be addressed as localhost "+
					"or a loopback IP, not %q; set an admin token to allow other names", r.Host))
			return
		}
		next(w, r)
	}
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func isLoopbackAddr(remote string) bool {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return false
	}
	return ap.Addr().Unmap().IsLoopback()
}

func isLoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	io.WriteString(w, "ok\n")
}

// readyz answers 200 while the service serves, even when some systems are not ready (a vendor
// outage delays only that vendor; the API, the webhook and the other systems work): the body is
// then "degraded" and one line per system that is not ready. It answers 503 while the service
// cannot serve at all (starting, stopping).
func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	err := s.opts.Engine.Ready()
	var degraded *engine.DegradedError
	switch {
	case err == nil:
		io.WriteString(w, "ok\n")
	case errors.As(err, &degraded):
		io.WriteString(w, "degraded\n")
		for _, sys := range degraded.Systems {
			fmt.Fprintf(w, "system %s is not ready: %s\n", sys.Name, sys.Reason)
		}
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
	}
}
