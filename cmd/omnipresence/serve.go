package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/store"
)

func init() {
	var o serviceOptions
	var tokenFile, secretFile, bridgeFile, bridgeCertFile string
	cmd := &cobra.Command{
		Use:   "serve --config PATH",
		Short: "Run the service: watch every system, keep agents in sync, serve the API and admin UI",
		Long: "serve runs the engine and the HTTP API. It prints one JSON line with the URL it\n" +
			"serves, then logs to stderr. The admin token comes from --admin-token-file or\n" +
			"OMNIPRESENCE_ADMIN_TOKEN (without one, only loopback clients are served); the webhook\n" +
			"secret from --webhook-secret-file or OMNIPRESENCE_WEBHOOK_SECRET. With the certificate\n" +
			"the org's bridge tokens are signed with (--bridge-cert-file) it serves the Omni-Channel\n" +
			"bridge under /api/v1/bridge/ for the browser origins given with --bridge-origin, and\n" +
			"carries the Salesforce status writes through it. A shared secret (--bridge-secret-file or\n" +
			"OMNIPRESENCE_BRIDGE_SECRET) is a development mode: whoever reads it can act as any agent.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.retention < 0 {
				return &exitError{code: 2, err: fmt.Errorf("--retention %s: want a duration of 0 (keep forever) or more", o.retention)}
			}
			if o.adminToken, err = secretFrom(tokenFile, "OMNIPRESENCE_ADMIN_TOKEN"); err != nil {
				return err
			}
			if o.webhookSecret, err = secretFrom(secretFile, "OMNIPRESENCE_WEBHOOK_SECRET"); err != nil {
				return err
			}
			if o.bridgeSecret, err = secretFrom(bridgeFile, "OMNIPRESENCE_BRIDGE_SECRET"); err != nil {
				return err
			}
			if bridgeCertFile != "" {
				b, err := os.ReadFile(bridgeCertFile)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				if o.bridgeCerts, err = bridgetoken.ParseCertificates(b); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--bridge-cert-file %s: %w", bridgeCertFile, err)}
				}
			}
			if len(o.bridgeOrigins) > 0 && o.bridgeSecret == "" && len(o.bridgeCerts) == 0 {
				return &exitError{code: 2, err: errors.New("--bridge-origin needs the bridge certificate (--bridge-cert-file)")}
			}
			o.logger = newLogger()
			o.started = func(url string) error {
				return printJSONLine(cmd.OutOrStdout(), map[string]string{"url": url})
			}
			if o.advertiseURL != "" {
				if u, err := url.Parse(o.advertiseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return &exitError{code: 2, err: fmt.Errorf("--advertise-url %q: give the URL other replicas reach this one at, such as http://10.0.0.5:8080", o.advertiseURL)}
				}
			}
			if o.lease < 100*time.Millisecond {
				return &exitError{code: 2, err: fmt.Errorf("--lease %v: give at least 100ms (the default is %v)", o.lease, defaultLease)}
			}
			return runService(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.configPath, "config", "", "policy file or folder (required)")
	cmd.Flags().StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	cmd.Flags().StringVar(&o.storeURL, "store", "sqlite:omnipresence.db", "sqlite:PATH, postgres://… or memory:")
	cmd.Flags().DurationVar(&o.retention, "retention", store.DefaultRetention,
		"how long events and audit records (what explain shows) are kept; 0 keeps them forever")
	cmd.Flags().StringVar(&tokenFile, "admin-token-file", "", "file holding the admin API bearer token")
	cmd.Flags().StringVar(&secretFile, "webhook-secret-file", "", "file holding the webhook HMAC secret")
	cmd.Flags().StringVar(&bridgeCertFile, "bridge-cert-file", "", "PEM certificate(s) the Salesforce org signs Omni-Channel bridge tokens with")
	cmd.Flags().StringVar(&bridgeFile, "bridge-secret-file", "", "development only: file holding a shared bridge token secret")
	cmd.Flags().StringArrayVar(&o.bridgeOrigins, "bridge-origin", nil,
		"browser origin allowed to reach the bridge, such as https://acme.lightning.force.com (repeatable)")
	cmd.Flags().StringVar(&o.replicaID, "replica-id", "", "this replica's name among the replicas of a PostgreSQL store (default: host name and a random suffix)")
	cmd.Flags().StringVar(&o.advertiseURL, "advertise-url", "", "URL the other replicas reach this one at (default: the URL it listens on)")
	cmd.Flags().DurationVar(&o.lease, "lease", defaultLease, "on PostgreSQL, the leader lease's time: a replica takes over within it when the leader dies")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}
