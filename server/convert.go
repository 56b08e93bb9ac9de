package server

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/id4me/id4me-registry/dnsverify"
	registryv1 "github.com/id4me/id4me-registry/proto/id4me/registry/v1"
	"github.com/id4me/id4me-registry/registry"
)

// ts converts a time, leaving zero times unset.
func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var statusToProto = map[registry.Status]registryv1.IdentifierStatus{
	registry.StatusClientTransferProhibited: registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_TRANSFER_PROHIBITED,
	registry.StatusClientDeleteProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_DELETE_PROHIBITED,
	registry.StatusClientUpdateProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_CLIENT_UPDATE_PROHIBITED,
	registry.StatusServerHold:               registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_HOLD,
	registry.StatusServerTransferProhibited: registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_TRANSFER_PROHIBITED,
	registry.StatusServerDeleteProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_DELETE_PROHIBITED,
	registry.StatusServerUpdateProhibited:   registryv1.IdentifierStatus_IDENTIFIER_STATUS_SERVER_UPDATE_PROHIBITED,
	registry.StatusPendingDelete:            registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_DELETE,
	registry.StatusPendingTransfer:          registryv1.IdentifierStatus_IDENTIFIER_STATUS_PENDING_TRANSFER,
}

var statusFromProto = func() map[registryv1.IdentifierStatus]registry.Status {
	m := make(map[registryv1.IdentifierStatus]registry.Status, len(statusToProto))
	for k, v := range statusToProto {
		m[v] = k
	}
	return m
}()

func statusesToProto(ss []registry.Status) []registryv1.IdentifierStatus {
	if len(ss) == 0 {
		return []registryv1.IdentifierStatus{registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK}
	}
	out := make([]registryv1.IdentifierStatus, 0, len(ss))
	for _, s := range ss {
		out = append(out, statusToProto[s])
	}
	return out
}

// statusesFromProto converts requested statuses; OK and unknown values are dropped, as OK
// means "no other status" and is never set by itself.
func statusesFromProto(ss []registryv1.IdentifierStatus) ([]registry.Status, error) {
	out := make([]registry.Status, 0, len(ss))
	for _, s := range ss {
		if s == registryv1.IdentifierStatus_IDENTIFIER_STATUS_OK {
			continue
		}
		d, ok := statusFromProto[s]
		if !ok {
			return nil, registry.Errorf(registry.KindInvalidArgument, "STATUS_UNKNOWN", "status %v is not one that can be set", s)
		}
		out = append(out, d)
	}
	return out, nil
}

var openIDStatus = map[dnsverify.OpenIDStatus]registryv1.OpenIDRecordCheck_Status{
	dnsverify.OpenIDMatches:  registryv1.OpenIDRecordCheck_STATUS_MATCHES,
	dnsverify.OpenIDMissing:  registryv1.OpenIDRecordCheck_STATUS_MISSING,
	dnsverify.OpenIDMismatch: registryv1.OpenIDRecordCheck_STATUS_MISMATCH,
	dnsverify.OpenIDError:    registryv1.OpenIDRecordCheck_STATUS_ERROR,
}

func identifierToProto(i registry.IdentifierInfo) *registryv1.Identifier {
	out := &registryv1.Identifier{
		Name: i.Name, UnicodeName: i.UnicodeName, AgentId: i.AgentID, Statuses: statusesToProto(i.Statuses),
		ClaimsEndpoint: i.ClaimsEndpoint, EffectiveClaimsEndpoint: i.EffectiveClaimsEndpoint,
		CreateTime: ts(i.CreateTime), UpdateTime: ts(i.UpdateTime), Etag: i.Etag(),
		DeleteTime: ts(i.DeleteTime), PurgeTime: ts(i.PurgeTime),
	}
	if i.OpenID.Status != "" {
		out.OpenidRecord = openIDToProto(i.OpenID)
	}
	return out
}

func openIDToProto(c registry.OpenIDState) *registryv1.OpenIDRecordCheck {
	return &registryv1.OpenIDRecordCheck{
		Status: openIDStatus[c.Status], Record: c.Record, Issuer: c.Issuer,
		ClaimsProvider: c.ClaimsProvider, Detail: c.Detail, CheckTime: ts(c.CheckTime),
		NextCheckTime: ts(c.NextCheck),
	}
}

var purposeToProto = map[registry.Purpose]registryv1.Purpose{
	registry.PurposeRegister: registryv1.Purpose_PURPOSE_REGISTER,
	registry.PurposeTransfer: registryv1.Purpose_PURPOSE_TRANSFER,
}

func purposeFromProto(p registryv1.Purpose) registry.Purpose {
	for k, v := range purposeToProto {
		if v == p {
			return k
		}
	}
	return ""
}

var challengeStatus = map[registry.ChallengeStatus]registryv1.Challenge_Status{
	registry.ChallengePending:  registryv1.Challenge_STATUS_PENDING,
	registry.ChallengeValid:    registryv1.Challenge_STATUS_VALID,
	registry.ChallengeInvalid:  registryv1.Challenge_STATUS_INVALID,
	registry.ChallengeConsumed: registryv1.Challenge_STATUS_CONSUMED,
	registry.ChallengeExpired:  registryv1.Challenge_STATUS_EXPIRED,
}

func challengeToProto(c registry.Challenge) *registryv1.Challenge {
	out := &registryv1.Challenge{
		Id: c.ID, Identifier: c.Identifier, Purpose: purposeToProto[c.Purpose], Token: c.Token,
		KeyAuthorization: c.KeyAuthorization, RecordName: c.RecordName(), RecordValue: c.RecordValue(),
		Status: challengeStatus[c.Status], ExpireTime: ts(c.ExpireTime), CreateTime: ts(c.CreateTime),
		ValidateTime: ts(c.ValidateTime), Attempts: int32(c.Attempts),
	}
	if p := c.Problem; p != nil {
		out.Problem = &registryv1.Problem{Reason: p.Reason, Detail: p.Detail}
		for _, q := range p.Queries {
			out.Problem.Nameservers = append(out.Problem.Nameservers, &registryv1.NameserverResult{
				Nameserver: q.Nameserver, Address: q.Address, QueryName: q.Name, QueryType: q.Type,
				Transport: q.Transport, Rcode: q.Rcode, Answers: q.Answers, Error: q.Err,
				DurationMs: q.Duration.Milliseconds(),
			})
		}
	}
	return out
}

var agentState = map[registry.AgentState]registryv1.Agent_State{
	registry.AgentActive:    registryv1.Agent_STATE_ACTIVE,
	registry.AgentSuspended: registryv1.Agent_STATE_SUSPENDED,
}

func agentToProto(a registry.Agent) *registryv1.Agent {
	return &registryv1.Agent{
		Id: a.ID, DisplayName: a.DisplayName, ClaimsEndpoint: a.ClaimsEndpoint, Issuer: a.Issuer,
		AccountKeyJwk: a.AccountKeyJWK, AccountKeyThumbprint: a.AccountKeyThumbprint, State: agentState[a.State],
		ClientCertSpkiSha256: a.ClientCertSPKI, CreateTime: ts(a.CreateTime), UpdateTime: ts(a.UpdateTime), Etag: a.Etag(),
	}
}

func tokenToProto(c registry.Credential, secret string) *registryv1.AgentToken {
	return &registryv1.AgentToken{
		Id: c.ID, AgentId: c.AgentID, Description: c.Description, Secret: secret,
		CreateTime: ts(c.CreateTime), RevokeTime: ts(c.RevokeTime),
	}
}

func journalToProto(e registry.JournalEntry) *registryv1.JournalEntry {
	return &registryv1.JournalEntry{
		Id: e.ID, Time: ts(e.Time), Actor: e.Actor, Action: e.Action, ObjectType: e.ObjectType,
		ObjectId: e.ObjectID, Before: e.Before, After: e.After,
	}
}
