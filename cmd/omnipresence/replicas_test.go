package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/pause"
	"github.com/omnipresence/omnipresence/internal/server"
	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

var (
	replicaKills = flag.Int("replicas.kills", 3, "TestReplicasSurviveFaults: how many times the leader is killed (SIGKILL)")
	restartPG    = flag.Bool("replicas.restart-postgres", false,
		"TestReplicasSurviveFaults: restart the PostgreSQL server (pg_ctlcluster, as root) instead of terminating the replicas' connections; "+
			"it interrupts every other user of the server")
)

// The replicas' lease in the fault test: short, so that takeovers are quick.
const testLease = time.Second

// TestReplicasSurviveFaults runs three serve replicas on one PostgreSQL schema against the
// Salesforce and Genesys simulators, with steady traffic from both vendors (people changing
// their status; Salesforce writes go through headless consoles' bridges that reach the replicas
// through a load balancer) and from the webhook (posted to any replica). It kills the leader
// with SIGKILL several times, stops one with SIGSTOP past its lease, and cuts every database
// connection (or, with -replicas.restart-postgres, restarts the server). Then: every webhook
// event a replica accepted is stored exactly once and applied, the inbox is empty, every agent
// converged in both vendors as the policy says, and the takeover times are logged.
func TestReplicasSurviveFaults(t *testing.T) {
	storeURL := pgtest.FreshSchema(t) + "&application_name=omnireplicas"
	const secret = "replica-test-bridge-secret"
	signer, err := bridgetoken.NewDevSigner([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	s := startSimsWith(t, sfsim.Config{BridgeSigner: signer}, gcsim.Config{}, true)
	sf, gc := s.sf, s.gc
	gcWrites := countGenesysWrites(t, gc.Info()["url"].(string))
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "bridge-secret")
	webhookFile := filepath.Join(dir, "webhook-secret")
	for f, v := range map[string]string{secretFile: secret, webhookFile: "hook-secret"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policyPath := writePolicy(t, s.systemsYAML(gcWrites.url)+`  wh:
    kind: genesys
    catalog:
      - {id: w1, name: Ready, category: available}
      - {id: w2, name: Away, category: away}
    accounts:
      - {id: hook-agent, email: hook@example.com}
`+mapOffline)
	lb := newBalancer(t)
	env := []string{"TEST_SF_SECRET=demo-secret", "TEST_GC_SECRET=demo-secret"}
	args := []string{"--store", storeURL, "--lease", testLease.String(), "--bridge-secret-file", secretFile,
		"--bridge-origin", sf.ConsoleOrigin(), "--webhook-secret-file", webhookFile}
	reps := make([]*replicaProc, 3)
	for i := range reps {
		reps[i] = startReplica(t, fmt.Sprintf("r%d", i+1), env, policyPath, args)
		lb.add(reps[i])
	}
	t.Cleanup(func() {
		for _, r := range reps {
			r.stop()
		}
	})
	first := waitLeader(t, reps, 0, 60*time.Second)
	t.Logf("%s leads at epoch %d", first.leader.name, first.epoch)

	// Agents: the first half change status in Salesforce, the second half in Genesys.
	var agents []string
	for _, u := range gc.Users()[:10] {
		if _, err := sf.UserID(u.Email); err == nil {
			agents = append(agents, u.Email)
		}
	}
	sfDriven, gcDriven := agents[:len(agents)/2], agents[len(agents)/2:]
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wait, err := sf.StartHeadlessConsoles(ctx, sfsim.HeadlessOptions{Service: lb.url, Users: agents})
	if err != nil {
		t.Fatal(err)
	}
	defer wait()
	defer cancel()

	traffic := newTraffic(s, lb, sfDriven, gcDriven)
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var trafficWG sync.WaitGroup
	trafficWG.Add(2)
	go func() { defer trafficWG.Done(); traffic.vendors(trafficCtx) }()
	go func() { defer trafficWG.Done(); traffic.webhooks(trafficCtx) }()

	var takeovers []time.Duration // after SIGKILL
	epoch := first.epoch
	steady := func() { time.Sleep(1500 * time.Millisecond) }
	// takeOver waits for the leader, takes it out of the balancer and does act to it; it logs
	// and returns how long another replica took to lead.
	takeOver := func(what, done string, act func(*replicaProc)) (cur leaderAt, d time.Duration) {
		steady()
		cur = waitLeader(t, reps, epoch-1, 30*time.Second)
		lb.remove(cur.leader)
		at := time.Now()
		act(cur.leader)
		next := waitLeader(t, reps, cur.epoch, 30*time.Second)
		d = time.Since(at)
		t.Logf("%s: %s (epoch %d) %s; %s leads at epoch %d after %v", what, cur.leader.name, cur.epoch, done,
			next.leader.name, next.epoch, d.Round(time.Millisecond))
		epoch = next.epoch
		return cur, d
	}
	// replace starts a new replica in the place of r.
	replace := func(r *replicaProc) {
		idx := slices.Index(reps, r)
		reps[idx] = startReplica(t, r.name+"b", env, policyPath, args)
		lb.add(reps[idx])
	}

	// The leader dies, again and again.
	for i := range *replicaKills {
		cur, d := takeOver(fmt.Sprintf("kill %d", i+1), "killed", (*replicaProc).kill)
		takeovers = append(takeovers, d)
		replace(cur.leader)
	}

	// A rolling update stops the leader cleanly: it gives the lease up, and another replica
	// takes over without waiting for the lease to expire.
	cur, cleanStop := takeOver("clean stop", "stopped", (*replicaProc).stop)
	replace(cur.leader)

	// The leader is paused past its lease: another takes over; resumed, it steps down and
	// its writes are fenced.
	cur, pause := takeOver("pause", "stopped", func(r *replicaProc) { r.signal(syscall.SIGSTOP) })
	time.Sleep(testLease)
	cur.leader.signal(syscall.SIGCONT)
	waitFor(t, 10*time.Second, cur.leader.name+" steps down after its pause", func() bool {
		return strings.Contains(cur.leader.log(), "stepping down") && cur.leader.metric("omnipresence_cluster_leader") == 0
	})
	t.Logf("%s after its pause:\n%s", cur.leader.name, grepLines(cur.leader.log(), "stepping down"))
	lb.add(cur.leader)

	// The database goes away under every replica.
	steady()
	cur = waitLeader(t, reps, epoch-1, 30*time.Second)
	cut := time.Now()
	if *restartPG {
		// The first cluster pg_lsclusters lists: version and name.
		ls, err := exec.Command("pg_lsclusters", "-h").Output()
		f := strings.Fields(string(ls))
		if err != nil || len(f) < 2 {
			t.Fatalf("-replicas.restart-postgres needs pg_lsclusters: %v %q", err, ls)
		}
		out, err := exec.Command("pg_ctlcluster", f[0], f[1], "restart").CombinedOutput()
		if err != nil {
			t.Fatalf("pg_ctlcluster restart: %v\n%s", err, out)
		}
		t.Logf("PostgreSQL restarted in %v", time.Since(cut).Round(time.Millisecond))
	} else {
		n := terminateBackends(t, "omnireplicas")
		t.Logf("terminated the replicas' %d database connections (-replicas.restart-postgres restarts the server instead)", n)
	}
	after := waitLeader(t, reps, 0, 30*time.Second)
	if after.epoch != cur.epoch {
		t.Logf("database cut: %s leads at epoch %d, %v after the cut began", after.leader.name, after.epoch,
			time.Since(cut).Round(time.Millisecond))
	} else {
		t.Logf("database cut: %s kept the lead (epoch %d)", after.leader.name, after.epoch)
	}
	steady()
	stopTraffic()
	trafficWG.Wait()

	// Everything converges: the vendors agree as the policy maps, the inbox is applied, and
	// every accepted webhook event is stored once.
	want := traffic.expected()
	deadline := time.Now().Add(45 * time.Second)
	for bad := traffic.diverged(want); len(bad) > 0; bad = traffic.diverged(want) {
		if time.Now().After(deadline) {
			l := waitLeader(t, reps, 0, 10*time.Second)
			for a := range want {
				for _, path := range []string{"/api/v1/agents/" + a, "/api/v1/agents/" + a + "/explain?limit=40"} {
					if resp, err := client.Get(l.leader.url + path); err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if strings.Contains(strings.Join(bad, ";"), a+":") {
							t.Logf("%s%s:\n%s", l.leader.name, path, b)
						}
					}
				}
			}
			t.Fatalf("not converged: %s", strings.Join(bad, "; "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Every replica, leader or not, serves the agents as the vendors show them.
	for _, r := range reps {
		waitFor(t, 10*time.Second, r.name+" to serve every agent as converged", func() bool {
			for a, w := range want {
				resp, err := client.Get(r.url + "/api/v1/agents/" + a)
				if err != nil {
					return false
				}
				var v struct {
					Systems map[string]struct{ Observed string }
				}
				err = json.NewDecoder(resp.Body).Decode(&v)
				resp.Body.Close()
				if err != nil || v.Systems["sf"].Observed != w[0] || v.Systems["gc"].Observed != w[1] {
					return false
				}
			}
			return true
		})
	}
	// An admin's resync works through any replica: one that does not lead asks the leader.
	for _, r := range reps {
		resp, err := client.Post(r.url+"/api/v1/agents/"+agents[0]+"/resync", "application/json", nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"gc"`) || !strings.Contains(string(b), `"sf"`) {
			t.Errorf("resync through %s: %s %s", r.name, resp.Status, b)
		}
	}
	conn, err := pgx.Connect(context.Background(), storeURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	waitFor(t, 10*time.Second, "the inbox to be applied", func() bool {
		var n int
		return conn.QueryRow(context.Background(), `SELECT count(*) FROM inbox`).Scan(&n) == nil && n == 0
	})
	accepted := traffic.acceptedHooks()
	lost := 0
	for _, id := range accepted {
		var n int
		if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE dedupe_key = $1`, "wh:"+id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			lost++
		}
	}
	if lost > 0 || len(accepted) == 0 {
		t.Errorf("of %d accepted webhook events, %d are not stored", len(accepted), lost)
	}
	// No change is applied twice: Genesys is written at most once per Salesforce change, but
	// for one write per agent that a takeover may send again (the old leader's last write,
	// whose answer it never stored).
	writes := gcWrites.byEmail(gc)
	total, made := 0, 0
	for _, a := range sfDriven {
		n, changed := writes[a], traffic.transitions(a)
		total, made = total+n, made+changed
		if slack := *replicaKills + 3; n > changed+slack {
			t.Errorf("%s: %d Genesys writes for %d Salesforce changes (more than %d over)", a, n, changed, slack)
		}
	}
	t.Logf("Genesys writes for the Salesforce-driven agents: %d for %d changes", total, made)
	slices.Sort(takeovers)
	t.Logf("traffic: %d vendor changes, %d webhook events accepted (%d refused for the sender to retry); %d agents converged",
		traffic.changes(), len(accepted), traffic.refusedHooks(), len(agents))
	ms := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	t.Logf("takeover (fault -> another replica's engine runs), lease %v: after SIGKILL (%d): p50 %v, p99 %v, max %v; "+
		"after SIGSTOP past the lease: %v; after a clean stop: %v", testLease, len(takeovers), ms(percentile(takeovers, 50)),
		ms(percentile(takeovers, 99)), ms(takeovers[len(takeovers)-1]), ms(pause), ms(cleanStop))
	for _, r := range reps {
		if r.exited() {
			t.Errorf("%s exited:\n%s", r.name, r.log())
		}
	}
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(min(i, len(sorted))-1, 0)]
}

// terminateBackends ends every connection of the application and reports how many.
func terminateBackends(t *testing.T, app string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), pgtest.ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE application_name = $1`, app).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// replicaProc is one `omnipresence serve` replica.
type replicaProc struct {
	name string
	cmd  *exec.Cmd
	url  string
	done chan struct{}

	mu     sync.Mutex
	stderr bytes.Buffer
	paused bool
}

func startReplica(t *testing.T, name string, env []string, policyPath string, args []string) *replicaProc {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"serve", "--config", policyPath, "--addr", "127.0.0.1:0", "--replica-id", name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	r := &replicaProc{name: name, cmd: cmd, done: make(chan struct{})}
	stdout, stderr := startPiped(t, cmd)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			r.mu.Lock()
			r.stderr.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
		}
	}()
	line, err := bufio.NewReader(stdout).ReadBytes('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("%s printed no line: %v\n%s", name, err, r.log())
	}
	var info struct{ URL string }
	if err := json.Unmarshal(line, &info); err != nil {
		t.Fatalf("%s line %q: %v", name, line, err)
	}
	r.url = info.URL
	go func() { cmd.Wait(); close(r.done) }()
	return r
}

func (r *replicaProc) log() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stderr.String()
}

func (r *replicaProc) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

func (r *replicaProc) signal(sig syscall.Signal) {
	r.mu.Lock()
	r.paused = sig == syscall.SIGSTOP
	r.mu.Unlock()
	_ = r.cmd.Process.Signal(sig)
}

// down reports whether the replica exited or is stopped (SIGSTOP), and cannot answer.
func (r *replicaProc) down() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.paused || r.exited()
}

func (r *replicaProc) kill() {
	r.signal(syscall.SIGKILL)
	<-r.done
}

// stop interrupts the replica (resuming it first, were it stopped) and waits for it.
func (r *replicaProc) stop() {
	r.signal(syscall.SIGCONT)
	r.signal(syscall.SIGINT)
	select {
	case <-r.done:
	case <-time.After(20 * time.Second):
		r.kill()
	}
}

var client = &http.Client{Timeout: 2 * time.Second}

// cluster reads GET /api/v1/cluster.
func (r *replicaProc) cluster() (clusterView, bool) {
	var v clusterView
	resp, err := client.Get(r.url + "/api/v1/cluster")
	if err != nil {
		return v, false
	}
	defer resp.Body.Close()
	return v, resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&v) == nil
}

var metricLine = regexp.MustCompile(`(?m)^(\w+) (\S+)$`)

// metric reads one unlabelled metric of the replica, -1 when it cannot.
func (r *replicaProc) metric(name string) float64 {
	resp, err := client.Get(r.url + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, m := range metricLine.FindAllStringSubmatch(string(b), -1) {
		if m[1] == name {
			v, _ := strconv.ParseFloat(m[2], 64)
			return v
		}
	}
	return -1
}

type leaderAt struct {
	leader *replicaProc
	epoch  int64
}

// waitLeader waits until a running replica leads at an epoch above after, with its engine
// running (its omnipresence_cluster_leader is 1), and every running replica agrees.
func waitLeader(t *testing.T, reps []*replicaProc, after int64, within time.Duration) leaderAt {
	t.Helper()
	var got leaderAt
	defer func() {
		if t.Failed() && got.leader == nil {
			for _, r := range reps {
				lines := strings.Split(strings.TrimSpace(r.log()), "\n")
				t.Logf("%s's last log lines:\n%s", r.name, strings.Join(lines[max(len(lines)-25, 0):], "\n"))
			}
		}
	}()
	waitFor(t, within, fmt.Sprintf("a leader at an epoch above %d", after), func() bool {
		for _, r := range reps {
			if r.down() {
				continue
			}
			v, ok := r.cluster()
			if !ok || v.Leader != r.name || v.Epoch <= after {
				continue
			}
			if r.metric("omnipresence_cluster_leader") == 1 && r.metric("omnipresence_cluster_epoch") == float64(v.Epoch) {
				got = leaderAt{leader: r, epoch: v.Epoch}
				return true
			}
		}
		return false
	})
	return got
}

// balancer stands in for the load balancer in front of the replicas: each request goes to
// one of the replicas it considers up, in turn; removing a replica ends its connections, as
// a balancer's failed health check does.
type balancer struct {
	url string

	mu   sync.Mutex
	up   []*replicaProc
	next int
	conn map[*replicaProc][]context.CancelFunc
}

func newBalancer(t *testing.T) *balancer {
	t.Helper()
	b := &balancer{conn: map[*replicaProc][]context.CancelFunc{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u, _ := url.Parse(pr.In.Context().Value(lbKey{}).(string))
			pr.SetURL(u)
		},
		FlushInterval: -1,
		ErrorLog:      log.New(io.Discard, "", 0),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		if len(b.up) == 0 {
			b.mu.Unlock()
			http.Error(w, "no replica up", http.StatusBadGateway)
			return
		}
		to := b.up[b.next%len(b.up)]
		b.next++
		ctx, cancel := context.WithCancel(context.WithValue(r.Context(), lbKey{}, to.url))
		b.conn[to] = append(b.conn[to], cancel)
		b.mu.Unlock()
		defer cancel()
		rp.ServeHTTP(w, r.WithContext(ctx))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	b.url = "http://" + ln.Addr().String()
	return b
}

func (b *balancer) add(r *replicaProc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up = append(b.up, r)
}

func (b *balancer) remove(r *replicaProc) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.up = slices.DeleteFunc(b.up, func(x *replicaProc) bool { return x == r })
	for _, c := range b.conn[r] {
		c()
	}
	delete(b.conn, r)
}

type lbKey struct{}

// traffic changes statuses as people do and posts webhook events, remembering what it did.
type traffic struct {
	s                  *sims
	lb                 *balancer
	sfDriven, gcDriven []string

	mu       sync.Mutex
	last     map[string]string // agent -> the status last set in the vendor that drives it
	changed  map[string]int    // agent -> how many times that status changed
	n        int
	accepted []string
	refused  int
}

func newTraffic(s *sims, lb *balancer, sfDriven, gcDriven []string) *traffic {
	return &traffic{s: s, lb: lb, sfDriven: sfDriven, gcDriven: gcDriven, last: map[string]string{}, changed: map[string]int{}}
}

// sfStates and gcStates are what people pick, mapped both ways by mapOffline.
var sfStates, gcStates = []string{"AvailableforVoice", "Lunch"}, []string{"On Queue", "Meal"}

// vendors changes one agent's status every 40ms: in Salesforce for the first half, in
// Genesys for the second.
func (tr *traffic) vendors(ctx context.Context) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for pause.For(ctx, 40*time.Millisecond) {
		if rnd.IntN(2) == 0 {
			a := tr.sfDriven[rnd.IntN(len(tr.sfDriven))]
			st := sfStates[rnd.IntN(len(sfStates))]
			if _, err := tr.s.sf.SetStatus(a, st, ""); err == nil {
				tr.record(a, st)
			}
		} else {
			a := tr.gcDriven[rnd.IntN(len(tr.gcDriven))]
			st := gcStates[rnd.IntN(len(gcStates))]
			if err := tr.s.gc.SetPresence(a, st); err == nil {
				tr.record(a, st)
			}
		}
	}
}

func (tr *traffic) record(agent, status string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.last[agent] != status {
		tr.changed[agent]++
	}
	tr.last[agent] = status
	tr.n++
}

func (tr *traffic) transitions(agent string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.changed[agent]
}

// genesysWrites counts the presence writes made to the Genesys simulator, per user id,
// through a proxy in front of its API.
type genesysWrites struct {
	url string

	mu     sync.Mutex
	byUser map[string]int
}

func countGenesysWrites(t *testing.T, target string) *genesysWrites {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	g := &genesysWrites{byUser: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var users []string
		switch {
		case r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/api/v2/users/") && strings.Contains(r.URL.Path, "/presences/"):
			users = append(users, strings.Split(r.URL.Path, "/")[4])
		case r.Method == http.MethodPut && r.URL.Path == "/api/v2/users/presences/bulk":
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			var body []struct{ ID string }
			_ = json.Unmarshal(b, &body)
			for _, p := range body {
				users = append(users, p.ID)
			}
		}
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		rp.ServeHTTP(rec, r)
		if rec.code < 300 {
			g.mu.Lock()
			for _, id := range users {
				g.byUser[id]++
			}
			g.mu.Unlock()
		}
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g.url = "http://" + ln.Addr().String()
	return g
}

// byEmail returns the writes per user email.
func (g *genesysWrites) byEmail(gc *gcsim.Server) map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string]int{}
	for _, u := range gc.Users() {
		out[u.Email] = g.byUser[u.ID]
	}
	return out
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

// Unwrap lets the proxy reach the connection (websocket upgrades, flushes).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// webhooks posts one event every 30ms through the balancer, retrying a refused one as a
// sender does, and remembers the ids a replica accepted.
func (tr *traffic) webhooks(ctx context.Context) {
	for i := 0; pause.For(ctx, 30*time.Millisecond); i++ {
		id := fmt.Sprintf("hook-%d", i)
		body, _ := json.Marshal(map[string]any{"id": id, "system": "wh", "agent": "hook-agent", "type": "status_changed",
			"status": []string{"Ready", "Away"}[i%2], "at": time.Now().UTC().Format(time.RFC3339Nano)})
		mac := hmac.New(sha256.New, []byte("hook-secret"))
		mac.Write(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tr.lb.url+"/api/v1/webhooks/events", bytes.NewReader(body))
		req.Header.Set(server.SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := client.Do(req)
		if err != nil {
			tr.mu.Lock()
			tr.refused++
			tr.mu.Unlock()
			continue
		}
		resp.Body.Close()
		tr.mu.Lock()
		if resp.StatusCode == http.StatusOK {
			tr.accepted = append(tr.accepted, id)
		} else {
			tr.refused++
		}
		tr.mu.Unlock()
	}
}

func (tr *traffic) acceptedHooks() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.accepted)
}

func (tr *traffic) refusedHooks() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.refused
}

func (tr *traffic) changes() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.n
}

// expected maps every agent the traffic touched to the status the other vendor must show.
func (tr *traffic) expected() map[string][2]string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := map[string][2]string{}
	for a, st := range tr.last {
		if i := slices.Index(sfStates, st); i >= 0 {
			out[a] = [2]string{st, gcStates[i]}
		} else {
			out[a] = [2]string{sfStates[slices.Index(gcStates, st)], st}
		}
	}
	return out
}

// diverged lists the agents whose vendors do not show the expected statuses.
func (tr *traffic) diverged(want map[string][2]string) []string {
	var bad []string
	for a, w := range want {
		sf, _ := tr.s.sf.Presence(a)
		u, _ := tr.s.gc.UserByEmail(a)
		if sf != w[0] || u.Presence != w[1] {
			bad = append(bad, fmt.Sprintf("%s: sf %s gc %s, want %s and %s", a, sf, u.Presence, w[0], w[1]))
		}
	}
	slices.Sort(bad)
	return bad
}

// TestSQLiteIsSingleNode: a second serve on the same SQLite file refuses to start, saying why,
// and a single process reports itself as the leader.
func TestSQLiteIsSingleNode(t *testing.T) {
	policyPath := writePolicy(t, `version: 1
systems:
  wh:
    kind: genesys
    catalog:
      - {id: w1, name: Ready, category: available}
policies: []
`)
	db := filepath.Join(t.TempDir(), "omni.db")
	args := []string{"--store", "sqlite:" + db}
	first := startReplica(t, "solo", nil, policyPath, args)
	defer first.stop()
	var v clusterView
	waitFor(t, 30*time.Second, "the cluster view", func() bool {
		var ok bool
		v, ok = first.cluster()
		return ok
	})
	if v.Replica != "solo" || v.Leader != "solo" || v.Epoch != 0 || len(v.Replicas) != 1 || v.Replicas[0].Addr != first.url {
		t.Errorf("cluster view %+v; want solo leading itself alone", v)
	}
	_, stderr, code := run(t, "serve", "--config", policyPath, "--addr", "127.0.0.1:0", "--store", "sqlite:"+db)
	want := fmt.Sprintf("another omnipresence serve (pid %d) uses this SQLite store; SQLite is single-node", first.cmd.Process.Pid)
	if code != 2 || !strings.Contains(stderr, want) {
		t.Errorf("second serve on the same file: exit %d, stderr %q; want 2 and %q", code, stderr, want)
	}
}

// TestReplicaFlags refuses a lease too short to renew and an advertised URL others cannot use.
func TestReplicaFlags(t *testing.T) {
	for _, tc := range []struct{ flag, value, want string }{
		{"--lease", "1ms", "--lease 1ms: give at least 100ms"},
		{"--advertise-url", "10.0.0.5:8080", `--advertise-url "10.0.0.5:8080": give the URL other replicas reach this one at`},
	} {
		_, stderr, code := run(t, "serve", "--config", "testdata/none.yaml", tc.flag, tc.value)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s %s: exit %d, stderr %q; want 2 and %q", tc.flag, tc.value, code, stderr, tc.want)
		}
	}
}
