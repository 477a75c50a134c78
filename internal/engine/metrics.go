package engine

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

func (e *Engine) registerMetrics(reg prometheus.Registerer) error {
	s := &e.m.Stats
	counters := []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"events_total", "Events received from vendors and webhooks.", &s.Events},
		{"events_duplicate_total", "Events dropped as duplicate deliveries.", &s.Duplicates},
		{"echoes_total", "Events recognised as echoes of our own writes.", &s.Echoes},
		{"writes_total", "Status writes the vendors accepted.", &s.Writes},
		{"writes_deferred_total", "Writes deferred because of a system state.", &s.Deferred},
		{"writes_failed_total", "Writes that failed after their retry budget or permanently.", &s.Failed},
		{"write_retries_total", "Write attempts scheduled again after an error.", &s.Retries},
		{"events_unmapped_total", "Events that matched no map, rule or activity.", &s.Unmapped},
		{"events_unknown_agent_total", "Events for accounts linked to no agent.", &s.UnknownAgent},
		{"events_unknown_status_total", "Events naming a status missing from the catalog.", &s.UnknownStatus},
		{"events_unknown_system_total", "Events from systems not in the policy.", &s.UnknownSystem},
		{"events_stale_total", "Changes that arrived after newer ones; each is decided in its place, never over a newer cause.", &s.Stale},
		{"events_future_dated_total", "Events dated too far ahead of the clock, taken at their receive time.", &s.FutureDated},
		{"events_reclassified_total", "Events first taken for the echo of a write that proved to be a person's change.", &s.Reclassified},
		{"writes_corrected_total", "Writes of ours that landed over a newer change and were written over.", &s.Corrections},
		{"intents_superseded_total", "Intents dropped because a newer cause was in force.", &s.Superseded},
		{"events_no_policy_total", "Events for agents no policy applies to.", &s.NoPolicy},
	}
	for _, c := range counters {
		v := c.v
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "omnipresence", Name: c.name, Help: c.help,
		}, func() float64 { return float64(v.Load()) })); err != nil {
			return err
		}
	}
	e.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "omnipresence", Name: "ingest_seconds",
		Help:    "Time from receiving an event to its decision being durable.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	return reg.Register(e.latency)
}
