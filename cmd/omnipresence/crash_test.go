package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/omnipresence/omnipresence/internal/store/postgres/pgtest"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

var (
	crashRounds  = flag.Int("crash.rounds", 2, "kill -9 rounds TestKillNineConverges runs per store")
	crashChanges = flag.Int("crash.changes", 300, "Salesforce changes in each round's burst")
	crashSeed    = flag.Uint64("crash.seed", 0, "seed of TestKillNineConverges (0: from the clock, logged)")
)

// crashMap is the policy of the crash test: three Salesforce statuses and the Genesys presence
// each maps to, both ways.
var crashMap = map[string]string{"AvailableforVoice": "On Queue", "Lunch": "Meal", "Offline": "Offline"}

// TestKillNineConverges runs the real service against both simulators, drives bursts of
// Salesforce status changes over the demo people, kills the service with SIGKILL in the middle
// of each burst (with Genesys answering 503s or a 429 storm in some rounds), lets the burst go
// on while it is down, restarts it on the same store and requires every agent to converge: each
// Genesys presence is the mapped value of the person's last Salesforce status, and the board
// says every agent is in sync. People change only Salesforce, so the newest change is known
// exactly and there is one right answer. On SQLite and on PostgreSQL (skipped when absent).
func TestKillNineConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the service binary through kill -9 rounds")
	}
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (-args -crash.seed=%d repeats it)", seed, seed)
	t.Run("sqlite", func(t *testing.T) {
		runKillNine(t, "sqlite:"+filepath.Join(t.TempDir(), "omnipresence.db"), seed)
	})
	t.Run("postgres", func(t *testing.T) {
		runKillNine(t, pgtest.FreshSchema(t), seed)
	})
}

func runKillNine(t *testing.T, store string, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 9))
	// Genesys's rate limit is lifted: the test is about crashes, not pacing.
	s := startSimsWith(t, sfsim.Config{}, gcsim.Config{RateLimitPerMinute: 100000}, true)
	sf, gc := s.sf, s.gc

	// Everyone starts in agreement, so the only changes are the burst's.
	var people []string
	last := map[string]string{}
	for _, u := range gc.Users() {
		if _, err := sf.UserID(u.Email); err != nil {
			continue
		}
		if _, err := sf.SetStatus(u.Email, "AvailableforVoice", "OmniManualStatusChange"); err != nil {
			t.Fatal(err)
		}
		if err := gc.SetPresence(u.Email, crashMap["AvailableforVoice"]); err != nil {
			t.Fatal(err)
		}
		people = append(people, strings.ToLower(u.Email))
		last[strings.ToLower(u.Email)] = "AvailableforVoice"
	}
	if len(people) < 10 {
		t.Fatalf("only %d people in both simulators", len(people))
	}

	policyPath := writePolicy(t, s.systemsYAML(gc.Info()["url"].(string))+mapOffline)
	const token = "crash-test-admin-token"
	env := []string{"TEST_SF_SECRET=demo-secret", "TEST_GC_SECRET=demo-secret", "OMNIPRESENCE_ADMIN_TOKEN=" + token}
	addr := freeAddr(t)
	sv := startServeOn(t, env, policyPath, store, addr)
	var logs []string
	defer func() {
		if t.Failed() {
			logs = append(logs, sv.log())
			t.Logf("service logs, oldest first:\n%s", strings.Join(logs, "\n---- restart ----\n"))
		}
		sv.cmd.Process.Kill()
	}()
	sv.waitFor(t, "readyz ok", func() bool { _, code := sv.get(t, "/readyz"); return code == 200 })

	statuses := slices.Sorted(maps.Keys(crashMap))
	var takeovers []time.Duration
	for round := range *crashRounds {
		faults := fault.Settings{}
		switch round % 3 {
		case 1:
			faults = fault.Settings{ErrorRate: 0.3}
		case 2:
			faults = fault.Settings{StormFor: 2 * time.Second, RetryAfter: time.Second}
		}
		if err := gc.Faults().Apply(faults); err != nil {
			t.Fatal(err)
		}
		n := *crashChanges
		killAt := n/5 + rnd.IntN(3*n/5)
		var done atomic.Int64
		burst := make([][2]string, n)
		for i := range burst {
			burst[i] = [2]string{people[rnd.IntN(len(people))], statuses[rnd.IntN(len(statuses))]}
		}
		finished := make(chan error, 1)
		go func() {
			for _, c := range burst {
				if _, err := sf.SetStatus(c[0], c[1], "OmniManualStatusChange"); err != nil {
					finished <- fmt.Errorf("%s → %s: %w", c[0], c[1], err)
					return
				}
				done.Add(1)
				time.Sleep(time.Duration(rand.IntN(4000)) * time.Microsecond)
			}
			finished <- nil
		}()
		for done.Load() < int64(killAt) {
			time.Sleep(time.Millisecond)
		}
		if err := sv.cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		<-sv.done
		logs = append(logs, sv.log())
		down := time.Duration(100+rnd.IntN(500)) * time.Millisecond
		time.Sleep(down)
		restarted := time.Now()
		sv = startServeOn(t, env, policyPath, store, addr)
		if err := <-finished; err != nil {
			t.Fatal(err)
		}
		for _, c := range burst {
			last[c[0]] = c[1]
		}
		if err := gc.Faults().Apply(fault.Settings{}); err != nil {
			t.Fatal(err)
		}
		if !converged(t, sv, token, gc, people, last, 120*time.Second) {
			t.Fatalf("round %d (killed after %d of %d changes, faults %+v, down %s): agents did not converge", round, killAt, n, faults, down)
		}
		takeovers = append(takeovers, time.Since(restarted))
	}
	t.Logf("%d rounds converged; restart to converged: %v", *crashRounds, takeovers)
}

// converged waits until every person's Genesys presence is the mapped value of their last
// Salesforce status and the board says each of them is in sync; otherwise it reports each
// person who is not, with the service's explanation, and returns false.
func converged(t *testing.T, sv *served, token string, gc *gcsim.Server, people []string, last map[string]string, within time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := map[string]string{}
		rows := boardRows(t, sv, token)
		for _, email := range people {
			u, _ := gc.UserByEmail(email)
			want := crashMap[last[email]]
			switch row, ok := rows[email]; {
			case u.Presence != want:
				bad[email] = fmt.Sprintf("Genesys shows %q, want %q (Salesforce %q)", u.Presence, want, last[email])
			case !ok || row != "in_sync":
				bad[email] = fmt.Sprintf("systems agree, the board says %q", row)
			}
		}
		if len(bad) == 0 {
			return true
		}
		if time.Now().After(deadline) {
			for _, email := range slices.Sorted(maps.Keys(bad)) {
				t.Errorf("%s: %s\nexplain:\n%s", email, bad[email], explainLines(apiGet(t, sv, token, "/api/v1/agents/"+url.PathEscape(email)+"/explain?limit=40")))
			}
			return false
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// explainLines renders an explain answer a step a line.
func explainLines(body string) string {
	var ex struct {
		Steps []struct {
			At      time.Time `json:"at"`
			Summary string    `json:"summary"`
			Details []string  `json:"details"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(body), &ex); err != nil {
		return body
	}
	var b strings.Builder
	for _, s := range ex.Steps {
		fmt.Fprintf(&b, "  %s %s %v\n", s.At.Format("15:04:05.000"), s.Summary, s.Details)
	}
	return b.String()
}

// boardRows returns each agent's board state by email.
func boardRows(t *testing.T, sv *served, token string) map[string]string {
	t.Helper()
	var board struct {
		Agents []struct {
			Email  string `json:"email"`
			State  string `json:"state"`
			Note   string `json:"note"`
			Policy string `json:"policy"`
		} `json:"agents"`
	}
	if err := json.Unmarshal([]byte(apiGet(t, sv, token, "/api/v1/board")), &board); err != nil {
		return nil
	}
	rows := map[string]string{}
	for _, a := range board.Agents {
		row := a.State
		if a.State != "in_sync" {
			row = fmt.Sprintf("%s (%s; policy %q)", a.State, a.Note, a.Policy)
		}
		rows[strings.ToLower(a.Email)] = row
	}
	return rows
}

// apiGet reads an admin API path with the bearer token; "" when the service does not answer.
func apiGet(t *testing.T, sv *served, token, path string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, sv.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// freeAddr returns a loopback address nothing listens on now, for a service restarted on it.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
