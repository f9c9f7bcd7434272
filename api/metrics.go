package api

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/note"
)

// metricsHandler serves the server's metrics in the Prometheus text format,
// from a registry of its own (no global state). Nothing in it is secret; the
// counts are read from the components at scrape time.
func metricsHandler(svc *auth.Service, hasher *auth.Hasher, store *db.Store, notes *note.Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_db_queries_total", Help: "SQL statements sent to the database.",
		}, func() float64 { return float64(store.Queries()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "tollgate_password_hashes_total", Help: "argon2id computations (logins, sign-ups, password changes).",
		}, func() float64 { return float64(hasher.Runs()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_revocations", Help: "Entries in the in-memory revocation list.",
		}, func() float64 { return float64(svc.Revocations().Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tollgate_subscriptions", Help: "Open noteCreated subscriptions on this instance.",
		}, func() float64 { return float64(notes.Subscribers()) }),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
