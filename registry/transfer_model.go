package registry

import "time"

// TransferStatus is where a transfer is. The names are EPP's (RFC 5730 §2.9.3.4).
type TransferStatus string

// Transfer statuses.
const (
	TransferPending         TransferStatus = "pending"
	TransferClientApproved  TransferStatus = "clientApproved"
	TransferClientRejected  TransferStatus = "clientRejected"
	TransferClientCancelled TransferStatus = "clientCancelled"
	TransferServerApproved  TransferStatus = "serverApproved"
	TransferServerCancelled TransferStatus = "serverCancelled"
)

// Approved reports whether the transfer moved the identifier.
func (s TransferStatus) Approved() bool {
	return s == TransferClientApproved || s == TransferServerApproved
}

// TransferIDPrefix starts every transfer ID.
const TransferIDPrefix = "tr_"

// Transfer is a request to move an identifier from its sponsoring (losing) agent to the
// agent that proved DNS control with a transfer challenge (the gaining agent).
type Transfer struct {
	// ID sorts in the order transfers were requested (see newOrderedID).
	ID             string         `json:"id"`
	Identifier     string         `json:"identifier"`
	GainingAgentID string         `json:"gaining_agent_id"`
	LosingAgentID  string         `json:"losing_agent_id"`
	ChallengeID    string         `json:"challenge_id"`
	Status         TransferStatus `json:"status"`
	RequestTime    time.Time      `json:"request_time"`
	// ActTime is the deadline while pending (the registry approves then), afterwards when the
	// transfer was approved, rejected or cancelled.
	ActTime time.Time `json:"act_time"`
}

// TransferDirection selects transfers by the agent's side of them.
type TransferDirection int

// Transfer directions.
const (
	TransferBoth TransferDirection = iota
	// TransferIn: the agent gains.
	TransferIn
	// TransferOut: the agent loses.
	TransferOut
)

// TransferFilter narrows ListTransfers.
type TransferFilter struct {
	AgentID     string
	Direction   TransferDirection
	PendingOnly bool
}

// EventType says what an event reports.
type EventType string

// Event types.
const (
	EventTransferRequested    EventType = "transfer.requested"
	EventTransferApproved     EventType = "transfer.approved"
	EventTransferRejected     EventType = "transfer.rejected"
	EventTransferCancelled    EventType = "transfer.cancelled"
	EventTransferCompletedIn  EventType = "transfer.completed_in"
	EventTransferCompletedOut EventType = "transfer.completed_out"
	EventIdentifierDeleted    EventType = "identifier.deleted"
	EventIdentifierRestored   EventType = "identifier.restored"
	EventIdentifierPurged     EventType = "identifier.purged"
	EventServerStatusChanged  EventType = "identifier.server_status_changed"
	EventOpenIDRecordChanged  EventType = "identifier.openid_record_changed"
	// EventCredentialsChanged tells the sponsoring agent that the holder changed the
	// identity's credentials at the authority (HolderJournal); Data.Reason says how.
	EventCredentialsChanged EventType = "identifier.credentials_changed"
)

// Event tells one agent of something that happened to an identifier. Each agent's events are
// numbered 1, 2, 3, … by the store, without gaps, in the order their transactions committed.
type Event struct {
	AgentID string
	// ID is the event's number in the agent's queue, assigned by Tx.AppendEvent.
	ID         int64
	Type       EventType
	Identifier string
	Time       time.Time
	Data       EventData
	// AckTime is when the agent acknowledged the event; zero until then.
	AckTime time.Time
}

// EventData is what an event carries besides its type, as it was when the event was written.
type EventData struct {
	Transfer         *Transfer `json:"transfer,omitempty"`
	Statuses         []Status  `json:"statuses,omitempty"`
	PreviousStatuses []Status  `json:"previous_statuses,omitempty"`
	// OpenID and PreviousOpenIDStatus describe an _openid record change.
	OpenID               *OpenIDState `json:"openid,omitempty"`
	PreviousOpenIDStatus string       `json:"previous_openid_status,omitempty"`
	PurgeTime            time.Time    `json:"purge_time,omitzero"`
	Reason               string       `json:"reason,omitempty"`
}
