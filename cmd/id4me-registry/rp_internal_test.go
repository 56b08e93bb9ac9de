package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRPTransportRefusesPrivateAddresses: the debugging RP fetches URLs that DNS records,
// discovery documents and userinfo answers name, and shows the answers. Served beyond
// loopback it must not become a window onto the machine's network: its client refuses
// loopback and private addresses, which it reaches when served on loopback or told to.
func TestRPTransportRefusesPrivateAddresses(t *testing.T) {
	internal := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "metadata secret")
	}))
	defer internal.Close()
	tlsConfig := &tls.Config{RootCAs: x509.NewCertPool()}
	tlsConfig.RootCAs.AddCert(internal.Certificate())

	public := &http.Client{Transport: rpTransport(tlsConfig, false)}
	if _, err := public.Get(internal.URL); err == nil || !strings.Contains(err.Error(), "is not a public address") {
		t.Fatalf("served beyond loopback, the RP fetched %s: %v", internal.URL, err)
	}
	local := &http.Client{Transport: rpTransport(tlsConfig, true)}
	resp, err := local.Get(internal.URL)
	if err != nil {
		t.Fatalf("on loopback, the RP could not fetch %s: %v", internal.URL, err)
	}
	resp.Body.Close()
}
