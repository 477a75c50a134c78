// Package genesys is a local Genesys Cloud: OAuth client credentials, presence definitions,
// users, presence and routing status, the notifications API with its WebSocket, calls that
// produce conversation events, Genesys's rate limits and injectable faults. It speaks the real
// wire API so that Genesys's own SDKs work against it given only a base URL.
//
// Besides /oauth/token, /api/v2/… and the notification sockets at /channels/{id}, it serves
// control endpoints under /_sim/ that stand in for people and telephony:
//
//	GET  /_sim/users                  users with their presence and routing status
//	POST /_sim/presence               {"user":"ana@example.com","presence":"Busy"}
//	POST /_sim/calls                  {"user":…,"acd":true,"queueId":…,"direction":"inbound"} → {"conversationId"}
//	POST /_sim/calls/{id}/end         disconnects the call
//	GET  /_sim/detail-events          the v2.detail.events.conversation.{id}.user.start/.end bodies
//	POST /_sim/sockets/drop           drops every notification socket
//	POST /_sim/sockets/mute           leaves every socket open but silent (half-open)
//	POST /_sim/sockets/closing        sends v2.system.socket_closing, closes after the grace period
//	POST /_sim/tokens/expire          expires every access token
//	GET/POST /_sim/faults             latency, error rate, 429 storms (see package fault)
package genesys

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Config configures a Server. Zero values take Genesys's defaults.
type Config struct {
	// ClientID and ClientSecret are the one OAuth client's credentials (demo-client/demo-secret).
	ClientID     string
	ClientSecret string
	// RateLimitPerMinute is the request budget of one token per RateWindow (300).
	RateLimitPerMinute int
	// RateWindow is the rate-limit window, one minute by default; benchmarks shrink it, and
	// the seconds of inin-ratelimit-reset and Retry-After shrink with it (a sixtieth of it).
	RateWindow time.Duration
	// TokenTTL is the access tokens' lifetime (24 h, Genesys's default).
	TokenTTL time.Duration
	// HeartbeatInterval is the WebSocket heartbeat period (30 s).
	HeartbeatInterval time.Duration
	// ChannelTTL is how long a notification channel lives without a new subscription (24 h).
	ChannelTTL time.Duration
	// ClosingGrace is how long a socket stays open after v2.system.socket_closing (1 min).
	ClosingGrace time.Duration
	// SeedFile is a JSON Seed; the demo org when empty.
	SeedFile string
	// Seed is used instead of SeedFile when not nil.
	Seed *Seed
	// Faults are in force from the start.
	Faults fault.Settings
	// FaultOptions configure the fault injector (seeded rand, clock); its hooks are the server's.
	FaultOptions fault.Options
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Logger receives the server's logs; nothing is logged when nil.
	Logger *slog.Logger
}

// Server is a simulated Genesys Cloud organization.
type Server struct {
	cfg    Config
	log    *slog.Logger
	faults *fault.Injector
	mux    *http.ServeMux

	mu     sync.Mutex
	org    *org
	tokens map[string]*token
	detail []DetailEvent

	hub *hub

	httpSrv *http.Server
	url     string
}

type token struct {
	expires time.Time
	// window is the start of the current rate window and count the requests in it.
	window time.Time
	count  int
}

// New builds a server from cfg, loading its seed.
func New(cfg Config) (*Server, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = "demo-client"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "demo-secret"
	}
	if cfg.RateLimitPerMinute <= 0 {
		cfg.RateLimitPerMinute = 300
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 24 * time.Hour
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 30 * time.Second
	}
	if cfg.ChannelTTL <= 0 {
		cfg.ChannelTTL = 24 * time.Hour
	}
	if cfg.ClosingGrace <= 0 {
		cfg.ClosingGrace = time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	seed, err := vendorsim.PickSeed(cfg.Seed, cfg.SeedFile, DemoSeed)
	if err != nil {
		return nil, err
	}
	o, err := newOrg(seed, cfg.Now())
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, org: o, tokens: map[string]*token{}}
	s.hub = newHub(s)
	fo := cfg.FaultOptions
	fo.WriteError = s.writeFault
	fo.OnDropSockets = s.DropSockets
	fo.OnExpireTokens = s.ExpireTokens
	if fo.Now == nil {
		fo.Now = cfg.Now
	}
	s.faults = fault.New(fo)
	if err := s.faults.Apply(cfg.Faults); err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Handler serves the whole simulator (for httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// Faults is the server's fault injector.
func (s *Server) Faults() *fault.Injector { return s.faults }

// Start serves on addr ("127.0.0.1:0" picks a free port) and returns the base URL.
func (s *Server) Start(addr string) (string, error) {
	srv, url, err := vendorsim.Serve(addr, s.mux, nil, s.log)
	if err != nil {
		return "", err
	}
	s.httpSrv, s.url = srv, url
	s.log.Info("genesys simulator listening", "url", s.url)
	return s.url, nil
}

// Info is the JSON line `omnipresence sim genesys` prints.
func (s *Server) Info() map[string]any {
	return map[string]any{"kind": "genesys", "url": s.url, "client_id": s.cfg.ClientID, "client_secret": s.cfg.ClientSecret}
}

// Close stops serving and disconnects every socket.
func (s *Server) Close() error {
	s.hub.closeAll()
	return vendorsim.Shutdown(s.httpSrv)
}

// ExpireTokens makes every issued token expired, so the next call with one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		t.expires = s.cfg.Now().Add(-time.Second)
	}
}

// DropSockets closes every notification WebSocket abruptly.
func (s *Server) DropSockets() { s.hub.dropAll() }

// MuteSockets leaves every notification WebSocket open but silent (no events, heartbeats or
// pongs), as a half-open connection behaves.
func (s *Server) MuteSockets() { s.hub.muteAll() }

// SocketClosing sends v2.system.socket_closing on every socket and closes each after the grace
// period unless the client closed it first.
func (s *Server) SocketClosing() { s.hub.closingAll(s.cfg.ClosingGrace) }

func (s *Server) routes() {
	m := http.NewServeMux()
	api := http.NewServeMux()
	s.apiRoutes(api)
	m.Handle("/api/v2/", s.faults.Middleware(s.authenticated(s.bulkSource(api))))
	m.Handle("POST /oauth/token", s.faults.Middleware(http.HandlerFunc(s.handleToken)))
	m.HandleFunc("GET /channels/{channelId}", s.hub.serveSocket)
	m.Handle("/_sim/faults", s.faults.ControlHandler())
	s.controlRoutes(m)
	s.mux = m
}

// maxBody bounds request bodies (Genesys's request.bytes.max).
const maxBody = 512000

// apiError writes Genesys's error envelope.
func (s *Server) apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"message": msg, "code": code, "status": status, "contextId": newUUID(),
		"details": []any{}, "errors": []any{},
	})
}

func (s *Server) writeFault(w http.ResponseWriter, _ *http.Request, status int, retryAfter time.Duration) {
	if status == http.StatusTooManyRequests {
		secs := int((retryAfter + time.Second - 1) / time.Second)
		s.apiError(w, status, "too.many.requests.retry.after", fmt.Sprintf("Rate limit exceeded the maximum. Retry the request in [%d] seconds", secs))
		return
	}
	code := "internal.server.error"
	msg := "The server encountered an unexpected condition which prevented it from fulfilling the request."
	if status == http.StatusServiceUnavailable {
		code, msg = "service.unavailable", "Service Unavailable"
	} else if status < 500 {
		code, msg = "bad.request", "The request could not be understood by the server due to malformed syntax."
	}
	s.apiError(w, status, code, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// handleToken is POST /oauth/token (client credentials).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	id, secret, ok := r.BasicAuth()
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "description": "malformed request", "error_description": "malformed request"})
		return
	}
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if gt := r.PostForm.Get("grant_type"); gt != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "description": "unsupported grant type", "error_description": "unsupported grant type"})
		return
	}
	if id != s.cfg.ClientID || secret != s.cfg.ClientSecret {
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "description": "authentication failed", "error_description": "authentication failed"})
		return
	}
	tok := randomToken()
	s.mu.Lock()
	now := s.cfg.Now()
	for k, t := range s.tokens {
		if now.After(t.expires.Add(time.Hour)) {
			delete(s.tokens, k)
		}
	}
	s.tokens[tok] = &token{expires: now.Add(s.cfg.TokenTTL)}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": int(s.cfg.TokenTTL / time.Second)})
}

// authenticated checks the bearer token and applies the token's rate limit.
func (s *Server) authenticated(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("inin-correlation-id", newUUID())
		bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			if b, ok2 := strings.CutPrefix(r.Header.Get("Authorization"), "bearer "); ok2 {
				bearer, ok = b, true
			}
		}
		if !ok || bearer == "" {
			s.apiError(w, http.StatusUnauthorized, "authentication.required", "No authentication bearer token specified in authorization header.")
			return
		}
		s.mu.Lock()
		t := s.tokens[bearer]
		now := s.cfg.Now()
		if t == nil || !now.Before(t.expires) {
			s.mu.Unlock()
			s.apiError(w, http.StatusUnauthorized, "bad.credentials", "Invalid login credentials.")
			return
		}
		if !now.Before(t.window.Add(s.cfg.RateWindow)) {
			t.window, t.count = now, 0
		}
		t.count++
		count := t.count
		reset := t.window.Add(s.cfg.RateWindow).Sub(now)
		s.mu.Unlock()
		// Seconds on the wire are RateWindow/60, so a shrunken window shrinks them too.
		unit := s.cfg.RateWindow / 60
		resetSecs := int((reset + unit - 1) / unit)
		h := w.Header()
		h.Set("inin-ratelimit-allowed", fmt.Sprint(s.cfg.RateLimitPerMinute))
		h.Set("inin-ratelimit-count", fmt.Sprint(min(count, s.cfg.RateLimitPerMinute)))
		h.Set("inin-ratelimit-reset", fmt.Sprint(resetSecs))
		if count > s.cfg.RateLimitPerMinute {
			h.Set("Retry-After", fmt.Sprint(resetSecs))
			s.apiError(w, http.StatusTooManyRequests, "too.many.requests.retry.after",
				fmt.Sprintf("Rate limit exceeded the maximum. Retry the request in [%d] seconds", resetSecs))
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		next.ServeHTTP(w, r)
	})
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// isoTime is Genesys's timestamp format.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }
