// Package salesforce connects omnipresence to Salesforce Omni-Channel. It reads the presence
// status catalog, the users and the agents' current presence over the REST API (SOQL), and
// observes every change through Change Data Capture of UserServicePresence over the Pub/Sub
// API, checkpointing the replay id so a restart resumes where it stopped. With work_channel set
// it also observes AgentWork changes on that channel and reports accepted work (work_accepted,
// with the ServiceChannel DeveloperName as data "channel") and the workload that accepting and
// closing work changes (workload_changed). No supported
// Salesforce API sets an agent's Omni-Channel status from a server: SetStatus hands the write to
// the browser bridge (see Bridge) and reports it as deferred while none is attached.
package salesforce

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/sfid"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/settings"
)

// Defaults of the connection settings.
const (
	DefaultLoginURL   = "https://login.salesforce.com"
	DefaultAPIVersion = "62.0"
	DefaultPubSubURL  = "api.pubsub.salesforce.com:7443"
	DefaultChannel    = "/data/UserServicePresenceChangeEvent"
)

// OfflineID is the status id Salesforce reserves for Offline (logged out of Omni-Channel).
const OfflineID = "0"

// Connector is a connected Salesforce org.
type Connector struct {
	name       string
	loginURL   string
	apiVersion string
	pubsubURL  string
	channel    string
	// workChannel is the change event channel of AgentWork; empty when work is not watched.
	workChannel string
	http        *http.Client
	log         *slog.Logger
	cps         connector.Checkpoints
	auth        *authenticator

	mu     sync.Mutex
	bridge connector.Bridge
	// users caches UserServicePresence record id → user id from events seen.
	users map[string]string
}

var (
	_ connector.CurrentReader  = (*Connector)(nil)
	_ connector.Healther       = (*Connector)(nil)
	_ connector.BridgeAttacher = (*Connector)(nil)
)

// Open is the connector.Factory of Salesforce; the settings have passed checkSettings and have
// their defaults.
func Open(ctx context.Context, name string, s settings.Settings, deps connector.Deps) (connector.Connector, error) {
	return New(ctx, name, s, deps)
}

// New opens the connector from checked settings with their defaults filled (Vendor.Connect
// does both); it does not contact Salesforce.
func New(_ context.Context, name string, s settings.Settings, deps connector.Deps) (*Connector, error) {
	c := &Connector{name: name, http: deps.HTTPClient, log: deps.Logger, cps: deps.Checkpoints, users: map[string]string{}}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, f := range []struct {
		key string
		dst *string
	}{{"login_url", &c.loginURL}, {"api_version", &c.apiVersion}, {"pubsub_url", &c.pubsubURL}, {"channel", &c.channel}, {"work_channel", &c.workChannel}} {
		v, err := s.String(f.key)
		if err != nil {
			return nil, err
		}
		*f.dst = v
	}
	c.loginURL = strings.TrimRight(c.loginURL, "/")
	c.apiVersion = strings.TrimPrefix(c.apiVersion, "v")
	fetch, err := tokenFetcher(c.loginURL, s.Sub("auth"), c.http)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	c.auth = &authenticator{fetch: fetch}
	return c, nil
}

// tokenFetcher builds the function that obtains a new access token for the configured flow
// (client_credentials or jwt, as checkSettings ensured).
func tokenFetcher(loginURL string, a settings.Settings, hc *http.Client) (func(context.Context) (*oauth2.Token, error), error) {
	flow, _ := a.String("flow")
	clientID, _ := a.String("client_id")
	tokenURL := loginURL + "/services/oauth2/token"
	withClient := func(ctx context.Context) context.Context { return context.WithValue(ctx, oauth2.HTTPClient, hc) }
	if flow == "client_credentials" {
		secret, _ := a.String("client_secret")
		cfg := clientcredentials.Config{ClientID: clientID, ClientSecret: secret, TokenURL: tokenURL,
			AuthStyle: oauth2.AuthStyleInParams}
		return func(ctx context.Context) (*oauth2.Token, error) { return cfg.Token(withClient(ctx)) }, nil
	}
	user, _ := a.String("username")
	keyFile, _ := a.String("private_key_file")
	key, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("private_key_file: %w", err)
	}
	if err := checkKey(key); err != nil {
		return nil, fmt.Errorf("private_key_file %s: %w", keyFile, err)
	}
	cfg := &jwt.Config{Email: clientID, Subject: user, PrivateKey: key, TokenURL: tokenURL,
		Audience: loginURL, Expires: 3 * time.Minute}
	return func(ctx context.Context) (*oauth2.Token, error) { return cfg.TokenSource(withClient(ctx)).Token() }, nil
}

// AttachBridge makes b carry SetStatus writes; nil detaches it.
func (c *Connector) AttachBridge(b connector.Bridge) {
	c.mu.Lock()
	c.bridge = b
	c.mu.Unlock()
}

// SetStatus hands the write to the attached bridge. Without one the write is deferred: the
// engine keeps it and retries when a bridge connects.
func (c *Connector) SetStatus(ctx context.Context, account, statusID string) (connector.Receipt, error) {
	c.mu.Lock()
	b := c.bridge
	c.mu.Unlock()
	if b == nil {
		return connector.Receipt{}, &connector.DeferredError{Reason: "no Omni-Channel bridge connected"}
	}
	return b.Send(ctx, account, statusID)
}

// Close releases idle connections.
func (c *Connector) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// Healthy checks that the org answers an authenticated call.
func (c *Connector) Healthy(ctx context.Context) error {
	var out map[string]any
	return c.get(ctx, "/services/data/v"+c.apiVersion+"/limits", nil, &out)
}

// Catalog returns the org's presence statuses plus the reserved Offline ("0"). A status with
// service channels is Online (available); one without is Away/Busy, categorized by its name.
func (c *Connector) Catalog(ctx context.Context) ([]presence.Status, error) {
	type statusRow struct {
		ID            string `json:"Id"`
		DeveloperName string `json:"DeveloperName"`
		MasterLabel   string `json:"MasterLabel"`
	}
	var rows []statusRow
	err := queryAll(ctx, c, "SELECT Id, DeveloperName, MasterLabel FROM ServicePresenceStatus WHERE IsDeleted = false ORDER BY DeveloperName", &rows)
	if err != nil {
		return nil, err
	}
	type channelRow struct {
		StatusID       string `json:"ServicePresenceStatusId"`
		ServiceChannel *struct {
			DeveloperName string `json:"DeveloperName"`
		} `json:"ServiceChannel"`
	}
	var chans []channelRow
	if err := queryAll(ctx, c, "SELECT ServicePresenceStatusId, ServiceChannel.DeveloperName FROM ServiceChannelStatus", &chans); err != nil {
		return nil, err
	}
	online := map[string]bool{}
	for _, ch := range chans {
		online[sfid.Normalize(ch.StatusID)] = true
	}
	out := make([]presence.Status, 0, len(rows)+1)
	for _, r := range rows {
		id := sfid.Normalize(r.ID)
		out = append(out, presence.Status{ID: id, Name: r.DeveloperName, Label: r.MasterLabel,
			Category: categorize(r.DeveloperName, online[id]), Settable: true})
	}
	out = append(out, presence.Status{ID: OfflineID, Name: presence.OfflineName, Label: presence.OfflineName,
		Category: presence.CategoryOffline, Settable: true})
	return out, nil
}

// categorize guesses a status's category: Online statuses are available; Away/Busy statuses
// are named for what they are, else away.
func categorize(name string, hasChannels bool) presence.Category {
	if hasChannels {
		return presence.CategoryAvailable
	}
	return presence.CategoryOfName(name)
}

// Accounts returns the org's active users.
func (c *Connector) Accounts(ctx context.Context) ([]presence.Account, error) {
	var rows []struct {
		ID    string `json:"Id"`
		Email string `json:"Email"`
		Name  string `json:"Name"`
	}
	if err := queryAll(ctx, c, "SELECT Id, Email, Name FROM User WHERE IsActive = true ORDER BY Id", &rows); err != nil {
		return nil, err
	}
	out := make([]presence.Account, 0, len(rows))
	for _, r := range rows {
		out = append(out, presence.Account{ID: sfid.Normalize(r.ID), Email: strings.ToLower(r.Email), Name: r.Name})
	}
	return out, nil
}

// CurrentStatuses returns user id → current ServicePresenceStatus id and its StatusStartDate,
// "0" (with no date) for users who are not logged in to Omni-Channel. With no accounts it covers every active user. Keys are the
// ids as given (15 or 18 characters).
func (c *Connector) CurrentStatuses(ctx context.Context, accounts []string) (map[string]connector.Current, error) {
	if len(accounts) == 0 {
		all, err := c.Accounts(ctx)
		if err != nil {
			return nil, err
		}
		for _, a := range all {
			accounts = append(accounts, a.ID)
		}
	}
	asked := map[string]string{} // canonical → as given
	var ids []string
	for _, a := range accounts {
		id, ok := sfid.Canonical(a)
		if !ok {
			return nil, &connector.PermanentError{Err: fmt.Errorf("%q is not a Salesforce user id", a)}
		}
		if _, dup := asked[id]; !dup {
			ids = append(ids, id)
		}
		asked[id] = a
	}
	out := map[string]connector.Current{}
	for _, a := range accounts {
		out[a] = connector.Current{StatusID: OfflineID}
	}
	const chunk = 200
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		var rows []struct {
			UserID   string `json:"UserId"`
			StatusID string `json:"ServicePresenceStatusId"`
			Start    string `json:"StatusStartDate"`
		}
		q := "SELECT UserId, ServicePresenceStatusId, StatusStartDate FROM UserServicePresence WHERE IsCurrentState = true AND UserId IN ('" +
			strings.Join(part, "','") + "')"
		if err := queryAll(ctx, c, q, &rows); err != nil {
			return nil, err
		}
		for _, r := range rows {
			if given, ok := asked[sfid.Normalize(r.UserID)]; ok {
				out[given] = connector.Current{StatusID: sfid.Normalize(r.StatusID), Since: parseDateTime(r.Start)}
			}
		}
	}
	return out, nil
}

// parseDateTime reads a Salesforce dateTime ("2026-03-02T09:00:00.000+0000"); zero when it is
// not one.
func parseDateTime(s string) time.Time {
	for _, layout := range []string{"2006-01-02T15:04:05.000-0700", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
