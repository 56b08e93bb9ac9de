// Package cli is an ID4me agent's command line: it registers and transfers identifiers at
// the registry, publishing the DNS challenge record through a lego DNS provider, lists them,
// follows the agent's events and deletes them. The id4me-agent program runs it, and so does
// "id4me-registry agent".
package cli

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/challenge/dns01"

	"github.com/id4me/id4me-registry/agent"
	"github.com/id4me/id4me-registry/internal/cmdline"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

const usage = `An ID4me agent's client of the registry: register, transfer, list and delete identifiers, follow events.

Register and transfer publish the challenge record through a DNS provider.

usage: %[1]s <command> [flags]

commands:
  register NAME   publish a challenge record through a DNS provider and register NAME
  transfer NAME   publish a challenge record through a DNS provider and take NAME over
  list            list the identifiers the agent sponsors
  events          print the agent's events as they happen, until interrupted
  delete NAME     delete NAME (it can be restored during the redemption period)

register and transfer publish the record with --dns-provider, one of:
  %[2]s
each configured by lego's own environment variables (rfc2136: RFC2136_NAMESERVER,
RFC2136_TSIG_KEY, RFC2136_TSIG_SECRET, RFC2136_TSIG_ALGORITHM, RFC2136_PROPAGATION_TIMEOUT,
RFC2136_POLLING_INTERVAL, …).

Every flag can also be set by an environment variable: ID4ME_AGENT_ and the flag's name in
upper case, "-" as "_" (--token is ID4ME_AGENT_TOKEN, --dns-server ID4ME_AGENT_DNS_SERVER).
Run "%[1]s <command> --help" for a command's flags.
`

// Command is the agent's command line.
type Command struct {
	// Program is how the user calls it: "id4me-agent", "id4me-registry agent". Usage texts
	// and messages name it so.
	Program string
}

// Run runs the command args names (register, transfer, list, events, delete, help) with the
// rest of args. It prints what it does on stdout, and usage texts and warnings on stderr; the
// caller prints the error it returns.
func (c Command) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := fmt.Sprintf(usage, c.Program, strings.Join(dnsProviderNames(), ", "))
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a command is required: register, transfer, list, events or delete")
	}
	var err error
	switch args[0] {
	case "register", "transfer":
		err = c.solve(ctx, args[0], args[1:], stdout, stderr)
	case "list":
		err = c.list(ctx, args[1:], stdout, stderr)
	case "events":
		err = c.events(ctx, args[1:], stdout, stderr)
	case "delete":
		err = c.delete(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
	default:
		err = cmdline.SeeHelp(fmt.Errorf("unknown agent command %q", args[0]), c.Program)
	}
	return cmdline.ConnHint(err)
}

// summaries say what each command does: the first line of its help.
var summaries = map[string]string{
	"register": "Register an identifier: publish a challenge record through a DNS provider, have the registry verify it, register.",
	"transfer": "Take an identifier over from another agent: publish a challenge record through a DNS provider, request the transfer.",
	"list":     "List the identifiers the agent sponsors.",
	"events":   "Print the agent's events as they happen, until interrupted.",
	"delete":   "Delete an identifier; it can be restored during the redemption period.",
}

// agentFlags are the flags every agent command has: where the registry is and how to
// authenticate to it, with a token or a client certificate.
type agentFlags struct {
	*cmdline.ConnFlags
	tlsCert, tlsKey string
}

// flagSet makes the flag set of the command name with the flags every command has; its help
// goes to stdout.
func (c Command) flagSet(name string, stdout io.Writer) (*cmdline.Flags, *agentFlags) {
	fs := cmdline.NewFlags(c.Program+" "+name, summaries[name], envName, stdout)
	f := &agentFlags{ConnFlags: cmdline.AddConnFlags(fs.FlagSet, envName, "the agent's API token")}
	fs.StringVar(&f.tlsCert, "tls-cert", "", "client certificate (PEM) for mTLS, with --tls-key")
	fs.StringVar(&f.tlsKey, "tls-key", "", "client certificate's private key (PEM)")
	return fs, f
}

// envName is a flag's environment variable: --token is ID4ME_AGENT_TOKEN.
var envName = cmdline.EnvName("ID4ME_AGENT_")

// connect parses args into fs, whose positional arguments names name, and connects to the
// registry.
func (f *agentFlags) connect(fs *cmdline.Flags, args []string, names ...string) (*agent.Client, []string, error) {
	pos, err := fs.Parse(args, names...)
	if err != nil {
		return nil, nil, err
	}
	client, err := f.dial()
	if err != nil {
		return nil, nil, err
	}
	return client, pos, nil
}

// dial connects to the registry with the flags' credentials.
func (f *agentFlags) dial(extra ...agent.Option) (*agent.Client, error) {
	c, err := f.Config()
	if err != nil {
		return nil, err
	}
	switch {
	case f.tlsCert != "" && f.tlsKey != "":
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		c.Certificates = append(c.Certificates, cert)
	case f.tlsCert != "" || f.tlsKey != "":
		return nil, errors.New("--tls-cert and --tls-key go together")
	case f.Token == "":
		return nil, f.NoCredential("--tls-cert and --tls-key")
	}
	var opts []agent.Option
	if c.Token != "" {
		opts = append(opts, agent.WithToken(c.Token))
	}
	for _, cert := range c.Certificates {
		opts = append(opts, agent.WithClientCertificate(cert))
	}
	if c.RootCAs != nil {
		opts = append(opts, agent.WithRootCAs(c.RootCAs))
	}
	if c.InsecureSkipVerify {
		opts = append(opts, agent.WithInsecureSkipVerify())
	}
	if c.Plaintext {
		opts = append(opts, agent.WithPlaintext())
	}
	return agent.Dial(f.Registry, append(opts, extra...)...)
}

// solve runs `register NAME` and `transfer NAME`.
func (c Command) solve(ctx context.Context, command string, args []string, stdout, stderr io.Writer) error {
	fs, f := c.flagSet(command, stdout)
	providerName := fs.String("dns-provider", "", "DNS provider publishing the challenge record: "+strings.Join(dnsProviderNames(), ", ")+"; configured by lego's environment variables")
	var dnsServers cmdline.StringList
	fs.Var(&dnsServers, "dns-server", "nameserver host:port taken as the authoritative server of every zone while waiting for the record, and asked by lego to follow CNAMEs (repeatable); default: each zone's nameservers, found through the system resolver")
	propagationTimeout := fs.Duration("propagation-timeout", 0, "how long to wait for every nameserver to serve the record; 0: the provider's (e.g. RFC2136_PROPAGATION_TIMEOUT), else 60s")
	pollingInterval := fs.Duration("polling-interval", 0, "how often to ask the nameservers while waiting; 0: the provider's (e.g. RFC2136_POLLING_INTERVAL), else 2s")
	var claimsEndpoint *string
	if command == "register" {
		claimsEndpoint = fs.String("claims-endpoint", "", "claims endpoint (https URL) for this identifier; default the agent's")
	}
	pos, err := fs.Parse(args, "NAME")
	if err != nil {
		return err
	}
	if *propagationTimeout < 0 || *pollingInterval < 0 {
		return errors.New("--propagation-timeout and --polling-interval must not be negative")
	}
	provider, err := newDNSProvider(*providerName)
	if err != nil {
		return err
	}
	if len(dnsServers) > 0 {
		// lego follows a CNAME on the challenge name, and some providers find the zone, through
		// its recursive nameservers; pinned servers answer for every zone here too.
		_ = dns01.AddRecursiveNameservers(dnsServers)(nil)
	}
	out := &solveOutput{w: stdout, json: f.JSON, provider: *providerName, program: c.Program}
	client, err := f.dial(agent.WithDNSServers(dnsServers...), agent.WithPropagation(*propagationTimeout, *pollingInterval),
		agent.WithProgress(out.progress))
	if err != nil {
		return err
	}
	defer client.Close()
	var res *agent.Result
	if command == "register" {
		res, err = client.Register(ctx, pos[0], provider, agent.WithClaimsEndpoint(*claimsEndpoint))
	} else {
		res, err = client.Transfer(ctx, pos[0], provider)
	}
	if err != nil {
		out.failure(err)
		return err
	}
	out.result(res)
	if res.CleanUpErr != nil {
		fmt.Fprintf(stderr, "warning: %v; remove the record by hand\n", res.CleanUpErr)
	}
	return nil
}

// solveOutput shows the progress and the outcome of register and transfer.
type solveOutput struct {
	w        io.Writer
	json     bool
	provider string
	program  string // Command.Program, to name the command that follows a pending transfer
	lastWait string // the last summary of the nameservers printed
}

// progressLine is a progress report in --json output.
type progressLine struct {
	Type        string                  `json:"type"`
	Step        agent.Step              `json:"step"`
	Done        bool                    `json:"done"`
	Error       string                  `json:"error,omitempty"`
	Identifier  string                  `json:"identifier"`
	ChallengeID string                  `json:"challengeId,omitempty"`
	RecordName  string                  `json:"recordName,omitempty"`
	RecordValue string                  `json:"recordValue,omitempty"`
	Timeout     string                  `json:"timeout,omitempty"`
	Interval    string                  `json:"interval,omitempty"`
	Nameservers []agent.NameserverState `json:"nameservers,omitempty"`
}

func (o *solveOutput) progress(p agent.Progress) {
	if o.json {
		line := progressLine{Type: "progress", Step: p.Step, Done: p.Done, Identifier: p.Identifier, Nameservers: p.Nameservers}
		if p.Err != nil {
			line.Error = p.Err.Error()
		}
		if c := p.Challenge; c != nil {
			line.ChallengeID, line.RecordName, line.RecordValue = c.Id, c.RecordName, c.RecordValue
		}
		if p.Timeout > 0 {
			line.Timeout, line.Interval = p.Timeout.String(), p.Interval.String()
		}
		o.emit(line)
		return
	}
	if p.Done && p.Err != nil {
		if p.Step == agent.StepCleanUp {
			fmt.Fprintf(o.w, "could not remove the TXT record: %v\n", p.Err)
		}
		return // the error itself is reported once, at the end
	}
	switch {
	case p.Step == agent.StepChallenge && !p.Done:
		fmt.Fprintf(o.w, "creating a challenge for %s\n", p.Identifier)
	case p.Step == agent.StepChallenge:
		fmt.Fprintf(o.w, "challenge %s: %s TXT %q\n", p.Challenge.Id, p.Challenge.RecordName, p.Challenge.RecordValue)
	case p.Step == agent.StepPublish && !p.Done:
		fmt.Fprintf(o.w, "publishing the TXT record through %s\n", o.provider)
	case p.Step == agent.StepWait && p.Nameservers != nil:
		if s := waitSummary(p.Nameservers); s != o.lastWait {
			o.lastWait = s
			fmt.Fprintf(o.w, "  %s\n", s)
		}
	case p.Step == agent.StepWait && !p.Done:
		fmt.Fprintf(o.w, "waiting for the nameservers to serve it (up to %v, every %v)\n", p.Timeout, p.Interval)
	case p.Step == agent.StepVerify && !p.Done:
		fmt.Fprintln(o.w, "asking the registry to verify the challenge")
	case p.Step == agent.StepVerify:
		fmt.Fprintln(o.w, "the registry found the record")
	case p.Step == agent.StepRegister && !p.Done:
		fmt.Fprintf(o.w, "registering %s\n", p.Challenge.Identifier)
	case p.Step == agent.StepTransfer && !p.Done:
		fmt.Fprintf(o.w, "requesting the transfer of %s\n", p.Challenge.Identifier)
	case p.Step == agent.StepCleanUp && !p.Done:
		fmt.Fprintln(o.w, "removing the TXT record")
	}
}

// waitSummary says how many nameservers serve the record and what the others answered.
func waitSummary(states []agent.NameserverState) string {
	if len(states) == 0 {
		return "no nameserver found yet"
	}
	serving := 0
	var others []string
	for _, s := range states {
		if s.Serving {
			serving++
			continue
		}
		others = append(others, s.Nameserver+": "+s.Said)
	}
	if serving == len(states) {
		return fmt.Sprintf("all %d nameservers serve the record", serving)
	}
	return fmt.Sprintf("%d of %d nameservers serve the record (%s)", serving, len(states), strings.Join(others, "; "))
}

// resultLine is the outcome in --json output.
type resultLine struct {
	Type           string          `json:"type"`
	Challenge      json.RawMessage `json:"challenge,omitempty"`
	Identifier     json.RawMessage `json:"identifier,omitempty"`
	CredentialLink json.RawMessage `json:"credentialLink,omitempty"`
	Transfer       json.RawMessage `json:"transfer,omitempty"`
	CleanUpError   string          `json:"cleanupError,omitempty"`
}

func (o *solveOutput) result(res *agent.Result) {
	if o.json {
		line := resultLine{Type: "result", Challenge: cmdline.ProtoJSON(res.Challenge), Identifier: cmdline.ProtoJSON(res.Identifier),
			CredentialLink: cmdline.ProtoJSON(res.CredentialLink), Transfer: cmdline.ProtoJSON(res.Transfer)}
		if res.CleanUpErr != nil {
			line.CleanUpError = res.CleanUpErr.Error()
		}
		o.emit(line)
		return
	}
	if i := res.Identifier; i != nil {
		fmt.Fprintf(o.w, "registered %s to agent %s (claims endpoint %s)\n", i.Name, i.AgentId, i.EffectiveClaimsEndpoint)
	}
	if l := res.CredentialLink; l != nil {
		fmt.Fprintf(o.w, "send the holder to set their credentials (one use, until %s):\n  %s\n",
			l.ExpireTime.AsTime().Format(time.RFC3339), l.Url)
	}
	if t := res.Transfer; t != nil {
		switch t.Status {
		case registryv1.Transfer_STATUS_PENDING:
			fmt.Fprintf(o.w, "transfer %s of %s from agent %s is pending until %s; `%s events` tells how it ends\n",
				t.Id, t.Identifier, t.LosingAgentId, t.ActTime.AsTime().Format(time.RFC3339), o.program)
		default:
			fmt.Fprintf(o.w, "transferred %s from agent %s to agent %s (transfer %s, %s)\n",
				t.Identifier, t.LosingAgentId, t.GainingAgentId, t.Id, enumName(t.Status.String()))
		}
	}
}

// errorLine is a failure in --json output.
type errorLine struct {
	Type    string          `json:"type"`
	Step    agent.Step      `json:"step,omitempty"`
	Error   string          `json:"error"`
	Problem json.RawMessage `json:"problem,omitempty"`
}

func (o *solveOutput) failure(err error) {
	if !o.json {
		return // the caller prints the error
	}
	line := errorLine{Type: "error", Error: err.Error()}
	var se *agent.StepError
	if errors.As(err, &se) {
		line.Step, line.Problem = se.Step, cmdline.ProtoJSON(se.Problem)
	}
	o.emit(line)
}

func (o *solveOutput) emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		b, _ = json.Marshal(errorLine{Type: "error", Error: "encoding output: " + err.Error()})
	}
	o.w.Write(append(b, '\n'))
}

// enumName drops the prefix of an enum value's name: STATUS_SERVER_APPROVED → SERVER_APPROVED.
func enumName(s string) string {
	for _, p := range []string{"IDENTIFIER_STATUS_", "STATUS_", "TYPE_"} {
		if rest, ok := strings.CutPrefix(s, p); ok {
			return rest
		}
	}
	return s
}

// list runs `list`.
func (c Command) list(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := c.flagSet("list", stdout)
	client, _, err := f.connect(fs, args)
	if err != nil {
		return err
	}
	defer client.Close()
	n := 0
	for i, err := range client.Identifiers(ctx) {
		if err != nil {
			return err
		}
		n++
		if f.JSON {
			cmdline.PrintJSONLine(stdout, i)
			continue
		}
		statuses := make([]string, 0, len(i.Statuses))
		for _, s := range i.Statuses {
			statuses = append(statuses, enumName(s.String()))
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\n", i.Name, strings.Join(statuses, ","), i.EffectiveClaimsEndpoint)
	}
	if n == 0 && !f.JSON {
		fmt.Fprintln(stderr, "the agent sponsors no identifier")
	}
	return nil
}

// delete runs `delete NAME`.
func (c Command) delete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := c.flagSet("delete", stdout)
	client, pos, err := f.connect(fs, args, "NAME")
	if err != nil {
		return err
	}
	defer client.Close()
	i, err := client.Delete(ctx, pos[0])
	if err != nil {
		return err
	}
	if f.JSON {
		cmdline.PrintJSONLine(stdout, i)
		return nil
	}
	fmt.Fprintf(stdout, "%s is pending delete: it can be restored until %s, when it is purged\n",
		i.Name, i.PurgeTime.AsTime().Format(time.RFC3339))
	return nil
}

// events runs `events`: it prints the agent's events as they happen until interrupted,
// reconnecting when the registry goes away.
func (c Command) events(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, f := c.flagSet("events", stdout)
	afterID := fs.Int64("after-id", 0, "start after this event id (the last one seen); 0: with the oldest unacknowledged event")
	ack := fs.Bool("ack", false, "acknowledge each event once it is printed")
	client, _, err := f.connect(fs, args)
	if err != nil {
		return err
	}
	defer client.Close()
	err = client.WatchEvents(ctx, *afterID, func(ev *registryv1.Event) error {
		if f.JSON {
			cmdline.PrintJSONLine(stdout, ev)
		} else {
			fmt.Fprintln(stdout, describeEvent(ev))
		}
		if *ack {
			if _, err := client.AckEvents(ctx, ev.Id); err != nil {
				return fmt.Errorf("acknowledging event %d: %w", ev.Id, err)
			}
		}
		return nil
	})
	if ctx.Err() != nil {
		// Interrupted: the normal end. An event printed but not yet acknowledged comes again
		// next time.
		return nil
	}
	return err
}

// describeEvent is an event on one line.
func describeEvent(ev *registryv1.Event) string {
	s := fmt.Sprintf("%d\t%s\t%s\t%s", ev.Id, ev.CreateTime.AsTime().Format(time.RFC3339), enumName(ev.Type.String()), ev.Identifier)
	if t := ev.Transfer; t != nil {
		s += fmt.Sprintf("\ttransfer %s from %s to %s: %s", t.Id, t.LosingAgentId, t.GainingAgentId, enumName(t.Status.String()))
	}
	if ev.Reason != "" {
		s += "\t" + ev.Reason
	}
	return s
}
