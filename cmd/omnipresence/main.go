// Command omnipresence keeps a contact-center agent's presence the same on every platform they
// work on. See README.md and docs/ for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	// Every vendor this build knows registers itself here.

	_ "github.com/omnipresence/omnipresence/internal/vendors"
)

// exitError carries a process exit code through cobra (2 for invalid input, per CONTRACTS.md).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

var rootCmd = &cobra.Command{
	Use:           "omnipresence",
	Short:         "Keep an agent's presence the same on Salesforce, Genesys Cloud, CXone and Amazon Connect",
	SilenceUsage:  true,
	SilenceErrors: true,
	PersistentPreRunE: func(*cobra.Command, []string) error {
		if err := checkLogFlags(); err != nil {
			return &exitError{code: 2, err: err}
		}
		return nil
	},
}

func init() {
	rootCmd.SetFlagErrorFunc(flagError)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCmd.ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, ee.err)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "omnipresence:", err)
		os.Exit(1)
	}
}
