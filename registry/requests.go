package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// A call made with a request_id (AIP-155) can be retried safely. Its outcome is written with
// the change it makes, in the same transaction, keyed by the agent and the id; a retry after
// a lost response (a timeout, a broken connection) finds it and answers with the first
// outcome instead of doing the call again or failing because the first call used the
// challenge. Outcomes are kept Config.RequestIDRetention, then SweepRequests deletes them.

// maxRequestIDLength bounds a request_id: a UUID has 36 characters.
const maxRequestIDLength = 64

// RequestMethod names a call that accepts a request_id.
type RequestMethod string

// The calls that accept a request_id.
const (
	MethodRegisterIdentifier RequestMethod = "register"
	MethodRequestTransfer    RequestMethod = "transfer"
)

// RequestOutcome is the stored outcome of a call made with a request_id.
type RequestOutcome struct {
	AgentID   string
	RequestID string
	Method    RequestMethod
	// RequestHash is the hex SHA-256 of the call's arguments: a retry must repeat them.
	RequestHash string
	// Resource is what the call made: the identifier's name, or the transfer's ID.
	Resource string
	// IdentityID is, for a registration, the identity made with the identifier.
	IdentityID string
	CreateTime time.Time
}

// request is a call and its request_id; the zero request has none.
type request struct {
	agentID, id string
	method      RequestMethod
	hash        string
}

// newRequest checks the request_id id of the agent's call method with args. An empty id is
// no request_id: the call is not recorded.
func newRequest(actor Actor, id string, method RequestMethod, args ...string) (request, error) {
	if id == "" {
		return request{}, nil
	}
	if !validRequestID(id) {
		return request{}, NewError(ReasonRequestIDInvalid, "request_id must be 1 to %d letters, digits, '-', '_' or '.' (a UUID fits)", maxRequestIDLength)
	}
	h := sha256.New()
	h.Write([]byte(method))
	for _, a := range args {
		h.Write([]byte{0})
		h.Write([]byte(a))
	}
	return request{agentID: actor.ID, id: id, method: method, hash: hex.EncodeToString(h.Sum(nil))}, nil
}

func validRequestID(id string) bool {
	if len(id) > maxRequestIDLength {
		return false
	}
	for _, c := range []byte(id) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// record stores the outcome of the call r in tx: it made resource (and identityID) at at.
func (r request) record(ctx context.Context, tx Tx, at time.Time, resource, identityID string) error {
	if r.id == "" {
		return nil
	}
	return tx.CreateRequestOutcome(ctx, RequestOutcome{
		AgentID: r.agentID, RequestID: r.id, Method: r.method, RequestHash: r.hash,
		Resource: resource, IdentityID: identityID, CreateTime: at,
	})
}

// earlier returns the outcome of an earlier call with r's request_id, if there was one; the
// id used for another call, or the same call with other arguments, is REQUEST_ID_REUSED.
func (s *Service) earlier(ctx context.Context, r request) (RequestOutcome, bool, error) {
	if r.id == "" {
		return RequestOutcome{}, false, nil
	}
	o, err := s.store.GetRequestOutcome(ctx, r.agentID, r.id)
	switch {
	case KindOf(err) == KindNotFound:
		return RequestOutcome{}, false, nil
	case err != nil:
		return RequestOutcome{}, false, err
	case o.Method != r.method || o.RequestHash != r.hash:
		return RequestOutcome{}, false, NewError(ReasonRequestIDReused,
			"request_id %q was used at %s for another request; a new request needs a new request_id", r.id, o.CreateTime.Format(time.RFC3339))
	}
	return o, true, nil
}

// once runs do, the call r, unless an earlier call with r's request_id succeeded: then replay
// answers with that call's outcome. When do fails, a concurrent call with the same request_id
// may have committed first (do then finds the challenge used, or the outcome written); its
// outcome is the answer too.
func once[T any](ctx context.Context, s *Service, r request, replay func(RequestOutcome) (T, error), do func() (T, error)) (T, error) {
	var zero T
	if o, ok, err := s.earlier(ctx, r); err != nil {
		return zero, err
	} else if ok {
		return replay(o)
	}
	out, err := do()
	if err == nil || r.id == "" {
		return out, err
	}
	switch o, ok, e := s.earlier(ctx, r); {
	case ok:
		return replay(o)
	case ReasonOf(e) == ReasonRequestIDReused:
		return zero, e
	}
	return out, err
}

// registered answers a retried registration: the identifier the first call registered, as it
// is now, while the agent still sponsors it with the identity the call made.
func (s *Service) registered(ctx context.Context, actor Actor, o RequestOutcome) (IdentifierInfo, error) {
	i, err := s.store.GetIdentifier(ctx, o.Resource)
	if err != nil && KindOf(err) != KindNotFound {
		return IdentifierInfo{}, err
	}
	if err != nil || i.IdentityID != o.IdentityID || i.AgentID != actor.ID {
		return IdentifierInfo{}, NewError(ReasonRequestOutcomeGone,
			"identifier %s, registered by the call with request_id %q, has left the agent since (transferred or purged)", o.Resource, o.RequestID)
	}
	a, err := s.store.GetAgent(ctx, i.AgentID)
	if err != nil {
		return IdentifierInfo{}, err
	}
	return info(i, a), nil
}

// SweepRequests deletes the outcomes of calls made with a request_id more than
// Config.RequestIDRetention ago, and returns how many.
func (s *Service) SweepRequests(ctx context.Context) (int, error) {
	return s.sweepDeletes(ctx, s.now().Add(-s.cfg.RequestIDRetention), Tx.DeleteRequestOutcomes)
}
