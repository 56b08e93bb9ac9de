package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
)

// logLine is one JSON log line of the registry.
type logLine struct {
	Level   string `json:"level"`
	Msg     string `json:"msg"`
	Service string `json:"grpc.service"`
	Method  string `json:"method"`
	Path    string `json:"path"`
	Status  int    `json:"status"`
}

func logLines(t *testing.T, logs string) []logLine {
	t.Helper()
	var out []logLine
	for line := range strings.Lines(logs) {
		var l logLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, l)
	}
	return out
}

// Health checks, reflection, probes and scrapes come all the time and say nothing about the
// registry: at the default level (INFO) they leave no line; the calls that do something
// are logged at INFO.
func TestHealthChecksAndReflectionAreLoggedAtDebug(t *testing.T) {
	e := newEnv(t, envOptions{Authority: true})
	ctx := context.Background()
	if _, err := healthpb.NewHealthClient(e.conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("reflection stream ends with %v", err)
	}
	if _, err := e.adminAPI.ListAgents(as(e.admin), &registryv1.ListAgentsRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{e.http.URL + "/healthz", e.ops.URL + "/readyz", e.ops.URL + "/metrics", e.http.URL + "/.well-known/openid-configuration", e.http.URL + "/credential/s3cr3t-link-token"} {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}

	levels := map[string]string{}
	for _, l := range logLines(t, e.logs.String()) {
		switch {
		case l.Service != "":
			levels[l.Service] = l.Level
		case l.Msg == "http request":
			levels[l.Path] = l.Level
		}
	}
	for key, want := range map[string]string{
		"grpc.health.v1.Health":               "DEBUG",
		"grpc.reflection.v1.ServerReflection": "DEBUG",
		"/healthz":                            "DEBUG",
		"/readyz":                             "DEBUG",
		"/metrics":                            "DEBUG",
		"id4me.registry.v1.AdminService":      "INFO",
		"/.well-known/openid-configuration":   "INFO",
		"/credential/…":                       "INFO",
	} {
		if got := levels[key]; got != want {
			t.Errorf("%s logged at %q, want %s (all: %v)", key, got, want, levels)
		}
	}
	if strings.Contains(e.logs.String(), "s3cr3t-link-token") {
		t.Error("the access log carries a credential link's token")
	}
}
