package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/internal/devdns"
)

// Names of the contenders.
const (
	project = "id4me-registry"
	peer    = "oidc-provider"
	peerJWT = "oidc-provider, agent JWT"
)

// result is what a whole run measured.
type result struct {
	Started     time.Time `json:"started"`
	Command     string    `json:"command"`
	Machine     string    `json:"machine"`
	PeerVersion string    `json:"peer_version"`
	Node        string    `json:"node"`
	Go          string    `json:"go"`
	Alg         string    `json:"alg"`
	Duration    string    `json:"duration"`
	Pairs       int       `json:"pairs"`
	Clients     int       `json:"clients"`
	Runs        []sample  `json:"runs"`
	Rows        []row     `json:"rows"`
}

// row sums up one figure on one HTTP version.
type row struct {
	Figure     string        `json:"figure"`
	Title      string        `json:"title"`
	Proto      string        `json:"proto"`
	Contenders []contender   `json:"contenders"`
	Ratios     []ratioVsPeer `json:"ratios"`
}

// contender sums up one contender's runs of a row: medians, and the highest peak RSS.
type contender struct {
	Name   string  `json:"name"`
	RPS    float64 `json:"median_rps"`
	CPUus  float64 `json:"median_cpu_us_per_request"`
	RSSMB  float64 `json:"median_rss_mb"`
	PeakMB float64 `json:"peak_rss_mb"`
}

// ratioVsPeer is the project's req/s over a peer variant's, within each pair of runs, and
// the ratio of the median CPU per request.
type ratioVsPeer struct {
	Peer     string  `json:"peer"`
	Min      float64 `json:"min"`
	Median   float64 `json:"median"`
	Max      float64 `json:"max"`
	CPURatio float64 `json:"cpu_ratio"`
}

func run(ctx context.Context, o options) (*result, error) {
	root, err := moduleDir()
	if err != nil {
		return nil, err
	}
	res := &result{
		Started: time.Now().UTC(), Command: strings.Join(os.Args, " "), Machine: machine(),
		Go: runtime.Version(), Alg: o.alg, Duration: o.duration.String(), Pairs: o.pairs, Clients: o.clients,
	}
	tmp, err := os.MkdirTemp("", "id4me-peers-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	certPath, keyPath, roots, err := writeCertificate(tmp)
	if err != nil {
		return nil, err
	}
	work := filepath.Join(root, "bench", "peers", ".work")
	logf("installing oidc-provider %s into %s", o.peerVersion, work)
	if err := installPeer(ctx, filepath.Join(root, "bench", "peers", "peer"), work, o.peerVersion); err != nil {
		return nil, err
	}
	res.PeerVersion = peerVersion(work)
	if out, err := exec.Command("node", "--version").Output(); err == nil {
		res.Node = strings.TrimSpace(string(out))
	}
	ns, err := devdns.Start("127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	ns.AddZone(zone)

	users := make([]user, o.clients)
	for k := range users {
		users[k] = user{identifier: fmt.Sprintf("holder%02d.%s", k, zone), password: "correct horse battery staple " + rand.Text()}
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			t.proc.stop()
		}
	}()

	logf("building and starting id4me-registry")
	proc, issuer, grpcAddr, operator, err := startProject(ctx, tmp, certPath, keyPath, ns.Addr, o.alg)
	if err != nil {
		return nil, err
	}
	tp := &target{name: project, proc: proc, issuer: issuer, roots: roots, users: slices.Clone(users)}
	targets = append(targets, tp)
	logf("registering %d identifiers and setting their passwords", len(users))
	if err := setupProject(ctx, tp, grpcAddr, operator, ns); err != nil {
		return nil, fmt.Errorf("%w\n%s", err, proc.log)
	}
	variants := map[string]string{peer: "plain", peerJWT: "jwt"}
	for _, name := range []string{peer, peerJWT} {
		logf("starting %s", name)
		proc, issuer, err := startPeer(ctx, work, certPath, keyPath, variants[name], o.alg, users)
		if err != nil {
			return nil, err
		}
		targets = append(targets, &target{name: name, proc: proc, issuer: issuer, roots: roots, users: slices.Clone(users)})
	}
	for _, t := range targets {
		logf("%s: registering relying parties, logging %d users in", t.name, len(t.users))
		if err := t.setupClients(o.alg); err != nil {
			return nil, fmt.Errorf("%w\n%s", err, t.proc.log)
		}
	}

	for _, fig := range allFigures {
		if !o.figures.MatchString(fig.name) {
			continue
		}
		contenders := targets[:2]
		if fig.jwtPeer {
			contenders = targets
		}
		for _, proto := range o.protos {
			r := row{Figure: fig.name, Title: fig.title, Proto: proto}
			byTarget := map[string][]sample{}
			for pair := range o.pairs {
				order := slices.Clone(contenders)
				if pair%2 == 1 {
					slices.Reverse(order)
				}
				for _, t := range order {
					s, err := measure(ctx, t, fig, proto, o, pair)
					if err != nil {
						return nil, fmt.Errorf("%w\n%s", err, t.proc.log)
					}
					if o.verbose {
						logf("%-20s %s %-26s pair %d: %8.0f req/s %7.0f µs CPU/req  RSS %.0f MB", fig.name, proto, t.name, pair, s.RPS, s.CPUus, s.RSSMB)
					}
					res.Runs = append(res.Runs, s)
					byTarget[t.name] = append(byTarget[t.name], s)
				}
			}
			for _, t := range contenders {
				r.Contenders = append(r.Contenders, summarize(t.name, byTarget[t.name]))
			}
			for _, t := range contenders[1:] {
				r.Ratios = append(r.Ratios, ratios(t.name, byTarget[project], byTarget[t.name]))
			}
			res.Rows = append(res.Rows, r)
		}
	}
	return res, nil
}

func summarize(name string, runs []sample) contender {
	c := contender{Name: name}
	var rps, cpu, rss []float64
	for _, s := range runs {
		rps, cpu, rss = append(rps, s.RPS), append(cpu, s.CPUus), append(rss, s.RSSMB)
		c.PeakMB = max(c.PeakMB, s.HWMMB)
	}
	c.RPS, c.CPUus, c.RSSMB = median(rps), median(cpu), median(rss)
	return c
}

func ratios(name string, proj, other []sample) ratioVsPeer {
	var rs, pc, oc []float64
	for k := range min(len(proj), len(other)) {
		rs = append(rs, proj[k].RPS/other[k].RPS)
		pc, oc = append(pc, proj[k].CPUus), append(oc, other[k].CPUus)
	}
	return ratioVsPeer{Peer: name, Min: slices.Min(rs), Median: median(rs), Max: slices.Max(rs), CPURatio: median(pc) / median(oc)}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// machine describes the CPU and the core count.
func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				model = strings.TrimSpace(strings.TrimLeft(v, " \t:"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores", model, runtime.NumCPU())
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// printTable writes the summary as Markdown: the main table (project against the peer as a
// straightforward deployment runs it), then the userinfo figures against the peer variant that
// signs a JWT for the agent in every answer.
func printTable(w io.Writer, res *result) {
	fmt.Fprintf(w, "%s; oidc-provider %s on node %s; %s; %s ID tokens, signed userinfo and agent tokens; %d clients; %s per run; %d pairs (ABBA)\n\n",
		res.Machine, res.PeerVersion, res.Node, res.Go, res.Alg, res.Clients, res.Duration, res.Pairs)
	for _, variant := range []string{peer, peerJWT} {
		if variant == peerJWT {
			fmt.Fprintf(w, "\nUserinfo against the peer signing a %s JWT for the agent in every userinfo answer:\n\n", res.Alg)
		}
		fmt.Fprintf(w, "| figure | HTTP | %s req/s | %s req/s | ratio min / median / max | CPU µs per request, project vs peer | RSS MB, project vs peer (peak) |\n", project, variant)
		fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- |")
		for _, r := range res.Rows {
			var p, q *contender
			var rt *ratioVsPeer
			for k := range r.Contenders {
				switch r.Contenders[k].Name {
				case project:
					p = &r.Contenders[k]
				case variant:
					q = &r.Contenders[k]
				}
			}
			for k := range r.Ratios {
				if r.Ratios[k].Peer == variant {
					rt = &r.Ratios[k]
				}
			}
			if p == nil || q == nil || rt == nil {
				continue
			}
			proto := map[string]string{"h1": "1.1", "h2": "2"}[r.Proto]
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f / **%.2f** / %.2f | %s vs %s (%.2f) | %.0f vs %.0f (%.0f vs %.0f) |\n",
				r.Figure, proto, num(p.RPS), num(q.RPS), rt.Min, rt.Median, rt.Max,
				num(p.CPUus), num(q.CPUus), rt.CPURatio, p.RSSMB, q.RSSMB, p.PeakMB, q.PeakMB)
		}
	}
	fmt.Fprintln(w, "\nFigures:")
	for _, f := range allFigures {
		fmt.Fprintf(w, "- %s: %s\n", f.name, f.title)
	}
}

// num formats a figure with thousands separators and no decimals (one below 100).
func num(v float64) string {
	if v < 100 {
		return fmt.Sprintf("%.1f", v)
	}
	s := fmt.Sprintf("%.0f", v)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
