// Package genesys connects Genesys Cloud: a small typed client of the Platform API (OAuth client
// credentials, presence definitions, users, presence writes) and a notifications WebSocket
// watcher. Vendor describes it to the rest of the program.
package genesys

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

	"github.com/omnipresence/omnipresence/internal/connector"
)

// Options configure a Client. APIURL, ClientID and ClientSecret are required.
type Options struct {
	// System is the configured system name events carry ("gc").
	System string
	// APIURL is the Platform API base ("https://api.mypurecloud.com").
	APIURL string
	// LoginURL serves /oauth/token; it defaults to APIURL.
	LoginURL     string
	ClientID     string
	ClientSecret string
	// HTTPClient makes every call; http.DefaultClient when nil.
	HTTPClient *http.Client
	// Logger never receives secrets.
	Logger *slog.Logger
	// WireSecond is how long a second of inin-ratelimit-reset and Retry-After lasts: one
	// second against Genesys; a simulator with a shrunken rate window shrinks it too.
	WireSecond time.Duration
	// BulkSize is the number of presences one bulk call carries (50).
	BulkSize int
	// TopicsPerChannel caps the topics of one notification channel (1,000).
	TopicsPerChannel int
	// PingInterval is how often the socket is pinged; a ping unanswered by the next one means
	// the socket is dead (30 s).
	PingInterval time.Duration
	// MinBackoff and MaxBackoff bound the reconnect backoff (1 s, 1 min).
	MinBackoff, MaxBackoff time.Duration
}

// Client is a Genesys Cloud connector.
type Client struct {
	o    Options
	http *http.Client
	log  *slog.Logger

	authMu  sync.Mutex
	token   string
	expires time.Time

	// The request budget: allowed requests per window of 60 wire seconds, used of them in the
	// window that ends at windowEnd; blockedUntil holds every request (a 429's Retry-After).
	limMu        sync.Mutex
	allowed      int
	used         int
	windowEnd    time.Time
	blockedUntil time.Time

	state watchState
}

// defaultAllowed is Genesys's default budget per client-credentials token and minute.
const defaultAllowed = 300

// New returns a client; it does not call Genesys until used.
func New(o Options) (*Client, error) {
	if o.APIURL == "" || o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("genesys: api_url (or region), client_id and client_secret are required")
	}
	if _, err := url.ParseRequestURI(o.APIURL); err != nil {
		return nil, fmt.Errorf("genesys: api_url: %w", err)
	}
	o.APIURL = strings.TrimRight(o.APIURL, "/")
	if o.LoginURL == "" {
		o.LoginURL = o.APIURL
	}
	o.LoginURL = strings.TrimRight(o.LoginURL, "/")
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WireSecond <= 0 {
		o.WireSecond = time.Second
	}
	if o.BulkSize <= 0 {
		o.BulkSize = 50
	}
	if o.TopicsPerChannel <= 0 {
		o.TopicsPerChannel = 1000
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	c := &Client{o: o, http: o.HTTPClient, log: o.Logger}
	c.setAllowed(defaultAllowed)
	return c, nil
}

// setAllowed records the budget Genesys reports: allowed requests per minute of one token.
func (c *Client) setAllowed(allowed int) {
	c.limMu.Lock()
	defer c.limMu.Unlock()
	if allowed > 0 {
		c.allowed = allowed
	}
}

// WriteLimit is the sustained request rate and burst the token's budget allows.
func (c *Client) WriteLimit() (float64, int) {
	c.limMu.Lock()
	defer c.limMu.Unlock()
	return float64(c.allowed) / 60 / c.o.WireSecond.Seconds(), c.allowed
}

// block holds every request until t (a 429's Retry-After).
func (c *Client) block(t time.Time) {
	c.limMu.Lock()
	if t.After(c.blockedUntil) {
		c.blockedUntil = t
	}
	c.limMu.Unlock()
}

// wait takes a request slot. Genesys counts a token's requests in fixed windows of a minute
// that begin with the first request after the last one ended, and tells in every answer how
// many of the window's requests are used and when it ends: the client counts its requests the
// same way, corrected by those answers, and holds a request that would exceed the budget until
// the window ends, so that Genesys never has to refuse one.
func (c *Client) wait(ctx context.Context) error {
	for {
		c.limMu.Lock()
		now := time.Now()
		until := c.blockedUntil
		if !now.Before(until) {
			if !now.Before(c.windowEnd) {
				c.used, c.windowEnd = 0, now.Add(60*c.o.WireSecond)
			}
			if c.used < c.allowed {
				c.used++
				c.limMu.Unlock()
				return nil
			}
			until = c.windowEnd
		}
		c.limMu.Unlock()
		t := time.NewTimer(time.Until(until))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// accessToken returns a cached token, fetching one when none is valid.
func (c *Client) accessToken(ctx context.Context) (string, error) {
	c.authMu.Lock()
	defer c.authMu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.o.LoginURL+"/oauth/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.SetBasicAuth(c.o.ClientID, c.o.ClientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("genesys: token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		err := fmt.Errorf("genesys: token: HTTP %d %s %s", resp.StatusCode, e.Error, e.Description)
		if resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests {
			return "", &connector.PermanentError{Err: err}
		}
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("genesys: token: malformed response")
	}
	// Renew a little before expiry: a minute, or a tenth of short lifetimes.
	ttl := time.Duration(tok.ExpiresIn) * time.Second
	c.token, c.expires = tok.AccessToken, time.Now().Add(ttl-min(time.Minute, ttl/10))
	return c.token, nil
}

func (c *Client) dropToken(tok string) {
	c.authMu.Lock()
	if c.token == tok {
		c.token = ""
	}
	c.authMu.Unlock()
}

// APIError is a Genesys error response.
type APIError struct {
	Status    int    `json:"status"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	ContextID string `json:"contextId"`
}

func (e *APIError) Error() string {
	return fmt.Sprintf("genesys: HTTP %d %s: %s", e.Status, e.Code, e.Message)
}

// do calls the API: it waits for the rate limiter, authenticates (again after a 401), reads the
// inin-ratelimit headers and maps errors so the engine knows whether a write may have landed:
// 429 to connector.RetryAfterError, other 4xx to connector.PermanentError; 503 (the service
// refused the request), a token that could not be had and a connection that never opened to
// connector.NotAppliedError; other 5xx and network failures (the request may have been applied)
// to plain errors.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
	}
	for attempt := 0; ; attempt++ {
		if err := c.wait(ctx); err != nil {
			return err
		}
		tok, err := c.accessToken(ctx)
		if err != nil {
			if connector.IsNotApplied(err) {
				return err
			}
			return &connector.NotAppliedError{Err: err} // the request never left
		}
		req, err := http.NewRequestWithContext(ctx, method, c.o.APIURL+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		if in != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.http.Do(req)
		if err != nil {
			err = fmt.Errorf("genesys: %s %s: %w", method, path, err)
			if neverSent(err) {
				return &connector.NotAppliedError{Err: err}
			}
			return err
		}
		data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("genesys: %s %s: %w", method, path, err)
		}
		c.observeLimits(resp.Header)
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			c.dropToken(tok)
			continue
		}
		if resp.StatusCode >= 300 {
			return c.mapError(resp, data)
		}
		if out == nil || len(data) == 0 {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("genesys: %s %s: decoding response: %w", method, path, err)
		}
		return nil
	}
}

// observeLimits adopts the budget Genesys reports and what it counted of the current window.
func (c *Client) observeLimits(h http.Header) {
	allowed, err1 := strconv.Atoi(h.Get("inin-ratelimit-allowed"))
	if err1 == nil {
		c.setAllowed(allowed)
	}
	count, err2 := strconv.Atoi(h.Get("inin-ratelimit-count"))
	reset, err3 := strconv.Atoi(h.Get("inin-ratelimit-reset"))
	if err2 != nil || err3 != nil {
		return
	}
	// reset is rounded up to whole seconds and counted from Genesys's clock reading, before
	// this answer arrived: the window ends no later than end.
	end := time.Now().Add(time.Duration(reset) * c.o.WireSecond)
	c.limMu.Lock()
	if end.After(c.windowEnd) {
		c.windowEnd = end
	}
	c.used = max(c.used, count)
	c.limMu.Unlock()
}

func (c *Client) mapError(resp *http.Response, data []byte) error {
	e := &APIError{Status: resp.StatusCode}
	_ = json.Unmarshal(data, e)
	e.Status = resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if err != nil || secs < 1 {
			secs = 1
		}
		after := time.Duration(secs) * c.o.WireSecond
		c.block(time.Now().Add(after))
		return &connector.RetryAfterError{After: after, Err: e}
	case resp.StatusCode == http.StatusServiceUnavailable:
		// Genesys answers 503 when it cannot take the request at all: nothing was applied.
		var err error = e
		if ra, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && ra > 0 {
			err = &connector.RetryAfterError{After: time.Duration(ra) * c.o.WireSecond, Err: e}
		}
		return &connector.NotAppliedError{Err: err}
	case resp.StatusCode >= 500:
		// The request may have been applied before the error: not a refusal, whatever
		// Retry-After says.
		return e
	default:
		return &connector.PermanentError{Err: e}
	}
}

// doRetry is do for reads the connector makes on its own: it honours Retry-After (up to 8
// times) and tries a server or network error once more after MinBackoff. Longer outages are
// the caller's to wait out, so that they show (the engine retries a system with backoff and
// says why).
func (c *Client) doRetry(ctx context.Context, method, path string, in, out any) error {
	const maxWaits, maxTransient = 8, 1
	transient := 0
	var err error
	for range maxWaits {
		err = c.do(ctx, method, path, in, out)
		if err == nil || connector.IsPermanent(err) || ctx.Err() != nil {
			return err
		}
		wait, asked := connector.RetryAfter(err)
		if !asked {
			if transient == maxTransient {
				return err
			}
			transient++
			wait = c.o.MinBackoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return err
}

// neverSent reports whether a request failed before its connection opened (a refused or
// unresolvable dial), so the API cannot have seen it.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
