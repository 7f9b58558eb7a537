package alert

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the service's Prometheus collectors, registered on the
// registry passed to Open (never the global one).
type metrics struct {
	received      prometheus.Counter
	stored        *prometheus.CounterVec
	duplicates    prometheus.Counter
	deadLetters   *prometheus.CounterVec
	cropsRejected prometheus.Counter
	storeErrors   prometheus.Counter
	storeSeconds  prometheus.Histogram
	batchSize     prometheus.Histogram
	hitLatency    prometheus.Histogram
	swept         prometheus.Counter
	sseClients    prometheus.Gauge
	sseDropped    prometheus.Counter
	requests      *prometheus.CounterVec
	reviews       *prometheus.CounterVec
	authFailures  *prometheus.CounterVec
	queueDepth    *prometheus.GaugeVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_hits_received_total",
			Help: "Hit messages received from JetStream, including redeliveries and malformed ones."}),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_alerts_stored_total",
			Help: "New alerts committed to the history, by watchlist."}, []string{"watchlist"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "facewatch_alert_duplicates_total",
			Help: "Hits already stored (redeliveries and retried publishes)."}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_dead_letters_total",
			Help: "Malformed hits sent to the dead-letter subject."}, []string{"reason"}),
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
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_http_requests_total",
			Help: "API requests by route and status code."}, []string{"route", "code"}),
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_reviews_total",
			Help: "Review decisions recorded."}, []string{"decision"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "facewatch_alert_auth_failures_total",
			Help: "Requests refused for their token (401), by reason."}, []string{"reason"}),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "facewatch_alert_queue_depth",
			Help: "Hits waiting in the durable consumer: pending (not yet delivered) and ack_pending (delivered, not yet stored)."}, []string{"state"}),
	}
	for _, c := range []prometheus.Collector{m.received, m.stored, m.duplicates, m.deadLetters, m.cropsRejected, m.storeErrors,
		m.storeSeconds, m.batchSize, m.hitLatency, m.swept, m.sseClients, m.sseDropped, m.requests, m.reviews, m.authFailures, m.queueDepth} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// feed fans new alerts out to live-feed subscribers. A subscriber that
// falls behind is disconnected (its channel closed) rather than slowing
// the store: the alert is already durable and the client resumes from the
// history with Last-Event-ID.
type feed struct {
	mu sync.Mutex
	// guarded by mu:
	subs   map[chan Alert]struct{}
	closed bool
}

func newFeed() *feed { return &feed{subs: map[chan Alert]struct{}{}} }

const feedBuffer = 64

// subscribe returns a channel of new alerts; it is closed when the
// subscriber falls behind or the feed closes. Call cancel when done.
func (f *feed) subscribe() (ch chan Alert, cancel func()) {
	ch = make(chan Alert, feedBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	f.subs[ch] = struct{}{}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

// publish sends a to every subscriber; it returns how many were dropped.
func (f *feed) publish(a Alert) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	dropped := 0
	for ch := range f.subs {
		select {
		case ch <- a:
		default:
			delete(f.subs, ch)
			close(ch)
			dropped++
		}
	}
	return dropped
}

func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}
