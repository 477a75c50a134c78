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
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/examples"
	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
	gcsim "github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
	sfsim "github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

func init() {
	var addr string
	var noTraffic bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the service with the Salesforce and Genesys simulators and a demo policy",
		Long: "demo starts the Salesforce and Genesys Cloud simulators (the same 50 agents in both,\n" +
			"each agent's Salesforce console open with the omnipresence bridge), and the service on an\n" +
			"embedded SQLite store with the demo policy (examples/demo), plus synthetic agents changing\n" +
			"status unless --no-traffic. It prints one JSON line with the service, admin UI and\n" +
			"simulator URLs, then runs until interrupted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), addr, !noTraffic)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", "127.0.0.1:8080", "address of the service (port 0 picks a free port)")
	cmd.Flags().BoolVar(&noTraffic, "no-traffic", false, "do not simulate agents changing status")
	rootCmd.AddCommand(cmd)
}

func runDemo(ctx context.Context, stdout, stderr io.Writer, addr string, traffic bool) error {
	log := newLoggerTo(stderr)
	dir, err := os.MkdirTemp("", "omnipresence-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	gc, err := gcsim.New(gcsim.Config{Logger: log.With("sim", "genesys")})
	if err != nil {
		return err
	}
	gcURL, err := gc.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer gc.Close()
	// The demo org's bridge certificate: the Salesforce console signs tokens with its private
	// key, as the bridge's Apex controller does, and the service verifies them with the
	// certificate alone.
	signer, cert, err := demoBridgeKeyPair()
	if err != nil {
		return err
	}
	sf, err := sfsim.New(sfsim.Config{Logger: log.With("sim", "salesforce"), BridgeSigner: signer})
	if err != nil {
		return err
	}
	sfURL, err := sf.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sf.Close()
	if err := demoShiftStart(gc, sf); err != nil {
		return err
	}
	gcInfo, sfInfo := gc.Info(), sf.Info()

	// The demo policy reads its connection settings from these variables.
	for k, v := range map[string]any{
		"DEMO_GENESYS_URL": gcURL, "DEMO_GENESYS_CLIENT_ID": gcInfo["client_id"], "DEMO_GENESYS_CLIENT_SECRET": gcInfo["client_secret"],
		"DEMO_SALESFORCE_URL": sfURL, "DEMO_SALESFORCE_PUBSUB_URL": sfInfo["pubsub_url"],
		"DEMO_SALESFORCE_CLIENT_ID": sfInfo["client_id"], "DEMO_SALESFORCE_CLIENT_SECRET": sfInfo["client_secret"],
	} {
		if err := os.Setenv(k, fmt.Sprint(v)); err != nil {
			return err
		}
	}
	policyPath := filepath.Join(dir, "demo-policy.yaml")
	if err := os.WriteFile(policyPath, examples.DemoPolicy, 0o600); err != nil {
		return err
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	o := serviceOptions{
		configPath: policyPath, addr: addr, storeURL: "sqlite:" + filepath.Join(dir, "demo.db"), logger: log,
		bridgeCerts: []*x509.Certificate{cert}, bridgeOrigins: []string{sfURL},
		started: func(url string) error {
			if err := printJSONLine(stdout, map[string]any{
				"url": url, "ui": url + "/", "store": "sqlite (temporary)",
				"simulators": map[string]any{"genesys": gcInfo, "salesforce": sfInfo},
			}); err != nil {
				return err
			}
			fmt.Fprintf(stderr, `
omnipresence demo is running: 50 agents in Salesforce Omni-Channel and Genesys Cloud, kept in sync.
  Admin console (live board, systems, writes, policy):  %[1]s/
  Ana's Salesforce console, to click a status yourself:  %[3]s/console/ana@example.com?service=%[1]s
  Why Ana's status is what it is:                        %[1]s/#/agent/ana@example.com
  Change a Genesys presence:   curl -X POST %[2]s/_sim/presence -d '{"user":"ana@example.com","presence":"Break"}'
  Change a Salesforce status:  curl -X POST %[3]s/_sim/users/ana@example.com/status -d '{"status":"Lunch"}'
  Start a non-ACD call:        curl -X POST %[2]s/_sim/calls -d '{"user":"ana@example.com","acd":false}'
Every agent's Salesforce console runs headless in the simulator with the omnipresence bridge;
opening Ana's console above takes over from hers. Press Ctrl-C to stop.
`, url, gcURL, sfURL)
			var users []string
			for _, p := range demoorg.People() {
				users = append(users, p.Email)
			}
			waitConsoles, err := sf.StartHeadlessConsoles(ctx, sfsim.HeadlessOptions{Service: url, Users: users})
			if err != nil {
				return err
			}
			wg.Add(1)
			go func() { defer wg.Done(); waitConsoles() }()
			if traffic {
				wg.Add(1)
				go func() { defer wg.Done(); demoTraffic(ctx, log, gc, sf) }()
			}
			return nil
		},
	}
	return runService(ctx, o)
}

// demoShiftStart gives every demo agent the same status in both simulators before the service
// starts, as a contact center mid-shift looks: most agents ready for work (voice On Queue,
// chat Available, blended Online), some on a break, at lunch or logged out.
func demoShiftStart(gc *gcsim.Server, sf *sfsim.Server) error {
	ready := map[string][2]string{
		"voice": {"On Queue", "AvailableforVoice"}, "chat": {"Available", "AvailableforChat"}, "blended": {"On Queue", "Online"},
	}
	for i, p := range demoorg.People() {
		gcStatus, sfStatus := ready[p.Team][0], ready[p.Team][1]
		switch {
		case i%9 == 4:
			gcStatus, sfStatus = "Break", "Break"
		case i%11 == 6:
			gcStatus, sfStatus = "Meal", "Lunch"
		case i%13 == 12:
			gcStatus, sfStatus = "Offline", sfsim.Offline
		}
		if err := gc.SetPresence(p.Email, gcStatus); err != nil {
			return fmt.Errorf("demo shift start: genesys %s: %w", p.Email, err)
		}
		if sfStatus != sfsim.Offline {
			if _, err := sf.SetStatus(p.Email, sfStatus, "OmniLoginStatusChange"); err != nil {
				return fmt.Errorf("demo shift start: salesforce %s: %w", p.Email, err)
			}
		}
	}
	return nil
}

// demoBridgeKeyPair makes a key pair and a self-signed certificate for the demo org's bridge, as
// an admin creates one in Salesforce's Certificate and Key Management.
func demoBridgeKeyPair() (*bridgetoken.Signer, *x509.Certificate, error) {
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
	if err != nil {
		return nil, nil, err
	}
	signer, err := bridgetoken.NewRSASigner(key)
	return signer, cert, err
}

// demoTraffic makes the demo agents change status now and then, take non-ACD and ACD calls.
func demoTraffic(ctx context.Context, log *slog.Logger, gc *gcsim.Server, sf *sfsim.Server) {
	rnd := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	people := demoorg.People()
	gcPresences := []string{"On Queue", "Available", "Break", "Meal", "Away", "Coffee Break"}
	sfStatuses := []string{"AvailableforVoice", "AvailableforChat", "Break", "Lunch", "Training", "Busy"}
	tick := time.NewTicker(1500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p := people[rnd.IntN(len(people))]
		var err error
		switch n := rnd.IntN(10); {
		case n < 4:
			err = gc.SetPresence(p.Email, gcPresences[rnd.IntN(len(gcPresences))])
		case n < 7:
			_, err = sf.SetStatus(p.Email, sfStatuses[rnd.IntN(len(sfStatuses))], "")
		default:
			acd := n == 9
			var id string
			if id, err = gc.StartCall(p.Email, acd, ""); err == nil {
				d := time.Duration(5+rnd.IntN(20)) * time.Second
				time.AfterFunc(d, func() {
					if ctx.Err() == nil {
						_ = gc.EndCall(id)
					}
				})
			}
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("demo traffic", "agent", p.Email, "err", err)
		}
	}
}
