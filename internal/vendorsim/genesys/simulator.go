package genesys

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Simulator describes this simulator to `omnipresence sim genesys` and the demo;
// internal/vendors registers it.
var Simulator = vendorsim.Simulator{
	Kind:  "genesys",
	Short: "Run a local Genesys Cloud (OAuth, presence, users, notifications, calls)",
	Long: "Serves the Genesys Cloud Platform API wire format until interrupted. Control endpoints\n" +
		"under /_sim/ start and end calls, change presences and inject faults.",
	Command: command,
}

func command(f *pflag.FlagSet) vendorsim.Start {
	var cfg Config
	f.IntVar(&cfg.RateLimitPerMinute, "rate-limit", 300, "requests per rate window per token")
	f.DurationVar(&cfg.RateWindow, "rate-window", time.Minute, "rate-limit window; shrinking it also shrinks the seconds of Retry-After")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 30*time.Second, "notification socket heartbeat interval")
	f.DurationVar(&cfg.TokenTTL, "token-ttl", 24*time.Hour, "access token lifetime (expires_in)")
	return vendorsim.Launch(func(o vendorsim.Options) (*Server, error) {
		c := cfg
		c.SeedFile, c.Faults, c.Logger = o.Seed, o.Faults, o.Logger
		return New(c)
	})
}

// demoPresences are the presences the demo's agents pick.
var demoPresences = []string{"On Queue", "Available", "Break", "Meal", "Away", "Coffee Break"}

// Act makes the demo agent with that email change presence, or take a call (direct or from a
// queue) that ends 5 to 25 seconds later.
func (s *Server) Act(ctx context.Context, rnd *rand.Rand, email string) error {
	n := rnd.IntN(7)
	if n < 4 {
		return s.SetPresence(email, demoPresences[rnd.IntN(len(demoPresences))])
	}
	id, err := s.StartCall(email, n == 6, "")
	if err != nil {
		return err
	}
	time.AfterFunc(time.Duration(5+rnd.IntN(20))*time.Second, func() {
		if ctx.Err() == nil {
			_ = s.EndCall(id)
		}
	})
	return nil
}

// StartShift gives every demo agent the presence demoorg.ShiftOf says: voice and blended
// agents On Queue, chat agents Available, some on Break, at Meal or Offline.
func (s *Server) StartShift() error {
	ready := map[string]string{"voice": "On Queue", "chat": "Available", "blended": "On Queue"}
	st := demoorg.ShiftStatuses{Ready: ready, Break: "Break", Meal: "Meal", LoggedOut: "Offline"}
	if err := demoorg.StartShift(st, s.SetPresence); err != nil {
		return fmt.Errorf("genesys %w", err)
	}
	return nil
}

// Hints are the demo banner's lines for this simulator.
func (s *Server) Hints(string) []string {
	return []string{
		fmt.Sprintf(`Change a Genesys presence:   curl -X POST %s/_sim/presence -d '{"user":"ana@example.com","presence":"Break"}'`, s.url),
		fmt.Sprintf(`Start a non-ACD call:        curl -X POST %s/_sim/calls -d '{"user":"ana@example.com","acd":false}'`, s.url),
	}
}
