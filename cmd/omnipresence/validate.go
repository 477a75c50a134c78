package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/connector"
	"github.com/omnipresence/omnipresence/internal/policy"
	"github.com/omnipresence/omnipresence/internal/store/memory"
)

// onlineTimeout bounds what validate --online asks one vendor.
const onlineTimeout = 30 * time.Second

func init() {
	var configPath string
	var online bool
	cmd := &cobra.Command{
		Use:   "validate --config PATH [--online]",
		Short: "Check a policy file or folder and report every problem at once",
		Long: "validate loads a policy file or a folder of them and reports every problem as\n" +
			"FILE:LINE:COL: message on stderr (exit 2), or one summary line on stdout (exit 0).\n" +
			"It makes every check serve makes without the network; it reads no secrets.\n" +
			"With --online it also resolves the connection settings (environment variables,\n" +
			"files), pulls each system's catalog and accounts from its vendor (or simulator), and\n" +
			"checks status names, settability and accounts against them.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadPolicy(configPath)
			if err != nil {
				return err
			}
			summary := summarize(cfg)
			if online {
				pulled, err := validateOnline(cmd.Context(), configPath, cfg)
				if err != nil {
					return err
				}
				summary += "; " + pulled
			}
			fmt.Fprintln(cmd.OutOrStdout(), summary)
			return nil
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "policy file or folder (required)")
	cmd.Flags().BoolVar(&online, "online", false, "also check the policy against each system's catalog and accounts at its vendor")
	_ = cmd.MarkFlagRequired("config")
	rootCmd.AddCommand(cmd)
}

// loadPolicy loads a policy with inline catalogs only; problems become exit code 2.
func loadPolicy(path string) (*policy.Config, error) {
	return loadWith(path, policy.Options{})
}

func loadWith(path string, opts policy.Options) (*policy.Config, error) {
	cfg, err := policy.Load(path, opts)
	if err != nil {
		var ds policy.Diagnostics
		if errors.As(err, &ds) {
			return nil, &exitError{code: 2, err: err}
		}
		return nil, &exitError{code: 2, err: fmt.Errorf("%s: %w", path, err)}
	}
	return cfg, nil
}

// validateOnline connects every system this build can, pulls its catalog and accounts (all
// systems at once), and loads the policy again against them. It returns what was pulled, for
// the summary.
func validateOnline(ctx context.Context, path string, cfg *policy.Config) (string, error) {
	type pulled struct {
		remote policy.Remote
		err    error
	}
	results := make(map[string]*pulled, len(cfg.SystemNames))
	var wg sync.WaitGroup
	for _, name := range cfg.SystemNames {
		sys := cfg.Systems[name]
		p := &pulled{}
		results[name] = p
		if !sys.Connected() || sys.Vendor.Open == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.remote, p.err = pullRemote(ctx, sys)
		}()
	}
	wg.Wait()
	if _, err := loadWith(path, policy.Options{Remote: func(sys *policy.System) (policy.Remote, error) {
		p := results[sys.Name]
		return p.remote, p.err
	}}); err != nil {
		return "", err
	}
	var parts []string
	for _, name := range cfg.SystemNames {
		sys, r := cfg.Systems[name], results[name].remote
		switch {
		case !sys.Connected():
			parts = append(parts, name+" not connected")
		case sys.Vendor.Open == nil:
			parts = append(parts, name+" has no connector in this build")
		default:
			parts = append(parts, fmt.Sprintf("%s %d statuses, %d accounts", name, len(r.Catalog), len(r.Accounts)))
		}
	}
	return "online: " + strings.Join(parts, ", "), nil
}

// pullRemote connects one system and reads its catalog and accounts.
func pullRemote(ctx context.Context, sys *policy.System) (policy.Remote, error) {
	ctx, cancel := context.WithTimeout(ctx, onlineTimeout)
	defer cancel()
	c, err := sys.Vendor.Connect(ctx, sys.Name, sys.Settings, connector.Deps{
		Logger: slog.New(slog.DiscardHandler), HTTPClient: &http.Client{Timeout: onlineTimeout}, Checkpoints: memory.New()})
	if err != nil {
		return policy.Remote{}, err
	}
	defer c.Close()
	var r policy.Remote
	if r.Catalog, err = c.Catalog(ctx); err != nil {
		return policy.Remote{}, fmt.Errorf("cannot load the catalog: %w", err)
	}
	if r.Accounts, err = c.Accounts(ctx); err != nil {
		return policy.Remote{}, fmt.Errorf("cannot load the accounts: %w", err)
	}
	return r, nil
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
