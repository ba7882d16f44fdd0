package edge

import (
	"github.com/prometheus/client_golang/prometheus"
)

// guardMetrics count what the abuse limits refused and which client versions call.
type guardMetrics struct {
	rateLimited    *prometheus.CounterVec
	clientVersions *prometheus.CounterVec
}

func newGuardMetrics(reg prometheus.Registerer) (*guardMetrics, error) {
	m := &guardMetrics{
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordermesh_ratelimit_refused_total",
			Help: "Requests refused with 429 by an abuse limit: auth_address, auth_user (login, register, refresh) api_user (order API) or webhook_address (failed payment webhook signatures).",
		}, []string{"limit"}),
		clientVersions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ordermesh_http_client_version_requests_total",
			Help: "HTTP requests by X-Client-Version: the version, none, invalid, or other past the first 32 versions seen.",
		}, []string{"version"}),
	}
	// Every limit is exported from the start, so that rate() sees the first refusal.
	for _, l := range []string{limitAuthAddress, limitAuthUser, limitAPIUser, limitWebhook} {
		m.rateLimited.WithLabelValues(l)
	}
	for _, c := range []prometheus.Collector{m.rateLimited, m.clientVersions} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
