// Package bench is the load harness of ordermesh: it drives a running cluster (or the
// baseline service) through its public HTTP API only, on an open-loop arrival schedule,
// records latency in HDR histograms, writes a report (text, JSON, SVG), and afterwards
// checks from the store's event histories that nothing acknowledged was lost or applied
// twice and that every history is a legal path through the order state machine.
//
// It imports nothing of ordermesh on purpose: the HTTP API is the contract, so the same
// harness measures any implementation of it.
package bench
