// Package bench holds the registry's end-to-end benchmarks: registrations over gRPC with the
// dns-01 challenge served by loopback nameservers, resolution in process and over gRPC, and
// the built binary serving a million identifiers. Everything talks to loopback only.
//
// The benchmarks live in the package's _test.go files; README.md says what each one
// measures, how to run it, and the figures measured so far.
package bench
