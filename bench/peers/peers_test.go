package main

import (
	"context"
	"os"
	"regexp"
	"testing"
	"time"
)

// TestPeers runs the whole comparison briefly (one pair, short runs): it installs
// oidc-provider from npm, so it runs only with ID4ME_PEERS=1.
func TestPeers(t *testing.T) {
	if os.Getenv("ID4ME_PEERS") != "1" {
		t.Skip("set ID4ME_PEERS=1 to install oidc-provider from npm and run the comparison briefly")
	}
	res, err := run(context.Background(), options{
		duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond, pairs: 1, clients: 4,
		figures: regexp.MustCompile(""), protos: []string{"h1", "h2"}, alg: "RS256",
		peerVersion: defaultPeerVersion, fresh: 4,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := len(allFigures) * 2; len(res.Rows) != want {
		t.Fatalf("%d rows, want %d", len(res.Rows), want)
	}
	for _, r := range res.Rows {
		want := 2
		if len(r.Contenders) == 3 {
			want = 3
		}
		if len(r.Contenders) != want || len(r.Ratios) != want-1 {
			t.Errorf("%s %s: %d contenders, %d ratios", r.Figure, r.Proto, len(r.Contenders), len(r.Ratios))
		}
		for _, c := range r.Contenders {
			// A run this short may end within one clock tick of CPU time.
			if c.RPS <= 0 || c.CPUus < 0 || c.RSSMB <= 0 {
				t.Errorf("%s %s %s: %+v", r.Figure, r.Proto, c.Name, c)
			}
		}
	}
}
