// Command peers measures the registry's identity authority against panva's oidc-provider, the
// OpenID-certified Node provider, on the same machine with the same load generator.
//
//	go run ./bench/peers [-duration 5s] [-pairs 3] [-figures regexp] [-clients 16] [-alg RS256] [-json]
//
// It installs oidc-provider from npm into bench/peers/.work (-peer-version, default the
// newest release that supports Node.js 20), builds and starts `id4me-registry serve` on a
// fresh SQLite database with a loopback nameserver, sets up an agent, identifiers with passwords (through credential links)
// and relying parties (through dynamic registration) on both, logs each user in once through the
// real login forms, and then runs every figure on the project and the peer in turns (ABBA),
// printing a Markdown table. See bench/README.md, "Comparison with oidc-provider".
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// options are the command's flags.
type options struct {
	duration, warmup time.Duration
	pairs, clients   int
	figures          *regexp.Regexp
	protos           []string
	alg, peerVersion string
	fresh            int
	jsonOut          bool
	verbose          bool
}

func main() {
	var o options
	var figures, protos string
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "measured time of one run")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load before each run, on the same connections")
	flag.IntVar(&o.pairs, "pairs", 3, "runs of each contender per figure, in turns (ABBA)")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients, each with its own TLS keep-alive connection")
	flag.StringVar(&figures, "figures", "", "regexp: run only the figures whose name matches (see -list)")
	flag.StringVar(&protos, "protos", "h1,h2", "HTTP versions to measure: h1 (HTTP/1.1), h2 (HTTP/2), comma-separated")
	flag.StringVar(&o.alg, "alg", "RS256", "signing algorithm of ID tokens, signed userinfo and agent tokens: RS256 or ES256")
	flag.StringVar(&o.peerVersion, "peer-version", defaultPeerVersion, "oidc-provider version to install from npm")
	flag.IntVar(&o.fresh, "fresh", 200, "access tokens minted per client before each first-userinfo run (the run ends when they are used up)")
	flag.BoolVar(&o.jsonOut, "json", false, "print every run and the summary as JSON instead of the table")
	flag.BoolVar(&o.verbose, "v", false, "print each run as it ends (to stderr)")
	list := flag.Bool("list", false, "list the figures and exit")
	flag.Parse()
	if *list {
		for _, f := range allFigures {
			fmt.Printf("%-20s %s\n", f.name, f.title)
		}
		return
	}
	var err error
	if o.figures, err = regexp.Compile(figures); err != nil {
		fatal(fmt.Errorf("-figures: %w", err))
	}
	if o.protos, err = parseProtos(protos); err != nil {
		fatal(err)
	}
	if o.alg != "RS256" && o.alg != "ES256" {
		fatal(fmt.Errorf("-alg %q: want RS256 or ES256", o.alg))
	}
	if o.pairs < 1 || o.clients < 1 || o.duration <= 0 || o.fresh < 2 {
		fatal(fmt.Errorf("-pairs, -clients and -duration must be positive, -fresh at least 2"))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, o)
	if err != nil {
		fatal(err)
	}
	if o.jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			fatal(err)
		}
		return
	}
	printTable(os.Stdout, res)
}

func parseProtos(s string) ([]string, error) {
	var out []string
	for _, p := range regexp.MustCompile(`\s*,\s*`).Split(s, -1) {
		switch p {
		case "h1", "h2":
			out = append(out, p)
		default:
			return nil, fmt.Errorf("-protos: %q is neither h1 nor h2", p)
		}
	}
	return out, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "peers:", err)
	os.Exit(1)
}
