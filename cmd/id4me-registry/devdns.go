package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/id4me/id4me-registry/internal/devdns"
)

// devDNS serves a zone file as an authoritative DNS server on loopback, reloading it when it
// changes: the demo stand-in for an agent's DNS, so the README walkthrough needs nothing but Go.
func devDNS(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags(ctx, stdout)
	addr := fs.String("addr", "127.0.0.1:5354", "UDP and TCP listen address (loopback)")
	zoneFile := fs.String("zone-file", "", "zone file (RFC 1035 master format) to serve; reloaded when it changes")
	if _, err := fs.Parse(args); err != nil {
		return err
	}
	if *zoneFile == "" {
		return errors.New("--zone-file is required")
	}
	if !isLoopbackListen(*addr) {
		return errors.New("dev-dns listens on loopback addresses only")
	}
	srv, err := devdns.Start(*addr)
	if err != nil {
		return err
	}
	defer srv.Close()
	var loaded time.Time
	reload := func() {
		st, err := os.Stat(*zoneFile)
		if err != nil || !st.ModTime().After(loaded) {
			return
		}
		if err := srv.LoadZoneFile(*zoneFile); err != nil {
			fmt.Fprintln(stderr, "dev-dns:", err)
			return
		}
		loaded = st.ModTime()
		fmt.Fprintf(stdout, "dev-dns: serving %s\n", *zoneFile)
	}
	reload()
	fmt.Fprintf(stdout, "dev-dns: listening on %s (udp, tcp)\n", srv.Addr)
	t := time.NewTicker(300 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			reload()
		}
	}
}
