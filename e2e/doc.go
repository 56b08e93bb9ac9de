// Package e2e holds the tests that cross packages and processes: a holder's login in headless
// Chromium (browser_test.go), relying parties built like the ID4me RP libraries and on go-oidc
// logging in through the whole stack (rp_test.go), an e-mail-form identifier from its DNS
// challenge to its holder's login (email_test.go), two `serve` processes sharing one
// PostgreSQL database (instances_test.go), and the agent CLI publishing challenges on a real
// Knot DNS primary and secondary (agent_cli_test.go, knot_test.go).
//
// The in-process stack and the binary come from internal/testenv. The tests are long: each
// skips under -short, and `go test ./...` (as CI runs it) includes them. Run them alone with
//
//	go test ./e2e/
//
// They need Chromium and Knot DNS (knotd, knsupdate), and ID4ME_TEST_POSTGRES_DSN for the
// two-instance test; without them those tests are skipped, except in CI (CI=true), where
// .ci/run installs the packages and a missing one is a failure. The browser test saves a
// screenshot of each page in $ID4ME_TEST_ARTIFACTS when set.
package e2e
