package main

import (
	"github.com/spf13/cobra"
)

func init() {
	var o serviceOptions
	var tokenFile, secretFile string
	cmd := &cobra.Command{
		Use:   "serve --config PATH",
		Short: "Run the service: watch every system, keep agents in sync, serve the API and admin UI",
		Long: "serve runs the engine and the HTTP API. It prints one JSON line with the URL it\n" +
			"serves, then logs to stderr. The admin token comes from --admin-token-file or\n" +
			"OMNIPRESENCE_ADMIN_TOKEN (without one, only loopback clients are served); the webhook\n" +
			"secret from --webhook-secret-file or OMNIPRESENCE_WEBHOOK_SECRET.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if o.adminToken, err = secretFrom(tokenFile, "OMNIPRESENCE_ADMIN_TOKEN"); err != nil {
				return err
			}
			if o.webhookSecret, err = secretFrom(secretFile, "OMNIPRESENCE_WEBHOOK_SECRET"); err != nil {
				return err
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
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}
