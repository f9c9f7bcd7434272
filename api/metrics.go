package api

import (
	"context"
	"database/sql"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/mail"
	"tollgate/note"
)

// metrics is one server's Prometheus registry (never the global one: tests
// run several servers in one process) and the auth.Events that count into
// it. No label value is ever a username, an address or a token: every label
// comes from a fixed set (auth's enumerations, GraphQL error kinds) or from
// the bounded operation names of package graph.
type metrics struct {
	reg      *prometheus.Registry
	attempts *prometheus.CounterVec
	// verifications and notices are resolved once: TokenVerified runs on every
	// authenticated request and must cost one atomic increment.
	verifications [auth.NumVerifications]prometheus.Counter
	notices       [auth.NumNoticeKinds]prometheus.Counter
	noticeLag     prometheus.Histogram
	mails         [mail.NumOutcomes]prometheus.Counter
	federated     *prometheus.CounterVec
}

var (
	_ auth.Events           = (*metrics)(nil)
	_ auth.FederationEvents = (*metrics)(nil)
	_ mail.Events           = (*metrics)(nil)
)

// expectedOutcomes are the series created at start, so that dashboards see a
// zero rather than no series before the first event.
func expectedOutcomes() map[auth.Action][]auth.Outcome {
	return map[auth.Action][]auth.Outcome{
		auth.ActionLogin:    {auth.OutcomeSuccess, auth.OutcomeInvalidCredentials, auth.OutcomeRateLimited, auth.OutcomeError},
		auth.ActionRegister: {auth.OutcomeSuccess, auth.OutcomeUsernameTaken, auth.OutcomeInvalidInput, auth.OutcomeSignupClosed, auth.OutcomeRateLimited, auth.OutcomeError},
		auth.ActionRefresh:  {auth.OutcomeSuccess, auth.OutcomeRefreshInvalid, auth.OutcomeReuseDetected, auth.OutcomeRateLimited, auth.OutcomeError},
		auth.ActionLogout:   {auth.OutcomeSuccess, auth.OutcomeError},
	}
}

// newMetrics returns a registry holding the Go and process collectors and
// the counters of auth.Events.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_auth_attempts_total",
		Help: "Logins, registrations, refreshes and logouts, by action and outcome.",
	}, []string{"action", "outcome"})
	for a, outcomes := range expectedOutcomes() {
		for _, o := range outcomes {
			m.attempts.WithLabelValues(a.String(), o.String())
		}
	}
	verifications := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_token_verifications_total",
		Help: "Access-token verifications (HTTP requests and WebSocket connection_init), by outcome.",
	}, []string{"outcome"})
	for v := range auth.NumVerifications {
		m.verifications[v] = verifications.WithLabelValues(v.String())
	}
	notices := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_revocation_notices_total",
		Help: "Revocation notifications received through PostgreSQL LISTEN/NOTIFY (this instance's own included), by kind.",
	}, []string{"kind"})
	for k := range auth.NumNoticeKinds {
		m.notices[k] = notices.WithLabelValues(k.String())
	}
	m.noticeLag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "tollgate_revocation_notice_lag_seconds",
		Help:    "Time from a revocation's write to its notification's arrival on this instance.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	mails := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_mails_total",
		Help: "Mail delivery attempts by this instance's sender, by outcome (sent, retried, failed).",
	}, []string{"outcome"})
	for o := range mail.NumOutcomes {
		m.mails[o] = mails.WithLabelValues(o.String())
	}
	// The provider label is one of OIDC_PROVIDERS, the outcome one of a
	// fixed set: the series are bounded by the configuration.
	m.federated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tollgate_oidc_signins_total",
		Help: "OpenID Connect callbacks, by provider and outcome (signed_in, created, linked, or the error code the browser was sent back with).",
	}, []string{"provider", "outcome"})
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.attempts, verifications, notices, m.noticeLag, mails, m.federated,
	)
	return m
}

// Attempt counts a login, registration, refresh or logout. It runs once per
// such mutation, next to an argon2id hash or a database write, so the label
// lookup costs nothing that matters.
func (m *metrics) Attempt(a auth.Action, o auth.Outcome) {
	m.attempts.WithLabelValues(a.String(), o.String()).Inc()
}

// federationOutcomes are the outcomes of a callback, each provider's series
// created at start (a zero rather than no series).
var federationOutcomes = []string{auth.FedSignedIn, auth.FedCreated, auth.FedLinked, auth.FedAccessDenied,
	auth.FedInvalidState, auth.FedInvalidToken, auth.FedServerError, auth.FedRateLimited}

// watchProviders creates the series of each configured provider.
func (m *metrics) watchProviders(names []string) {
	for _, n := range names {
		for _, o := range federationOutcomes {
			m.federated.WithLabelValues(n, o)
		}
	}
}

// FederatedSignIn counts one OpenID Connect callback.
func (m *metrics) FederatedSignIn(provider, outcome string) {
	m.federated.WithLabelValues(provider, outcome).Inc()
}

// TokenVerified counts a verification: one array index, one atomic add.
func (m *metrics) TokenVerified(v auth.Verification) {
	if v < auth.NumVerifications {
		m.verifications[v].Inc()
	}
}

// RevocationNotice counts a notification and observes its lag when dated.
func (m *metrics) RevocationNotice(k auth.NoticeKind, lag time.Duration, dated bool) {
	if k < auth.NumNoticeKinds {
		m.notices[k].Inc()
	}
	if dated {
		m.noticeLag.Observe(lag.Seconds())
	}
}

// MailDelivery counts the outcome of one delivery attempt.
func (m *metrics) MailDelivery(o mail.Outcome) {
	if o >= 0 && o < mail.NumOutcomes {
		m.mails[o].Inc()
	}
}

// watch adds the gauges and counters read from the components at scrape
// time, and the database pool's statistics. store counts the statements of
// requests and of the other background work, mailStore those of the mail
// sender.
func (m *metrics) watch(svc *auth.Service, hasher *auth.Hasher, store, mailStore *db.Store, notes *note.Service, sqlDB *sql.DB, now func() time.Time) {
	m.reg.MustRegister(
		collectors.NewDBStatsCollector(sqlDB, "tollgate"),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_db_queries_total", Help: "SQL statements sent to the database.",
		}, func() float64 { return float64(store.Queries() + mailStore.Queries()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_password_hashes_total", Help: "argon2id computations (logins, sign-ups, password changes).",
		}, func() float64 { return float64(hasher.Runs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_password_hash_queue", Help: "argon2id computations waiting for a free slot of the pool (PASSWORD_HASH_CONCURRENCY slots; by default one less than the cores, at least one).",
		}, func() float64 { return float64(hasher.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_password_hashes_in_flight", Help: "argon2id computations running now.",
		}, func() float64 { return float64(hasher.Running()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_revocations", Help: "Entries in the in-memory revocation list.",
		}, func() float64 { return float64(svc.Revocations().Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_subscriptions", Help: "Open noteCreated subscriptions on this instance.",
		}, func() float64 { return float64(notes.Subscribers()) }),
		outboxCollector{store: mailStore, now: now},
	)
}

// outboxCollector reads the outbox once per scrape for both of its gauges.
// The outbox is shared: every instance reports the same figures.
type outboxCollector struct {
	store *db.Store
	now   func() time.Time
}

var (
	outboxDepth = prometheus.NewDesc("tollgate_mail_outbox_depth",
		"Mails in the outbox neither sent nor given up (all instances).", nil, nil)
	outboxOldest = prometheus.NewDesc("tollgate_mail_outbox_oldest_seconds",
		"Age of the oldest mail neither sent nor given up; 0 when there is none.", nil, nil)
)

// outboxScrapeTimeout bounds the outbox query of one scrape.
const outboxScrapeTimeout = 2 * time.Second

func (c outboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- outboxDepth
	ch <- outboxOldest
}

func (c outboxCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), outboxScrapeTimeout)
	defer cancel()
	st, err := c.store.OutboxStats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(outboxDepth, err)
		return
	}
	age := 0.0
	if st.Depth > 0 {
		age = max(0, c.now().Sub(st.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(outboxDepth, prometheus.GaugeValue, float64(st.Depth))
	ch <- prometheus.MustNewConstMetric(outboxOldest, prometheus.GaugeValue, age)
}

// handler serves the registry in the Prometheus text format. Nothing in it
// is secret, but it tells how busy the server is: restrict it at the proxy.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
