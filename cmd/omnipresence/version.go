package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// version and commit are set at build time with -ldflags "-X main.version=… -X main.commit=…";
// without them the commit comes from the checkout Go built in, when it recorded one.
var (
	version = "dev"
	commit  = ""
)

// buildInfo is what `omnipresence version` prints and omnipresence_build_info carries.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go"`
}

// currentBuild reads the version set at link time and the commit Go recorded from the checkout
// the binary was built in ("unknown" when built outside one, "-dirty" with local changes).
func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		if commit != "" {
			b.Commit = commit
		}
		return b
	}
	if b.Version == "dev" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		b.Version = info.Main.Version
	}
	var dirty bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
			if len(b.Commit) > 12 {
				b.Commit = b.Commit[:12]
			}
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty && b.Commit != "unknown" {
		b.Commit += "-dirty"
	}
	if commit != "" {
		b.Commit = commit
	}
	return b
}

func (b buildInfo) String() string {
	return fmt.Sprintf("omnipresence %s (commit %s, %s)", b.Version, b.Commit, b.GoVersion)
}

// buildInfoCollector is the omnipresence_build_info gauge: always 1, the build in its labels.
func buildInfoCollector(b buildInfo) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "omnipresence_build_info",
		Help:        "The running build: version, commit and Go version as labels; always 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": b.GoVersion},
	})
	g.Set(1)
	return g
}

func init() {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b := currentBuild()
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(b)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), b)
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON object")
	rootCmd.AddCommand(cmd)
}
