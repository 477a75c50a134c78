// Package cxone is a local NICE CXone tenant: API discovery, OAuth (access keys for servers; the
// authorization-code, token-exchange and refresh flows NICE's Agent SDK uses, with an RS256
// id_token and a JWKS), the admin and real-time APIs (agents, teams, unavailable codes, agent
// states with updatedSince), the agent-session API (start, join, end, state, get-next-event
// long-poll, keep-alive) with CXone's event shapes, rate limits and injectable faults. Paths
// match without regard to case and JSON bodies are read whatever their Content-Type, as CXone
// does.
//
// Control endpoints under /_sim/ stand in for people and telephony:
//
//	GET  /_sim/users                   agents with their ACD state
//	POST /_sim/users/{email or id}/status  {"status":"Available|<unavailable code>|Unavailable|LoggedOut"}
//	POST /_sim/contacts                {"user":…,"direction":"inbound|outbound","skill":…} → {"contactId"}
//	POST /_sim/contacts/{id}/end       ends the contact; the agent returns to their earlier state
//	POST /_sim/tokens/expire           expires every access token
//	GET/POST /_sim/faults              latency, error rate, 429 storms (see package fault)
package cxone

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// AccessKeyID and AccessKeySecret are the integration user's access key
	// (demo-access-key / demo-access-secret).
	AccessKeyID, AccessKeySecret string
	// ClientID and ClientSecret are the registered application's (demo-client / demo-secret).
	ClientID, ClientSecret string
	// RateLimit is the request budget of one token per RateWindow (600 per minute).
	RateLimit  int
	RateWindow time.Duration
	// TokenTTL is the access tokens' lifetime (1 h, as CXone's).
	TokenTTL time.Duration
	// MaxPoll caps get-next-event's timeout (60 s).
	MaxPoll time.Duration
	// SeedFile is a JSON Seed; the demo tenant when empty. Seed is used instead when not nil.
	SeedFile string
	Seed     *Seed
	// Faults are in force from the start; FaultOptions configure the injector.
	Faults       fault.Settings
	FaultOptions fault.Options
	// Now is the tenant's clock; time.Now by default.
	Now func() time.Time
	// Logger receives the server's logs; nothing is logged when nil.
	Logger *slog.Logger
	// TLS serves https with a self-signed certificate (for clients that insist on https); Info
	// then carries the certificate as ca_cert (PEM).
	TLS bool
}

// Server is a simulated CXone tenant.
type Server struct {
	cfg    Config
	log    *slog.Logger
	faults *fault.Injector
	key    *rsa.PrivateKey
	kid    string
	mux    http.Handler

	mu     sync.Mutex
	t      *tenant
	tokens map[string]*token
	codes  map[string]*authCode

	throttled atomic.Int64

	httpSrv *http.Server
	url     string
	caPEM   string
}

// token is one issued access (or refresh) token.
type token struct {
	user    *agent
	expires time.Time
	refresh bool
	window  time.Time
	count   int
}

// authCode is one authorization code awaiting its exchange.
type authCode struct {
	user      *agent
	challenge string
	redirect  string
	clientID  string
	expires   time.Time
}

// New builds a server from cfg, loading its seed.
func New(cfg Config) (*Server, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.AccessKeyID, "demo-access-key")
	def(&cfg.AccessKeySecret, "demo-access-secret")
	def(&cfg.ClientID, "demo-client")
	def(&cfg.ClientSecret, "demo-secret")
	if cfg.RateLimit <= 0 {
		cfg.RateLimit = 600
	}
	if cfg.RateWindow <= 0 {
		cfg.RateWindow = time.Minute
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = time.Hour
	}
	if cfg.MaxPoll <= 0 {
		cfg.MaxPoll = time.Minute
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
	t, err := newTenant(seed, cfg.Now())
	if err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, t: t, key: key, kid: randomHex(8),
		tokens: map[string]*token{}, codes: map[string]*authCode{}}
	fo := cfg.FaultOptions
	fo.WriteError = s.writeFault
	fo.OnExpireTokens = s.ExpireTokens
	if fo.Now == nil {
		fo.Now = cfg.Now
	}
	fo.Skip = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/_sim/") }
	s.faults = fault.New(fo)
	if err := s.faults.Apply(cfg.Faults); err != nil {
		return nil, err
	}
	s.mux = s.routes()
	return s, nil
}

// Handler serves the whole simulator (for httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// SetURL tells a server served by httptest its base URL (discovery documents carry it).
func (s *Server) SetURL(u string) { s.url = strings.TrimRight(u, "/") }

// URL is the base URL.
func (s *Server) URL() string { return s.url }

// Faults is the server's fault injector.
func (s *Server) Faults() *fault.Injector { return s.faults }

// Throttled counts the requests refused with 429 for exceeding a token's budget.
func (s *Server) Throttled() int { return int(s.throttled.Load()) }

// Start serves on addr ("127.0.0.1:0" picks a free port) and returns the base URL.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	s.url = "http://" + ln.Addr().String()
	if s.cfg.TLS {
		cert, pemCert, err := selfSigned()
		if err != nil {
			ln.Close()
			return "", err
		}
		s.caPEM = pemCert
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		s.url = "https://" + ln.Addr().String()
	}
	s.httpSrv = vendorsim.ServeOn(ln, s.mux, nil, s.log)
	s.log.Info("cxone simulator listening", "url", s.url)
	return s.url, nil
}

// Info is the JSON line `omnipresence sim cxone` prints.
func (s *Server) Info() map[string]any {
	info := map[string]any{"kind": "cxone", "url": s.url, "auth_url": s.url, "tenant_id": s.t.id,
		"access_key_id": s.cfg.AccessKeyID, "access_key_secret": s.cfg.AccessKeySecret,
		"client_id": s.cfg.ClientID, "client_secret": s.cfg.ClientSecret}
	if s.caPEM != "" {
		info["ca_cert"] = s.caPEM
	}
	return info
}

// Close stops serving; every API session's poller is answered.
func (s *Server) Close() error {
	s.mu.Lock()
	for _, a := range s.t.sessions {
		a.end()
	}
	s.mu.Unlock()
	return vendorsim.Shutdown(s.httpSrv)
}

// ExpireTokens makes every issued access token expired, so the next call with one gets 401.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tokens {
		if !t.refresh {
			t.expires = s.cfg.Now().Add(-time.Second)
		}
	}
}

// maxBody bounds request bodies.
const maxBody = 1 << 20

func (s *Server) routes() http.Handler {
	m := http.NewServeMux()
	m.Handle("/_sim/faults", s.faults.ControlHandler())
	s.controlRoutes(m)
	api := s.faults.Middleware(http.HandlerFunc(s.serveAPI))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_sim/") {
			m.ServeHTTP(w, r)
			return
		}
		// Browsers (the Agent SDK) ask before cross-origin calls with headers.
		if o := r.Header.Get("Origin"); o != "" {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", o)
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Originating-Service-Identifier, X-Requested-With, *")
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
			h.Set("Access-Control-Expose-Headers", "Retry-After")
			if r.Method == http.MethodOptions {
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		api.ServeHTTP(w, r)
	})
}

// serveAPI routes by the lower-cased path: CXone matches paths without regard to case.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	p := strings.ToLower(strings.TrimRight(r.URL.Path, "/"))
	switch {
	case p == "/.well-known/openid-configuration" || p == "/auth/.well-known/openid-configuration":
		s.handleOpenID(w, r)
	case p == "/.well-known/cxone-configuration":
		s.handleDiscovery(w, r)
	case p == "/auth/jwks" || p == "/.well-known/jwks.json":
		s.handleJWKS(w, r)
	case p == "/auth/authorize":
		s.handleAuthorize(w, r)
	case p == "/auth/token":
		s.handleToken(w, r)
	case p == "/incontactauthorizationserver/token/whoami":
		s.handleWhoami(w, r)
	case strings.HasPrefix(p, "/incontactapi/services/v"):
		rest := strings.TrimPrefix(p, "/incontactapi/services/v")
		ver, route, ok := strings.Cut(rest, "/")
		if !ok || !strings.HasSuffix(ver, ".0") {
			s.apiError(w, http.StatusNotFound, "Not Found", "No such API version.")
			return
		}
		u := s.authenticate(w, r)
		if u == nil {
			return
		}
		s.serveACD(w, r, u, strings.Split(route, "/"))
	default:
		s.apiError(w, http.StatusNotFound, "Not Found", "The requested resource does not exist.")
	}
}

// apiError writes CXone's error shape.
func (s *Server) apiError(w http.ResponseWriter, status int, errText, desc string) {
	writeJSON(w, status, map[string]any{"error": errText, "error_description": desc})
}

func (s *Server) writeFault(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		s.apiError(w, status, "Too Many Requests", "The request rate limit was exceeded; retry later.")
	case status >= 500:
		s.apiError(w, status, http.StatusText(status), "The service is unavailable.")
	default:
		s.apiError(w, status, http.StatusText(status), "The request could not be processed.")
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// params reads a request's parameters from its query and its body: JSON whatever the
// Content-Type says (the Agent SDK labels form bodies as JSON and sends JSON without a type),
// else a form.
func params(r *http.Request) (url.Values, error) {
	out := url.Values{}
	for k, v := range r.URL.Query() {
		out[strings.ToLower(k)] = v
	}
	if r.Body == nil {
		return out, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	body := strings.TrimSpace(string(b))
	if body == "" {
		return out, nil
	}
	if strings.HasPrefix(body, "{") {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			return nil, fmt.Errorf("malformed JSON body: %w", err)
		}
		for k, v := range m {
			switch x := v.(type) {
			case string:
				out.Set(strings.ToLower(k), x)
			case nil:
			default:
				j, _ := json.Marshal(x)
				out.Set(strings.ToLower(k), string(j))
			}
		}
		return out, nil
	}
	form, err := url.ParseQuery(body)
	if err != nil {
		return nil, fmt.Errorf("malformed body: %w", err)
	}
	for k, v := range form {
		out[strings.ToLower(k)] = v
	}
	return out, nil
}

// authenticate checks the bearer token and the token's rate limit; it returns the token's user
// or nil after writing the error.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *agent {
	auth := r.Header.Get("Authorization")
	bearer := ""
	if len(auth) > 7 && strings.EqualFold(auth[:7], "bearer ") {
		bearer = strings.TrimSpace(auth[7:])
	}
	if bearer == "" {
		s.apiError(w, http.StatusUnauthorized, "Unauthorized", "Authorization has been denied for this request.")
		return nil
	}
	s.mu.Lock()
	t := s.tokens[bearer]
	now := s.cfg.Now()
	if t == nil || t.refresh || !now.Before(t.expires) {
		s.mu.Unlock()
		s.apiError(w, http.StatusUnauthorized, "Unauthorized", "The access token is invalid or has expired.")
		return nil
	}
	if !now.Before(t.window.Add(s.cfg.RateWindow)) {
		t.window, t.count = now, 0
	}
	t.count++
	over := t.count > s.cfg.RateLimit
	reset := t.window.Add(s.cfg.RateWindow).Sub(now)
	user := t.user
	s.mu.Unlock()
	if over {
		s.throttled.Add(1)
		w.Header().Set("Retry-After", fmt.Sprint(int((reset+time.Second-1)/time.Second)))
		s.apiError(w, http.StatusTooManyRequests, "Too Many Requests", "The request rate limit was exceeded; retry later.")
		return nil
	}
	return user
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, valid for a day.
func selfSigned() (tls.Certificate, string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "cxone simulator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, "", err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
