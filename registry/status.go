package registry

import "context"

// SetServerStatus sets an identifier's server statuses (serverHold, server*Prohibited) to
// exactly want, leaving client and lifecycle statuses alone. A change is journaled with
// reason and announced to the sponsoring agent; asking for the statuses in force changes
// nothing. Only operators call it.
func (s *Service) SetServerStatus(ctx context.Context, actor Actor, identifier string, want []Status, reason, etag string) (IdentifierInfo, error) {
	return IdentifierInfo{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// RestoreIdentifier brings an identifier pending delete back, unchanged, before its purge
// time. Only the sponsoring agent calls it.
func (s *Service) RestoreIdentifier(ctx context.Context, actor Actor, identifier string) (IdentifierInfo, error) {
	return IdentifierInfo{}, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}
