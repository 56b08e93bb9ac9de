package dnsverify

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/id4me/id4me-registry/internal/devdns"
)

func TestParseOpenIDRecord(t *testing.T) {
	tests := []struct {
		name    string
		txt     string
		want    OpenIDRecord
		wantErr string // substring of the error; empty: no error
	}{
		{
			name: "full record",
			txt:  "v=OID1;iss=id.example;clp=agent.example",
			want: OpenIDRecord{Version: "OID1", Issuer: "id.example", ClaimsProvider: "agent.example"},
		},
		{
			name: "spaces, key case, trailing separator",
			txt:  " V = OID1 ; ISS= https://id.example ;Clp =agent.example; ",
			want: OpenIDRecord{Version: "OID1", Issuer: "https://id.example", ClaimsProvider: "agent.example"},
		},
		{
			name: "clp is optional, unknown keys ignored",
			txt:  "v=OID1;iss=id.example;future=1",
			want: OpenIDRecord{Version: "OID1", Issuer: "id.example"},
		},
		{name: "version other than OID1", txt: "v=OID2;iss=id.example", wantErr: `version "OID2" is not OID1`},
		{name: "no version", txt: "iss=id.example", wantErr: "no v field"},
		{name: "no iss", txt: "v=OID1;clp=agent.example", wantErr: "no iss field"},
		{name: "empty iss", txt: "v=OID1;iss=", wantErr: "no iss field"},
		{name: "field without =", txt: "v=OID1;iss=id.example;junk", wantErr: `field "junk" is not key=value`},
		{name: "duplicate iss", txt: "v=OID1;iss=a.example;iss=b.example", wantErr: "iss appears more than once"},
		{name: "empty", txt: "", wantErr: "no v field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOpenIDRecord(tt.txt)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidOpenIDRecord) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v; want ErrInvalidOpenIDRecord mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseOpenIDRecord = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestCheckOpenID(t *testing.T) {
	const openid = "_openid.alice.example."
	tests := []struct {
		name       string
		servers    [][]string
		setup      func(t *testing.T, fs []*devdns.Server)
		identifier string
		issuer     string
		want       OpenIDStatus
		wantRecord string
		wantDetail string
	}{
		{
			name:       "matches",
			servers:    [][]string{alice(txt(openid, "v=OID1;iss=id.example;clp=agent.example")), alice(txt(openid, "v=OID1;iss=id.example;clp=agent.example"))},
			issuer:     "id.example",
			want:       OpenIDMatches,
			wantRecord: "v=OID1;iss=id.example;clp=agent.example",
		},
		{
			name:       "matches an https iss, case-insensitively, given an https issuer",
			servers:    [][]string{alice(txt(openid, "v=OID1; iss=https://ID.Example/"))},
			identifier: "alice.example.",
			issuer:     "https://id.example",
			want:       OpenIDMatches,
		},
		{
			name:    "matches among unrelated TXT",
			servers: [][]string{alice(txt(openid, "hello world"), txt(openid, "v=OID1;iss=id.example"))},
			issuer:  "id.example",
			want:    OpenIDMatches,
		},
		{
			name:       "missing",
			servers:    [][]string{alice()},
			issuer:     "id.example",
			want:       OpenIDMissing,
			wantDetail: "NXDOMAIN",
		},
		{
			name:    "only unrelated TXT",
			servers: [][]string{alice(txt(openid, "some-verification=123"))},
			issuer:  "id.example",
			want:    OpenIDMissing,
		},
		{
			name:       "mismatch",
			servers:    [][]string{alice(txt(openid, "v=OID1;iss=other.example"))},
			issuer:     "id.example",
			want:       OpenIDMismatch,
			wantRecord: "v=OID1;iss=other.example",
			wantDetail: "names other.example as iss, not id.example",
		},
		{
			name:       "invalid record",
			servers:    [][]string{alice(txt(openid, "v=OID1;clp=agent.example"))},
			issuer:     "id.example",
			want:       OpenIDMismatch,
			wantDetail: "no iss field",
		},
		{
			name:       "servers disagree",
			servers:    [][]string{alice(txt(openid, "v=OID1;iss=id.example")), alice(txt(openid, "v=OID1;iss=other.example"))},
			issuer:     "id.example",
			want:       OpenIDMismatch,
			wantDetail: "disagree",
		},
		{
			name:    "SERVFAIL",
			servers: [][]string{alice()},
			setup: func(t *testing.T, fs []*devdns.Server) {
				fs[0].SetRcode(openid, dns.RcodeServerFailure)
			},
			issuer:     "id.example",
			want:       OpenIDError,
			wantDetail: "SERVFAIL",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs, addrs := pinned(t, tt.servers...)
			if tt.setup != nil {
				tt.setup(t, fs)
			}
			v := newVerifier(t, Config{Servers: addrs})
			identifier := tt.identifier
			if identifier == "" {
				identifier = "alice.example"
			}

			got := v.CheckOpenID(context.Background(), identifier, tt.issuer)

			if got.Status != tt.want {
				t.Fatalf("Status = %s (%s); want %s", got.Status, got.Detail, tt.want)
			}
			if tt.wantRecord != "" && got.Record != tt.wantRecord {
				t.Errorf("Record = %q; want %q", got.Record, tt.wantRecord)
			}
			if got.Status == OpenIDMatches && got.Parsed.Version != "OID1" {
				t.Errorf("Parsed = %+v", got.Parsed)
			}
			if !strings.Contains(got.Detail, tt.wantDetail) {
				t.Errorf("Detail %q does not mention %q", got.Detail, tt.wantDetail)
			}
			if len(got.Queries) == 0 {
				t.Error("no queries recorded")
			}
		})
	}
}
