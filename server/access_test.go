package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

func TestHealthAndReflectionNeedNoCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	resp, err := healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "id4me.registry.v1.RegistryService"})
	if err != nil || resp.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", resp, err)
	}
	// Health checkers (grpc_health_probe, Kubernetes) read NOT_FOUND as "no such service".
	_, err = healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	wantStatus(t, err, codes.NotFound, "NOT_FOUND")
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	r, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range r.GetListServicesResponse().GetService() {
		names = append(names, s.Name)
	}
	for _, want := range []string{"id4me.registry.v1.RegistryService", "id4me.registry.v1.AdminService", "id4me.registry.v1.ResolverService"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Fatalf("reflection lists %v, missing %s", names, want)
		}
	}
}

func TestCredentials(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	list := func(ctx context.Context) error {
		_, err := e.registry.ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{})
		return err
	}
	wantStatus(t, list(context.Background()), codes.Unauthenticated, "CREDENTIAL_REQUIRED")
	wantStatus(t, list(as("nonsense")), codes.Unauthenticated, "CREDENTIAL_MALFORMED")
	id, _, _ := strings.Cut(a.token, ".")
	wantStatus(t, list(as(id+".wrongsecret")), codes.Unauthenticated, "CREDENTIAL_INVALID")
	wantStatus(t, list(as("tk_doesnotexist.secret")), codes.Unauthenticated, "CREDENTIAL_INVALID")

	// An operator credential does not open the agents' API, nor an agent's the operators'.
	wantStatus(t, list(as(e.admin)), codes.PermissionDenied, "AGENT_CREDENTIAL_REQUIRED")
	_, err := e.adminAPI.ListAgents(a.ctx(), &registryv1.ListAgentsRequest{})
	wantStatus(t, err, codes.PermissionDenied, "OPERATOR_CREDENTIAL_REQUIRED")
	_, err = e.resolver.ResolveIdentifier(a.ctx(), &registryv1.ResolveIdentifierRequest{Identifier: "x.example.test"})
	wantStatus(t, err, codes.PermissionDenied, "OPERATOR_CREDENTIAL_REQUIRED")

	t.Run("revoked token", func(t *testing.T) {
		if err := list(a.ctx()); err != nil {
			t.Fatal(err)
		}
		tokID, _, _ := strings.Cut(a.token, ".")
		r, err := e.adminAPI.RevokeAgentToken(as(e.admin), &registryv1.RevokeAgentTokenRequest{AgentId: a.agent.Id, TokenId: tokID})
		if err != nil || r.RevokeTime == nil || r.Secret != "" {
			t.Fatalf("RevokeAgentToken = %v, %v", r, err)
		}
		wantStatus(t, list(a.ctx()), codes.Unauthenticated, "CREDENTIAL_REVOKED")
		toks, err := e.adminAPI.ListAgentTokens(as(e.admin), &registryv1.ListAgentTokensRequest{AgentId: a.agent.Id})
		if err != nil || len(toks.Tokens) != 1 || toks.Tokens[0].Secret != "" || toks.Tokens[0].RevokeTime == nil {
			t.Fatalf("ListAgentTokens = %v, %v", toks, err)
		}
	})

	t.Run("suspended agent", func(t *testing.T) {
		b := e.newAgent("beta")
		e.register(b, "bob.example.test")
		suspend := func(state registryv1.Agent_State) {
			t.Helper()
			_, err := e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{
				Agent: &registryv1.Agent{Id: b.agent.Id, State: state}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"state"}},
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		suspend(registryv1.Agent_STATE_SUSPENDED)
		wantStatus(t, list(b.ctx()), codes.PermissionDenied, "AGENT_SUSPENDED")
		_, err := e.registry.CreateChallenge(b.ctx(), &registryv1.CreateChallengeRequest{Identifier: "x.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
		wantStatus(t, err, codes.PermissionDenied, "AGENT_SUSPENDED")
		// Its identifiers keep resolving.
		if _, err := e.resolver.ResolveIdentifier(as(e.admin), &registryv1.ResolveIdentifierRequest{Identifier: "bob.example.test"}); err != nil {
			t.Fatal(err)
		}
		suspend(registryv1.Agent_STATE_ACTIVE)
		if err := list(b.ctx()); err != nil {
			t.Fatalf("after resume: %v", err)
		}
		j, err := e.adminAPI.ListJournal(as(e.admin), &registryv1.ListJournalRequest{ObjectType: "agent", ObjectId: b.agent.Id})
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, en := range j.Entries {
			actions = append(actions, en.Action)
		}
		if strings.Join(actions, ",") != "agent.create,agent.suspend,agent.resume" {
			t.Fatalf("agent journal = %v", actions)
		}
	})
}

func TestAdminValidation(t *testing.T) {
	e := newEnv(t, envOptions{})
	base := func() *registryv1.CreateAgentRequest {
		return &registryv1.CreateAgentRequest{
			DisplayName: "x", ClaimsEndpoint: "https://x.test/userinfo", Issuer: "https://x.test",
			AccountKeyJwk: `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`,
		}
	}
	if _, err := e.adminAPI.CreateAgent(as(e.admin), base()); err != nil {
		t.Fatalf("valid agent refused: %v", err)
	}
	tests := []struct {
		name   string
		change func(r *registryv1.CreateAgentRequest)
		reason string
	}{
		{"http claims endpoint", func(r *registryv1.CreateAgentRequest) { r.ClaimsEndpoint = "http://x.test/userinfo" }, "CLAIMS_ENDPOINT_NOT_HTTPS"},
		{"relative issuer", func(r *registryv1.CreateAgentRequest) { r.Issuer = "/issuer" }, "ISSUER_MALFORMED"},
		{"no display name", func(r *registryv1.CreateAgentRequest) { r.DisplayName = " " }, "DISPLAY_NAME_INVALID"},
		{"private key", func(r *registryv1.CreateAgentRequest) {
			r.AccountKeyJwk = `{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}`
		}, "ACCOUNT_KEY_INVALID"},
		{"garbage key", func(r *registryv1.CreateAgentRequest) { r.AccountKeyJwk = "{" }, "ACCOUNT_KEY_INVALID"},
		{"bad pin", func(r *registryv1.CreateAgentRequest) { r.ClientCertSpkiSha256 = []string{"abc"} }, "CLIENT_CERT_PIN_INVALID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base()
			tt.change(r)
			_, err := e.adminAPI.CreateAgent(as(e.admin), r)
			wantStatus(t, err, codes.InvalidArgument, tt.reason)
		})
	}
	_, err := e.adminAPI.GetAgent(as(e.admin), &registryv1.GetAgentRequest{Id: "ag_nope"})
	wantStatus(t, err, codes.NotFound, "AGENT_NOT_FOUND")
	_, err = e.adminAPI.UpdateAgent(as(e.admin), &registryv1.UpdateAgentRequest{Agent: &registryv1.Agent{Id: "ag_nope"}})
	wantStatus(t, err, codes.InvalidArgument, "UPDATE_MASK_REQUIRED")
}

// clientCert makes a self-signed client certificate and returns it with its SPKI pin.
func clientCert(t *testing.T) (tls.Certificate, string) {
	return issueCert(t, nil, nil, false)
}

// issueCert makes a certificate signed by parent (self-signed when parent is nil); a CA
// certificate when isCA. It returns it with its SPKI pin.
func issueCert(t *testing.T, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: "agent"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if isCA {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.KeyUsage = true, true, x509.KeyUsageCertSign
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, hex.EncodeToString(sum[:])
}

// With --client-ca, a pinned certificate must also chain to the CA.
func TestClientCA(t *testing.T) {
	ca, _ := issueCert(t, nil, nil, true)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{NoPlaintext: true, ClientCA: caFile})
	signed, signedPin := issueCert(t, ca.Leaf, ca.PrivateKey.(*ecdsa.PrivateKey), false)
	self, selfPin := clientCert(t)
	e.newAgentTLS("alpha", signedPin, selfPin)
	call := func(c tls.Certificate) error {
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{c}})))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = registryv1.NewRegistryServiceClient(conn).ListIdentifiers(ctx, &registryv1.ListIdentifiersRequest{})
		return err
	}
	if err := call(signed); err != nil {
		t.Fatalf("CA-signed pinned certificate: %v", err)
	}
	if err := call(self); status.Code(err) != codes.Unavailable {
		t.Fatalf("pinned but not CA-signed certificate: %v, want the handshake refused", err)
	}
}

func TestMutualTLSPinnedCertificate(t *testing.T) {
	e := newEnv(t, envOptions{NoPlaintext: true})
	cert, pin := clientCert(t)
	other, _ := clientCert(t)
	a := e.newAgentTLS("alpha", pin)

	dial := func(c *tls.Certificate) registryv1.RegistryServiceClient {
		cfg := &tls.Config{InsecureSkipVerify: true} // the dev certificate is self-signed
		if c != nil {
			cfg.Certificates = []tls.Certificate{*c}
		}
		conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return registryv1.NewRegistryServiceClient(conn)
	}
	c, err := dial(&cert).CreateChallenge(context.Background(), &registryv1.CreateChallengeRequest{Identifier: "mtls.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatalf("pinned certificate refused: %v", err)
	}
	if got, err := e.svc.GetChallenge(context.Background(), actorOf(a), c.Id); err != nil || got.AgentID != a.agent.Id {
		t.Fatalf("challenge made over mTLS belongs to %v, %v", got.AgentID, err)
	}
	_, err = dial(&other).ListIdentifiers(context.Background(), &registryv1.ListIdentifiersRequest{})
	wantStatus(t, err, codes.Unauthenticated, "CLIENT_CERT_UNKNOWN")
	_, err = dial(nil).ListIdentifiers(context.Background(), &registryv1.ListIdentifiersRequest{})
	wantStatus(t, err, codes.Unauthenticated, "CREDENTIAL_REQUIRED")

	// Without --dev, plaintext is refused even on loopback.
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded {
		t.Fatalf("plaintext call without dev mode: %v, want it refused", err)
	}
}

// newAgentTLS creates an agent that authenticates by a pinned client certificate; the
// operator calls go over the plaintext-free TLS connection too.
func (e *env) newAgentTLS(name string, pins ...string) testAgent {
	e.t.Helper()
	conn, err := grpc.NewClient(e.addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{InsecureSkipVerify: true})))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	e.adminAPI = registryv1.NewAdminServiceClient(conn)
	e.registry = registryv1.NewRegistryServiceClient(conn)
	return e.newAgent(name, pins...)
}

func TestRateLimitPerAgent(t *testing.T) {
	e := newEnv(t, envOptions{AgentRate: 0.001, AgentBurst: 3})
	a, b := e.newAgent("alpha"), e.newAgent("beta")
	for range 3 {
		if _, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.registry.ListIdentifiers(a.ctx(), &registryv1.ListIdentifiersRequest{})
	wantStatus(t, err, codes.ResourceExhausted, "RATE_LIMITED")
	// Another agent has its own budget; operators are not limited.
	if _, err := e.registry.ListIdentifiers(b.ctx(), &registryv1.ListIdentifiersRequest{}); err != nil {
		t.Fatalf("beta limited by alpha's calls: %v", err)
	}
	for range 5 {
		if _, err := e.adminAPI.ListAgents(as(e.admin), &registryv1.ListAgentsRequest{}); err != nil {
			t.Fatalf("operator limited: %v", err)
		}
	}
}

func TestMetricsAndLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.newAgent("alpha")
	e.register(a, "alice.example.test")
	c, err := e.registry.CreateChallenge(a.ctx(), &registryv1.CreateChallengeRequest{Identifier: "missing.example.test", Purpose: registryv1.Purpose_PURPOSE_REGISTER})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.registry.VerifyChallenge(a.ctx(), &registryv1.VerifyChallengeRequest{Id: c.Id}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.ops.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`grpc_server_handled_total{grpc_code="OK",grpc_method="RegisterIdentifier",grpc_service="id4me.registry.v1.RegistryService",grpc_type="unary"} 1`,
		`grpc_server_handling_seconds_bucket{grpc_method="VerifyChallenge"`,
		`id4me_challenge_checks_total{outcome="valid"} 1`,
		`id4me_challenge_checks_total{outcome="DNS_RECORD_MISSING"} 1`,
		`id4me_dns_queries_total{outcome="NOERROR",transport="udp"}`,
		`id4me_dns_query_duration_seconds_bucket{transport="udp"`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	logs := e.logs.String()
	if !strings.Contains(logs, `"grpc.method":"RegisterIdentifier"`) || !strings.Contains(logs, `"actor":"agent:`+a.agent.Id) {
		t.Fatalf("logs do not record calls with their actor:\n%s", logs)
	}
	for _, secret := range []string{secretOf(a.token), secretOf(e.admin)} {
		if strings.Contains(logs, secret) {
			t.Fatal("a credential secret appears in the logs")
		}
	}
}

func secretOf(bearer string) string {
	_, s, _ := strings.Cut(bearer, ".")
	return s
}
