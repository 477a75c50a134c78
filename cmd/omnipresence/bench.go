package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/bench"
)

func init() {
	var storeURL, against, format string
	var agents, events int
	cmd := &cobra.Command{
		Use:   "bench [--store URL] [--agents N] [--events N] [--against fake|simulators] [--format table|json]",
		Short: "Measure the engine on a store, to size a deployment",
		Long: "bench drives the engine on the chosen store (by default a temporary SQLite file) with\n" +
			"synthetic agents whose Salesforce status changes --events times in all, mapped to Genesys\n" +
			"through the in-process fake vendor or the Genesys simulator, and prints events per second,\n" +
			"the time from an event to its durable decision and to the vendor call it causes (p50,\n" +
			"p99), allocations and storage bytes per event. The store must be empty: bench writes\n" +
			"synthetic agents into it. A progress bar goes to stderr when it is a terminal.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return &exitError{code: 2, err: fmt.Errorf("--format must be table or json, not %q", format)}
			}
			if against != "fake" && against != "simulators" {
				return &exitError{code: 2, err: fmt.Errorf("--against must be fake or simulators, not %q", against)}
			}
			if agents < 1 || events < 1 {
				return &exitError{code: 2, err: fmt.Errorf("--agents and --events must be at least 1")}
			}
			name := redactURL(storeURL)
			if storeURL == "" {
				dir, err := os.MkdirTemp("", "omnipresence-bench-store-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				storeURL, name = "sqlite:"+filepath.Join(dir, "bench.db"), "sqlite (temporary)"
			}
			st, err := openStore(cmd.Context(), storeURL)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			defer st.Close()
			if existing, err := st.Agents(cmd.Context()); err != nil {
				return err
			} else if len(existing) > 0 {
				return &exitError{code: 2, err: fmt.Errorf("--store %s holds %d agents: bench writes synthetic agents, give it an empty database",
					name, len(existing))}
			}
			var bar io.Writer
			if f, ok := cmd.ErrOrStderr().(*os.File); ok {
				if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
					bar = f
				}
			}
			res, err := bench.Run(cmd.Context(), bench.Options{Store: st, StoreName: name, Agents: agents, Events: events,
				Against: against, Progress: bar})
			if err != nil {
				return err
			}
			if format == "json" {
				return printJSONLine(cmd.OutOrStdout(), res)
			}
			return writeBenchTable(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().StringVar(&storeURL, "store", "", "sqlite:PATH, postgres://… or memory: (default a temporary SQLite file)")
	cmd.Flags().IntVar(&agents, "agents", 1000, "synthetic agents")
	cmd.Flags().IntVar(&events, "events", 20000, "status changes, spread over the agents round robin")
	cmd.Flags().StringVar(&against, "against", "fake", "vendor: fake (in-process) or simulators (the Genesys simulator)")
	cmd.Flags().StringVar(&format, "format", "table", "output: table or json")
	rootCmd.AddCommand(cmd)
}

func writeBenchTable(w io.Writer, r bench.Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	rows := [][2]string{
		{"store", r.Store},
		{"against", r.Against},
		{"agents", fmt.Sprint(r.Agents)},
		{"events", fmt.Sprintf("%d in %.2fs (status changes and their echoes)", r.Events, r.Seconds)},
		{"events/s", fmt.Sprintf("%.0f", r.EventsPerSecond)},
		{"ingest → decision p50 / p99", fmt.Sprintf("%.2f ms / %.2f ms", r.IngestP50Ms, r.IngestP99Ms)},
		{"event → vendor call p50 / p99", fmt.Sprintf("%.2f ms / %.2f ms (%d calls)", r.VendorCallP50Ms, r.VendorCallP99Ms, r.VendorCalls)},
		{"allocations / event", fmt.Sprintf("%.0f", r.AllocsPerEvent)},
		{"bytes / event", fmt.Sprintf("%.0f", r.BytesPerEvent)},
	}
	for _, row := range rows {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], strings.TrimSpace(row[1]))
	}
	return tw.Flush()
}
