package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/examples"
	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/vendors"
	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

func init() {
	var addr string
	var noTraffic bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the service with the vendor simulators and a demo policy",
		Long: "demo starts a simulator for every system of the demo policy (examples/demo: Salesforce\n" +
			"and Genesys Cloud, the same 50 agents in each, each agent's Salesforce console open with\n" +
			"the omnipresence bridge) and the service on an embedded SQLite store, plus synthetic\n" +
			"agents changing status unless --no-traffic. It prints one JSON line with the service,\n" +
			"admin UI and simulator URLs, then runs until interrupted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), addr, !noTraffic)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address of the service (port 0 picks a free port)")
	cmd.Flags().BoolVar(&noTraffic, "no-traffic", false, "do not simulate agents changing status")
	rootCmd.AddCommand(cmd)
}

// demoSim is one simulator the demo runs.
type demoSim struct {
	kind string
	inst vendorsim.Instance
}

func runDemo(ctx context.Context, stdout, stderr io.Writer, addr string, traffic bool) error {
	log := newLoggerTo(stderr)
	dir, err := os.MkdirTemp("", "omnipresence-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	policyPath := filepath.Join(dir, "demo-policy.yaml")
	if err := os.WriteFile(policyPath, examples.DemoPolicy, 0o600); err != nil {
		return err
	}
	// The policy names the kinds to simulate; its connection settings read DEMO_* variables,
	// which are set below to each simulator's line.
	cfg, err := loadPolicy(policyPath)
	if err != nil {
		return err
	}
	kinds := map[string]bool{}
	for _, sys := range cfg.Systems {
		kinds[sys.Kind] = true
	}
	// The demo org's bridge certificate: the simulated agent consoles sign tokens with its
	// private key, as the bridge's Apex controller does, and the service verifies them with the
	// certificate alone.
	bridgeKey, bridgeCert, err := demoBridgeKeyPair()
	if err != nil {
		return err
	}
	var sims []demoSim
	defer func() {
		for _, s := range sims {
			s.inst.Close()
		}
	}()
	var origins []string
	infos := map[string]any{}
	for _, s := range vendors.Simulators() {
		if !kinds[s.Kind] {
			continue
		}
		start := s.Command(pflag.NewFlagSet(s.Kind, pflag.ContinueOnError))
		inst, err := start(ctx, vendorsim.Options{Addr: "127.0.0.1:0", Logger: log.With("sim", s.Kind), BridgeKey: bridgeKey})
		if err != nil {
			return fmt.Errorf("starting the %s simulator: %w", s.Kind, err)
		}
		sims = append(sims, demoSim{kind: s.Kind, inst: inst})
		if st, ok := inst.(vendorsim.ShiftStarter); ok {
			if err := st.StartShift(); err != nil {
				return fmt.Errorf("demo shift start: %w", err)
			}
		}
		info := inst.Info()
		infos[s.Kind] = info
		for k, v := range info {
			if err := os.Setenv("DEMO_"+strings.ToUpper(s.Kind+"_"+k), fmt.Sprint(v)); err != nil {
				return err
			}
		}
		if c, ok := inst.(vendorsim.Console); ok {
			origins = append(origins, c.ConsoleOrigin())
		}
	}
	for kind := range kinds {
		if _, ok := infos[kind]; !ok {
			return fmt.Errorf("the demo policy names kind %s, which has no simulator in this build", kind)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	o := serviceOptions{
		configPath: policyPath, addr: addr, storeURL: "sqlite:" + filepath.Join(dir, "demo.db"), logger: log,
		bridgeCerts: []*x509.Certificate{bridgeCert}, bridgeOrigins: origins,
		started: func(url string) error {
			if err := printJSONLine(stdout, map[string]any{
				"url": url, "ui": url + "/", "store": "sqlite (temporary)", "simulators": infos,
			}); err != nil {
				return err
			}
			var titles []string
			for _, s := range sims {
				v, _ := connector.Lookup(s.kind)
				titles = append(titles, v.Title)
			}
			var b strings.Builder
			fmt.Fprintf(&b, "\nomnipresence demo is running: %d agents in %s, kept in sync.\n", demoorg.Size, strings.Join(titles, " and "))
			fmt.Fprintf(&b, "  Admin console (live board, systems, writes, policy):  %s/\n", url)
			fmt.Fprintf(&b, "  Why Ana's status is what it is:                        %s/#/agent/ana@example.com\n", url)
			for _, s := range sims {
				if h, ok := s.inst.(vendorsim.Hinter); ok {
					for _, line := range h.Hints(url) {
						fmt.Fprintf(&b, "  %s\n", line)
					}
				}
			}
			b.WriteString("Press Ctrl-C to stop.\n")
			io.WriteString(stderr, b.String())
			for _, s := range sims {
				if hc, ok := s.inst.(vendorsim.HeadlessConsoles); ok {
					wait, err := hc.StartConsoles(ctx, url)
					if err != nil {
						return err
					}
					wg.Add(1)
					go func() { defer wg.Done(); wait() }()
				}
			}
			if traffic {
				wg.Add(1)
				go func() { defer wg.Done(); demoTraffic(ctx, log, sims) }()
			}
			return nil
		},
	}
	return runService(ctx, o)
}

// demoBridgeKeyPair makes a key pair and a self-signed certificate for the demo org's bridge, as
// an admin creates one in Salesforce's Certificate and Key Management.
func demoBridgeKeyPair() (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: "omnipresence_bridge"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// demoTraffic makes a random demo agent act in a random simulator now and then.
func demoTraffic(ctx context.Context, log *slog.Logger, sims []demoSim) {
	var actors []vendorsim.Actor
	for _, s := range sims {
		if a, ok := s.inst.(vendorsim.Actor); ok {
			actors = append(actors, a)
		}
	}
	if len(actors) == 0 {
		return
	}
	rnd := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	people := demoorg.People()
	tick := time.NewTicker(1500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := people[rnd.IntN(len(people))]
		if err := actors[rnd.IntN(len(actors))].Act(ctx, rnd, p.Email); err != nil && ctx.Err() == nil {
			log.Warn("demo traffic", "agent", p.Email, "err", err)
		}
	}
}
