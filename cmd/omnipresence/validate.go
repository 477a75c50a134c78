package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/policy"
)

func init() {
	var configPath string
	cmd := &cobra.Command{
		Use:   "validate --config PATH",
		Short: "Check a policy file or folder and report every problem at once",
		Long: "validate loads a policy file or a folder of them and reports every problem as\n" +
			"FILE:LINE:COL: message on stderr (exit 2), or one summary line on stdout (exit 0).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadPolicy(configPath)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), summarize(cfg))
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "policy file or folder (required)")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}

// loadPolicy loads a policy with inline catalogs only; problems become exit code 2.
func loadPolicy(path string) (*policy.Config, error) {
	cfg, err := policy.Load(path, policy.Options{})
	if err != nil {
		var ds policy.Diagnostics
		if errors.As(err, &ds) {
			return nil, &exitError{code: 2, err: err}
		}
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", path, err)}
	}
	return cfg, nil
}

func summarize(cfg *policy.Config) string {
	rules, activities, maps := 0, 0, 0
	for _, p := range cfg.Policies {
		rules += len(p.Rules)
		activities += len(p.Activities)
		maps += len(p.Maps)
	}
	return fmt.Sprintf("ok: %d systems, %d policies, %d maps, %d rules, %d activities, %d agents",
		len(cfg.Systems), len(cfg.Policies), maps, rules, activities, len(cfg.Agents))
}
