package workqueue

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestPrometheusMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		reg := prometheus.NewRegistry()
		m1, err := NewPrometheusMetrics(reg, "reconcile")
		if err != nil {
			t.Fatal(err)
		}
		m2, err := NewPrometheusMetrics(reg, "writes")
		if err != nil {
			t.Fatalf("second queue on the same registry: %v", err)
		}
		q1 := New(Options[string]{Metrics: m1, RateLimiter: ItemExponential[string](time.Second, time.Second)})
		defer q1.ShutDown()
		q2 := New(Options[string]{Metrics: m2})
		defer q2.ShutDown()

		q1.Add("a")
		q1.Add("b")
		time.Sleep(2 * time.Second)
		item, _ := q1.Get()
		time.Sleep(time.Second)
		q1.Done(item)
		q1.AddRateLimited(item)
		q2.Add("x")

		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				key := f.GetName() + "{" + label(m, "name") + "}"
				switch f.GetType() {
				case dto.MetricType_GAUGE:
					got[key] = m.GetGauge().GetValue()
				case dto.MetricType_COUNTER:
					got[key] = m.GetCounter().GetValue()
				case dto.MetricType_HISTOGRAM:
					got[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
					got[key+"_sum"] = m.GetHistogram().GetSampleSum()
				}
			}
		}
		want := map[string]float64{
			"workqueue_adds_total{reconcile}":                   2,
			"workqueue_adds_total{writes}":                      1,
			"workqueue_depth{reconcile}":                        1,
			"workqueue_depth{writes}":                           1,
			"workqueue_retries_total{reconcile}":                1,
			"workqueue_retries_total{writes}":                   0,
			"workqueue_queue_duration_seconds{reconcile}_count": 1,
			"workqueue_queue_duration_seconds{reconcile}_sum":   2,
			"workqueue_queue_duration_seconds{writes}_count":    0,
			"workqueue_queue_duration_seconds{writes}_sum":      0,
			"workqueue_work_duration_seconds{reconcile}_count":  1,
			"workqueue_work_duration_seconds{reconcile}_sum":    1,
			"workqueue_work_duration_seconds{writes}_count":     0,
			"workqueue_work_duration_seconds{writes}_sum":       0,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("gathered metrics (-want +got):\n%s", diff)
		}
	})
}

func TestPrometheusMetricsConflict(t *testing.T) {
	reg := prometheus.NewRegistry()
	// A different metric already owns the name: registration must fail, not panic.
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: "workqueue_depth", Help: "x"}))
	if _, err := NewPrometheusMetrics(reg, "q"); err == nil {
		t.Fatal("NewPrometheusMetrics succeeded despite a conflicting metric")
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
