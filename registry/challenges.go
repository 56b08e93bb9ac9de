package registry

import (
	"context"
	"fmt"

	"github.com/id4me/id4me-registry/acme"
	"github.com/id4me/id4me-registry/dnsverify"
	"github.com/id4me/id4me-registry/id4me"
)

// challengeView is how a challenge appears in the journal.
type challengeView struct {
	ID         string `json:"id"`
	AgentID    string `json:"agent_id"`
	Identifier string `json:"identifier"`
	Purpose    string `json:"purpose"`
	Status     string `json:"status"`
	Attempts   int    `json:"attempts"`
	Problem    string `json:"problem,omitempty"`
}

func viewChallenge(c Challenge) challengeView {
	v := challengeView{c.ID, c.AgentID, c.Identifier, string(c.Purpose), string(c.Status), c.Attempts, ""}
	if c.Problem != nil {
		v.Problem = c.Problem.Reason
	}
	return v
}

// DNSName returns the DNS name of the challenge's identifier: the identifier itself, or for an
// e-mail-form identifier "<h>.<domain>".
func (c Challenge) DNSName() string { return id4me.DNSName(c.Identifier) }

// RecordName returns the owner name of the challenge's TXT record: "_acme-challenge." and the
// DNS name, the name lego's Present(DNSName, …) publishes.
func (c Challenge) RecordName() string { return acme.RecordName(c.DNSName()) }

// RecordValue returns the TXT value the challenge expects.
func (c Challenge) RecordValue() string { return acme.RecordValue(c.KeyAuthorization) }

// CreateChallenge starts a dns-01 challenge for an identifier, bound to the agent and the
// purpose. A register challenge for a name the registration policy refuses, or whose DNS name
// is registered already (IDENTIFIER_TAKEN: the name itself, or a domain identifier equal to an
// e-mail-form identifier's DNS name, or the other way round), or a transfer challenge for a
// name that is not registered or that the agent sponsors already, is refused at once so the
// agent does not publish a record in vain.
func (s *Service) CreateChallenge(ctx context.Context, actor Actor, identifier string, purpose Purpose) (Challenge, error) {
	name, err := ParseIdentifier(identifier)
	if err != nil {
		return Challenge{}, err
	}
	switch purpose {
	case PurposeRegister:
		if err := s.registrationPolicy().Check(name); err != nil {
			return Challenge{}, err
		}
	case PurposeTransfer:
	default:
		return Challenge{}, NewError(ReasonPurposeRequired, "purpose must be PURPOSE_REGISTER or PURPOSE_TRANSFER")
	}
	agent, err := s.store.GetAgent(ctx, actor.ID)
	if err != nil {
		return Challenge{}, err
	}
	// Refuse at once what the challenge could not be used for, so the agent does not publish
	// a record in vain; the use itself checks again. A registration needs the DNS name free,
	// where the records would be; a transfer needs the identifier itself.
	lookup, key := s.store.GetIdentifier, name.ASCII
	if purpose == PurposeRegister {
		lookup, key = s.store.GetIdentifierByDNSName, name.DNSName
	}
	i, err := lookup(ctx, key)
	switch {
	case err != nil && KindOf(err) != KindNotFound:
		return Challenge{}, err
	case purpose == PurposeRegister && err == nil && i.Name != name.ASCII:
		return Challenge{}, NewError(ReasonIdentifierTaken, "%s is taken: another identifier has its DNS name %s", name.ASCII, name.DNSName)
	case purpose == PurposeRegister && err == nil:
		return Challenge{}, NewError(ReasonIdentifierTaken, "%s is already registered", name.ASCII)
	case purpose == PurposeTransfer && err != nil:
		return Challenge{}, NewError(ReasonIdentifierNotFound, "%s is not registered; register it instead", name.ASCII)
	case purpose == PurposeTransfer && i.AgentID == agent.ID:
		return Challenge{}, NewError(ReasonAlreadySponsor, "identifier %s is already sponsored by the calling agent", i.Name)
	}
	// Whether another agent's identifier can be transferred now (its statuses) is told only
	// after the DNS proof, by RequestTransfer: before it, an agent learns of another agent's
	// identifier no more than that it is registered.
	token, err := acme.NewToken()
	if err != nil {
		return Challenge{}, fmt.Errorf("challenge token: %w", err)
	}
	now := s.now()
	c := Challenge{
		ID: newID(ChallengeIDPrefix), AgentID: agent.ID, Identifier: name.ASCII, Purpose: purpose,
		Token: token, KeyAuthorization: acme.KeyAuthorization(token, agent.AccountKeyThumbprint),
		Status: ChallengePending, CreateTime: now, ExpireTime: now.Add(s.cfg.ChallengeTTL),
	}
	if purpose == PurposeTransfer {
		c.SponsorAgentID = i.AgentID
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.CreateChallenge(ctx, c); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, actor, "challenge.create", "challenge", c.ID, nil, viewChallenge(c))
	})
	if err != nil {
		return Challenge{}, fmt.Errorf("create challenge: %w", err)
	}
	return c, nil
}

// GetChallenge returns one of the agent's challenges, with its status as of now.
func (s *Service) GetChallenge(ctx context.Context, actor Actor, id string) (Challenge, error) {
	c, err := s.ownChallenge(ctx, s.store, actor, id)
	if err != nil {
		return Challenge{}, err
	}
	c.Status = c.StatusAt(s.now())
	return c, nil
}

// ownChallenge reads a challenge of the actor's; another agent's reads as not found.
func (s *Service) ownChallenge(ctx context.Context, r Reader, actor Actor, id string) (Challenge, error) {
	if id == "" {
		return Challenge{}, NewError(ReasonChallengeIDRequired, "id is required")
	}
	c, err := r.GetChallenge(ctx, id)
	if err != nil {
		return Challenge{}, err
	}
	if c.AgentID != actor.ID {
		return Challenge{}, NewError(ReasonChallengeNotFound, "challenge %s not found", id)
	}
	return c, nil
}

// unusable returns the error for a challenge that can no longer be checked or used, or nil.
func unusable(c Challenge, status ChallengeStatus) error {
	switch status {
	case ChallengeExpired:
		return NewError(ReasonChallengeExpired, "challenge %s expired at %s; create a new one", c.ID, c.ExpireTime.Format("2006-01-02T15:04:05Z07:00"))
	case ChallengeConsumed:
		return NewError(ReasonChallengeConsumed, "challenge %s was already used; create a new one", c.ID)
	case ChallengeInvalid:
		return NewError(ReasonChallengeInvalid, "challenge %s failed too many checks; create a new one", c.ID)
	}
	return nil
}

// VerifyChallenge checks the challenge's TXT record on the authoritative nameservers now. A
// failed check is not an error: the challenge stays pending with a Problem (or turns
// invalid once its attempts are used up). Checking a valid challenge again returns it as is.
func (s *Service) VerifyChallenge(ctx context.Context, actor Actor, id string) (Challenge, error) {
	c, err := s.ownChallenge(ctx, s.store, actor, id)
	if err != nil {
		return Challenge{}, err
	}
	status := c.StatusAt(s.now())
	if status == ChallengeValid {
		return c, nil
	}
	if err := unusable(c, status); err != nil {
		return Challenge{}, err
	}
	if s.cfg.DNS == nil {
		return Challenge{}, NewError(ReasonDNSNotConfigured, "this registry instance has no DNS checker configured")
	}
	// The DNS check runs outside any transaction: nothing is locked while we wait on the network.
	res := s.cfg.DNS.CheckTXT(ctx, c.RecordName(), c.RecordValue())
	if err := ctx.Err(); err != nil {
		return Challenge{}, fmt.Errorf("check challenge %s: %w", c.ID, err)
	}
	now := s.now()
	next := c
	next.Attempts++
	outcome := "valid"
	if res.OK {
		next.Status, next.Problem, next.ValidateTime = ChallengeValid, nil, now
	} else {
		p := &Problem{Reason: dnsverify.ReasonError, Detail: "the DNS check failed", Queries: res.Queries}
		if res.Problem != nil {
			p.Reason, p.Detail = res.Problem.Reason, res.Problem.Detail
		}
		next.Problem = p
		outcome = p.Reason
		if next.Attempts >= s.cfg.ChallengeMaxAttempts {
			next.Status = ChallengeInvalid
		}
	}
	err = s.store.Tx(ctx, func(tx Tx) error {
		if err := tx.UpdateChallenge(ctx, next, c.Status, c.Attempts); err != nil {
			return err
		}
		return s.journal(ctx, tx, now, actor, "challenge.verify", "challenge", c.ID, viewChallenge(c), viewChallenge(next))
	})
	if err != nil {
		return Challenge{}, fmt.Errorf("record challenge check: %w", err)
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.ChallengeChecked(outcome)
	}
	return next, nil
}
