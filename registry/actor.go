package registry

// ActorKind says who acts.
type ActorKind string

// Actor kinds.
const (
	ActorAgent    ActorKind = "agent"
	ActorOperator ActorKind = "operator"
	ActorSystem   ActorKind = "system"
	// ActorHolder is an identifier's holder, acting at the authority (HolderJournal); its
	// ID is the identifier.
	ActorHolder ActorKind = "holder"
)

// Actor is who makes a call: an agent, an operator, or the registry itself.
type Actor struct {
	Kind ActorKind
	// ID is the agent ID for an agent, the credential ID for an operator.
	ID string
	// CredentialID is the credential the actor authenticated with, if any (for the journal
	// and logs; never a secret).
	CredentialID string
}

// System is the registry acting on its own (background work, bootstrap).
var System = Actor{Kind: ActorSystem, ID: "system"}

// String returns the actor as the journal records it: "agent:<id>", "operator:<id>" or
// "system".
func (a Actor) String() string {
	if a.Kind == ActorSystem {
		return string(ActorSystem)
	}
	return string(a.Kind) + ":" + a.ID
}
