package amazonconnect

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/internal/vendorsim"
	"github.com/omnipresence/omnipresence/internal/vendorsim/demoorg"
)

// Simulator describes this simulator to `omnipresence sim amazonconnect` and the demo;
// internal/vendors registers it.
var Simulator = vendorsim.Simulator{
	Kind:  "amazonconnect",
	Short: "Run a local Amazon Connect instance with its agent event stream (Connect API, Kinesis)",
	Long: "Serves the Amazon Connect API (agent statuses, users, PutUserStatus, GetCurrentUserData) and\n" +
		"the Kinesis stream of the instance's agent events, SigV4-signed, until interrupted. Control\n" +
		"endpoints under /_sim/ change statuses as agents, route and end contacts and inject faults.\n" +
		"Without --seed it serves the demo instance: the demo agents (usernames are their emails) and\n" +
		"the statuses Available, Offline, Lunch, Break, Training, OmniBusy and Escalation. A seed is\n" +
		`JSON: {"statuses":[{"name":"Available","type":"ROUTABLE"},…],"users":[{"email":…,"username":…}]}.`,
	Command: command,
}

func command(f *pflag.FlagSet) vendorsim.Start {
	var cfg Config
	f.StringVar(&cfg.Region, "region", "us-east-1", "the instance's region")
	f.Float64Var(&cfg.RatePerSecond, "rate", 2, "requests per second each Connect API allows (PutUserStatus quota)")
	f.IntVar(&cfg.Burst, "burst", 5, "burst each Connect API allows")
	f.IntVar(&cfg.Shards, "shards", 2, "open shards of the agent event stream")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 120*time.Second, "HEART_BEAT interval of an idle logged-in agent")
	return vendorsim.Launch(func(o vendorsim.Options) (*Server, error) {
		c := cfg
		c.SeedFile, c.Faults, c.Logger = o.Seed, o.Faults, o.Logger
		return New(c)
	})
}

// demoStatuses are the statuses the demo's agents pick.
var demoStatuses = []string{"Available", "Available", "Lunch", "Break", "Training"}

// Act makes the demo agent with that email pick a status, or take a contact that is answered
// at once, ends 5 to 25 seconds later and is cleared after 3 seconds of after-contact work.
func (s *Server) Act(ctx context.Context, rnd *rand.Rand, email string) error {
	if rnd.IntN(3) < 2 {
		return s.SetStatus(email, demoStatuses[rnd.IntN(len(demoStatuses))])
	}
	id, err := s.StartContact(ContactRequest{User: email, Answer: true})
	if err != nil {
		return s.SetStatus(email, "Available") // a logged-out agent logs in instead
	}
	time.AfterFunc(time.Duration(5+rnd.IntN(20))*time.Second, func() {
		if ctx.Err() != nil || s.EndContact(id) != nil {
			return
		}
		time.AfterFunc(3*time.Second, func() {
			if ctx.Err() == nil {
				_ = s.ClearContact(id)
			}
		})
	})
	return nil
}

// StartShift gives every demo agent the status demoorg.ShiftOf says: Available, on Break, at
// Lunch, or logged out.
func (s *Server) StartShift() error {
	ready := map[string]string{"voice": "Available", "chat": "Available", "blended": "Available"}
	if err := demoorg.StartShift(demoorg.ShiftStatuses{Ready: ready, Break: "Break", Meal: "Lunch"}, s.SetStatus); err != nil {
		return fmt.Errorf("amazonconnect %w", err)
	}
	return nil
}

// Hints are the demo banner's lines for this simulator.
func (s *Server) Hints(string) []string {
	return []string{
		fmt.Sprintf(`Change a Connect status:     curl -X POST %s/_sim/users/ana@example.com/status -d '{"status":"Lunch"}'`, s.url),
		fmt.Sprintf(`Route a Connect call:        curl -X POST %s/_sim/contacts -d '{"user":"ana@example.com","answer":true}'`, s.url),
	}
}
