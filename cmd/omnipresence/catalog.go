package main

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

func init() {
	var configPath, format string
	cmd := &cobra.Command{
		Use:   "catalog SYSTEM --config PATH",
		Short: "Pull a system's statuses (names, ids, categories, settable) from the vendor",
		Long: "catalog connects to one system of a policy and prints its status catalog as the\n" +
			"vendor reports it: what admins otherwise look up by hand (SOQL on\n" +
			"ServicePresenceStatus, GET /api/v2/presence/definitions) to copy ids into a mapping.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--format must be table or json, not %q", format)}
			}
			cfg, err := loadPolicy(configPath)
			if err != nil {
				return err
			}
			sys := cfg.Systems[args[0]]
			if sys == nil {
				return &exitError{code: 2, err: fmt.Errorf("no system %q in %s (it has %s)", args[0], configPath, strings.Join(cfg.SystemNames, ", "))}
			}
			if !sys.Connected() {
				return &exitError{code: 2, err: fmt.Errorf("system %s has no connection settings in %s", sys.Name, configPath)}
			}
			c, err := sys.Vendor.Connect(cmd.Context(), sys.Name, sys.Settings, connector.Deps{Logger: newLogger(), Checkpoints: memory.New()})
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer c.Close()
			statuses, err := c.Catalog(cmd.Context())
			if err != nil {
				return fmt.Errorf("%s: %w", sys.Name, err)
			}
			sort.SliceStable(statuses, func(i, j int) bool { return statuses[i].Name < statuses[j].Name })
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(statuses)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tID\tCATEGORY\tSETTABLE\tSYSTEM PRESENCE")
			for _, s := range statuses {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\n", s.Name, s.ID, s.Category, s.Settable, s.SystemPresence)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "policy file or folder naming the system (required)")
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}
