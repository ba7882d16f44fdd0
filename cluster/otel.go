package cluster

import (
	"context"
	"fmt"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// protoactor-go reports its own metrics (actor spawns, stops, failures, message
// latency, futures, dead letters) through OpenTelemetry. OTelMetrics bridges them into
// the node's Prometheus registry, so that they are scraped from the same /metrics as
// ours, under their own protoactor_* names.

// droppedProtoactorMetrics are protoactor instruments the bridge drops.
// protoactor_actor_mailbox_length is observed by a callback that protoactor registers for
// every actor it spawns and never unregisters: with order grains activated and
// passivated all day, the callbacks (each holding its actor's context) would pile up
// without bound, and every scrape would call them all. A dropped instrument makes the
// SDK skip the registration altogether.
var droppedProtoactorMetrics = []string{"protoactor_actor_mailbox_length"}

// protoactorView drops droppedProtoactorMetrics and takes the unit "1" off protoactor's
// counters, which the exporter would otherwise name *_count_ratio_total. It is one view,
// not two, since an instrument that two views match is exported once per view.
func protoactorView(i sdkmetric.Instrument) (sdkmetric.Stream, bool) {
	if slices.Contains(droppedProtoactorMetrics, i.Name) {
		return sdkmetric.Stream{Name: i.Name, Aggregation: sdkmetric.AggregationDrop{}}, true
	}
	if i.Unit == "1" {
		return sdkmetric.Stream{Name: i.Name, Description: i.Description}, true
	}
	return sdkmetric.Stream{}, false
}

// OTelMetrics is the OpenTelemetry meter provider whose metrics appear in a Prometheus
// registry.
type OTelMetrics struct {
	provider *sdkmetric.MeterProvider
}

// NewOTelMetrics returns a meter provider exporting into reg and installs it as the
// global one. protoactor-go takes its meters from the global provider (otel.Meter), not
// from the provider in its config, which only switches its metrics on; so it must be
// installed before the actor system starts. Give it to Config.OTel.
func NewOTelMetrics(reg prometheus.Registerer) (*OTelMetrics, error) {
	exporter, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		// Labels of their own rather than an otel_scope_info series and a target_info
		// of "unknown_service": the job and instance labels of the scrape say which node.
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: the OpenTelemetry Prometheus exporter: %w", err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exporter), sdkmetric.WithView(protoactorView))
	otel.SetMeterProvider(mp)
	return &OTelMetrics{provider: mp}, nil
}

// MeterProvider is the provider, for libraries that take one.
func (o *OTelMetrics) MeterProvider() metric.MeterProvider { return o.provider }

// Shutdown stops the provider; its metrics are no longer collected.
func (o *OTelMetrics) Shutdown(ctx context.Context) error { return o.provider.Shutdown(ctx) }
