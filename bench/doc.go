// Package bench is the load harness of ordermesh: it drives a running cluster (or the
// baseline service) through its public HTTP API only, on an open-loop arrival schedule,
// records latency in HDR histograms, writes a report (text, JSON, SVG), and afterwards
// checks from the store's event histories that nothing acknowledged was lost or applied
// twice and that every history is a legal path through the order state machine. With
// Config.Provider the payment provider and the fulfilment pool are in the loop: the
// shoppers wait for PAID and SHIPPED instead of confirming and shipping, and the check
// adds the fulfilment rules (one task per paid order, at most one shipment).
//
// It imports nothing of ordermesh on purpose: the HTTP API is the contract, so the same
// harness measures any implementation of it.
package bench
