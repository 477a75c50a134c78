package cxone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/presence"
)

// DefaultAuthURL is CXone's global authentication host: token endpoint and API discovery.
const DefaultAuthURL = "https://cxone.niceincontact.com"

// apiVersion is the ACD API version the connector calls.
const apiVersion = "/inContactAPI/services/v23.0"

// Options configure a Connector.
type Options struct {
	// System is the configured system name events carry ("cx").
	System string
	// APIURL is the tenant's api_endpoint; discovered from TenantID when empty.
	APIURL   string
	TenantID string
	// AuthURL serves discovery and the token endpoint (DefaultAuthURL).
	AuthURL                      string
	AccessKeyID, AccessKeySecret string
	ClientID, ClientSecret       string
	HTTPClient                   *http.Client
	Logger                       *slog.Logger
	Checkpoints                  connector.Checkpoints
	// RateLimit requests per RateWindow is the budget the connector keeps to (600 a minute).
	RateLimit  int
	RateWindow time.Duration
	// PollInterval is how often agent states are polled (2 s).
	PollInterval time.Duration
	// MinBackoff is the wait before a read is tried again after a server error (1 s).
	MinBackoff time.Duration
}

// Connector is a NICE CXone connector.
type Connector struct {
	o    Options
	http *http.Client
	log  *slog.Logger
	lim  *rate.Limiter

	setupMu  sync.Mutex
	apiURL   string
	tokenURL string

	authMu  sync.Mutex
	token   string
	expires time.Time

	mu       sync.Mutex
	catalog  map[string]presence.Status
	sessions map[string]string // agent id → joined API session id
	seen     map[string]seenState
	cps      connector.Checkpoints
}

// New returns a connector; it calls CXone only when used.
func New(o Options) (*Connector, error) {
	if o.APIURL == "" && o.TenantID == "" {
		return nil, errors.New("cxone: api_url or tenant_id is required")
	}
	if o.AccessKeyID == "" || o.AccessKeySecret == "" || o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("cxone: access_key_id, access_key_secret, client_id and client_secret are required")
	}
	if o.AuthURL == "" {
		o.AuthURL = DefaultAuthURL
	}
	for _, u := range []*string{&o.AuthURL, &o.APIURL} {
		*u = strings.TrimRight(*u, "/")
		if *u != "" {
			if p, err := url.Parse(*u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				return nil, fmt.Errorf("cxone: %q is not an http(s) URL", *u)
			}
		}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 70 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 600
	}
	if o.RateWindow <= 0 {
		o.RateWindow = time.Minute
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	cps := o.Checkpoints
	if cps == nil {
		cps = &connector.MemoryCheckpoints{}
	}
	// A token bucket that never spends more than the budget in any window: a tenth of it as
	// burst, the rest spread over the window.
	burst := max(1, o.RateLimit/10)
	perSecond := float64(o.RateLimit-burst) / o.RateWindow.Seconds()
	if perSecond <= 0 {
		perSecond = float64(o.RateLimit) / o.RateWindow.Seconds() / 2
	}
	return &Connector{o: o, http: o.HTTPClient, log: o.Logger, lim: rate.NewLimiter(rate.Limit(perSecond), burst),
		apiURL: o.APIURL, sessions: map[string]string{}, seen: map[string]seenState{}, cps: cps}, nil
}

// WriteLimit is the writes per second the request budget allows: a write takes two requests
// (the state change and the read of its start time) once the agent's session is joined.
func (c *Connector) WriteLimit() (float64, int) {
	return float64(c.lim.Limit()) / 2, max(1, c.lim.Burst()/2)
}

// APIError is an error answer of CXone.
type APIError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("cxone: HTTP %d %s: %s", e.Status, e.Code, e.Description)
}

// endpoints discovers the API and token endpoints once.
func (c *Connector) endpoints(ctx context.Context) (api, tok string, err error) {
	c.setupMu.Lock()
	defer c.setupMu.Unlock()
	if c.apiURL != "" && c.tokenURL != "" {
		return c.apiURL, c.tokenURL, nil
	}
	if c.apiURL == "" {
		var d struct {
			APIEndpoint string `json:"api_endpoint"`
		}
		if err := c.getPublic(ctx, c.o.AuthURL+"/.well-known/cxone-configuration?tenantId="+url.QueryEscape(c.o.TenantID), &d); err != nil {
			return "", "", fmt.Errorf("cxone: API discovery: %w", err)
		}
		if d.APIEndpoint == "" {
			return "", "", errors.New("cxone: API discovery gave no api_endpoint")
		}
		c.apiURL = strings.TrimRight(d.APIEndpoint, "/")
	}
	var oidc struct {
		TokenEndpoint string `json:"token_endpoint"`
	}
	if err := c.getPublic(ctx, c.o.AuthURL+"/.well-known/openid-configuration", &oidc); err != nil || oidc.TokenEndpoint == "" {
		oidc.TokenEndpoint = c.o.AuthURL + "/auth/token"
	}
	c.tokenURL = oidc.TokenEndpoint
	return c.apiURL, c.tokenURL, nil
}

func (c *Connector) getPublic(ctx context.Context, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return c.mapError(resp, data)
	}
	return json.Unmarshal(data, out)
}

// accessToken returns a token, fetching a new one with the access key when none is valid or
// the one held expires within a tenth of its life (at most 5 minutes).
func (c *Connector) accessToken(ctx context.Context) (string, error) {
	_, tokURL, err := c.endpoints(ctx)
	if err != nil {
		return "", err
	}
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	form := url.Values{"grant_type": {"password"}, "username": {c.o.AccessKeyID}, "password": {c.o.AccessKeySecret}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(url.QueryEscape(c.o.ClientID), url.QueryEscape(c.o.ClientSecret))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", &connector.NotAppliedError{Err: fmt.Errorf("cxone: token: %w", err)}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("cxone: token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		err := c.mapError(resp, data)
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusUnauthorized {
			return "", &connector.PermanentError{Err: fmt.Errorf("cxone: the access key or client was refused: %w", err)}
		}
		return "", &connector.NotAppliedError{Err: err}
	}
	var t struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(data, &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("cxone: token answer without access_token")
	}
	life := time.Duration(max(t.ExpiresIn, 60)) * time.Second
	c.token, c.expires = t.AccessToken, time.Now().Add(life-min(life/10, 5*time.Minute))
	return c.token, nil
}

func (c *Connector) dropToken(tok string) {
	c.authMu.Lock()
	if c.token == tok {
		c.token = ""
	}
	c.authMu.Unlock()
}

// do calls the ACD API at path (below the version): it waits for the request budget,
// authenticates (again after a 401) and maps errors: 429 to *RetryAfterError; 503 and
// connections that never opened to *NotAppliedError; other 5xx to plain errors; 4xx to
// *APIError (the caller decides what they mean).
func (c *Connector) do(ctx context.Context, method, path string, in, out any) error {
	api, _, err := c.endpoints(ctx)
	if err != nil {
		return err
	}
	var body []byte
	if in != nil {
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		if err := c.lim.Wait(ctx); err != nil {
			return err
		}
		tok, err := c.accessToken(ctx)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, method, api+apiVersion+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			var op *net.OpError
			if errors.As(err, &op) && op.Op == "dial" {
				return &connector.NotAppliedError{Err: fmt.Errorf("cxone: %s %s: %w", method, path, err)}
			}
			return fmt.Errorf("cxone: %s %s: %w", method, path, err)
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("cxone: %s %s: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.dropToken(tok)
			continue
		}
		if resp.StatusCode >= 300 && resp.StatusCode != http.StatusNotModified {
			return c.mapError(resp, data)
		}
		if out == nil || len(data) == 0 || resp.StatusCode == http.StatusNoContent {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("cxone: %s %s: decoding the answer: %w", method, path, err)
		}
		return nil
	}
}

func (c *Connector) mapError(resp *http.Response, data []byte) error {
	e := &APIError{}
	_ = json.Unmarshal(data, e)
	e.Status = resp.StatusCode
	if e.Code == "" {
		e.Code = http.StatusText(resp.StatusCode)
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			secs = 1
		}
		return &connector.RetryAfterError{After: time.Duration(secs) * time.Second, Err: e}
	case resp.StatusCode == http.StatusServiceUnavailable:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			return &connector.RetryAfterError{After: time.Duration(secs) * time.Second, Err: e}
		}
		return &connector.NotAppliedError{Err: e}
	}
	return e
}

// permanent turns a 4xx answer into a *PermanentError; others pass.
func permanent(err error) error {
	if e, ok := err.(*APIError); ok && e.Status >= 400 && e.Status < 500 {
		return &connector.PermanentError{Err: err}
	}
	return err
}

// read is do for reads the connector makes on its own: 4xx answers are permanent; it honours
// Retry-After (up to 8 times) and tries a server or network error once more after MinBackoff.
func (c *Connector) read(ctx context.Context, path string, out any) error {
	transient := 0
	var err error
	for range 8 {
		err = permanent(c.do(ctx, http.MethodGet, path, nil, out))
		if err == nil || connector.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		wait, asked := connector.RetryAfter(err)
		if !asked {
			if transient == 1 {
				return err
			}
			transient++
			wait = c.o.MinBackoff
		}
		if !pause.For(ctx, wait) {
			return ctx.Err()
		}
	}
	return err
}
