package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/postgres"
)

// Replicas on one PostgreSQL database (docs/operations.md, "Replicas"): they elect a leader
// through the database's lease (internal/cluster); the leader runs the engine and the vendor
// watchers and writes through a store fenced by its epoch. Every replica serves the API and
// the console, reading agents from the database. A replica that does not lead stores webhook
// and bridge events in the database's inbox, which the leader drains: an event is then
// accepted, durably, even while no replica leads (during a takeover), and no replica needs to
// reach another to accept one. The bridge's command streams and acks, which live in the
// leader's memory, are proxied to the leader: a browser reaching any replica gets its commands.
// Proxying rather than fanning commands out through LISTEN/NOTIFY keeps the hub's one owner
// (pending commands, a newer one superseding an older, the ack reaching the write that waits
// for it) as it is; a proxied stream ends when another replica leads, and the bridge then
// reconnects, to the new leader.

// defaultLease is the lease's time: a leader that stops renewing is replaced within it.
const defaultLease = 15 * time.Second

// inboxPoll is how often the leader looks for events the other replicas accepted.
const inboxPoll = 200 * time.Millisecond

// replicaID names this process among the replicas: the host name and a random suffix, so
// that a restarted replica is a new one.
func replicaID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "replica"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// replicaSet is this replica's view of the others, and what it does for them.
type replicaSet struct {
	pg  *postgres.Store // nil for a single SQLite or memory process
	id  string
	ttl time.Duration
	log *slog.Logger
	// addr is the URL the other replicas reach this one at.
	addr atomic.Pointer[string]
	// adminToken and client make admin actions on the leader.
	adminToken string
	client     *http.Client

	leading atomic.Bool
	epoch   atomic.Int64

	terms   prometheus.Counter
	applied prometheus.Counter
	startup prometheus.Gauge

	mu       sync.Mutex
	cachedAt time.Time
	cached   postgres.Lease
	// proxied are the requests proxied to a leader, which end when another replica leads:
	// a command stream must not wait on a leader that was paused or cut off.
	proxied map[*proxiedRequest]struct{}
}

type proxiedRequest struct {
	leader string
	cancel context.CancelFunc
}

func newReplicaSet(pg *postgres.Store, id string, ttl time.Duration, adminToken string, log *slog.Logger,
	reg prometheus.Registerer) *replicaSet {
	r := &replicaSet{pg: pg, id: id, ttl: ttl, log: log, adminToken: adminToken, client: &http.Client{Timeout: time.Minute},
		terms: prometheus.NewCounter(prometheus.CounterOpts{Name: "omnipresence_cluster_terms_total",
			Help: "Times this replica took the lead."}),
		applied: prometheus.NewCounter(prometheus.CounterOpts{Name: "omnipresence_cluster_inbox_applied_total",
			Help: "Events other replicas accepted that this replica applied as leader."}),
		startup: prometheus.NewGauge(prometheus.GaugeOpts{Name: "omnipresence_cluster_last_start_seconds",
			Help: "Seconds from taking the lease to the engine running, at this replica's last takeover."}),
	}
	reg.MustRegister(r.terms, r.applied, r.startup,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "omnipresence_cluster_leader",
			Help: "1 while this replica leads (runs the engine and the vendor watchers), else 0."}, func() float64 {
			if r.leading.Load() {
				return 1
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "omnipresence_cluster_epoch",
			Help: "The fencing epoch of this replica's current or last term as leader."}, func() float64 {
			return float64(r.epoch.Load())
		}))
	return r
}

// clustered reports whether replicas share the store.
func (r *replicaSet) clustered() bool { return r.pg != nil }

// setAddr records the URL this replica serves at.
func (r *replicaSet) setAddr(u string) { r.addr.Store(&u) }

func (r *replicaSet) url() string {
	if p := r.addr.Load(); p != nil {
		return *p
	}
	return ""
}

// heartbeat tells the database that this replica is alive until ctx ends, then removes it
// from the list.
func (r *replicaSet) heartbeat(ctx context.Context) error {
	failing := false
	for {
		hctx, cancel := context.WithTimeout(ctx, r.ttl)
		err := r.pg.Heartbeat(hctx, r.id, r.url())
		cancel()
		if err != nil && ctx.Err() == nil && !failing {
			r.log.Warn("cannot tell the database this replica is alive; retrying", "err", err)
		}
		failing = err != nil
		t := time.NewTimer(r.ttl / 3)
		select {
		case <-ctx.Done():
			t.Stop()
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = r.pg.Forget(fctx, r.id)
			cancel()
			return nil
		case <-t.C:
		}
	}
}

// lease returns the lease, read at most every TTL/8.
func (r *replicaSet) lease(ctx context.Context) (postgres.Lease, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.cachedAt) < r.ttl/8 {
		return r.cached, nil
	}
	l, err := r.pg.CurrentLease(ctx)
	if err != nil {
		return postgres.Lease{}, err
	}
	r.cached, r.cachedAt = l, time.Now()
	return l, nil
}

// clusterView is the body of GET /api/v1/cluster (CONTRACTS.md).
type clusterView struct {
	Replica  string        `json:"replica"`
	Leader   string        `json:"leader"`
	Epoch    int64         `json:"epoch"`
	Replicas []replicaView `json:"replicas"`
}

type replicaView struct {
	ID       string    `json:"id"`
	Addr     string    `json:"addr"`
	LastSeen time.Time `json:"last_seen"`
}

// ServeHTTP answers GET /api/v1/cluster.
func (r *replicaSet) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	v := clusterView{Replica: r.id, Replicas: []replicaView{}}
	if !r.clustered() {
		v.Leader = r.id
		v.Replicas = append(v.Replicas, replicaView{ID: r.id, Addr: r.url(), LastSeen: time.Now().UTC()})
	} else {
		l, err := r.pg.CurrentLease(req.Context())
		if err != nil {
			writeJSONStatus(w, http.StatusServiceUnavailable, map[string]string{"error": "reading the lease failed", "detail": err.Error()})
			return
		}
		v.Leader, v.Epoch = l.Holder, l.Epoch
		reps, err := r.pg.Replicas(req.Context(), 3*r.ttl)
		if err != nil {
			writeJSONStatus(w, http.StatusServiceUnavailable, map[string]string{"error": "reading the replicas failed", "detail": err.Error()})
			return
		}
		for _, rep := range reps {
			v.Replicas = append(v.Replicas, replicaView{ID: rep.ID, Addr: rep.Addr, LastSeen: rep.LastSeen})
		}
	}
	writeJSONStatus(w, http.StatusOK, v)
}

func writeJSONStatus(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// toLeader proxies a request to the leader, or answers 503 while no other replica leads.
func (r *replicaSet) toLeader() http.Handler {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target, _ := url.Parse(pr.In.Context().Value(leaderKey{}).(string))
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		// Command streams are Server-Sent Events: every write goes out at once.
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			r.log.Debug("proxying to the leader failed", "err", err)
			unavailable(w, "the leader cannot be reached; try again")
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		l, err := r.lease(req.Context())
		if err != nil || l.Holder == "" || l.Holder == r.id || l.Addr == "" {
			unavailable(w, "no replica leads at the moment (a takeover is under way); try again")
			return
		}
		ctx, cancel := context.WithCancel(context.WithValue(req.Context(), leaderKey{}, l.Addr))
		defer cancel()
		p := &proxiedRequest{leader: l.Holder, cancel: cancel}
		r.mu.Lock()
		if r.proxied == nil {
			r.proxied = map[*proxiedRequest]struct{}{}
		}
		r.proxied[p] = struct{}{}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			delete(r.proxied, p)
			r.mu.Unlock()
		}()
		rp.ServeHTTP(w, req.WithContext(ctx))
	})
}

// watchLeader ends, until ctx ends, the proxied requests of a leader that no longer leads.
func (r *replicaSet) watchLeader(ctx context.Context) error {
	for pause.For(ctx, r.ttl/4) {
		lctx, cancel := context.WithTimeout(ctx, r.ttl)
		l, err := r.pg.CurrentLease(lctx)
		cancel()
		if err != nil {
			continue
		}
		r.mu.Lock()
		for p := range r.proxied {
			if p.leader != l.Holder {
				p.cancel()
				delete(r.proxied, p)
			}
		}
		r.mu.Unlock()
	}
	return nil
}

// sleep waits d, reporting false when ctx ends first.

type leaderKey struct{}

func unavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Retry-After", "1")
	writeJSONStatus(w, http.StatusServiceUnavailable, map[string]string{"error": msg})
}

// forward makes an admin action (retry, resync) on the leader's API and decodes its answer
// into out; the answer's status comes back with it.
func (r *replicaSet) forward(ctx context.Context, path string, out any) (int, error) {
	l, err := r.lease(ctx)
	if err != nil {
		return 0, err
	}
	if l.Holder == "" || l.Holder == r.id || l.Addr == "" {
		return 0, errors.New("no replica leads at the moment (a takeover is under way); try again")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(l.Addr, "/")+path, nil)
	if err != nil {
		return 0, err
	}
	if r.adminToken != "" {
		req.Header.Set("Authorization", "Bearer "+r.adminToken)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("asking the leader %s: %w", l.Holder, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("asking the leader %s: %w", l.Holder, err)
	}
	if resp.StatusCode == http.StatusNotFound {
		return resp.StatusCode, engine.ErrUnknownAgent
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusBadGateway {
		return resp.StatusCode, fmt.Errorf("the leader %s answered %s: %s", l.Holder, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return resp.StatusCode, fmt.Errorf("the leader %s answered: %w", l.Holder, err)
	}
	return resp.StatusCode, nil
}

// retry makes the leader retry an agent's write.
func (r *replicaSet) retry(ctx context.Context, email, system string) (bool, error) {
	var res struct {
		Retried bool `json:"retried"`
	}
	_, err := r.forward(ctx, "/api/v1/agents/"+url.PathEscape(email)+"/systems/"+url.PathEscape(system)+"/retry", &res)
	return res.Retried, err
}

// resync makes the leader read what every system shows for the agent.
func (r *replicaSet) resync(ctx context.Context, email string) ([]string, error) {
	var res struct {
		Read   []string `json:"read"`
		Detail string   `json:"detail"`
	}
	code, err := r.forward(ctx, "/api/v1/agents/"+url.PathEscape(email)+"/resync", &res)
	if err == nil && code == http.StatusBadGateway {
		err = errors.New(res.Detail)
	}
	return res.Read, err
}

// toInbox stores an event for the leader.
func (r *replicaSet) toInbox(ctx context.Context, ev presence.Event) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encoding the event: %w", err)
	}
	return r.pg.PutInbox(ctx, b)
}

// drainInbox applies, while ctx lasts, the events the other replicas accepted, oldest first.
// An event is deleted only once ingest committed it; one applied again after a crash between
// the two is a duplicate the engine drops by its dedupe key.
func (r *replicaSet) drainInbox(ctx context.Context, ingest func(context.Context, presence.Event) error) {
	t := time.NewTicker(inboxPoll)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			items, err := r.pg.Inbox(ctx, 256)
			if err != nil {
				if ctx.Err() == nil {
					r.log.Warn("reading the inbox failed; retrying", "err", err)
				}
				break
			}
			if len(items) == 0 {
				break
			}
			done := make([]int64, 0, len(items))
			for _, it := range items {
				var ev presence.Event
				if err := json.Unmarshal(it.Body, &ev); err != nil {
					r.log.Error("dropping an undecodable inbox event", "seq", it.Seq, "err", err)
					done = append(done, it.Seq)
					continue
				}
				if err := ingest(ctx, ev); err != nil {
					if ctx.Err() == nil {
						r.log.Warn("applying an inbox event failed; retrying", "seq", it.Seq, "err", err)
					}
					break
				}
				done = append(done, it.Seq)
				r.applied.Inc()
			}
			if len(done) > 0 {
				if err := r.pg.DeleteInbox(context.WithoutCancel(ctx), done); err != nil {
					r.log.Warn("deleting applied inbox events failed; they will be applied again, as duplicates", "err", err)
				}
			}
			if len(done) < len(items) {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// storeViews serves agents from the database on a replica that does not lead, from a machine
// restored from the store at most every half second.
type storeViews struct {
	cfg *policy.Config
	st  store.Store

	mu sync.Mutex
	at time.Time
	m  *engine.Machine
}

func (v *storeViews) machine(ctx context.Context) (*engine.Machine, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m != nil && time.Since(v.at) < 500*time.Millisecond {
		return v.m, nil
	}
	m := engine.NewMachine(v.cfg, engine.Options{})
	if _, err := m.Restore(ctx, v.st); err != nil {
		return nil, err
	}
	v.m, v.at = m, time.Now()
	return m, nil
}

// agent returns one agent's view, restored from its row alone.
func (v *storeViews) agent(ctx context.Context, key string) (engine.AgentView, bool, error) {
	m := engine.NewMachine(v.cfg, engine.Options{})
	if _, err := m.Restore(ctx, oneAgent{Store: v.st, key: key}); err != nil {
		return engine.AgentView{}, false, err
	}
	view, ok := m.View(key)
	return view, ok, nil
}

// oneAgent is a store whose agents are the one of key.
type oneAgent struct {
	store.Store
	key string
}

// Agents implements store.Store.
func (o oneAgent) Agents(ctx context.Context) ([]store.Agent, error) {
	a, ok, err := o.Store.Agent(ctx, o.key)
	if err != nil || !ok {
		return nil, err
	}
	return []store.Agent{a}, nil
}

// termRegisterer registers a term's metrics, replacing those of an earlier term, and drops
// them when the term ends.
type termRegisterer struct {
	reg *prometheus.Registry

	mu  sync.Mutex
	got []prometheus.Collector
}

// Register implements prometheus.Registerer.
func (t *termRegisterer) Register(c prometheus.Collector) error {
	err := t.reg.Register(c)
	if are, ok := err.(prometheus.AlreadyRegisteredError); ok {
		t.reg.Unregister(are.ExistingCollector)
		err = t.reg.Register(c)
	}
	if err == nil {
		t.mu.Lock()
		t.got = append(t.got, c)
		t.mu.Unlock()
	}
	return err
}

// MustRegister implements prometheus.Registerer.
func (t *termRegisterer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := t.Register(c); err != nil {
			panic(err)
		}
	}
}

// Unregister implements prometheus.Registerer.
func (t *termRegisterer) Unregister(c prometheus.Collector) bool { return t.reg.Unregister(c) }

// drop unregisters what the term registered.
func (t *termRegisterer) drop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.got {
		t.reg.Unregister(c)
	}
	t.got = nil
}

// fencedTerm is the leader's store for one term: a write that fails because another replica
// took the lease over ends the term at once, rather than at the next renewal.
type fencedTerm struct {
	store.Store
	once sync.Once
	lost func()
}

func (f *fencedTerm) check(err error) error {
	if postgres.IsFenced(err) {
		f.once.Do(f.lost)
	}
	return err
}

// Update implements store.Store.
func (f *fencedTerm) Update(ctx context.Context, fn func(store.Tx) error) error {
	return f.check(f.Store.Update(ctx, fn))
}

// SetCheckpoint implements store.Store.
func (f *fencedTerm) SetCheckpoint(ctx context.Context, name, value string) error {
	return f.check(f.Store.SetCheckpoint(ctx, name, value))
}
