package e2e

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/connector"
	acconn "github.com/omnipresence/omnipresence/internal/connector/amazonconnect"
	"github.com/omnipresence/omnipresence/internal/connector/fakevendor"
	"github.com/omnipresence/omnipresence/internal/engine"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/presence"
	"github.com/omnipresence/omnipresence/internal/store"
	"github.com/omnipresence/omnipresence/internal/store/memory"
	acsim "github.com/omnipresence/omnipresence/internal/vendorsim/amazonconnect"
)

var (
	connectAgents     = flag.Int("connect.agents", 5000, "agents changing status at once in BenchmarkConnectShiftStart")
	connectWireSecond = flag.Duration("connect.second", 5*time.Millisecond, "how long one second of Connect's quotas lasts in BenchmarkConnectShiftStart")
	connectSamples    = flag.Int("connect.samples", 500, "changes timed one at a time in BenchmarkConnectLatency")
	connectStore      = flag.String("connect.store", "memory", "the engine's store in the Connect benchmarks: memory, or sqlite (a file of the benchmark's own)")
)

// connectRig is the engine between a fake Salesforce and the Amazon Connect simulator, whose
// PutUserStatus calls are timed as they arrive.
type connectRig struct {
	sim      *acsim.Server
	sf       *fakevendor.Connector
	accounts []presence.Account
	mu       sync.Mutex
	puts     map[string]time.Time // Connect user id → arrival of its latest PutUserStatus
	emails   map[string]string    // Connect user id → email
}

func newConnectRig(b *testing.B, n int, cfg acsim.Config, opts acconn.Options) *connectRig {
	b.Helper()
	seed := acsim.DemoSeed()
	seed.Users = nil
	r := &connectRig{puts: map[string]time.Time{}, emails: map[string]string{}}
	for i := 1; i <= n; i++ {
		email := fmt.Sprintf("agent%05d@example.com", i)
		seed.Users = append(seed.Users, acsim.SeedUser{Email: email})
		r.accounts = append(r.accounts, presence.Account{ID: email, Email: email})
	}
	cfg.Seed, cfg.ShardReads = &seed, 1000
	sim, err := acsim.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	r.sim = sim
	for _, u := range sim.Users() {
		r.emails[u.ID] = u.Email
		if err := sim.SetStatus(u.ID, "Break"); err != nil { // logged in, on a break before the shift
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodPut && strings.HasSuffix(req.URL.Path, "/status") {
			parts := strings.Split(req.URL.Path, "/")
			r.mu.Lock()
			r.puts[parts[len(parts)-2]] = time.Now()
			r.mu.Unlock()
		}
		sim.Handler().ServeHTTP(w, req)
	}))
	b.Cleanup(srv.Close)
	info := sim.Info()
	opts.System, opts.Region, opts.InstanceID = "connect", "us-east-1", info["instance_id"].(string)
	opts.Endpoint, opts.KinesisEndpoint, opts.Stream = srv.URL, srv.URL, info["agent_event_stream"].(string)
	opts.AccessKeyID, opts.SecretAccessKey = info["access_key_id"].(string), info["secret_access_key"].(string)
	opts.ShardReads, opts.PollInterval = 1000, 10*time.Millisecond
	ac, err := acconn.New(context.Background(), opts)
	if err != nil {
		b.Fatal(err)
	}
	pol, err := policy.Load("testdata/connect-shift.yaml", policy.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r.sf = fakevendor.New("sf", pol.Systems["sf"].Catalog.Statuses(), r.accounts)
	var st store.Store = memory.New()
	if *connectStore == "sqlite" {
		st = openStore(b, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	}
	eng, err := engine.New(engine.Config{Policy: pol, Store: st,
		Connectors: map[string]connector.Connector{"sf": r.sf, "connect": ac}, WriteTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; _ = st.Close(); _ = sim.Close() })
	for eng.Ready() != nil {
		time.Sleep(5 * time.Millisecond)
	}
	return r
}

// BenchmarkConnectShiftStart: every agent picks AvailableforVoice in Salesforce at once and the
// engine brings the Amazon Connect simulator in sync, one PutUserStatus per agent (Connect has no
// bulk write) within its quota of 2 a second, burst 5, on a scaled clock (-connect.second). It
// reports the time until every agent shows Available in Connect, in Connect seconds and wall
// seconds, next to the least the quota allows (the connector keeps one request of the burst
// back), and the requests Connect refused.
//
//	go test ./internal/e2e -run '^$' -bench ConnectShiftStart -benchtime 1x -args -connect.agents=5000
func BenchmarkConnectShiftStart(b *testing.B) {
	for range b.N {
		b.StopTimer()
		n, second := *connectAgents, *connectWireSecond
		r := newConnectRig(b, n, acsim.Config{WireSecond: second}, acconn.Options{WireSecond: second})
		b.StartTimer()
		start := time.Now()
		for _, a := range r.accounts {
			r.sf.Act(a.ID, "0N5000000000001")
		}
		awaitSynced(b, start, n, 10*time.Millisecond, func() (synced int) {
			for _, u := range r.sim.Users() {
				if u.Status == "Available" {
					synced++
				}
			}
			return synced
		})
		elapsed := time.Since(start)
		b.ReportMetric(float64(elapsed)/float64(second), "connect-s")
		b.ReportMetric(float64(n-4)/2, "bound-s")
		b.ReportMetric(elapsed.Seconds(), "wall-s")
		b.ReportMetric(float64(r.sim.Requests("PutUserStatus")), "puts")
		b.ReportMetric(float64(r.sim.Throttled()), "throttled")
	}
}

// BenchmarkConnectLatency times, one change at a time so that no quota binds, the wall time from
// a Salesforce status change reaching the engine to its PutUserStatus reaching Connect, and
// reports its median and 99th percentile.
//
//	go test ./internal/e2e -run '^$' -bench ConnectLatency -benchtime 1x -args -connect.store=sqlite
func BenchmarkConnectLatency(b *testing.B) {
	for range b.N {
		b.StopTimer()
		n := *connectSamples
		r := newConnectRig(b, n, acsim.Config{RatePerSecond: 1e6, Burst: 1e6, UserDataRate: 1e6, UserDataBurst: 1e6},
			acconn.Options{WriteRate: 1e6, WriteBurst: 1e6, ReadRate: 1e6, ReadBurst: 1e6, UserDataRate: 1e6, UserDataBurst: 1e6})
		ids := map[string]string{}
		for id, email := range r.emails {
			ids[email] = id
		}
		b.StartTimer()
		var lat []time.Duration
		for _, a := range r.accounts {
			id := ids[a.Email]
			r.mu.Lock()
			before := r.puts[id]
			r.mu.Unlock()
			start := time.Now()
			r.sf.Act(a.ID, "0N5000000000001")
			for {
				r.mu.Lock()
				at := r.puts[id]
				r.mu.Unlock()
				if at != before {
					lat = append(lat, at.Sub(start))
					break
				}
				if time.Since(start) > time.Minute {
					b.Fatalf("no PutUserStatus for %s", a.Email)
				}
				time.Sleep(100 * time.Microsecond)
			}
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	}
}
