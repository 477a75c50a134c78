package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/omnipresence/omnipresence/internal/connector"
	_ "github.com/omnipresence/omnipresence/internal/connector/genesys"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridge"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/server"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
	"github.com/omnipresence/omnipresence/internal/store/sqlite"
)

// serviceOptions configure one running service (serve, or demo around its simulators).
type serviceOptions struct {
	configPath    string
	addr          string
	storeURL      string
	adminToken    string
	webhookSecret string
	// bridgeCerts verify the Omni-Channel bridge's tokens; with them the bridge endpoints are on.
	bridgeCerts []*x509.Certificate
	// bridgeSecret, when set, also turns the bridge on, accepting tokens signed with this
	// shared secret (development mode).
	bridgeSecret string
	// bridgeOrigins are the browser origins the bridge endpoints allow.
	bridgeOrigins []string
	logger        *slog.Logger
	// started is called with the URL actually bound, once the service listens.
	started func(url string) error
}

// openStore opens "sqlite:PATH", "postgres://…" (or "postgresql://…"), or "memory:".
func openStore(ctx context.Context, url string) (store.Store, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return sqlite.Open(strings.TrimPrefix(url, "sqlite:"))
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return postgres.Open(ctx, url)
	case url == "memory:":
		return memory.New(), nil
	}
	return nil, fmt.Errorf("--store %q: use sqlite:PATH, postgres://… or memory:", url)
}

// openConnectors opens one connector per system whose kind this build has, and loads the policy
// with catalogs pulled from the vendors for systems without an inline one.
func openConnectors(ctx context.Context, path string, st store.Store, log *slog.Logger) (*policy.Config, map[string]connector.Connector, error) {
	conns := map[string]connector.Connector{}
	var openErrs []error
	open := func(sys *policy.System) connector.Connector {
		if c, ok := conns[sys.Name]; ok {
			return c
		}
		f, ok := connector.Lookup(sys.Kind)
		if !ok {
			log.Warn("this build has no connector for the kind; events for the system arrive only through the webhook and writes to it wait",
				"system", sys.Name, "kind", sys.Kind)
			return nil
		}
		c, err := f(ctx, sys.Name, sys.Settings, connector.Deps{
			Logger:      log.With("system", sys.Name),
			HTTPClient:  &http.Client{Timeout: 30 * time.Second},
			Checkpoints: st,
		})
		if err != nil {
			openErrs = append(openErrs, fmt.Errorf("system %s: %w", sys.Name, err))
			return nil
		}
		conns[sys.Name] = c
		return c
	}
	cfg, err := policy.Load(path, policy.Options{Catalog: func(sys *policy.System) ([]presence.Status, error) {
		c := open(sys)
		if c == nil {
			return nil, nil
		}
		return c.Catalog(ctx)
	}})
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	for _, name := range cfg.SystemNames {
		open(cfg.Systems[name])
	}
	if len(openErrs) > 0 {
		return nil, nil, &exitError{code: 2, err: errors.Join(openErrs...)}
	}
	return cfg, conns, nil
}

// runService runs the engine and the HTTP API until ctx ends.
func runService(ctx context.Context, o serviceOptions) error {
	log := o.logger
	st, err := openStore(ctx, o.storeURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer st.Close()
	cfg, conns, err := openConnectors(ctx, o.configPath, st, log)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector(currentBuild()))
	var systems []server.SystemInfo
	for _, name := range cfg.SystemNames {
		k := cfg.Systems[name].Kind
		systems = append(systems, server.SystemInfo{Name: name, Kind: k, Title: vendorTitle(k)})
	}
	health := newSystemHealth(systems, conns)
	engLog := slog.New(&watchTap{Handler: log.Handler(), health: health})
	eng, err := engine.New(engine.Config{Policy: cfg, Store: st, Connectors: conns, Logger: engLog, Registerer: reg})
	if err != nil {
		return err
	}
	health.eng = eng
	var hub *bridge.Hub
	var bridgeHandler *bridge.Handler
	sopts := server.Options{Engine: eng, Registry: reg, AdminToken: o.adminToken,
		WebhookSecret: o.webhookSecret, Logger: log, Version: version}
	if o.bridgeSecret != "" || len(o.bridgeCerts) > 0 {
		var err error
		if hub, bridgeHandler, err = openBridge(cfg, conns, eng, st, reg, o, log); err != nil {
			return &exitError{code: 2, err: err}
		}
		health.hub, health.bridgeSys = hub, bridgeSystem(cfg)
		sopts.Bridge, sopts.Consoles = bridgeHandler, bridgeHandler.ConsolesHandler()
	} else {
		warnNoBridge(cfg, log)
	}
	sopts.Policy, sopts.Systems, sopts.Health = cfg, systems, health
	srv := server.New(sopts)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return &exitError{code: 2, err: listenError(o.addr, err)}
	}
	url := "http://" + ln.Addr().String()
	if err := o.started(url); err != nil {
		ln.Close()
		return err
	}
	log.Info("serving", "url", url, "systems", strings.Join(cfg.SystemNames, ","), "store", redactURL(o.storeURL))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return eng.Run(gctx) })
	g.Go(func() error { health.follow(gctx); return nil })
	g.Go(func() error { return srv.Serve(gctx, ln) })
	if hub != nil {
		// Closing the hub ends the bridge streams, which would otherwise hold up the shutdown.
		g.Go(func() error {
			<-gctx.Done()
			hub.Close()
			return nil
		})
		g.Go(func() error { return bridgeHandler.Run(gctx) })
	}
	return g.Wait()
}

// openBridge creates the Omni-Channel bridge for the policy's Salesforce system and attaches it
// to that system's connector.
func openBridge(cfg *policy.Config, conns map[string]connector.Connector, eng *engine.Engine, st store.Store,
	reg prometheus.Registerer, o serviceOptions, log *slog.Logger) (*bridge.Hub, *bridge.Handler, error) {
	name := bridgeSystem(cfg)
	if name == "" {
		return nil, nil, fmt.Errorf("the Omni-Channel bridge needs exactly one salesforce system in the policy, not %d", countKind(cfg, salesforce.Kind))
	}
	names := map[string]string{}
	if cat := cfg.Systems[name].Catalog; cat != nil {
		for _, st := range cat.Statuses() {
			names[st.ID] = st.Name
		}
	}
	verifier, err := bridgetoken.NewVerifier(o.bridgeCerts, []byte(o.bridgeSecret))
	if err != nil {
		return nil, nil, err
	}
	if verifier.Dev() {
		log.Warn("DEVELOPMENT MODE: the Omni-Channel bridge accepts tokens signed with a shared secret; " +
			"anyone who can read the secret can act as any agent. In production give serve only the org's certificate " +
			"(--bridge-cert-file) and no --bridge-secret-file or OMNIPRESENCE_BRIDGE_SECRET.")
	}
	now := time.Now()
	for _, c := range o.bridgeCerts {
		switch {
		case now.After(c.NotAfter):
			log.Warn("the bridge certificate has expired; renew it in Salesforce (Certificate and Key Management) and here",
				"subject", c.Subject.CommonName, "not_after", c.NotAfter)
		case now.Add(30 * 24 * time.Hour).After(c.NotAfter):
			log.Warn("the bridge certificate expires within 30 days; renew it in Salesforce and give serve both during the change",
				"subject", c.Subject.CommonName, "not_after", c.NotAfter)
		}
	}
	var afters []time.Duration
	for _, p := range cfg.Policies {
		if d := p.OnDisconnect; d != nil && d.Of == name {
			afters = append(afters, d.After)
		}
	}
	hub := bridge.NewHub(names)
	wake := func(user string) { eng.Wake(context.Background(), name, user) }
	h, err := bridge.NewHandler(bridge.Options{Verifier: verifier, Origins: o.bridgeOrigins, System: name, OnConnect: wake,
		Hub: hub, Ingest: eng.Ingest, DisconnectAfter: afters, Checkpoints: st, Registerer: reg,
		Logger: log.With("component", "bridge")})
	if err != nil {
		return nil, nil, err
	}
	if c, ok := conns[name].(*salesforce.Connector); ok {
		c.AttachBridge(hub)
	}
	log.Info("Omni-Channel bridge on", "system", name, "origins", strings.Join(o.bridgeOrigins, ","),
		"certificates", len(o.bridgeCerts), "development_secret", verifier.Dev())
	return hub, h, nil
}

// listenError explains a failed listen in the user's words: a port in use names --addr.
func listenError(addr string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: the address is already in use (another omnipresence, "+
			"or another program); pick another with --addr HOST:PORT (port 0 picks a free one)", addr)
	}
	if errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("cannot listen on %s: permission denied (ports below 1024 need privileges); "+
			"pick another with --addr HOST:PORT", addr)
	}
	return fmt.Errorf("cannot listen on %s: %w; check --addr HOST:PORT", addr, err)
}

// bridgeSystem is the policy's one Salesforce system, "" when it has none or several.
func bridgeSystem(cfg *policy.Config) string {
	if countKind(cfg, salesforce.Kind) != 1 {
		return ""
	}
	for _, name := range cfg.SystemNames {
		if cfg.Systems[name].Kind == salesforce.Kind {
			return name
		}
	}
	return ""
}

func countKind(cfg *policy.Config, kind string) int {
	n := 0
	for _, name := range cfg.SystemNames {
		if cfg.Systems[name].Kind == kind {
			n++
		}
	}
	return n
}

// warnNoBridge says, at start, that writes to a Salesforce system will wait forever without
// the bridge, and that on_disconnect watching it will never fire.
func warnNoBridge(cfg *policy.Config, log *slog.Logger) {
	for _, name := range cfg.SystemNames {
		if cfg.Systems[name].Kind != salesforce.Kind {
			continue
		}
		log.Warn("the Salesforce system has no Omni-Channel bridge: every status write to it will wait as deferred; "+
			"start serve with --bridge-cert-file and --bridge-origin (bridge/salesforce/README.md)", "system", name)
		for _, p := range cfg.Policies {
			if d := p.OnDisconnect; d != nil && d.Of == name {
				log.Warn("on_disconnect watches the consoles of a Salesforce system without a bridge; it will never fire",
					"policy", p.Name, "system", name)
			}
		}
	}
}

// printJSONLine writes v as one line of JSON.
func printJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// secretFrom reads a secret from a file flag, else from an environment variable.
func secretFrom(file, env string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", &exitError{code: 2, err: err}
		}
		return strings.TrimSpace(string(b)), nil
	}
	return os.Getenv(env), nil
}

// redactURL drops the password of a database URL before it is logged.
func redactURL(u string) string {
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.LastIndex(u, "@"); at > i {
			if colon := strings.Index(u[i+3:at], ":"); colon >= 0 {
				return u[:i+3+colon] + ":<redacted>" + u[at:]
			}
		}
	}
	return u
}
