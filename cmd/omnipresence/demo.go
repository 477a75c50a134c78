package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/examples"
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
		Long: "demo starts the Salesforce and Genesys Cloud simulators (the same 50 agents in both),\n" +
			"and the service on an embedded SQLite store with the demo policy (examples/demo),\n" +
			"plus synthetic agents changing status unless --no-traffic. It prints one JSON line\n" +
			"with the service, admin UI and simulator URLs, then runs until interrupted.",
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
	// The bridge secret is shared by the Salesforce console (which mints tokens, as the bridge's
	// Apex controller does) and the service (which verifies them).
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	bridgeSecret := hex.EncodeToString(secret)
	sf, err := sfsim.New(sfsim.Config{Logger: log.With("sim", "salesforce"), BridgeSecret: []byte(bridgeSecret)})
	if err != nil {
		return err
	}
	sfURL, err := sf.Start("127.0.0.1:0")
	if err != nil {
		return err
	}
	defer sf.Close()
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
		bridgeSecret: bridgeSecret, bridgeOrigins: []string{sfURL},
		started: func(url string) error {
			if err := printJSONLine(stdout, map[string]any{
				"url": url, "ui": url + "/", "store": "sqlite (temporary)",
				"simulators": map[string]any{"genesys": gcInfo, "salesforce": sfInfo},
			}); err != nil {
				return err
			}
			fmt.Fprintf(stderr, `
omnipresence demo is running.
  Admin UI (live board of agents × systems): %[1]s/
  One agent, with the reason for every change: %[1]s/api/v1/agents/ana@example.com/explain?format=text
  Ana's Salesforce console, with the Omni-Channel bridge: %[3]s/console/ana@example.com?service=%[1]s
  Change a Genesys presence:   curl -X POST %[2]s/_sim/presence -d '{"user":"ana@example.com","presence":"Break"}'
  Change a Salesforce status:  curl -X POST %[3]s/_sim/users/ana@example.com/status -d '{"status":"Lunch"}'
  Start a non-ACD call:        curl -X POST %[2]s/_sim/calls -d '{"user":"ana@example.com","acd":false}'
Salesforce writes wait as "deferred" until the agent's console (with its bridge) is open.
Press Ctrl-C to stop.
`, url, gcURL, sfURL)
			if traffic {
				wg.Add(1)
				go func() { defer wg.Done(); demoTraffic(ctx, log, gc, sf) }()
			}
			return nil
		},
	}
	return runService(ctx, o)
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
