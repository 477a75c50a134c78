package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func init() {
	var o serviceOptions
	var tokenFile, secretFile, bridgeFile string
	cmd := &cobra.Command{
		Use:   "serve --config PATH",
		Short: "Run the service: watch every system, keep agents in sync, serve the API and admin UI",
		Long: "serve runs the engine and the HTTP API. It prints one JSON line with the URL it\n" +
			"serves, then logs to stderr. The admin token comes from --admin-token-file or\n" +
			"OMNIPRESENCE_ADMIN_TOKEN (without one, only loopback clients are served); the webhook\n" +
			"secret from --webhook-secret-file or OMNIPRESENCE_WEBHOOK_SECRET. With a bridge secret\n" +
			"(--bridge-secret-file or OMNIPRESENCE_BRIDGE_SECRET) it serves the Omni-Channel bridge\n" +
			"under /api/v1/bridge/ for the browser origins given with --bridge-origin, and carries the\n" +
			"Salesforce status writes through it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.adminToken, err = secretFrom(tokenFile, "OMNIPRESENCE_ADMIN_TOKEN"); err != nil {
				return err
			}
			if o.webhookSecret, err = secretFrom(secretFile, "OMNIPRESENCE_WEBHOOK_SECRET"); err != nil {
				return err
			}
			if o.bridgeSecret, err = secretFrom(bridgeFile, "OMNIPRESENCE_BRIDGE_SECRET"); err != nil {
				return err
			}
			if len(o.bridgeOrigins) > 0 && o.bridgeSecret == "" {
				return &exitError{code: 2, err: errors.New("--bridge-origin needs a bridge secret (--bridge-secret-file or OMNIPRESENCE_BRIDGE_SECRET)")}
			}
			o.logger = newLogger()
			o.started = func(url string) error {
				return printJSONLine(cmd.OutOrStdout(), map[string]string{"url": url})
			}
			return runService(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVar(&o.configPath, "config", "", "policy file or folder (required)")
	cmd.Flags().StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free port)")
	cmd.Flags().StringVar(&o.storeURL, "store", "sqlite:omnipresence.db", "sqlite:PATH, postgres://… or memory:")
	cmd.Flags().StringVar(&tokenFile, "admin-token-file", "", "file holding the admin API bearer token")
	cmd.Flags().StringVar(&secretFile, "webhook-secret-file", "", "file holding the webhook HMAC secret")
	cmd.Flags().StringVar(&bridgeFile, "bridge-secret-file", "", "file holding the Omni-Channel bridge token secret")
	cmd.Flags().StringArrayVar(&o.bridgeOrigins, "bridge-origin", nil,
		"browser origin allowed to reach the bridge, such as https://acme.lightning.force.com (repeatable)")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}
