package workqueue

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics receives one queue's measurements. Calls come with the queue's lock held, so
// implementations must be quick and must not call back into the queue.
type Metrics interface {
	// Add counts an item entering the queue (duplicates of a queued item are not counted).
	Add()
	// Depth reports the number of items ready to be handed out.
	Depth(n int)
	// QueueLatency reports how long an item waited between Add and Get.
	QueueLatency(d time.Duration)
	// WorkDuration reports how long an item was held between Get and Done.
	WorkDuration(d time.Duration)
	// Retry counts an AddRateLimited.
	Retry()
}

// promVecs are the collectors shared by every queue registered on one Registerer.
type promVecs struct {
	depth   *prometheus.GaugeVec
	adds    *prometheus.CounterVec
	latency *prometheus.HistogramVec
	work    *prometheus.HistogramVec
	retries *prometheus.CounterVec
}

// durationBuckets go from 1 ms to about 100 s.
var durationBuckets = prometheus.ExponentialBuckets(0.001, 10, 6)

// NewPrometheusMetrics returns Metrics exporting workqueue_depth, workqueue_adds_total,
// workqueue_queue_duration_seconds, workqueue_work_duration_seconds and
// workqueue_retries_total on reg, labelled name=<name>. Several queues may share one reg.
func NewPrometheusMetrics(reg prometheus.Registerer, name string) (Metrics, error) {
	labels := []string{"name"}
	v := promVecs{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workqueue_depth", Help: "Items ready to be handed out.",
		}, labels),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workqueue_adds_total", Help: "Items added to the queue.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "workqueue_queue_duration_seconds", Help: "Time an item waited before a worker took it.",
			Buckets: durationBuckets,
		}, labels),
		work: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "workqueue_work_duration_seconds", Help: "Time a worker held an item.",
			Buckets: durationBuckets,
		}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workqueue_retries_total", Help: "Rate-limited re-adds.",
		}, labels),
	}
	var err error
	if v.depth, err = register(reg, v.depth); err != nil {
		return nil, err
	}
	if v.adds, err = register(reg, v.adds); err != nil {
		return nil, err
	}
	if v.latency, err = register(reg, v.latency); err != nil {
		return nil, err
	}
	if v.work, err = register(reg, v.work); err != nil {
		return nil, err
	}
	if v.retries, err = register(reg, v.retries); err != nil {
		return nil, err
	}
	return &promMetrics{
		depth:   v.depth.WithLabelValues(name),
		adds:    v.adds.WithLabelValues(name),
		latency: v.latency.WithLabelValues(name),
		work:    v.work.WithLabelValues(name),
		retries: v.retries.WithLabelValues(name),
	}, nil
}

// register registers c, or returns the collector already registered under the same name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

type promMetrics struct {
	depth   prometheus.Gauge
	adds    prometheus.Counter
	latency prometheus.Observer
	work    prometheus.Observer
	retries prometheus.Counter
}

func (m *promMetrics) Add()                         { m.adds.Inc() }
func (m *promMetrics) Depth(n int)                  { m.depth.Set(float64(n)) }
func (m *promMetrics) QueueLatency(d time.Duration) { m.latency.Observe(d.Seconds()) }
func (m *promMetrics) WorkDuration(d time.Duration) { m.work.Observe(d.Seconds()) }
func (m *promMetrics) Retry()                       { m.retries.Inc() }
