package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
	"github.com/omnipresence/omnipresence/internal/vendorsim/salesforce"
)

func init() {
	var (
		addr        string
		pubsubAddr  string
		seed        string
		certFile    string
		bridgeKey   string
		bridgeSec   string
		daily       int
		sessionTime time.Duration
		channels    []string
		faults      fault.Settings
	)
	cmd := &cobra.Command{
		Use:   "salesforce",
		Short: "Run a local Salesforce org (OAuth, REST/SOQL, Omni-Channel presence, CDC over the Pub/Sub API)",
		Long: "Serves the Salesforce OAuth and REST APIs and, on a second port announced as pubsub_url,\n" +
			"the Pub/Sub API with UserServicePresence change events, until interrupted. POST\n" +
			"/_sim/users/{user}/status {\"status\":\"<DeveloperName>|Offline\"} changes an agent's\n" +
			"Omni-Channel status; /_sim/faults injects faults. GET /console/{user} is the agent's\n" +
			"console; with --bridge-key-file (the private key of the org's bridge certificate) its\n" +
			"Omni-Channel bridge gets tokens as the bridge's Apex signs them; --bridge-secret-file\n" +
			"signs with a shared secret instead (development mode).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := faults.Validate(); err != nil {
				return &exitError{code: 2, err: err}
			}
			log := newLogger()
			cfg := salesforce.Config{PubSubAddr: pubsubAddr, DailyAPIRequests: daily, SessionTimeout: sessionTime, Channels: channels,
				Faults: faults, Logger: log}
			if seed != "" {
				s, err := salesforce.LoadSeed(seed)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				cfg.Seed = &s
			}
			if certFile != "" {
				b, err := os.ReadFile(certFile)
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				cfg.JWTCertificate = b
			}
			signer, err := bridgeSigner(bridgeKey, bridgeSec)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if signer != nil && signer.Dev() {
				log.Warn("DEVELOPMENT MODE: the console's bridge tokens are signed with a shared secret, not a certificate")
			}
			cfg.BridgeSigner = signer
			srv, err := salesforce.New(cfg)
			if err != nil {
				return &exitError{code: 2, err: err}
			}
			if _, err := srv.Start(addr); err != nil {
				return &exitError{code: 2, err: listenError(addr, err)}
			}
			line, err := json.Marshal(srv.Info())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), string(line))
			<-cmd.Context().Done()
			log.Info("salesforce simulator stopping")
			return srv.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:0", "address to listen on (port 0 picks a free port)")
	f.StringVar(&pubsubAddr, "pubsub-addr", "", "address of the Pub/Sub API (default: a free port on the --addr host)")
	f.StringVar(&seed, "seed", "", "JSON seed file (channels, statuses, users); the demo org when empty")
	f.StringVar(&certFile, "jwt-cert", "", "PEM certificate that JWT bearer assertions are checked against")
	f.StringVar(&bridgeKey, "bridge-key-file", "", "PEM private key the console signs Omni-Channel bridge tokens with (serve takes its certificate)")
	f.StringVar(&bridgeSec, "bridge-secret-file", "", "development only: file holding a shared secret the console signs bridge tokens with")
	f.IntVar(&daily, "daily-api-requests", 15000, "daily REST API request allocation")
	f.DurationVar(&sessionTime, "session-timeout", 2*time.Hour, "access token lifetime")
	f.StringSliceVar(&channels, "channel", nil, "custom CDC channel (/data/Name__chn) carrying UserServicePresence events")
	fault.BindFlags(f, &faults)
	simCmd.AddCommand(cmd)
}

// bridgeSigner reads the console's bridge token signer from a PEM private key file or, in
// development mode, a shared secret file; nil when neither is given.
func bridgeSigner(keyFile, secretFile string) (*bridgetoken.Signer, error) {
	switch {
	case keyFile != "" && secretFile != "":
		return nil, errors.New("give --bridge-key-file or --bridge-secret-file, not both")
	case keyFile != "":
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, err
		}
		s, err := bridgetoken.ParseSigner(b)
		if err != nil {
			return nil, fmt.Errorf("--bridge-key-file %s: %w", keyFile, err)
		}
		return s, nil
	case secretFile != "":
		secret, err := secretFrom(secretFile, "")
		if err != nil {
			return nil, err
		}
		return bridgetoken.NewDevSigner([]byte(secret))
	}
	return nil, nil
}
