package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/vendors"
	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// simCmd is the parent of one subcommand per registered simulator (internal/vendors).
var simCmd = &cobra.Command{
	Use:   "sim",
	Short: "Run a local simulator of a vendor's real wire API",
}

func init() {
	for _, s := range vendors.Simulators() {
		simCmd.AddCommand(simCommand(s))
	}
	rootCmd.AddCommand(simCmd)
}

// simCommand is `omnipresence sim <kind>`: the flags every simulator takes, the simulator's
// own, and the one JSON line it prints once it serves.
func simCommand(s vendorsim.Simulator) *cobra.Command {
	var o vendorsim.Options
	cmd := &cobra.Command{
		Use:   s.Kind,
		Short: s.Short,
		Long:  s.Long,
		Args:  cobra.NoArgs,
	}
	f := cmd.Flags()
	f.StringVar(&o.Addr, "addr", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	f.StringVar(&o.Seed, "seed", "", "JSON seed file; the demo org when empty")
	fault.BindFlags(f, &o.Faults)
	start := s.Command(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := o.Faults.Validate(); err != nil {
			return &exitError{code: 2, err: err}
		}
		log := newLogger()
		o.Logger = log
		inst, err := start(cmd.Context(), o)
		if err != nil {
			var opErr *net.OpError
			if errors.As(err, &opErr) && opErr.Op == "listen" {
				err = listenError(opErr.Addr.String(), err)
			}
			return &exitError{code: 2, err: err}
		}
		line, err := json.Marshal(inst.Info())
		if err != nil {
			return err
		}
		fmt.Fprintln(cmd.OutOrStdout(), string(line))
		<-cmd.Context().Done()
		log.Info(s.Kind + " simulator stopping")
		return inst.Close()
	}
	return cmd
}
