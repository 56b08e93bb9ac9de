package bench

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/id4me/id4me-registry/authority"
	"github.com/id4me/id4me-registry/internal/oidctest"
)

// BenchmarkUserinfo measures the authority's userinfo endpoint with distributed claims over
// HTTPS loopback, for each agent access token algorithm (authority.Config.AgentTokenAlg):
// the steady state of an RP calling userinfo again and again with one access token, whose
// access token for the sponsoring agent is signed at the first call and then comes from the
// authority's cache (so ratio, below, now exceeds 1). The authority is served
// as `serve` serves it (SQLite file store, server.ServeHTTPS, the registry's default 2 s
// resolve cache for the identifier → agent mapping). 16 holders log in once each
// at one relying party (JSON userinfo, two claims asked for), with cheap password hashes
// (the password is not on this path). Then 16 goroutines, each with its own keep-alive
// HTTPS client (one connection, HTTP/2: the metric http_version) and its own access token,
// call userinfo b.N times in all through oidctest.RP.Userinfo (which decodes the JSON), and
// each answer is checked for its _claim_sources.
//
// In the same run, with the timer stopped, 16 goroutines sign max(b.N, 200) agent-token
// payloads with the same KeySet and algorithm (KeySet.Sign, typ JWT): the raw signing rate.
//
// Metrics: userinfo/s, sign/s, ratio = userinfo/s ÷ sign/s, http_version, the HTTP major
// version the clients spoke (2), and cpu-µs/op, the CPU time of the whole process (authority
// and clients) per userinfo call.
//
//	go test -run=NONE -bench='Userinfo|Logins' -benchtime=2s -count=3 ./bench/
func BenchmarkUserinfo(b *testing.B) {
	parent := b
	for _, alg := range []string{authority.RS256, authority.ES256} {
		var (
			e       *authorityEnv
			rps     []*oidctest.RP
			clients []*http.Client
			tokens  []string
		)
		b.Run(alg, func(b *testing.B) {
			if e == nil {
				// Set up on the first run only: the sub-benchmark runs again for each b.N.
				// The password is not on the userinfo path: cheap hashes make the setup quick.
				tb := parentScoped{b, parent}
				e = newAuthorityEnv(tb, authorityOptions{agentTokenAlg: alg, password: cheapPassword})
				users := e.users(tb, concurrency)
				rp := e.newRP(tb)
				for _, u := range users {
					res, err := login(rp, u, nil)
					if err != nil {
						b.Fatal(err)
					}
					client := oidctest.HTTPClient(e.roots, false)
					tb.Cleanup(client.CloseIdleConnections)
					tokens = append(tokens, res.Token.AccessToken)
					clients = append(clients, client)
					rps = append(rps, rp.WithClient(client))
				}
				b.ResetTimer()
			}
			start, cpu := time.Now(), cpuTime()
			err := parallel(concurrency, b.N, func(w, _ int) error {
				u, _, _, err := rps[w].Userinfo(tokens[w])
				if err != nil {
					return err
				}
				return checkUserinfo(u)
			})
			elapsed, cpuPerCall := time.Since(start), cpuPerOp(cpu, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			signs, err := e.rawSignRate(alg, max(b.N, 200))
			if err != nil {
				b.Fatal(err)
			}
			major, err := e.protocol(clients[0])
			if err != nil {
				b.Fatal(err)
			}
			rate := float64(b.N) / elapsed.Seconds()
			b.ReportMetric(rate, "userinfo/s")
			b.ReportMetric(signs, "sign/s")
			b.ReportMetric(rate/signs, "ratio")
			b.ReportMetric(float64(major), "http_version")
			b.ReportMetric(cpuPerCall, "cpu-µs/op")
		})
	}
}

// BenchmarkLogins measures complete logins by 16 users at once, each on a fresh browser
// every time (a new cookie jar, so no session: the password is checked, with the default
// argon2id parameters, authority.DefaultPasswordParams; and a new TLS connection): the
// authorization request, the login page, the password posted, the consent page if shown
// and the consent posted, the redirect back to the RP, the code redeemed at the token
// endpoint (client_secret_basic), the ID token verified by go-oidc, userinfo fetched (JSON,
// distributed claims, the agent token signed with RS256, the default). The RP is one
// client (one HTTP/2 connection) shared by the 16 users, as one RP server would be.
//
//   - consent: prompt=consent, so the consent page is shown and posted every time.
//   - remembered: the consent is remembered from an earlier login (one per user before the
//     timer starts), so after the password the authority sends the browser straight back.
//
// In the same run, with the timer stopped, max(b.N, 32) argon2id hashes are computed with
// the same parameters, as many at once as the authority computes (HashConcurrency, default
// 2 × GOMAXPROCS): the raw hashing rate, which bounds the login rate (one hash a login).
//
// Metrics: logins/s, p50_ms and p99_ms (the latencies of single logins, from the
// authorization request to the userinfo answer), hash/s, and ratio = logins/s ÷ hash/s.
//
//	go test -run=NONE -bench='Userinfo|Logins' -benchtime=2s -count=3 ./bench/
func BenchmarkLogins(b *testing.B) {
	e := newAuthorityEnv(b, authorityOptions{})
	users := e.users(b, concurrency)
	rp := e.newRP(b)
	for _, mode := range []struct {
		name  string
		extra map[string]string
	}{
		{"consent", map[string]string{"prompt": "consent"}},
		{"remembered", nil},
	} {
		if mode.extra == nil {
			// Remember each user's consent first.
			err := parallel(concurrency, len(users), func(_, item int) error {
				_, err := login(rp, users[item-1], nil)
				return err
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.Run(mode.name, func(b *testing.B) {
			latencies := make([]time.Duration, b.N)
			start := time.Now()
			err := parallel(concurrency, b.N, func(w, item int) error {
				t0 := time.Now()
				if _, err := login(rp, users[w], mode.extra); err != nil {
					return err
				}
				latencies[item-1] = time.Since(t0)
				return nil
			})
			elapsed := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			hashes := rawHashRate(authority.DefaultPasswordParams, max(b.N, 32))
			slices.Sort(latencies)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "logins/s")
			b.ReportMetric(hashes, "hash/s")
			b.ReportMetric(float64(b.N)/elapsed.Seconds()/hashes, "ratio")
			b.ReportMetric(ms(latencies[len(latencies)/2]), "p50_ms")
			b.ReportMetric(ms(latencies[len(latencies)*99/100]), "p99_ms")
		})
	}
}
