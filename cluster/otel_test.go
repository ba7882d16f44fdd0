package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ordermesh/ordermesh/actors/order"
)

// TestProtoactorMetricsReachTheRegistry: with OTelMetrics, protoactor-go's own metrics of
// a node that handled commands are in the node's Prometheus registry, except the mailbox
// gauge whose callbacks would leak.
func TestProtoactorMetricsReachTheRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	om, err := NewOTelMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = om.Shutdown(context.Background()) })
	store := openStore(t, filepath.Join(t.TempDir(), "om.db"))
	n := startNodeConfig(t, store, func(c *Config) { c.OTel = om })
	for _, key := range []string{"a", "b", "c"} {
		o := create(t, n, key)
		mustExec(t, n, o.ID, order.CmdSubmitPayment, "pay", alice)
	}

	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	var proto []string
	for name := range names {
		if strings.HasPrefix(name, "protoactor_") {
			proto = append(proto, name)
		}
	}
	t.Logf("protoactor metrics: %v", proto)
	for _, want := range []string{"protoactor_actor_spawn_count_total", "protoactor_actor_message_receive_duration_seconds", "protoactor_futures_started_count_total"} {
		if !names[want] {
			t.Errorf("%s is not exported; protoactor metrics: %v", want, proto)
		}
	}
	for _, dropped := range droppedProtoactorMetrics {
		if names[dropped] {
			t.Errorf("%s is exported", dropped)
		}
	}
}
