// Package metrics is the operations endpoint: Prometheus metrics read from
// the subsystems at scrape time (nothing is added to the SIP path), a
// liveness probe and a readiness probe that asks each subsystem it names.
//
// /healthz answers 200 while the process serves HTTP at all: a supervisor
// restarts a process that stops answering it. /readyz answers 200 only
// when every check passes (the store answers a query, every SIP listener
// accepts) and 503 with the failing checks otherwise, so a load balancer
// sends no phones to a node that cannot serve them.
package metrics
