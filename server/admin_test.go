package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// get fetches url with client and returns the status and body.
func get(t *testing.T, client *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestOperatorSurfacesAreNotOnThePublicListener(t *testing.T) {
	e := newAuthEnv(t, envOptions{})
	// The public HTTPS listener, which relying parties and browsers use.
	for _, path := range []string{"/metrics", "/readyz", "/debug/pprof/"} {
		if code, _ := get(t, e.rpClient, e.issuer+path); code != http.StatusNotFound {
			t.Errorf("public %s: status %d, want 404", path, code)
		}
	}
	if code, body := get(t, e.rpClient, e.issuer+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Errorf("public /healthz: %d %q, want 200 ok", code, body)
	}

	// The operator's listener.
	code, body := get(t, http.DefaultClient, e.ops.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "id4me_grpc_connections ") {
		t.Errorf("operator /metrics: %d\n%s", code, body)
	}
	if code, body := get(t, http.DefaultClient, e.ops.URL+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("operator /readyz: %d %q, want 200 ready", code, body)
	}
	if code, _ := get(t, http.DefaultClient, e.ops.URL+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("operator /debug/pprof/ without --pprof: status %d, want 404", code)
	}
}

func TestPprofIsServedOnTheOperatorListenerWhenAskedFor(t *testing.T) {
	e := newEnv(t, envOptions{Pprof: true})
	if code, body := get(t, http.DefaultClient, e.ops.URL+"/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ with --pprof: %d\n%s", code, body)
	}
	if code, body := get(t, http.DefaultClient, e.ops.URL+"/debug/pprof/goroutine?debug=1"); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("goroutine profile: %d\n%s", code, body)
	}
	if code, _ := get(t, http.DefaultClient, e.http.URL+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("public /debug/pprof/: status %d, want 404", code)
	}
}
