// Package salesforce is a local Salesforce org for tests and the demo: OAuth 2.0, the REST API
// with a SOQL subset over the Omni-Channel objects, and Change Data Capture of
// UserServicePresence and AgentWork over the Pub/Sub API (gRPC). Agents' Omni-Channel statuses
// change only through Server.SetStatus (and Login/Logout), the way the Omni-Channel widget
// changes them, and work only through RouteWork/AcceptWork/CloseWork, the way routing and the
// agent do; the control surface under /_sim/ and the agent console call them.
package salesforce

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"crypto/rsa"

	"google.golang.org/grpc"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/pubsubapi"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Config configures a Server. Zero values take the defaults named on each field.
type Config struct {
	// BridgeSigner, when set, lets the agent console mint omnipresence bridge tokens, as the
	// bridge's Apex controller does with the org's certificate (bridgetoken.ParseSigner of
	// `sim salesforce --bridge-key-file`), or with a development secret.
	BridgeSigner *bridgetoken.Signer
	// ClientID and ClientSecret identify the external client app (demo-client / demo-secret).
	ClientID     string
	ClientSecret string
	// Username is the integration user that client credentials run as
	// (integration@omnipresence.example).
	Username string
	// JWTCertificate is the PEM certificate (or public key) JWT bearer assertions are checked
	// against; without it the JWT flow is refused.
	JWTCertificate []byte
	// Audiences are the accepted JWT aud values (https://login.salesforce.com,
	// https://test.salesforce.com and the server's own URL once started).
	Audiences []string
	// RefreshToken, when set, is accepted by the refresh_token grant.
	RefreshToken string
	// SessionTimeout is how long an access token lives (2h).
	SessionTimeout time.Duration
	// DailyAPIRequests is the rolling daily allocation of REST calls (15000).
	DailyAPIRequests int
	// BatchSize is the number of records per query page (2000).
	BatchSize int
	// Retention is how long change events stay on the bus (72h).
	Retention time.Duration
	// KeepAlive is how often an idle subscription receives an empty FetchResponse (270s).
	KeepAlive time.Duration
	// Channels are extra custom CDC channels (/data/Name__chn) that carry
	// UserServicePresence change events.
	Channels []string
	// Seed is the org's content; nil loads DemoSeed.
	Seed *Seed
	// PubSubAddr is where Start serves the Pub/Sub API (HOST:PORT); empty picks a free port on
	// the REST address's host.
	PubSubAddr string
	// Faults are the faults in force at start; /_sim/faults changes them at run time. They
	// apply to REST and OAuth; drop_sockets also ends Pub/Sub streams and expire_tokens
	// invalidates every session.
	Faults fault.Settings
	// Now is the clock (time.Now).
	Now func() time.Time
	// Logger receives the server's logs (discarded when nil).
	Logger *slog.Logger
}

// Server is a simulated Salesforce org.
type Server struct {
	cfg Config
	org *org
	// reasons keeps each user's latest status-change reason, which the console reports.
	reasonsMu sync.Mutex
	reasons   map[string]string
	// hooks are called with every change of a user's status (headless consoles).
	hooksMu sync.Mutex
	hooks   map[string][]func(Change)
	// polls is when each user's console page last asked for its state, browserBridges which
	// pages run a bridge; a headless console steps aside while its user's page is open.
	pollsMu        sync.Mutex
	polls          map[string]time.Time
	browserBridges map[string]bool
	log            *slog.Logger
	jwtKey         *rsa.PublicKey
	now            func() time.Time

	mu        sync.Mutex
	sessions  map[string]session
	apiUsed   int
	cursors   map[string][]*ordered
	cursorSeq int
	drop      chan struct{}
	faults    *fault.Injector

	handler http.Handler
	httpSrv *http.Server
	grpcSrv *grpc.Server
	url     string
	pubsub  string
	closed  bool
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.ClientID == "" {
		cfg.ClientID = "demo-client"
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = "demo-secret"
	}
	if cfg.Username == "" {
		cfg.Username = "integration@omnipresence.example"
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{"https://login.salesforce.com", "https://test.salesforce.com"}
	}
	if cfg.SessionTimeout <= 0 {
		cfg.SessionTimeout = 2 * time.Hour
	}
	if cfg.DailyAPIRequests <= 0 {
		cfg.DailyAPIRequests = 15000
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 2000
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 72 * time.Hour
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 270 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, ch := range cfg.Channels {
		if !strings.HasPrefix(ch, "/data/") || !strings.HasSuffix(ch, "__chn") {
			return nil, fmt.Errorf("custom channel %q must look like /data/Name__chn", ch)
		}
	}
	seed := DemoSeed()
	if cfg.Seed != nil {
		if err := cfg.Seed.validate(); err != nil {
			return nil, err
		}
		seed = *cfg.Seed
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, sessions: map[string]session{}, cursors: map[string][]*ordered{}, drop: make(chan struct{})}
	if len(cfg.JWTCertificate) > 0 {
		k, err := parseCertKey(cfg.JWTCertificate)
		if err != nil {
			return nil, fmt.Errorf("jwt certificate: %w", err)
		}
		s.jwtKey = k
	}
	s.faults = fault.New(fault.Options{Now: cfg.Now, WriteError: writeFault,
		OnExpireTokens: s.ExpireTokens, OnDropSockets: s.DropSockets})
	if err := s.faults.Apply(cfg.Faults); err != nil {
		return nil, fmt.Errorf("faults: %w", err)
	}
	s.org = newOrg(cfg.Now, cfg.Retention)
	s.org.load(seed, cfg.Username)
	s.handler = s.routes()
	return s, nil
}

// Handler serves OAuth, REST and the /_sim/ control surface (not the gRPC Pub/Sub API).
func (s *Server) Handler() http.Handler { return s.handler }

// Faults is the fault injector in force, for tests that change faults directly.
func (s *Server) Faults() *fault.Injector { return s.faults }

// OrgID is the org's 18-character id (the Pub/Sub tenantid).
func (s *Server) OrgID() string { return s.org.id }

// SetStatus changes a user's Omni-Channel status the way the Omni-Channel widget does. user is
// a user id, username or email; status is a DeveloperName, a ServicePresenceStatus id, or
// Offline (or "0") to log out. reason is the Omni reason (OmniManualStatusChange, …) reported
// back to the caller. Logging in, changing and logging out produce the UserServicePresence rows
// and change events Salesforce produces; choosing the current status changes nothing.
func (s *Server) SetStatus(user, status, reason string) (Change, error) {
	ch, err := s.org.setStatus(user, status, reason)
	if err == nil && ch.From != ch.To {
		s.rememberReason(ch)
		s.log.Info("omni status changed", "user", ch.UserID, "from", ch.From, "to", ch.To, "reason", reason)
		s.notifyChange(ch)
	}
	return ch, err
}

// Login logs a user in to Omni-Channel with a status (reason OmniLoginStatusChange).
func (s *Server) Login(user, status string) (Change, error) {
	if status == Offline || status == "0" {
		return Change{}, fmt.Errorf("%w: log in needs a presence status", ErrUnknownStatus)
	}
	return s.SetStatus(user, status, "OmniLoginStatusChange")
}

// Logout logs a user out of Omni-Channel.
func (s *Server) Logout(user string) (Change, error) {
	return s.SetStatus(user, Offline, "OmniLoginStatusChange")
}

// Presence returns a user's current status DeveloperName, or Offline.
func (s *Server) Presence(user string) (string, error) { return s.org.presence(user) }

// Statuses lists the DeveloperNames of the org's presence statuses, sorted.
func (s *Server) Statuses() []string { return s.org.statusNames() }

// UserID returns the 18-character id of the user with that id, username or email.
func (s *Server) UserID(user string) (string, error) {
	s.org.mu.Lock()
	defer s.org.mu.Unlock()
	u, err := s.org.user(user)
	if err != nil {
		return "", err
	}
	return u["Id"].(string), nil
}

// Start serves REST and OAuth on addr and the Pub/Sub API on a second port of the same host;
// port 0 picks free ports. It returns the instance URL.
func (s *Server) Start(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	host, _, _ := net.SplitHostPort(ln.Addr().String())
	pubsubAddr := s.cfg.PubSubAddr
	if pubsubAddr == "" {
		pubsubAddr = net.JoinHostPort(host, "0")
	}
	gl, err := net.Listen("tcp", pubsubAddr)
	if err != nil {
		ln.Close()
		return "", err
	}
	s.mu.Lock()
	s.url = "http://" + ln.Addr().String()
	s.pubsub = "http://" + gl.Addr().String()
	s.cfg.Audiences = append(s.cfg.Audiences, s.url)
	s.httpSrv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	s.grpcSrv = grpc.NewServer(grpc.MaxRecvMsgSize(1 << 20))
	pubsubapi.RegisterPubSubServer(s.grpcSrv, &pubsubService{s: s})
	hs, gs := s.httpSrv, s.grpcSrv
	s.mu.Unlock()
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("rest server stopped", "err", err)
		}
	}()
	go func() {
		if err := gs.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("pub/sub server stopped", "err", err)
		}
	}()
	s.log.Info("salesforce simulator listening", "url", s.url, "pubsub_url", s.pubsub)
	return s.url, nil
}

// Info is the line `omnipresence sim salesforce` prints: what a client needs to connect.
func (s *Server) Info() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{"kind": "salesforce", "url": s.url, "client_id": s.cfg.ClientID,
		"client_secret": s.cfg.ClientSecret, "username": s.cfg.Username, "pubsub_url": s.pubsub,
		"org_id": s.org.id, "api_version": latestVersion}
}

// DropSockets ends every open Pub/Sub stream with UNAVAILABLE and closes idle REST
// connections; clients must reconnect.
func (s *Server) DropSockets() {
	s.mu.Lock()
	hs := s.httpSrv
	close(s.drop)
	s.drop = make(chan struct{})
	s.mu.Unlock()
	if hs != nil {
		hs.SetKeepAlivesEnabled(false)
		hs.SetKeepAlivesEnabled(true)
	}
}

// Close stops serving.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	hs, gs := s.httpSrv, s.grpcSrv
	s.mu.Unlock()
	var err error
	if gs != nil {
		gs.Stop()
	}
	if hs != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if e := hs.Shutdown(ctx); e != nil {
			err = hs.Close()
		}
	}
	return err
}
