package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/id4me/id4me-registry/internal/oidctest"
)

// codeFlowEnv is an authority (RS256 agent tokens, the default; cheap password hashes), one
// relying party and 16 holders, each logged in once in a browser of its own that keeps its
// session cookie and each having consented to the RP's claims already.
type codeFlowEnv struct {
	*authorityEnv
	rp       *oidctest.RP
	browsers []*oidctest.Holder
}

func newCodeFlowEnv(tb testing.TB) *codeFlowEnv {
	tb.Helper()
	e := &codeFlowEnv{authorityEnv: newAuthorityEnv(tb, authorityOptions{password: cheapPassword})}
	e.rp = e.newRP(tb)
	for _, u := range e.users(tb, concurrency) {
		h := &oidctest.Holder{Client: oidctest.HTTPClient(e.roots, true), Identifier: u.identifier, Password: u.password}
		tb.Cleanup(h.Client.CloseIdleConnections)
		// The first login asks for the password and the consent; the later ones ask for
		// nothing.
		if _, err := e.codeFor(h); err != nil {
			tb.Fatal(err)
		}
		e.browsers = append(e.browsers, h)
	}
	return e
}

// codeFor runs one authorization request of the RP in h's browser, the claims of every
// benchmark login asked for, and redeems the code at the token endpoint
// (client_secret_basic, PKCE) through the RP's client. It checks that the browser came
// back with a code and that the token endpoint answered with an ID token; it does not
// verify the ID token, which is the RP's work, not the authority's.
func (e *codeFlowEnv) codeFor(h *oidctest.Holder) (*oauth2.Token, error) {
	req := e.rp.AuthRequest(map[string]string{"claims": benchClaims})
	cb, p, err := h.Login(req.URL)
	if err != nil {
		return nil, fmt.Errorf("authorization of %s: %w (page %d %q: %q)", h.Identifier, err, p.Status, p.Title(), p.Alert())
	}
	u, err := url.Parse(cb)
	if err != nil {
		return nil, err
	}
	q := u.Query()
	if q.Get("state") != req.State || q.Get("code") == "" {
		return nil, fmt.Errorf("callback %s: no code for the request", cb)
	}
	ctx := oidc.ClientContext(context.Background(), e.rpClient)
	tok, err := e.rp.OAuth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(req.Verifier))
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	if idt, _ := tok.Extra("id_token").(string); idt == "" || tok.AccessToken == "" {
		return nil, errors.New("token response without an ID token or an access token")
	}
	return tok, nil
}

// BenchmarkCodeFlow measures the authorization code round trip of a holder who is logged
// in and has consented before: the authorization request in the holder's browser (its
// session cookie sent; the authority redirects straight back with a code), then the code
// redeemed at the token endpoint by the RP (client_secret_basic, PKCE S256, one HTTP/2
// connection shared by the 16 holders, as one RP server would), whose answer carries an
// RS256 ID token and an access token. 16 holders, each with its own browser (one keep-alive
// HTTPS connection), do b.N round trips in all. The authority is the one of
// BenchmarkUserinfo (SQLite file store, served as `serve` serves it).
//
// Metrics: codes/s and cpu-µs/op, the CPU time of the whole process (authority, browsers
// and RP) per round trip.
//
//	go test -run=NONE -bench='CodeFlow|UserinfoFirst' -benchtime=2s -count=3 ./bench/
func BenchmarkCodeFlow(b *testing.B) {
	e := newCodeFlowEnv(b)
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	err := parallel(concurrency, b.N, func(w, _ int) error {
		_, err := e.codeFor(e.browsers[w])
		return err
	})
	elapsed, cpuPerRound := time.Since(start), cpuPerOp(cpu, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "codes/s")
	b.ReportMetric(cpuPerRound, "cpu-µs/op")
}

// BenchmarkUserinfoFirst measures the first userinfo call with each access token, the one
// that signs the agent's access token (RS256) before the authority's cache has it: with the
// timer stopped, the 16 holders of BenchmarkCodeFlow get b.N access tokens through code
// round trips; then 16 goroutines, each with its own keep-alive HTTPS client (HTTP/2),
// call userinfo once with each (JSON, distributed claims, each answer checked for its
// _claim_sources).
//
// Metrics: userinfo/s and cpu-µs/op, the CPU time of the whole process (authority and
// clients) per userinfo call.
func BenchmarkUserinfoFirst(b *testing.B) {
	e := newCodeFlowEnv(b)
	rps := make([]*oidctest.RP, concurrency)
	for w := range rps {
		client := oidctest.HTTPClient(e.roots, false)
		b.Cleanup(client.CloseIdleConnections)
		rps[w] = e.rp.WithClient(client)
	}
	tokens := make([]string, b.N)
	err := parallel(concurrency, b.N, func(w, item int) error {
		tok, err := e.codeFor(e.browsers[w])
		if err == nil {
			tokens[item-1] = tok.AccessToken
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime()
	err = parallel(concurrency, b.N, func(w, item int) error {
		u, _, _, err := rps[w].Userinfo(tokens[item-1])
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
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "userinfo/s")
	b.ReportMetric(cpuPerCall, "cpu-µs/op")
}

// TestCodeFlowHarness runs the code round trip's machinery at a small scale: two round
// trips of a logged-in holder that ask for nothing, and userinfo with their access tokens.
func TestCodeFlowHarness(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an authority with 16 holders")
	}
	e := newCodeFlowEnv(t)
	for k := 0; k < 2; k++ {
		tok, err := e.codeFor(e.browsers[k])
		if err != nil {
			t.Fatal(err)
		}
		u, _, _, err := e.rp.Userinfo(tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkUserinfo(u); err != nil {
			t.Fatal(err)
		}
	}
	// A logged-in holder's authorization request is answered with a redirect straight away.
	h := e.browsers[0]
	resp, err := h.Client.Get(e.rp.AuthRequest(map[string]string{"claims": benchClaims}).URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("authorization of a logged-in holder: status %d, want a redirect", resp.StatusCode)
	}
}
