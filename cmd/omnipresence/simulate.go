package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/dryrun"
)

func init() {
	var configPath, eventsPath, format string
	var latency time.Duration
	cmd := &cobra.Command{
		Use:   "simulate --config PATH --events PATH",
		Short: "Dry-run policies on recorded or hand-written events with a virtual clock",
		Long: "simulate replays JSON Lines events through the engine with simulated systems that\n" +
			"echo each write after --write-latency and refuse writes during system states.\n" +
			"It prints one line per write, then a summary line; the same input gives the same output.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "jsonl" && format != "table" {
				return &exitError{code: 2, err: fmt.Errorf("--format must be jsonl or table, not %q", format)}
			}
			cfg, err := loadPolicy(configPath)
			if err != nil {
				return err
			}
			f, err := os.Open(eventsPath)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer f.Close()
			events, err := dryrun.ParseEvents(eventsPath, f, cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			res, err := dryrun.Run(cmd.Context(), cfg, events, dryrun.Options{WriteLatency: latency})
			if err != nil {
				return err
			}
			if res.ExtensionCalls > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %d extension webhook call(s) were not made (simulate makes no network calls); the policies' own decisions are shown\n", res.ExtensionCalls)
			}
			if format == "table" {
				return res.WriteTable(cmd.OutOrStdout())
			}
			return res.WriteJSONL(cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "policy file or folder (required)")
	cmd.Flags().StringVar(&eventsPath, "events", "", "JSON Lines events file (required)")
	cmd.Flags().StringVar(&format, "format", "jsonl", "output format: jsonl or table")
	cmd.Flags().DurationVar(&latency, "write-latency", 50*time.Millisecond, "virtual time a write takes to land and echo")
	_ = cmd.MarkFlagRequired("config")
	_ = cmd.MarkFlagRequired("events")
	rootCmd.AddCommand(cmd)
}
