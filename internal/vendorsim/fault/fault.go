// Package fault injects failures into a simulator: added latency, random errors, 429 storms and
// hooks that let a vendor simulator drop its sockets or expire its tokens on demand. It is an
// http.Handler middleware, a control endpoint to change the faults at run time and a helper that
// binds the same settings to command-line flags.
package fault

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"
)

// Settings are the faults in force. The zero value injects nothing.
type Settings struct {
	// Latency is added before every request is served.
	Latency time.Duration
	// ErrorRate is the probability (0..1) that a request fails with ErrorStatus.
	ErrorRate float64
	// ErrorStatus is the status of injected errors; 0 means 503.
	ErrorStatus int
	// StormFor, when positive, starts a 429 storm of that length when the settings are applied.
	StormFor time.Duration
	// RetryAfter is the Retry-After a 429 of the storm carries; 0 means one second.
	RetryAfter time.Duration
	// DropSockets asks the simulator to drop its open sockets once, when the settings are applied.
	DropSockets bool
	// ExpireTokens asks the simulator to expire every issued token once, when applied.
	ExpireTokens bool
}

// Validate reports settings that cannot be applied.
func (s Settings) Validate() error {
	switch {
	case s.Latency < 0:
		return fmt.Errorf("latency must not be negative")
	case math.IsNaN(s.ErrorRate) || s.ErrorRate < 0 || s.ErrorRate > 1:
		return fmt.Errorf("error rate must be between 0 and 1, got %v", s.ErrorRate)
	case s.ErrorStatus != 0 && (s.ErrorStatus < 400 || s.ErrorStatus > 599):
		return fmt.Errorf("error status must be 4xx or 5xx, got %d", s.ErrorStatus)
	case s.StormFor < 0 || s.RetryAfter < 0:
		return fmt.Errorf("durations must not be negative")
	}
	return nil
}

// wire is the JSON form of Settings used by the control endpoint; durations are Go duration
// strings ("250ms", "30s").
type wire struct {
	Latency      string  `json:"latency,omitempty"`
	ErrorRate    float64 `json:"error_rate,omitempty"`
	ErrorStatus  int     `json:"error_status,omitempty"`
	StormFor     string  `json:"storm_for,omitempty"`
	RetryAfter   string  `json:"retry_after,omitempty"`
	DropSockets  bool    `json:"drop_sockets,omitempty"`
	ExpireTokens bool    `json:"expire_tokens,omitempty"`
}

// MarshalJSON renders durations as Go duration strings.
func (s Settings) MarshalJSON() ([]byte, error) {
	w := wire{ErrorRate: s.ErrorRate, ErrorStatus: s.ErrorStatus, DropSockets: s.DropSockets, ExpireTokens: s.ExpireTokens}
	if s.Latency > 0 {
		w.Latency = s.Latency.String()
	}
	if s.StormFor > 0 {
		w.StormFor = s.StormFor.String()
	}
	if s.RetryAfter > 0 {
		w.RetryAfter = s.RetryAfter.String()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads the control endpoint's JSON form.
func (s *Settings) UnmarshalJSON(b []byte) error {
	var w wire
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	out := Settings{ErrorRate: w.ErrorRate, ErrorStatus: w.ErrorStatus, DropSockets: w.DropSockets, ExpireTokens: w.ExpireTokens}
	for _, f := range []struct {
		name string
		src  string
		dst  *time.Duration
	}{{"latency", w.Latency, &out.Latency}, {"storm_for", w.StormFor, &out.StormFor}, {"retry_after", w.RetryAfter, &out.RetryAfter}} {
		if f.src == "" {
			continue
		}
		d, err := time.ParseDuration(f.src)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = d
	}
	*s = out
	return nil
}

// ErrorWriter writes an injected failure in the vendor's own error format. retryAfter is zero
// for plain injected errors.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int, retryAfter time.Duration)

// Options configure an Injector. Every field is optional.
type Options struct {
	// Rand drives the error rate; a seeded one makes the faults deterministic.
	Rand *rand.Rand
	// Now is the clock for storms; time.Now by default.
	Now func() time.Time
	// Sleep waits for the added latency; it returns early with ctx's error.
	Sleep func(ctx context.Context, d time.Duration) error
	// WriteError renders failures; a small JSON body {"status","message"} by default.
	WriteError ErrorWriter
	// Skip exempts requests from faults; by default the control paths under /_sim/ are exempt.
	Skip func(r *http.Request) bool
	// OnDropSockets is called when DropSockets is applied.
	OnDropSockets func()
	// OnExpireTokens is called when ExpireTokens is applied.
	OnExpireTokens func()
}

// Injector holds the faults in force and applies them to requests. It is safe for concurrent use.
type Injector struct {
	opts Options

	mu         sync.Mutex
	s          Settings
	stormUntil time.Time
}

// New returns an Injector with no faults in force.
func New(opts Options) *Injector {
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.WriteError == nil {
		opts.WriteError = defaultError
	}
	if opts.Skip == nil {
		opts.Skip = func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/_sim/") }
	}
	return &Injector{opts: opts}
}

// Apply puts s in force: it replaces the latency and error settings, starts a storm when
// StormFor is set and runs the drop-socket and expire-token hooks when asked.
func (in *Injector) Apply(s Settings) error {
	if err := s.Validate(); err != nil {
		return err
	}
	in.mu.Lock()
	in.s = s
	in.s.DropSockets, in.s.ExpireTokens = false, false
	if s.StormFor > 0 {
		in.stormUntil = in.opts.Now().Add(s.StormFor)
	}
	in.mu.Unlock()
	if s.DropSockets && in.opts.OnDropSockets != nil {
		in.opts.OnDropSockets()
	}
	if s.ExpireTokens && in.opts.OnExpireTokens != nil {
		in.opts.OnExpireTokens()
	}
	return nil
}

// Current returns the settings in force; StormFor is the part of the storm still to come.
func (in *Injector) Current() Settings {
	in.mu.Lock()
	defer in.mu.Unlock()
	s := in.s
	s.StormFor = 0
	if left := in.stormUntil.Sub(in.opts.Now()); left > 0 {
		s.StormFor = left
	}
	return s
}

// decision is what the injector does with one request.
type decision struct {
	latency    time.Duration
	status     int
	retryAfter time.Duration
}

func (in *Injector) decide() decision {
	in.mu.Lock()
	defer in.mu.Unlock()
	d := decision{latency: in.s.Latency}
	if in.opts.Now().Before(in.stormUntil) {
		d.status = http.StatusTooManyRequests
		d.retryAfter = in.s.RetryAfter
		if d.retryAfter <= 0 {
			d.retryAfter = time.Second
		}
		return d
	}
	if in.s.ErrorRate > 0 && in.opts.Rand.Float64() < in.s.ErrorRate {
		d.status = in.s.ErrorStatus
		if d.status == 0 {
			d.status = http.StatusServiceUnavailable
		}
	}
	return d
}

// Middleware applies the faults in force to every request next would serve.
func (in *Injector) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if in.opts.Skip(r) {
			next.ServeHTTP(w, r)
			return
		}
		d := in.decide()
		if d.latency > 0 {
			if err := in.opts.Sleep(r.Context(), d.latency); err != nil {
				return
			}
		}
		if d.status != 0 {
			if d.retryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.retryAfter.Seconds()))))
			}
			in.opts.WriteError(w, r, d.status, d.retryAfter)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxControlBody bounds the control endpoint's request body.
const maxControlBody = 1 << 14

// ControlHandler serves the control endpoint: GET returns the faults in force, POST applies the
// JSON settings in the body ({"latency":"200ms","error_rate":0.1,"storm_for":"30s",
// "drop_sockets":true,...}) and returns them.
func (in *Injector) ControlHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet:
		case http.MethodPost, http.MethodPut:
			var s Settings
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxControlBody)).Decode(&s); err != nil {
				http.Error(w, "invalid fault settings: "+err.Error(), http.StatusBadRequest)
				return
			}
			if err := in.Apply(s); err != nil {
				http.Error(w, "invalid fault settings: "+err.Error(), http.StatusBadRequest)
				return
			}
		default:
			w.Header().Set("Allow", "GET, POST, PUT")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(in.Current())
	})
}

// BindFlags adds --fault-* flags to fs that fill s; apply s with Injector.Apply after parsing.
func BindFlags(fs *pflag.FlagSet, s *Settings) {
	fs.DurationVar(&s.Latency, "fault-latency", 0, "latency added to every request")
	fs.Float64Var(&s.ErrorRate, "fault-error-rate", 0, "probability (0..1) that a request fails")
	fs.IntVar(&s.ErrorStatus, "fault-error-status", 503, "HTTP status of injected failures")
	fs.DurationVar(&s.StormFor, "fault-storm", 0, "answer every request with 429 for this long after start")
	fs.DurationVar(&s.RetryAfter, "fault-retry-after", time.Second, "Retry-After of the 429 storm")
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func defaultError(w http.ResponseWriter, _ *http.Request, status int, _ time.Duration) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "message": "injected fault"})
}
