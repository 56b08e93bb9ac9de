package registry

import "context"

// RequestTransfer consumes a valid transfer challenge of the (gaining) agent and asks for its
// identifier. With no pending period (the default) the transfer completes at once: the DNS
// proof is the holder's consent. Otherwise it is pending until the losing agent approves or
// rejects it, the gaining agent cancels it, or Config.TransferPendingPeriod passes and the
// registry approves it.
func (s *Service) RequestTransfer(ctx context.Context, actor Actor, challengeID string) (Transfer, error) {
	return Transfer{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// ApproveTransfer lets the losing agent approve a pending transfer; the identifier moves.
func (s *Service) ApproveTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return Transfer{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// RejectTransfer lets the losing agent reject a pending transfer.
func (s *Service) RejectTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return Transfer{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// CancelTransfer lets the gaining agent withdraw a pending transfer.
func (s *Service) CancelTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return Transfer{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// GetTransfer returns a transfer the actor gains or loses by (any, for an operator).
func (s *Service) GetTransfer(ctx context.Context, actor Actor, id string) (Transfer, error) {
	return Transfer{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// ListTransfers returns a page of the agent's transfers in the direction asked, oldest first,
// and the token of the next page.
func (s *Service) ListTransfers(ctx context.Context, actor Actor, dir TransferDirection, pendingOnly bool, size int32, token string) ([]Transfer, string, error) {
	return nil, "", Errorf(KindUnimplemented, "NOT_YET", "not yet")
}
