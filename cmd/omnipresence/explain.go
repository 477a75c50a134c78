package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/engine"
)

func init() {
	var agent, storeURL, format string
	var limit int
	cmd := &cobra.Command{
		Use:   "explain --agent EMAIL",
		Short: "Show why an agent's status changed: event, rule, intent, write, answer, echo",
		Long: "explain reads an agent's decision chain from the store (it works beside a running\n" +
			"serve) and prints it oldest first: each event, the rules that matched or why none\n" +
			"did, the statuses it asked for, the writes made, the vendors' answers and the echoes.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "text" && format != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--format must be text or json, not %q", format)}
			}
			if err := storeExists(storeURL); err != nil {
				return &exitError{code: 2, err: err}
			}
			st, err := openStore(cmd.Context(), storeURL)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer st.Close()
			email := strings.ToLower(strings.TrimSpace(agent))
			recs, err := st.Audit(cmd.Context(), email, limit)
			if err != nil {
				return err
			}
			if len(recs) == 0 {
				return &exitError{code: 1, err: fmt.Errorf("no decisions recorded for %s in %s", email, redactURL(storeURL))}
			}
			steps, err := engine.DecodeSteps(recs)
			if err != nil {
				return err
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"email": email, "steps": steps})
			}
			engine.WriteExplain(cmd.OutOrStdout(), email, steps)
			return nil
		},
	}
	cmd.Flags().StringVar(&agent, "agent", "", "the agent's email (required)")
	cmd.Flags().StringVar(&storeURL, "store", "sqlite:omnipresence.db", "the store serve uses")
	cmd.Flags().IntVar(&limit, "limit", 200, "how many of the newest steps to show")
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	_ = cmd.MarkFlagRequired("agent")
	rootCmd.AddCommand(cmd)
}

// storeExists refuses a SQLite store file that does not exist, which opening would create empty
// (and then report "no decisions", hiding a mistyped path).
func storeExists(url string) error {
	path, ok := strings.CutPrefix(url, "sqlite:")
	if !ok {
		return nil
	}
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no store at %s: give --store the sqlite:PATH (or postgres:// URL) that serve writes to", path)
		}
		return fmt.Errorf("cannot read the store at %s: %w", path, err)
	}
	return nil
}
