package registry

import (
	"context"
	"fmt"
	"slices"
)

// ListEvents returns a page of the agent's unacknowledged events, oldest first, and the token
// of the next page.
func (s *Service) ListEvents(ctx context.Context, actor Actor, size int32, token string) ([]Event, string, error) {
	n, err := pageSize(size)
	if err != nil {
		return nil, "", err
	}
	after, err := decodeIntPageToken("events", token)
	if err != nil {
		return nil, "", err
	}
	evs, err := s.store.ListEvents(ctx, actor.ID, after, true, n+1)
	if err != nil {
		return nil, "", err
	}
	evs, next := trimPage(evs, n, "events", func(e Event) string { return fmt.Sprint(e.ID) })
	return evs, next, nil
}

// AckEvents acknowledges the agent's events ids (at most MaxPageSize) and returns how many
// were not acknowledged before. Ids acknowledged already, or not the agent's, are ignored.
func (s *Service) AckEvents(ctx context.Context, actor Actor, ids []int64) (int, error) {
	if len(ids) > MaxPageSize {
		return 0, NewError(ReasonTooManyEventIDs, "at most %d event ids per call, got %d", MaxPageSize, len(ids))
	}
	for _, id := range ids {
		if id <= 0 {
			return 0, NewError(ReasonInvalidEventID, "event ids are positive, got %d", id)
		}
	}
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	if len(ids) == 0 {
		return 0, nil
	}
	now := s.now()
	var n int
	err := s.store.Tx(ctx, func(tx Tx) error {
		var err error
		n, err = tx.AckEvents(ctx, actor.ID, ids, now)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("acknowledge events: %w", err)
	}
	return n, nil
}

// EventsAfter returns up to limit of the agent's events with an ID above afterID, oldest
// first, acknowledged or not. It is what WatchEvents streams: an agent's events are numbered
// without gaps in commit order, so a reader that asks again after the last ID it got misses
// nothing and gets nothing twice.
func (s *Service) EventsAfter(ctx context.Context, actor Actor, afterID int64, limit int) ([]Event, error) {
	if afterID < 0 {
		return nil, NewError(ReasonInvalidEventID, "after_id must not be negative, got %d", afterID)
	}
	if limit <= 0 || limit > MaxPageSize {
		limit = MaxPageSize
	}
	return s.store.ListEvents(ctx, actor.ID, afterID, false, limit)
}

// EventsStart returns where a reader that names no event starts: just before the agent's
// oldest unacknowledged event, or, when every event is acknowledged, after the newest. Pass
// it to EventsAfter; from there on every event comes, acknowledged or not.
//
// The newest id is read first: an event committed between the two reads is then either
// found unacknowledged or after the newest read, never skipped.
func (s *Service) EventsStart(ctx context.Context, actor Actor) (int64, error) {
	last, err := s.store.LastEventID(ctx, actor.ID)
	if err != nil {
		return 0, err
	}
	first, err := s.store.ListEvents(ctx, actor.ID, 0, true, 1)
	if err != nil {
		return 0, err
	}
	if len(first) > 0 {
		return first[0].ID - 1, nil
	}
	return last, nil
}

// EventSignal returns a channel that is closed when this Service next commits an event for
// the agent. Events written by other instances sharing the store are not signalled: a
// watcher also polls.
func (s *Service) EventSignal(agentID string) <-chan struct{} {
	return s.hub.wait(agentID)
}
