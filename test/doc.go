// Package test holds Veilig's end-to-end interop tests: they build the real
// veilig binary and drive real SIP peers (baresip, sipp through stunnel, raw
// TLS clients) against it on loopback. See README.md.
package test
