package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/id4me/id4me-registry/internal/cmdline"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// agentCommands manage the registry's agent partners.
var agentCommands = commandGroup{
	path:    "id4me-registry admin agents",
	summary: "Create, list, show, update, suspend and resume agents, the registry's partners.",
	commands: []command{
		{"create", "", "create an agent (--display-name, --claims-endpoint, --issuer, --account-key-jwk); print its id", agentsCreate},
		{"list", "", "list the agents", agentsList},
		{"get", "ID", "show an agent", agentsGet},
		{"update", "ID", "change the fields given as flags (the others are kept)", agentsUpdate},
		{"suspend", "ID", "refuse every call of the agent; its identifiers keep resolving", agentsSetState(registryv1.Agent_STATE_SUSPENDED)},
		{"resume", "ID", "let a suspended agent act again", agentsSetState(registryv1.Agent_STATE_ACTIVE)},
	},
	footer: adminFooter,
}

// tokenCommands manage agents' API tokens.
var tokenCommands = commandGroup{
	path:    "id4me-registry admin tokens",
	summary: "Create, list and revoke agents' API tokens.",
	commands: []command{
		{"create", "AGENT", "create an API token for the agent; print its secret, shown this once", tokensCreate},
		{"list", "AGENT", "list the agent's tokens, revoked ones too, without secrets", tokensList},
		{"revoke", "AGENT TOKEN", "revoke a token at once", tokensRevoke},
	},
	footer: adminFooter,
}

// agentSpec are the flags that describe an agent, for create and update.
type agentSpec struct {
	displayName, claimsEndpoint, issuer, accountKey string
	certPins                                        cmdline.StringList
}

func (s *agentSpec) define(fs *flag.FlagSet) {
	fs.StringVar(&s.displayName, "display-name", "", "the agent's name, for people")
	fs.StringVar(&s.claimsEndpoint, "claims-endpoint", "", "the agent's default claims (userinfo) endpoint, an https URL")
	fs.StringVar(&s.issuer, "issuer", "", "the agent's issuer URL (https): the audience of the access tokens issued for it")
	fs.StringVar(&s.accountKey, "account-key-jwk", "", "the agent's ACME account key, a public JWK in JSON, or @FILE to read it from a file")
	fs.Var(&s.certPins, "client-cert-spki-sha256", "hex SHA-256 of the SubjectPublicKeyInfo of a client certificate the agent may use (repeatable; comma-separated in the variable)")
}

// jwk returns the account key, read from its file for @FILE.
func (s *agentSpec) jwk() (string, error) {
	name, isFile := strings.CutPrefix(s.accountKey, "@")
	if !isFile {
		return s.accountKey, nil
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return "", fmt.Errorf("--account-key-jwk: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func agentsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var spec agentSpec
	api, _, err := dialAdmin(ctx, args, stdout, spec.define)
	if err != nil {
		return err
	}
	defer api.close()
	jwk, err := spec.jwk()
	if err != nil {
		return err
	}
	a, err := api.CreateAgent(ctx, &registryv1.CreateAgentRequest{
		DisplayName: spec.displayName, ClaimsEndpoint: spec.claimsEndpoint, Issuer: spec.issuer,
		AccountKeyJwk: jwk, ClientCertSpkiSha256: spec.certPins,
	})
	if err != nil {
		return err
	}
	printCreated(stdout, stderr, api.JSON, a,
		fmt.Sprintf("created agent %s (%s); `admin tokens create %[1]s` makes its API token", a.Id, a.DisplayName), a.Id)
	return nil
}

func agentsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, _, err := dialAdmin(ctx, args, stdout, nil)
	if err != nil {
		return err
	}
	defer api.close()
	t := newTable(stdout, api.JSON, "ID", "STATE", "NAME", "ISSUER", "CLAIMS ENDPOINT", "CREATED")
	req := &registryv1.ListAgentsRequest{PageSize: 1000}
	for {
		resp, err := api.ListAgents(ctx, req)
		if err != nil {
			return err
		}
		for _, a := range resp.Agents {
			t.row(a, a.Id, enumName(a.State.String()), a.DisplayName, a.Issuer, a.ClaimsEndpoint, formatTimestamp(a.CreateTime))
		}
		if resp.NextPageToken == "" {
			return t.flush()
		}
		req.PageToken = resp.NextPageToken
	}
}

func agentsGet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "ID")
	if err != nil {
		return err
	}
	defer api.close()
	a, err := api.GetAgent(ctx, &registryv1.GetAgentRequest{Id: pos[0]})
	if err != nil {
		return err
	}
	return printAgent(stdout, api.JSON, a)
}

func agentsUpdate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var spec agentSpec
	var etag string
	api, pos, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		spec.define(fs)
		fs.StringVar(&etag, "etag", "", "refuse the change unless the agent's etag is this one (as get prints it)")
	}, "ID")
	if err != nil {
		return err
	}
	defer api.close()
	jwk, err := spec.jwk()
	if err != nil {
		return err
	}
	in := &registryv1.Agent{
		Id: pos[0], DisplayName: spec.displayName, ClaimsEndpoint: spec.claimsEndpoint, Issuer: spec.issuer,
		AccountKeyJwk: jwk, ClientCertSpkiSha256: spec.certPins, Etag: etag,
	}
	mask := &fieldmaskpb.FieldMask{}
	for _, f := range []struct{ flag, field string }{
		{"display-name", "display_name"}, {"claims-endpoint", "claims_endpoint"}, {"issuer", "issuer"},
		{"account-key-jwk", "account_key_jwk"}, {"client-cert-spki-sha256", "client_cert_spki_sha256"},
	} {
		if api.given(f.flag) {
			mask.Paths = append(mask.Paths, f.field)
		}
	}
	if len(mask.Paths) == 0 {
		return api.flags.SeeHelp(errors.New("nothing to change: give the fields to change as flags (--display-name, --claims-endpoint, --issuer, --account-key-jwk, --client-cert-spki-sha256)"))
	}
	a, err := api.UpdateAgent(ctx, &registryv1.UpdateAgentRequest{Agent: in, UpdateMask: mask})
	if err != nil {
		return err
	}
	return printAgent(stdout, api.JSON, a)
}

// agentsSetState returns the command that suspends or resumes an agent.
func agentsSetState(state registryv1.Agent_State) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		api, pos, err := dialAdmin(ctx, args, stdout, nil, "ID")
		if err != nil {
			return err
		}
		defer api.close()
		a, err := api.UpdateAgent(ctx, &registryv1.UpdateAgentRequest{
			Agent:      &registryv1.Agent{Id: pos[0], State: state},
			UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
		})
		if err != nil {
			return err
		}
		printChanged(stdout, api.JSON, a, fmt.Sprintf("agent %s (%s) is %s", a.Id, a.DisplayName, strings.ToLower(enumName(a.State.String()))))
		return nil
	}
}

func printAgent(w io.Writer, json bool, a *registryv1.Agent) error {
	return printDetail(w, json, a,
		field{"ID", a.Id}, field{"NAME", a.DisplayName}, field{"STATE", enumName(a.State.String())},
		field{"CLAIMS ENDPOINT", a.ClaimsEndpoint}, field{"ISSUER", a.Issuer},
		field{"ACCOUNT KEY", a.AccountKeyThumbprint + " (RFC 7638 thumbprint)"},
		field{"CLIENT CERTS", strings.Join(a.ClientCertSpkiSha256, ", ")},
		field{"CREATED", formatTimestamp(a.CreateTime)}, field{"UPDATED", formatTimestamp(a.UpdateTime)},
		field{"ETAG", a.Etag})
}

func tokensCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var desc string
	api, pos, err := dialAdmin(ctx, args, stdout, func(fs *flag.FlagSet) {
		fs.StringVar(&desc, "description", "", "what the token is for")
	}, "AGENT")
	if err != nil {
		return err
	}
	defer api.close()
	t, err := api.CreateAgentToken(ctx, &registryv1.CreateAgentTokenRequest{AgentId: pos[0], Description: desc})
	if err != nil {
		return err
	}
	printCreated(stdout, stderr, api.JSON, t,
		fmt.Sprintf("created token %s for agent %s; its secret, on standard output, is shown this once", t.Id, t.AgentId), t.Secret)
	return nil
}

func tokensList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "AGENT")
	if err != nil {
		return err
	}
	defer api.close()
	resp, err := api.ListAgentTokens(ctx, &registryv1.ListAgentTokensRequest{AgentId: pos[0]})
	if err != nil {
		return err
	}
	t := newTable(stdout, api.JSON, "ID", "CREATED", "STATE", "DESCRIPTION")
	for _, c := range resp.Tokens {
		t.row(c, c.Id, formatTimestamp(c.CreateTime), revokedState(c.RevokeTime), c.Description)
	}
	return t.flush()
}

func tokensRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	api, pos, err := dialAdmin(ctx, args, stdout, nil, "AGENT", "TOKEN")
	if err != nil {
		return err
	}
	defer api.close()
	t, err := api.RevokeAgentToken(ctx, &registryv1.RevokeAgentTokenRequest{AgentId: pos[0], TokenId: pos[1]})
	if err != nil {
		return err
	}
	printChanged(stdout, api.JSON, t, fmt.Sprintf("token %s of agent %s is revoked (since %s)", t.Id, t.AgentId, formatTimestamp(t.RevokeTime)))
	return nil
}
