package cxone

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Simulator describes this simulator to `omnipresence sim cxone` and the demo;
// internal/vendors registers it.
var Simulator = vendorsim.Simulator{
	Kind:  "cxone",
	Short: "Run a local NICE CXone (discovery, OAuth/OIDC, agents, teams, agent sessions, states)",
	Long: "Serves the NICE CXone wire format until interrupted: API discovery, access-key and OIDC\n" +
		"tokens, the admin and real-time APIs and the agent-session API. Control endpoints under\n" +
		"/_sim/ change agents' states, start and end contacts and inject faults.",
	Command: command,
}

func command(f *pflag.FlagSet) vendorsim.Start {
	var cfg Config
	f.IntVar(&cfg.RateLimit, "rate-limit", 600, "requests per rate window per token")
	f.DurationVar(&cfg.RateWindow, "rate-window", time.Minute, "rate-limit window")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", time.Hour, "access token lifetime (expires_in)")
	f.BoolVar(&cfg.TLS, "tls", false, "serve https with a self-signed certificate (printed as ca_cert)")
	return vendorsim.Launch(func(o vendorsim.Options) (*Server, error) {
		c := cfg
		c.SeedFile, c.Faults, c.Logger = o.Seed, o.Faults, o.Logger
		return New(c)
	})
}

// demoStatuses are the statuses the demo's agents pick.
var demoStatuses = []string{Available, Available, "Break", "Lunch", "Meeting", "Personal"}

// Act makes the demo agent with that email change state, or take a call that ends 5 to 25
// seconds later.
func (s *Server) Act(ctx context.Context, rnd *rand.Rand, email string) error {
	if rnd.IntN(6) < 4 {
		err := s.SetStatus(email, demoStatuses[rnd.IntN(len(demoStatuses))])
		if err != nil && isContactConflict(err) {
			return nil // on a call: the person waits for it to end
		}
		return err
	}
	id, err := s.StartContact(email, rnd.IntN(4) == 0, "")
	if err != nil {
		return nil // logged out or already on a call
	}
	time.AfterFunc(time.Duration(5+rnd.IntN(20))*time.Second, func() {
		if ctx.Err() == nil {
			_ = s.EndContact(id)
		}
	})
	return nil
}

func isContactConflict(err error) bool {
	e, ok := err.(*errState)
	return ok && e.status == 409
}

// StartShift gives every demo agent the state demoorg.ShiftOf says: ready agents Available,
// some on Break or at Lunch, some logged out.
func (s *Server) StartShift() error {
	ready := map[string]string{"voice": Available, "chat": Available, "blended": Available}
	st := demoorg.ShiftStatuses{Ready: ready, Break: "Break", Meal: "Lunch", LoggedOut: LoggedOut}
	if err := demoorg.StartShift(st, s.SetStatus); err != nil {
		return fmt.Errorf("cxone %w", err)
	}
	return nil
}

// Hints are the demo banner's lines for this simulator.
func (s *Server) Hints(string) []string {
	return []string{
		fmt.Sprintf(`Change a CXone agent state:  curl -X POST %s/_sim/users/ana@example.com/status -d '{"status":"Lunch"}'`, s.url),
		fmt.Sprintf(`Start a CXone call:          curl -X POST %s/_sim/contacts -d '{"user":"ana@example.com"}'`, s.url),
	}
}
