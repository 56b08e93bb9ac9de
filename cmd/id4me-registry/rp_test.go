package main_test

import (
	"bufio"
	"crypto/tls"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRPServesOverHTTPSOnLoopback starts `rp` as a user would and fetches its start page:
// HTTPS with a self-signed certificate for loopback, the page's security headers, and the
// browser cookie its forms and logins are bound to.
func TestRPServesOverHTTPSOnLoopback(t *testing.T) {
	cmd := exec.Command(binary, "rp", "--addr", "127.0.0.1:0", "--dns-server", "127.0.0.1:5399")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
		close(lines)
	}()
	var first string
	select {
	case first = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("rp printed nothing")
	}
	m := regexp.MustCompile(`^rp: open (https://127\.0\.0\.1:\d+)/ in a browser \(redirect URI (\S+)\)$`).FindStringSubmatch(first)
	if m == nil {
		t.Fatalf("rp printed %q", first)
	}
	if m[2] != m[1]+"/callback" {
		t.Fatalf("redirect URI %s, want %s/callback", m[2], m[1])
	}
	// The certificate is self-signed: the test checks what it is made for, then trusts it.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(m[1], "https://"), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	leaf := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Fatalf("the RP's certificate: %v", err)
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Get(m[1] + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Fatalf("start page: %d, CSP %q", resp.StatusCode, resp.Header.Get("Content-Security-Policy"))
	}
	cookie := resp.Header.Get("Set-Cookie")
	for _, want := range []string{"__Host-rpdebug=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(cookie, want) {
			t.Errorf("cookie %q lacks %s", cookie, want)
		}
	}
}

func TestRPRefusesBadFlags(t *testing.T) {
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	free.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-cert", "c.pem"}, "--tls-cert and --tls-key go together"},
		{[]string{"--addr", "0.0.0.0:0"}, "the self-signed certificate is for loopback"},
		{[]string{"--addr", free.Addr().String(), "--ca-file", "/nonexistent.pem"}, "--ca-file"},
	} {
		_, stderr, err := cli(t, nil, append([]string{"rp"}, tc.args...)...)
		if err == nil || !strings.Contains(stderr, tc.want) {
			t.Errorf("rp %v: %v, stderr %q; want %q", tc.args, err, stderr, tc.want)
		}
	}
}
