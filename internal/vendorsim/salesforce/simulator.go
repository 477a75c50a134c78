package salesforce

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/internal/connector/salesforce/bridgetoken"
	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Simulator describes this simulator to `omnipresence sim salesforce` and the demo;
// internal/vendors registers it.
var Simulator = vendorsim.Simulator{
	Kind:  "salesforce",
	Short: "Run a local Salesforce org (OAuth, REST/SOQL, Omni-Channel presence, CDC over the Pub/Sub API)",
	Long: "Serves the Salesforce OAuth and REST APIs and, on a second port announced as pubsub_url,\n" +
		"the Pub/Sub API with UserServicePresence change events, until interrupted. POST\n" +
		"/_sim/users/{user}/status {\"status\":\"<DeveloperName>|Offline\"} changes an agent's\n" +
		"Omni-Channel status; /_sim/faults injects faults. GET /console/{user} is the agent's\n" +
		"console; with --bridge-key-file (the private key of the org's bridge certificate) its\n" +
		"Omni-Channel bridge gets tokens as the bridge's Apex signs them; --bridge-secret-file\n" +
		"signs with a shared secret instead (development mode).",
	Command: command,
}

func command(f *pflag.FlagSet) vendorsim.Start {
	var cfg Config
	var certFile, bridgeKey, bridgeSecret string
	f.StringVar(&cfg.PubSubAddr, "pubsub-addr", "", "address of the Pub/Sub API (default: a free port on the --addr host)")
	f.StringVar(&certFile, "jwt-cert", "", "PEM certificate that JWT bearer assertions are checked against")
	f.StringVar(&bridgeKey, "bridge-key-file", "", "PEM private key the console signs Omni-Channel bridge tokens with (serve takes its certificate)")
	f.StringVar(&bridgeSecret, "bridge-secret-file", "", "development only: file holding a shared secret the console signs bridge tokens with")
	f.IntVar(&cfg.DailyAPIRequests, "daily-api-requests", 15000, "daily REST API request allocation")
	f.DurationVar(&cfg.SessionTimeout, "session-timeout", 2*time.Hour, "access token lifetime")
	f.StringSliceVar(&cfg.Channels, "channel", nil, "custom CDC channel (/data/Name__chn) carrying UserServicePresence events")
	return vendorsim.Launch(func(o vendorsim.Options) (*Server, error) {
		c := cfg
		c.Faults, c.Logger = o.Faults, o.Logger
		signer, err := bridgeSigner(o.BridgeKey, bridgeKey, bridgeSecret)
		if err != nil {
			return nil, err
		}
		if signer != nil && signer.Dev() && o.Logger != nil {
			o.Logger.Warn("DEVELOPMENT MODE: the console's bridge tokens are signed with a shared secret, not a certificate")
		}
		c.BridgeSigner = signer
		if o.Seed != "" {
			s, err := LoadSeed(o.Seed)
			if err != nil {
				return nil, err
			}
			c.Seed = &s
		}
		if certFile != "" {
			b, err := os.ReadFile(certFile)
			if err != nil {
				return nil, err
			}
			c.JWTCertificate = b
		}
		return New(c)
	})
}

// bridgeSigner is what the console signs bridge tokens with: the key given (the demo's), a PEM
// private key file, or, in development mode, a shared secret file; nil for none.
func bridgeSigner(key *rsa.PrivateKey, keyFile, secretFile string) (*bridgetoken.Signer, error) {
	switch {
	case keyFile != "" && secretFile != "":
		return nil, errors.New("give --bridge-key-file or --bridge-secret-file, not both")
	case key != nil:
		return bridgetoken.NewRSASigner(key)
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
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return nil, err
		}
		return bridgetoken.NewDevSigner([]byte(strings.TrimSpace(string(b))))
	}
	return nil, nil
}

// demoStatuses are the statuses the demo's agents pick.
var demoStatuses = []string{"AvailableforVoice", "AvailableforChat", "Break", "Lunch", "Training", "Busy"}

// Act makes the demo agent with that email pick a status in the Omni-Channel widget.
func (s *Server) Act(_ context.Context, rnd *rand.Rand, email string) error {
	_, err := s.SetStatus(email, demoStatuses[rnd.IntN(len(demoStatuses))], "")
	return err
}

// StartShift gives every demo agent the Omni-Channel status demoorg.ShiftOf says: voice agents
// AvailableforVoice, chat agents AvailableforChat, blended agents Online, some on Break, at
// Lunch, or not logged in.
func (s *Server) StartShift() error {
	ready := map[string]string{"voice": "AvailableforVoice", "chat": "AvailableforChat", "blended": "Online"}
	err := demoorg.StartShift(demoorg.ShiftStatuses{Ready: ready, Break: "Break", Meal: "Lunch"}, func(email, status string) error {
		_, err := s.SetStatus(email, status, "OmniLoginStatusChange")
		return err
	})
	if err != nil {
		return fmt.Errorf("salesforce %w", err)
	}
	return nil
}

// StartConsoles keeps every demo agent's console open, headless, with the bridge talking to the
// service.
func (s *Server) StartConsoles(ctx context.Context, serviceURL string) (func(), error) {
	var users []string
	for _, p := range demoorg.People() {
		users = append(users, p.Email)
	}
	return s.StartHeadlessConsoles(ctx, HeadlessOptions{Service: serviceURL, Users: users})
}

// Hints are the demo banner's lines for this simulator.
func (s *Server) Hints(serviceURL string) []string {
	url := s.ConsoleOrigin()
	return []string{
		fmt.Sprintf("Ana's Salesforce console, to click a status yourself:  %s/console/ana@example.com?service=%s", url, serviceURL),
		fmt.Sprintf(`Change a Salesforce status:  curl -X POST %s/_sim/users/ana@example.com/status -d '{"status":"Lunch"}'`, url),
		"Every agent's Salesforce console runs headless in the simulator with the omnipresence bridge;",
		"opening Ana's console above takes over from hers.",
	}
}

// ConsoleOrigin is the origin of the agent console (/console/{user}), whose bridge reaches the
// service.
func (s *Server) ConsoleOrigin() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.url
}
