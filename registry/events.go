package registry

import "context"

// ListEvents returns a page of the agent's unacknowledged events, oldest first, and the token
// of the next page.
func (s *Service) ListEvents(ctx context.Context, actor Actor, size int32, token string) ([]Event, string, error) {
	return nil, "", Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// AckEvents acknowledges the agent's events ids (at most MaxPageSize) and returns how many
// were not acknowledged before. Ids acknowledged already, or not the agent's, are ignored.
func (s *Service) AckEvents(ctx context.Context, actor Actor, ids []int64) (int, error) {
	return 0, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// EventsAfter returns up to limit of the agent's events with an ID above afterID, oldest
// first, acknowledged or not; afterID 0 starts at the oldest unacknowledged event. It is
// what WatchEvents streams: an agent's events are numbered without gaps in commit order, so
// a reader that asks again after the last ID it got misses nothing and gets nothing twice.
func (s *Service) EventsAfter(ctx context.Context, actor Actor, afterID int64, limit int) ([]Event, error) {
	return nil, Errorf(KindUnimplemented, "NOT_YET", "not yet")
}

// EventSignal returns a channel that is closed when this Service next commits an event for
// the agent. Events written by other instances sharing the store are not signalled: a
// watcher also polls (Config.EventPollInterval).
func (s *Service) EventSignal(agentID string) <-chan struct{} {
	return nil
}
