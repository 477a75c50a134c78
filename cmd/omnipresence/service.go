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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/omnipresence/omnipresence/internal/cluster"
	"github.com/omnipresence/omnipresence/internal/connector"
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
	// retention is how long events and audit records are kept (0: forever; demo keeps its
	// temporary store whole).
	retention time.Duration
	logger    *slog.Logger
	// started is called with the URL actually bound, once the service listens.
	started func(url string) error
	// replicaID names this replica (default: the host name and a random suffix);
	// advertiseURL is the URL other replicas reach it at (default: the URL bound); lease is
	// the leader lease's time. They matter only on a PostgreSQL store.
	replicaID, advertiseURL string
	lease                   time.Duration
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
	return nil, fmt.Errorf("--store %q: use memory:, sqlite:PATH or postgres://…", url)
}

// connectSystems opens the connector of every system the policy gives connection settings,
// without contacting the vendors: errors here are settings only the environment can tell
// (an unset variable, an unreadable key file), and each names its system. Systems without
// settings, or of a kind this build cannot connect, take events only from the webhook, which
// it says when announce is set.
func connectSystems(ctx context.Context, cfg *policy.Config, st store.Store, log *slog.Logger, announce bool) (map[string]connector.Connector, error) {
	conns := map[string]connector.Connector{}
	var errs []error
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		switch {
		case !sys.Connected():
			if !announce {
				continue
			}
			log.Info("the policy gives no connection settings; events for the system come only through the webhook and writes to it wait",
				"system", name, "kind", sys.Kind)
			continue
		case sys.Vendor.Open == nil:
			if !announce {
				continue
			}
			log.Warn("this build has no connector for the kind; events for the system come only through the webhook and writes to it wait",
				"system", name, "kind", sys.Kind)
			continue
		}
		c, err := sys.Vendor.Connect(ctx, name, sys.Settings, connector.Deps{
			Logger:      log.With("system", name),
			HTTPClient:  &http.Client{Timeout: 30 * time.Second},
			Checkpoints: st,
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conns[name] = c
	}
	if len(errs) > 0 {
		closeConnectors(conns, log)
		return nil, &exitError{code: 2, err: errors.Join(errs...)}
	}
	return conns, nil
}

func closeConnectors(conns map[string]connector.Connector, log *slog.Logger) {
	for name, c := range conns {
		if err := c.Close(); err != nil {
			log.Warn("closing the connector", "system", name, "err", err)
		}
	}
}

// runService runs the engine and the HTTP API until ctx ends. The API and the admin UI serve
// from the start; the engine starts once every system's catalog is known (inline, pulled from
// the vendor, or, while the vendor cannot be reached, the one stored at the last start), and
// from then on a system that cannot be reached delays only itself. On PostgreSQL the engine
// runs only while this replica leads (cluster.go).
func runService(ctx context.Context, o serviceOptions) error {
	log := o.logger
	cfg, err := loadPolicy(o.configPath)
	if err != nil {
		return err
	}
	release, err := lockSingleNode(o.storeURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer release()
	st, err := openStore(ctx, o.storeURL)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer st.Close()
	conns, err := connectSystems(ctx, cfg, st, log, true)
	if err != nil {
		return err
	}
	defer closeConnectors(conns, log)
	var bridgeSystem string
	var verifier *bridgetoken.Verifier
	var bridgeHandler, consolesHandler *lateHandler
	if o.bridgeSecret != "" || len(o.bridgeCerts) > 0 {
		if bridgeSystem, err = bridgedSystem(cfg, conns); err != nil {
			return &exitError{code: 2, err: err}
		}
		if verifier, err = bridgeVerifier(o, log); err != nil {
			return &exitError{code: 2, err: err}
		}
		bridgeHandler, consolesHandler = &lateHandler{}, &lateHandler{}
		log.Info("Omni-Channel bridge on", "system", bridgeSystem, "origins", strings.Join(o.bridgeOrigins, ","),
			"certificates", len(o.bridgeCerts), "development_secret", verifier.Dev())
	} else {
		warnNoBridge(cfg, conns, log)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfoCollector(currentBuild()))
	pg, _ := st.(*postgres.Store)
	id := o.replicaID
	if id == "" {
		id = replicaID()
	}
	rs := newReplicaSet(pg, id, o.lease, o.adminToken, log, reg)
	var systems []server.SystemInfo
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		systems = append(systems, server.SystemInfo{Name: name, Kind: sys.Kind, Title: sys.Vendor.Title})
	}
	svc := newServiceEngine(cfg, conns)
	health := newSystemHealth(systems, conns, svc)
	opts := server.Options{Engine: svc, Registry: reg, AdminToken: o.adminToken,
		WebhookSecret: o.webhookSecret, Logger: log, Version: version,
		Policy: cfg, Systems: systems, Health: health, Cluster: rs}
	if bridgeHandler != nil {
		opts.Bridge, opts.Consoles = bridgeHandler, consolesHandler
	}
	srv := server.New(opts)
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return &exitError{code: 2, err: listenError(o.addr, err)}
	}
	url := "http://" + ln.Addr().String()
	rs.setAddr(url)
	if o.advertiseURL != "" {
		rs.setAddr(o.advertiseURL)
	}
	if err := o.started(url); err != nil {
		ln.Close()
		return err
	}
	log.Info("serving", "url", url, "systems", strings.Join(cfg.SystemNames, ","), "store", redactURL(o.storeURL))
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Serve(gctx, ln) })
	g.Go(func() error {
		full, err := withCatalogs(gctx, cfg, o.configPath, conns, st, log, svc)
		if err != nil || gctx.Err() != nil {
			return err
		}
		srv.SetPolicy(full)
		withAccountTeams(gctx, full, conns, log)
		l := &leader{cfg: cfg, full: full, bridgeSystem: bridgeSystem, verifier: verifier, bridge: bridgeHandler,
			consoles: consolesHandler, health: health, svc: svc, o: o, log: log, history: st}
		if !rs.clustered() {
			rs.leading.Store(true)
			return l.run(gctx, st, conns, reg)
		}
		log.Info("replica of a PostgreSQL store: campaigning for the lead", "replica", rs.id, "lease", rs.ttl,
			"advertise", rs.url())
		svc.follow(&storeViews{cfg: full, st: st}, rs)
		if bridgeHandler != nil {
			fb, err := followerBridge(bridgeSystem, verifier, rs, o, log)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			bridgeHandler.set(fb)
			consolesHandler.set(rs.toLeader())
		}
		g.Go(func() error { return rs.heartbeat(gctx) })
		g.Go(func() error { return rs.watchLeader(gctx) })
		return cluster.Run(gctx, cluster.Options{ID: rs.id, TTL: rs.ttl, Lease: pg, Logger: log,
			Fatal: func(err error) bool { var ee *exitError; return errors.As(err, &ee) },
			Lead:  func(ctx context.Context, epoch int64) error { return l.term(ctx, rs, pg, epoch, reg) },
		})
	})
	return g.Wait()
}

// leader runs the engine, the vendor watchers and the bridge's command hub.
type leader struct {
	cfg, full        *policy.Config
	bridgeSystem     string
	verifier         *bridgetoken.Verifier
	bridge, consoles *lateHandler
	health           *systemHealth
	svc              *serviceEngine
	o                serviceOptions
	log              *slog.Logger
	// history is the store whose old events and audit the leader prunes (the store itself,
	// not a term's fenced view, which pruning needs no fence for).
	history store.Store
}

// run runs the engine on st with conns until ctx ends.
func (l *leader) run(ctx context.Context, st store.Store, conns map[string]connector.Connector, reg prometheus.Registerer) error {
	eng, err := engine.New(engine.Config{Policy: l.full, Store: st, Connectors: conns, Logger: l.log, Registerer: reg})
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if l.bridge != nil {
		hub, h, err := openBridge(l.full, l.bridgeSystem, conns[l.bridgeSystem], l.verifier, eng, st, reg, l.o, l.log)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		l.bridge.set(h)
		l.consoles.set(h.ConsolesHandler())
		l.health.setBridge(hub, l.bridgeSystem)
		// Closing the hub ends the bridge streams, which would otherwise hold up the shutdown.
		g.Go(func() error { <-gctx.Done(); hub.Close(); return nil })
		// The handler watches the agents' consoles (on_disconnect) until the service stops.
		g.Go(func() error { return h.Run(gctx) })
	}
	// One replica prunes: the one that leads.
	g.Go(func() error {
		store.RunRetention(gctx, l.history, l.o.retention, pruneInterval(l.o.retention), time.Now, l.log)
		return nil
	})
	l.svc.set(eng)
	defer l.svc.unset(eng)
	g.Go(func() error { return eng.Run(gctx) })
	return g.Wait()
}

// term leads for one epoch: the engine writes through the store fenced by the epoch, with
// connectors of its own; other replicas' inbox events are applied. When it ends, this replica
// serves as a follower again.
func (l *leader) term(ctx context.Context, rs *replicaSet, pg *postgres.Store, epoch int64, reg *prometheus.Registry) error {
	start := time.Now()
	rs.terms.Inc()
	rs.epoch.Store(epoch)
	ctx, lost := context.WithCancel(ctx)
	defer lost()
	// A transaction of this leader left idle (the process paused inside it) holds up a
	// takeover until the server ends it.
	fenced := &fencedTerm{Store: pg.Fenced(epoch, max(rs.ttl/2, 500*time.Millisecond)), lost: func() {
		l.log.Warn("stepping down: a write was fenced, another replica took the lease over", "replica", rs.id, "epoch", epoch)
		lost()
	}}
	conns, err := connectSystems(ctx, l.cfg, fenced, l.log, false)
	if err != nil {
		return err
	}
	defer closeConnectors(conns, l.log)
	treg := &termRegisterer{reg: reg}
	defer treg.drop()
	defer rs.leading.Store(false)
	var wg sync.WaitGroup
	defer wg.Wait()
	ictx, stopInbox := context.WithCancel(ctx)
	defer stopInbox()
	wg.Add(1)
	go func() {
		defer wg.Done()
		// This replica leads from the moment its engine serves.
		for ictx.Err() == nil && l.svc.engine() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		if ictx.Err() != nil {
			return
		}
		rs.leading.Store(true)
		rs.startup.Set(time.Since(start).Seconds())
		l.log.Info("leading: the engine runs", "replica", rs.id, "epoch", epoch, "took", time.Since(start).Round(time.Millisecond))
		rs.drainInbox(ictx, func(ctx context.Context, ev presence.Event) error {
			if e := l.svc.engine(); e != nil {
				return e.Ingest(ctx, ev)
			}
			return engine.ErrStopped
		})
	}()
	err = l.run(ctx, fenced, conns, treg)
	if l.bridge != nil {
		// Back to a follower's bridge: events to the inbox, streams to the next leader.
		fb, ferr := followerBridge(l.bridgeSystem, l.verifier, rs, l.o, l.log)
		if ferr == nil {
			l.bridge.set(fb)
			l.consoles.set(rs.toLeader())
		}
		l.health.setBridge(nil, l.bridgeSystem)
	}
	return err
}

// followerBridge serves the bridge on a replica that does not lead: the events a console
// reports go to the inbox, durably, for the leader; its command stream, acks and heartbeats
// go to the leader, whose hub holds the commands.
func followerBridge(name string, verifier *bridgetoken.Verifier, rs *replicaSet, o serviceOptions, log *slog.Logger) (http.Handler, error) {
	h, err := bridge.NewHandler(bridge.Options{Verifier: verifier, Origins: o.bridgeOrigins, System: name,
		Hub: bridge.NewHub(nil), Ingest: rs.toInbox, Logger: log.With("component", "bridge")})
	if err != nil {
		return nil, err
	}
	proxy := rs.toLeader()
	events := bridge.Prefix + "events"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == events {
			h.ServeHTTP(w, r)
			return
		}
		proxy.ServeHTTP(w, r)
	}), nil
}

// pruneInterval is how often history older than the retention is pruned: a hundredth of the
// retention, between a minute and an hour.
func pruneInterval(retention time.Duration) time.Duration {
	return min(max(retention/100, time.Minute), time.Hour)
}

// bridgedSystem is the one system whose connector takes its writes through a browser bridge.
func bridgedSystem(cfg *policy.Config, conns map[string]connector.Connector) (string, error) {
	var systems []string
	for _, name := range cfg.SystemNames {
		if _, ok := conns[name].(connector.BridgeAttacher); ok {
			systems = append(systems, name)
		}
	}
	if len(systems) != 1 {
		return "", fmt.Errorf("the Omni-Channel bridge needs exactly one connected system that writes through a browser bridge (kind salesforce), not %d", len(systems))
	}
	return systems[0], nil
}

// bridgeVerifier is what checks the bridge's tokens: the org's certificates, or in development
// mode a shared secret. It warns about what is unsafe or soon to expire.
func bridgeVerifier(o serviceOptions, log *slog.Logger) (*bridgetoken.Verifier, error) {
	verifier, err := bridgetoken.NewVerifier(o.bridgeCerts, []byte(o.bridgeSecret))
	if err != nil {
		return nil, err
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
	return verifier, nil
}

// openBridge creates the Omni-Channel bridge for the system and attaches it to the system's
// connector.
func openBridge(cfg *policy.Config, name string, c connector.Connector, verifier *bridgetoken.Verifier, eng *engine.Engine,
	st store.Store, reg prometheus.Registerer, o serviceOptions, log *slog.Logger) (*bridge.Hub, *bridge.Handler, error) {
	names := map[string]string{}
	if cat := cfg.Systems[name].Catalog; cat != nil {
		for _, st := range cat.Statuses() {
			names[st.ID] = st.Name
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
	c.(connector.BridgeAttacher).AttachBridge(hub)
	return hub, h, nil
}

// warnNoBridge says, at start, that writes to a system that writes through a browser bridge
// will wait forever without one, and that on_disconnect watching it will never fire.
func warnNoBridge(cfg *policy.Config, conns map[string]connector.Connector, log *slog.Logger) {
	for _, name := range cfg.SystemNames {
		if _, ok := conns[name].(connector.BridgeAttacher); !ok {
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

// lateHandler serves with a handler set once it exists, and 503 until then.
type lateHandler struct {
	h atomic.Pointer[http.Handler]
}

func (l *lateHandler) set(h http.Handler) { l.h.Store(&h) }

func (l *lateHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := l.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	w.Header().Set("Retry-After", "5")
	http.Error(w, "the service is starting", http.StatusServiceUnavailable)
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
