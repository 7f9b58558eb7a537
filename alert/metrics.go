package alert

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus collectors, registered on the
// registry passed to Open (never the global one).
type metrics struct {
	received      prometheus.Counter
	stored        *prometheus.CounterVec
	duplicates    prometheus.Counter
	forgotten     prometheus.Counter
	deadLetters   *prometheus.CounterVec
	cropsRejected prometheus.Counter
	storeErrors   prometheus.Counter
	storeSeconds  prometheus.Histogram
	batchSize     prometheus.Histogram
	hitLatency    prometheus.Histogram
	swept         prometheus.Counter
	sseClients    prometheus.Gauge
	sseDropped    prometheus.Counter
	sseRefused    *prometheus.CounterVec
	requests      *prometheus.CounterVec
	reviews       *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	queueDepth    *prometheus.GaugeVec
	sinkDelivered *prometheus.CounterVec
	sinkFailures  *prometheus.CounterVec
	sinkDropped   *prometheus.CounterVec
	sinkBacklog   *prometheus.GaugeVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_hits_received_total",
			Help: "Hit messages received from JetStream, including redeliveries and malformed ones."}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_alerts_stored_total",
			Help: "New alerts committed to the history, by watchlist (names the service does not know beyond a few collapse into \"other\")."}, []string{"watchlist"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_duplicates_total",
			Help: "Hits already stored (redeliveries and retried publishes)."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_dead_letters_total",
			Help: "Refused hits stored in the dead-letter stream, by reason (malformed, version)."}, []string{"reason"}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_hits_forgotten_total",
			Help: "Hits not stored because retention had already removed their alert, or would at once (replayed or re-read hits)."}),
		cropsRejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_crops_rejected_total",
			Help: "Probe crops that were not JPEG; their alert was stored without them."}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_store_errors_total",
			Help: "Batches that failed to commit (their hits are redelivered)."}),
		storeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "facewatch_alert_store_seconds",
			Help: "Time to durably store one batch of hits.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "facewatch_alert_batch_size",
			Help: "Hits committed per transaction.", Buckets: prometheus.ExponentialBuckets(1, 2, 9)}),
		hitLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "facewatch_alert_hit_latency_seconds",
			Help: "From the capture time of a hit's best face to its commit.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)}),
		swept: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_alerts_expired_total",
			Help: "Alerts removed by the retention sweep."}),
		sseClients: prometheus.NewGauge(prometheus.GaugeOpts{Name: "facewatch_alert_live_clients",
			Help: "Connected live-feed (SSE) clients."}),
		sseDropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_live_clients_dropped_total",
			Help: "Live-feed clients disconnected for falling behind (they resume with Last-Event-ID)."}),
		sseRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_live_clients_refused_total",
			Help: "Live-feed clients refused at their limit, by status (429: the token's share, 503: the service's)."}, []string{"code"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_http_requests_total",
			Help: "API requests by route and status code."}, []string{"route", "code"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_reviews_total",
			Help: "Review decisions recorded."}, []string{"decision"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_auth_failures_total",
			Help: "Requests refused for their token (401), by reason."}, []string{"reason"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "facewatch_alert_queue_depth",
			Help: "Hits waiting in the durable consumer: pending (not yet delivered) and ack_pending (delivered, not yet stored)."}, []string{"state"}),
		sinkDelivered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_sink_delivered_total",
			Help: "Alerts delivered by a sink (webhook, mqtt, console), by sink."}, []string{"sink"}),
		sinkFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_sink_failures_total",
			Help: "Failed delivery attempts by a sink; each is retried with backoff."}, []string{"sink"}),
		sinkDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_sink_dropped_total",
			Help: "Alerts a sink will never deliver, by sink and reason (expired: removed by retention first)."}, []string{"sink", "reason"}),
		sinkBacklog: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "facewatch_alert_sink_backlog",
			Help: "Alerts stored but not yet delivered by a sink."}, []string{"sink"}),
	}
	for _, c := range []prometheus.Collector{m.received, m.stored, m.duplicates, m.forgotten, m.deadLetters, m.cropsRejected, m.storeErrors,
		m.storeSeconds, m.batchSize, m.hitLatency, m.swept, m.sseClients, m.sseDropped, m.sseRefused, m.requests, m.reviews, m.authFailures, m.queueDepth,
		m.sinkDelivered, m.sinkFailures, m.sinkDropped, m.sinkBacklog} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
