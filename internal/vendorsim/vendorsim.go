// Package vendorsim holds the wire-faithful vendor simulators, one package per vendor below it,
// and Simulator, the description of one that `omnipresence sim <kind>` and `omnipresence demo`
// are built from. Each simulator package exports its Simulator; internal/vendors registers it
// beside the vendor's connector.
package vendorsim

import (
	"context"
	"crypto/rsa"
	"log/slog"
	"math/rand/v2"

	"github.com/spf13/pflag"

	"github.com/omnipresence/omnipresence/internal/vendorsim/fault"
)

// Simulator describes one vendor simulator.
type Simulator struct {
	// Kind is the vendor kind it simulates ("genesys"): `omnipresence sim genesys`.
	Kind string
	// Short and Long describe the command in the CLI's help.
	Short, Long string
	// Command adds the simulator's own flags to fs (every simulator also takes --addr, --seed
	// and the fault flags) and returns how to start it with their values. `omnipresence demo`
	// calls it with a throw-away flag set, so every flag's default must suit the demo.
	Command func(fs *pflag.FlagSet) Start
}

// Start starts a simulator serving on o.Addr; it runs until Close.
type Start func(ctx context.Context, o Options) (Instance, error)

// Options are what every simulator takes.
type Options struct {
	// Addr is where to listen ("127.0.0.1:0" picks a free port).
	Addr string
	// Seed is a seed file (statuses, users, …); empty for the built-in demo org.
	Seed string
	// Faults are in force from the start.
	Faults fault.Settings
	// Logger receives the simulator's logs.
	Logger *slog.Logger
	// BridgeKey, when set, is the private key a simulator that serves an agent console (with an
	// omnipresence browser bridge in it) signs the bridge's tokens with, as the org's bridge
	// certificate does; the demo gives the service that certificate.
	BridgeKey *rsa.PrivateKey
}

// Instance is a running simulator.
type Instance interface {
	// Info is the one JSON line `omnipresence sim <kind>` prints (CONTRACTS.md): "kind", "url"
	// and the other fields a client needs. The demo lists it too, and sets DEMO_<KIND>_<FIELD>
	// (upper-case) to each field for the demo policy's connection settings.
	Info() map[string]any
	// Close stops it.
	Close() error
}

// Actor is implemented by simulators that can play the demo's agents: Act makes one change as
// the person with that email would (pick a status, take a call), chosen with rnd.
type Actor interface {
	Act(ctx context.Context, rnd *rand.Rand, email string) error
}

// Hinter is implemented by simulators with something to show in the demo's banner: lines such
// as "Change a Genesys presence: curl …", given the service's URL.
type Hinter interface {
	Hints(serviceURL string) []string
}

// ShiftStarter is implemented by simulators that can give every demo agent, before the service
// starts, the status demoorg.ShiftOf says, as a contact center mid-shift looks.
type ShiftStarter interface {
	StartShift() error
}

// Console is implemented by simulators that serve an agent console running the omnipresence
// browser bridge; the demo lets that origin reach the service's bridge endpoints.
type Console interface {
	ConsoleOrigin() string
}

// HeadlessConsoles is implemented by simulators that can keep every demo agent's console open,
// headless, with the bridge talking to the service at serviceURL, until ctx ends; wait blocks
// until they have stopped.
type HeadlessConsoles interface {
	StartConsoles(ctx context.Context, serviceURL string) (wait func(), err error)
}
