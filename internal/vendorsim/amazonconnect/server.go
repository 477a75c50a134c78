// Package amazonconnect is a local Amazon Connect instance with its agent event stream: the
// Connect API operations a presence connector uses (agent statuses, users, PutUserStatus,
// GetCurrentUserData) in Connect's REST-JSON wire format, and the Kinesis data stream the
// instance's agent events go to, in Kinesis's JSON 1.1 format over HTTP/1.1 and cleartext HTTP/2.
// Requests are SigV4-signed as AWS's SDKs sign them: the credential's access key, region and
// service and the signature are checked, and refusals, throttling and faults come in AWS's
// error shapes, so AWS's own SDKs work against it given only an endpoint.
//
// Agents are moved through contacts as Connect moves them: a routed contact makes the agent
// PendingBusy, an answered one Busy, an ended one AfterCallWork until the agent clears it; a
// status put while the agent has a contact becomes the agent's NextStatus and applies when the
// last contact is cleared.
//
// Control endpoints under /_sim/ stand in for agents and telephony:
//
//	GET  /_sim/users                     users with their status, next status and contacts
//	POST /_sim/users/{user}/status       {"status":"Lunch"} as the agent would in the CCP
//	POST /_sim/users/{user}/login        logs the agent in (LOGIN event)
//	POST /_sim/users/{user}/logout       sets Offline and logs the agent out (LOGOUT event)
//	POST /_sim/contacts                  {"user":…,"channel":"VOICE","direction":"INBOUND","queue":"BasicQueue","answer":true} → {"contactId"}
//	POST /_sim/contacts/{id}/answer      the agent accepts the contact (Busy)
//	POST /_sim/contacts/{id}/end         the contact ends; the agent is in AfterCallWork
//	POST /_sim/contacts/{id}/clear       the agent clears after-contact work
//	POST /_sim/kinesis/reshard           splits every open shard in two
//	POST /_sim/tokens/expire             expires every session token seen so far
//	GET/POST /_sim/faults                latency, error rate, 429 storms (see package fault)
//
// {user} is a user's id, username or email.
package amazonconnect

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Config configures a Server. Zero values take Amazon Connect's defaults.
type Config struct {
	// Region is the instance's region (us-east-1); requests signed for another are refused.
	Region string
	// AccountID is the AWS account (123456789012).
	AccountID string
	// InstanceID is the Connect instance id.
	InstanceID string
	// AccessKeyID and SecretAccessKey are the one IAM user's keys.
	AccessKeyID     string
	SecretAccessKey string
	// Stream is the Kinesis stream the agent events go to, with Shards open shards (2).
	Stream string
	Shards int
	// RatePerSecond and Burst are each Connect API's budget per account (2 and 5);
	// UserDataRate and UserDataBurst GetCurrentUserData's (5 and 8).
	RatePerSecond float64
	Burst         int
	UserDataRate  float64
	UserDataBurst int
	// ShardReads is the GetRecords calls per second each shard allows (5).
	ShardReads float64
	// WireSecond is how long a second of the rate limits and of x-amz-retry-after lasts (one
	// second); benchmarks shrink it to run a shift start in a fraction of the time.
	WireSecond time.Duration
	// IteratorTTL is how long a shard iterator stays valid (5 minutes).
	IteratorTTL time.Duration
	// HeartbeatInterval is how often a logged-in agent with no other event gets a HEART_BEAT
	// (120 s).
	HeartbeatInterval time.Duration
	// Retention is how long the stream keeps records (24 h).
	Retention time.Duration
	// SeedFile is a JSON Seed; the demo instance when empty. Seed is used instead when not nil.
	SeedFile string
	Seed     *Seed
	// Faults are in force from the start.
	Faults fault.Settings
	// FaultOptions configure the fault injector (seeded rand, clock).
	FaultOptions fault.Options
	// Now is the instance's clock; time.Now by default.
	Now func() time.Time
	// Logger receives the server's logs; nothing is logged when nil.
	Logger *slog.Logger
}

// The demo instance's fixed identity, which `omnipresence sim amazonconnect` prints.
const (
	DemoInstanceID      = "c0ddb9c8-6933-4509-8323-d577cfbc9ac4"
	DemoAccessKeyID     = "AKIAOMNIPRESENCEDEMO"
	DemoSecretAccessKey = "demo-secret-access-key"
	DemoStream          = "omnipresence-agent-events"
)

// Server is a simulated Amazon Connect instance with its agent event stream.
type Server struct {
	cfg         Config
	log         *slog.Logger
	faults      *fault.Injector
	mux         *http.ServeMux
	instanceARN string

	mu       sync.Mutex
	statuses []*agentStatus
	users    []*user
	contacts map[string]*contact
	owner    map[string]*user // contact id → agent
	stream   *stream
	limits   map[string]*rate.Limiter
	expired  map[string]bool // session tokens expired
	seen     map[string]bool // session tokens seen

	throttled atomic.Int64
	requests  sync.Map // operation → *atomic.Int64

	stop    chan struct{}
	httpSrv *http.Server
	url     string
}

// New builds a server from cfg, loading its seed.
func New(cfg Config) (*Server, error) {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.Region, "us-east-1")
	def(&cfg.AccountID, "123456789012")
	def(&cfg.InstanceID, DemoInstanceID)
	def(&cfg.AccessKeyID, DemoAccessKeyID)
	def(&cfg.SecretAccessKey, DemoSecretAccessKey)
	def(&cfg.Stream, DemoStream)
	if cfg.Shards <= 0 {
		cfg.Shards = 2
	}
	if cfg.RatePerSecond <= 0 {
		cfg.RatePerSecond = 2
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 5
	}
	if cfg.UserDataRate <= 0 {
		cfg.UserDataRate = 5
	}
	if cfg.UserDataBurst <= 0 {
		cfg.UserDataBurst = 8
	}
	if cfg.ShardReads <= 0 {
		cfg.ShardReads = 5
	}
	if cfg.WireSecond <= 0 {
		cfg.WireSecond = time.Second
	}
	if cfg.IteratorTTL <= 0 {
		cfg.IteratorTTL = 5 * time.Minute
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 120 * time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 24 * time.Hour
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
	s := &Server{cfg: cfg, log: cfg.Logger, contacts: map[string]*contact{}, owner: map[string]*user{},
		limits: map[string]*rate.Limiter{}, expired: map[string]bool{}, seen: map[string]bool{}, stop: make(chan struct{})}
	s.instanceARN = fmt.Sprintf("arn:aws:connect:%s:%s:instance/%s", cfg.Region, cfg.AccountID, cfg.InstanceID)
	if err := s.load(seed); err != nil {
		return nil, err
	}
	s.stream = newStream(s, cfg.Shards)
	fo := cfg.FaultOptions
	fo.WriteError = s.writeFault
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

// load builds the instance from a seed.
func (s *Server) load(seed Seed) error {
	now := ms(s.cfg.Now())
	names := map[string]bool{}
	var offline *agentStatus
	for i, st := range seed.Statuses {
		typ := strings.ToUpper(st.Type)
		if typ != "ROUTABLE" && typ != "CUSTOM" && typ != "OFFLINE" {
			return fmt.Errorf("seed: status %q: type must be ROUTABLE, CUSTOM or OFFLINE, got %q", st.Name, st.Type)
		}
		if st.Name == "" || names[st.Name] {
			return fmt.Errorf("seed: status names must be present and unique (%q)", st.Name)
		}
		names[st.Name] = true
		id := st.ID
		if id == "" {
			id = uuidOf("status", st.Name)
		}
		a := &agentStatus{id: id, name: st.Name, typ: typ, arn: s.instanceARN + "/agent-state/" + id, modified: now, order: i + 1}
		s.statuses = append(s.statuses, a)
		if typ == "OFFLINE" && offline == nil {
			offline = a
		}
	}
	if offline == nil {
		return errors.New("seed: the instance needs an OFFLINE status")
	}
	emails := map[string]bool{}
	for _, su := range seed.Users {
		if su.Email == "" || emails[strings.ToLower(su.Email)] {
			return fmt.Errorf("seed: user emails must be present and unique (%q)", su.Email)
		}
		emails[strings.ToLower(su.Email)] = true
		id := su.ID
		if id == "" {
			id = uuidOf("user", su.Email)
		}
		name := su.Username
		if name == "" {
			name = su.Email
		}
		s.users = append(s.users, &user{id: id, arn: s.instanceARN + "/agent/" + id, username: name, email: su.Email,
			first: su.FirstName, last: su.LastName, modified: now, status: offline, statusStart: now})
	}
	return nil
}

// Handler serves the whole simulator (for httptest).
func (s *Server) Handler() http.Handler { return s.mux }

// Faults is the server's fault injector.
func (s *Server) Faults() *fault.Injector { return s.faults }

// Throttled counts the requests refused with 429 so far.
func (s *Server) Throttled() int { return int(s.throttled.Load()) }

// Requests counts the requests of one operation ("PutUserStatus", "GetRecords") or protocol
// ("HTTP/1.1", "HTTP/2.0") served so far.
func (s *Server) Requests(op string) int {
	if v, ok := s.requests.Load(op); ok {
		return int(v.(*atomic.Int64).Load())
	}
	return 0
}

// Start serves on addr ("127.0.0.1:0" picks a free port), over HTTP/1.1 and cleartext HTTP/2,
// and returns the base URL, which is both the Connect and the Kinesis endpoint.
func (s *Server) Start(addr string) (string, error) {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv, url, err := vendorsim.Serve(addr, s.mux, &protocols, s.log)
	if err != nil {
		return "", err
	}
	s.httpSrv, s.url = srv, url
	go s.heartbeats()
	s.log.Info("amazon connect simulator listening", "url", s.url)
	return s.url, nil
}

// URL is the base URL Start serves on.
func (s *Server) URL() string { return s.url }

// Info is the JSON line `omnipresence sim amazonconnect` prints.
func (s *Server) Info() map[string]any {
	return map[string]any{"kind": "amazonconnect", "url": s.url, "kinesis_url": s.url, "region": s.cfg.Region,
		"instance_id": s.cfg.InstanceID, "agent_event_stream": s.cfg.Stream,
		"access_key_id": s.cfg.AccessKeyID, "secret_access_key": s.cfg.SecretAccessKey}
}

// Close stops serving.
func (s *Server) Close() error {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	return vendorsim.Shutdown(s.httpSrv)
}

// ExpireTokens expires every session token (X-Amz-Security-Token) seen so far: requests
// signed with one are refused with ExpiredTokenException, as AWS refuses expired temporary
// credentials. Long-term access keys do not expire.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.seen {
		s.expired[t] = true
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	api := http.NewServeMux()
	api.HandleFunc("GET /agent-status/{instance}", s.op("ListAgentStatuses", s.listAgentStatuses))
	api.HandleFunc("GET /agent-status/{instance}/{status}", s.op("DescribeAgentStatus", s.describeAgentStatus))
	api.HandleFunc("GET /users-summary/{instance}", s.op("ListUsers", s.listUsers))
	api.HandleFunc("GET /users/{instance}/{user}", s.op("DescribeUser", s.describeUser))
	api.HandleFunc("PUT /users/{instance}/{user}/status", s.op("PutUserStatus", s.putUserStatus))
	api.HandleFunc("POST /metrics/userdata/{instance}", s.op("GetCurrentUserData", s.getCurrentUserData))
	api.HandleFunc("POST /search-users", s.op("SearchUsers", s.searchUsers))
	api.HandleFunc("POST /{$}", s.kinesis)
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		connectError(w, http.StatusNotFound, "UnknownOperationException", "No such operation: "+r.Method+" "+r.URL.Path)
	})
	m.Handle("/", s.faults.Middleware(s.signed(api)))
	m.Handle("/_sim/faults", s.faults.ControlHandler())
	s.controlRoutes(m)
	s.mux = m
}

// isKinesis reports whether r is a Kinesis call (JSON 1.1 with an X-Amz-Target).
func isKinesis(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("X-Amz-Target"), "Kinesis_20131202.")
}

// awsError answers in the error shape of the service r is for: Connect's REST-JSON
// (x-amzn-ErrorType and {"message"}) or Kinesis's JSON 1.1 ({"__type","message"}).
func awsError(w http.ResponseWriter, r *http.Request, status int, typ, msg string) {
	if isKinesis(r) {
		kinesisError(w, status, typ, msg)
		return
	}
	connectError(w, status, typ, msg)
}

func requestID(w http.ResponseWriter) {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	x := hex.EncodeToString(b)
	w.Header().Set("x-amzn-RequestId", x[0:8]+"-"+x[8:12]+"-"+x[12:16]+"-"+x[16:20]+"-"+x[20:32])
}

func connectError(w http.ResponseWriter, status int, typ, msg string) {
	requestID(w)
	w.Header().Set("x-amzn-ErrorType", typ)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}

func kinesisError(w http.ResponseWriter, status int, typ, msg string) {
	requestID(w)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

// writeFault renders an injected failure as the service would.
func (s *Server) writeFault(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration) {
	switch {
	case status == http.StatusTooManyRequests:
		s.throttled.Add(1)
		if retryAfter > 0 {
			w.Header().Set("x-amz-retry-after", strconv.FormatInt(retryAfter.Milliseconds(), 10))
		}
		if isKinesis(r) {
			kinesisError(w, http.StatusBadRequest, "LimitExceededException", "Rate exceeded for stream "+s.cfg.Stream)
			return
		}
		connectError(w, status, "ThrottlingException", "Rate exceeded")
	case status == http.StatusServiceUnavailable:
		awsError(w, r, status, "ServiceUnavailableException", "Service is unavailable. Try again later.")
	case status >= 500:
		typ := "InternalServiceException"
		if isKinesis(r) {
			typ = "InternalFailure"
		}
		awsError(w, r, status, typ, "Request processing failed because of an error or failure with the service.")
	default:
		awsError(w, r, status, "InvalidRequestException", "The request is not valid.")
	}
}

// signed checks the SigV4 Authorization of every call: an access key this instance knows, the
// instance's region, the service the path is for, and the signature made with the key's secret.
// The request's time is not checked against the clock.
func (s *Server) signed(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.count(r.Proto)
		auth := r.Header.Get("Authorization")
		if auth == "" {
			awsError(w, r, http.StatusForbidden, "MissingAuthenticationTokenException", "Missing Authentication Token")
			return
		}
		const algo = "AWS4-HMAC-SHA256 "
		if !strings.HasPrefix(auth, algo) {
			awsError(w, r, http.StatusBadRequest, "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
			return
		}
		var cred, signature, signedHeaders string
		for _, part := range strings.Split(strings.TrimPrefix(auth, algo), ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
			switch k {
			case "Credential":
				cred = v
			case "Signature":
				signature = v
			case "SignedHeaders":
				signedHeaders = v
			}
		}
		scope := strings.Split(cred, "/")
		if len(scope) != 5 || signature == "" || signedHeaders == "" || scope[4] != "aws4_request" {
			awsError(w, r, http.StatusBadRequest, "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.")
			return
		}
		if scope[0] != s.cfg.AccessKeyID {
			awsError(w, r, http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
			return
		}
		if scope[2] != s.cfg.Region {
			awsError(w, r, http.StatusForbidden, "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", scope[2]))
			return
		}
		service := "connect"
		if isKinesis(r) {
			service = "kinesis"
		}
		if scope[3] != service {
			awsError(w, r, http.StatusForbidden, "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service))
			return
		}
		if want, err := sigV4(r, s.cfg.SecretAccessKey, strings.Join(scope[1:], "/"), signedHeaders); err != nil || want != signature {
			awsError(w, r, http.StatusForbidden, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
			return
		}
		if tok := r.Header.Get("X-Amz-Security-Token"); tok != "" {
			s.mu.Lock()
			s.seen[tok] = true
			expired := s.expired[tok]
			s.mu.Unlock()
			if expired {
				awsError(w, r, http.StatusForbidden, "ExpiredTokenException", "The security token included in the request is expired")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// op counts and throttles one Connect operation, then serves it. Each operation has its own
// budget, as Connect's quotas are per operation, account and region.
func (s *Server) op(name string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.count(name)
		if !s.allow(name) {
			s.throttled.Add(1)
			connectError(w, http.StatusTooManyRequests, "ThrottlingException", "Rate exceeded")
			return
		}
		if id := r.PathValue("instance"); id != "" && id != s.cfg.InstanceID {
			connectError(w, http.StatusNotFound, "ResourceNotFoundException", "Instance not found: "+id)
			return
		}
		requestID(w)
		h(w, r)
	}
}

func (s *Server) count(op string) {
	v, _ := s.requests.LoadOrStore(op, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// allow takes one request from the budget called key.
func (s *Server) allow(key string) bool {
	s.mu.Lock()
	l := s.limits[key]
	if l == nil {
		per, burst := s.cfg.RatePerSecond, s.cfg.Burst
		switch {
		case key == "GetCurrentUserData":
			per, burst = s.cfg.UserDataRate, s.cfg.UserDataBurst
		case strings.HasPrefix(key, "shard:"):
			per, burst = s.cfg.ShardReads, int(math.Ceil(s.cfg.ShardReads))
		}
		l = rate.NewLimiter(rate.Limit(per/s.cfg.WireSecond.Seconds()), burst)
		s.limits[key] = l
	}
	s.mu.Unlock()
	return l.Allow()
}

func writeJSON(w http.ResponseWriter, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

// epoch renders a time as Connect's REST-JSON does: epoch seconds, with milliseconds.
func epoch(t time.Time) json.Number {
	return json.Number(strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', -1, 64))
}
