package main

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
	"github.com/omnipresence/omnipresence/internal/vendorsim/genesys"
)

func init() {
	var (
		addr       string
		seed       string
		rateLimit  int
		rateWindow time.Duration
		heartbeat  time.Duration
		tokenTTL   time.Duration
		faults     fault.Settings
	)
	cmd := &cobra.Command{
		Use:   "genesys",
		Short: "Run a local Genesys Cloud (OAuth, presence, users, notifications, calls)",
		Long: "Serves the Genesys Cloud Platform API wire format until interrupted. Control endpoints\n" +
			"under /_sim/ start and end calls, change presences and inject faults.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := faults.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := newLogger()
			srv, err := genesys.New(genesys.Config{
				SeedFile: seed, RateLimitPerMinute: rateLimit, RateWindow: rateWindow, HeartbeatInterval: heartbeat,
				TokenTTL: tokenTTL, Faults: faults, Logger: log,
			})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if _, err := srv.Start(addr); err != nil {
				return &exitError{code: 2, err: listenError(addr, err)}
			}
			line, err := json.Marshal(srv.Info())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(line))
			<-cmd.Context().Done()
			log.Info("genesys simulator stopping")
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	f.StringVar(&seed, "seed", "", "JSON seed file (definitions, users); the demo org when empty")
	f.IntVar(&rateLimit, "rate-limit", 300, "requests per rate window per token")
	f.DurationVar(&rateWindow, "rate-window", time.Minute, "rate-limit window; shrinking it also shrinks the seconds of Retry-After")
	f.DurationVar(&heartbeat, "heartbeat", 30*time.Second, "notification socket heartbeat interval")
	f.DurationVar(&tokenTTL, "token-ttl", 24*time.Hour, "access token lifetime (expires_in)")
	fault.BindFlags(f, &faults)
	simCmd.AddCommand(cmd)
}
