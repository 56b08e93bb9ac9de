package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/id4me/id4me-registry/internal/cmdline"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// identifierCommands show identifiers and set their server statuses.
var identifierCommands = commandGroup{
	path:    "id4me-registry admin identifiers",
	summary: "Show and resolve any agent's identifier, set its server statuses (hold, transfer, delete and update prohibited), and make its holder a credential link.",
	commands: []command{
		{"get", "NAME", "show an identifier: its agent, statuses, claims endpoint, last _openid check", identifiersGet},
		{"resolve", "NAME", "resolve an identifier as relying parties' lookups do", identifiersResolve},
		{"set-status", "NAME", "set the identifier's server statuses to exactly those of --status, journaled with --reason", identifiersSetStatus},
		{"credential-link", "NAME", "make a credential link for the identifier's holder (a support case), journaled with --reason; print its URL", identifiersCredentialLink},
	},
	footer: adminFooter,
}

// serverStatus is a server status and the name --status gives it.
type serverStatus struct {
	name   string
	status registryv1.IdentifierStatus
}

// serverStatuses are the statuses an operator sets, by the names --status takes.
var serverStatuses = []serverStatus{
	{"hold", registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD},
	{"transfer-prohibited", registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_TRANSFER_PROHIBITED},
	{"delete-prohibited", registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_DELETE_PROHIBITED},
	{"update-prohibited", registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_UPDATE_PROHIBITED},
}

func identifiersGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "NAME")
	if err != nil {
		return err
	}
	defer api.close()
	i, err := api.GetIdentifier(ctx, &registryv1.GetIdentifierRequest{Identifier: pos[0]})
	if err != nil {
		return err
	}
	return printIdentifier(stdout, api.JSON, i)
}

func printIdentifier(w io.Writer, json bool, i *registryv1.Identifier) error {
	fields := []field{
		{"NAME", i.Name}, {"UNICODE", i.UnicodeName}, {"DNS NAME", i.DnsName}, {"AGENT", i.AgentId},
		{"STATUSES", statusNames(i.Statuses)}, {"CLAIMS ENDPOINT", i.EffectiveClaimsEndpoint},
		{"CREATED", formatTimestamp(i.CreateTime)}, {"UPDATED", formatTimestamp(i.UpdateTime)},
	}
	if i.PurgeTime != nil {
		fields = append(fields, field{"DELETED", formatTimestamp(i.DeleteTime)}, field{"PURGED AT", formatTimestamp(i.PurgeTime)})
	}
	if c := i.OpenidRecord; c != nil {
		check := enumName(c.Status.String()) + " at " + formatTimestamp(c.CheckTime)
		if c.Detail != "" {
			check += ": " + c.Detail
		}
		fields = append(fields, field{"_OPENID", check})
	}
	fields = append(fields, field{"ETAG", i.Etag})
	return printDetail(w, json, i, fields...)
}

func statusNames(ss []registryv1.IdentifierStatus) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = enumName(s.String())
	}
	return strings.Join(names, ", ")
}

func identifiersResolve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "NAME")
	if err != nil {
		return err
	}
	defer api.close()
	r, err := api.resolver.ResolveIdentifier(ctx, &registryv1.ResolveIdentifierRequest{Identifier: pos[0]})
	if err != nil {
		return err
	}
	return printDetail(stdout, api.JSON, r,
		field{"IDENTIFIER", r.Identifier}, field{"DNS NAME", r.DnsName}, field{"AGENT", r.AgentId},
		field{"AGENT ISSUER", r.AgentIssuer}, field{"CLAIMS ENDPOINT", r.ClaimsEndpoint}, field{"STATUSES", statusNames(r.Statuses)})
}

func identifiersSetStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var statuses cmdline.StringList
	var reason, etag string
	names := make([]string, len(serverStatuses))
	for i, s := range serverStatuses {
		names[i] = s.name
	}
	api, pos, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		fs.Var(&statuses, "status", "a server status the identifier is to have: "+strings.Join(names, ", ")+
			" (repeatable, or comma-separated); none clears them. The statuses not given are cleared")
		fs.StringVar(&reason, "reason", "", "why, for the journal and the sponsoring agent's event (required)")
		fs.StringVar(&etag, "etag", "", "refuse the change unless the identifier's etag is this one (as get prints it)")
	}, "NAME")
	if err != nil {
		return err
	}
	defer api.close()
	want, err := parseServerStatuses(statuses, names)
	if err != nil {
		return api.flags.SeeHelp(err)
	}
	if strings.TrimSpace(reason) == "" {
		return api.flags.SeeHelp(errors.New("--reason is required: it is journaled and sent to the sponsoring agent"))
	}
	i, err := api.SetServerStatus(ctx, &registryv1.SetServerStatusRequest{Identifier: pos[0], Statuses: want, Reason: reason, Etag: etag})
	if err != nil {
		return err
	}
	printChanged(stdout, api.JSON, i, fmt.Sprintf("%s: statuses %s", i.Name, statusNames(i.Statuses)))
	return nil
}

// identifiersCredentialLink runs `admin identifiers credential-link`: a support case's
// credential link for the holder, which the operator hands over by a channel they trust. The
// URL is the only line on stdout, so a script can take it.
func identifiersCredentialLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var purpose, reason string
	api, pos, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&purpose, "purpose", "reset", "setup (the holder has no credentials yet) or reset (they replace theirs)")
		fs.StringVar(&reason, "reason", "", "why, for the journal: the support case (required)")
	}, "NAME")
	if err != nil {
		return err
	}
	defer api.close()
	p, ok := map[string]registryv1.CredentialLink_Purpose{
		"setup": registryv1.CredentialLink_PURPOSE_SETUP, "reset": registryv1.CredentialLink_PURPOSE_RESET,
	}[strings.ToLower(purpose)]
	if !ok {
		return api.flags.SeeHelp(fmt.Errorf("--purpose %q: want setup or reset", purpose))
	}
	if strings.TrimSpace(reason) == "" {
		return api.flags.SeeHelp(errors.New("--reason is required: it is journaled with the link"))
	}
	link, err := api.CreateCredentialLink(ctx, &registryv1.CreateCredentialLinkRequest{Identifier: pos[0], Purpose: p, Reason: reason})
	if err != nil {
		return err
	}
	if api.JSON {
		cmdline.PrintJSONLine(stdout, link)
		return nil
	}
	fmt.Fprintln(stdout, link.Url)
	fmt.Fprintf(stderr, "A %s link for the holder of %s, valid until %s. Anyone with it can set the holder's credentials: hand it over only to the holder.\n",
		enumName(link.Purpose.String()), link.Identifier, formatTimestamp(link.ExpireTime))
	return nil
}

// parseServerStatuses reads --status: names from serverStatuses, split at commas, or none.
func parseServerStatuses(given cmdline.StringList, names []string) ([]registryv1.IdentifierStatus, error) {
	if len(given) == 0 {
		return nil, fmt.Errorf("--status is required: %s, or none to clear the server statuses", strings.Join(names, ", "))
	}
	var out []registryv1.IdentifierStatus
	none := false
	for _, g := range given {
		for _, name := range strings.Split(g, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "none" {
				none = true
				continue
			}
			i := slices.IndexFunc(serverStatuses, func(s serverStatus) bool { return s.name == name })
			if i < 0 {
				return nil, fmt.Errorf("--status %q: want %s, or none", name, strings.Join(names, ", "))
			}
			if !slices.Contains(out, serverStatuses[i].status) {
				out = append(out, serverStatuses[i].status)
			}
		}
	}
	if none && len(out) > 0 {
		return nil, errors.New("--status none clears the server statuses; it goes alone")
	}
	return out, nil
}

// journal runs `admin journal`: the journal's entries, oldest first, filtered; with --follow
// it goes on printing new ones until interrupted.
func journal(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var objectType, objectID, identifier, agent, action string
	var follow bool
	var interval time.Duration
	var limit int
	api, _, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&objectType, "object-type", "", "only entries about objects of this type: identifier, agent, agent_token, operator_credential, challenge")
		fs.StringVar(&objectID, "object-id", "", "only entries about this object (with --object-type)")
		fs.StringVar(&identifier, "identifier", "", "only entries about this identifier (--object-type identifier --object-id NAME)")
		fs.StringVar(&agent, "agent", "", "only entries about this agent (--object-type agent --object-id ID)")
		fs.StringVar(&action, "action", "", "only entries whose action starts with this (identifier.register, identifier., …)")
		fs.IntVar(&limit, "limit", 0, "print at most this many entries (the oldest); 0: all")
		fs.BoolVar(&follow, "follow", false, "go on printing new entries as they are written, until interrupted")
		fs.DurationVar(&interval, "interval", 2*time.Second, "with --follow, how often to look for new entries")
	})
	if err != nil {
		return err
	}
	defer api.close()
	switch {
	case identifier != "" && agent != "", (identifier != "" || agent != "") && (objectType != "" || objectID != ""):
		return api.flags.SeeHelp(errors.New("give one filter of --identifier, --agent and --object-type/--object-id"))
	case identifier != "":
		objectType, objectID = "identifier", identifier
	case agent != "":
		objectType, objectID = "agent", agent
	case objectID != "" && objectType == "":
		return api.flags.SeeHelp(errors.New("--object-id goes with --object-type"))
	}
	if limit < 0 || interval <= 0 {
		return api.flags.SeeHelp(errors.New("--limit must not be negative, --interval must be positive"))
	}
	req := &registryv1.ListJournalRequest{ObjectType: objectType, ObjectId: objectID, PageSize: 1000}
	if follow {
		req.PageSize = 100
	}
	var lastID int64
	printed := 0
	header := true
	for {
		resp, err := api.ListJournal(ctx, req)
		if err != nil {
			if follow && ctx.Err() != nil {
				return nil // interrupted: the normal end of --follow
			}
			return err
		}
		t := newTable(stdout, api.JSON, journalHeader(header)...)
		header = false
		for _, e := range resp.Entries {
			// A page read again while following holds entries printed before.
			if e.Id <= lastID || !strings.HasPrefix(e.Action, action) {
				lastID = max(lastID, e.Id)
				continue
			}
			lastID = e.Id
			t.row(e, fmt.Sprint(e.Id), formatTimestamp(e.Time), e.Actor, e.Action, e.ObjectType, e.ObjectId)
			if printed++; limit > 0 && printed == limit {
				return t.flush()
			}
		}
		if err := t.flush(); err != nil {
			return err
		}
		if resp.NextPageToken != "" {
			req.PageToken = resp.NextPageToken
			continue
		}
		if !follow {
			return nil
		}
		// The last page is read again, for what was written to it since.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// journalHeader is the journal table's header, printed once.
func journalHeader(first bool) []string {
	if !first {
		return nil
	}
	return []string{"ID", "TIME", "ACTOR", "ACTION", "TYPE", "OBJECT"}
}
