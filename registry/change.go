package registry

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"slices"
	"strings"
	"sync"
	"time"
)

// change is one state change in progress: its transaction, its time and actor, and the
// events it is to write.
type change struct {
	s      *Service
	tx     Tx
	now    time.Time
	actor  Actor
	events []Event
}

// change runs fn in one store transaction as a change made by actor at now, and, once the
// transaction commits, wakes the local watchers of the agents it wrote events for.
func (s *Service) change(ctx context.Context, actor Actor, now time.Time, fn func(c *change) error) error {
	c := &change{s: s, now: now, actor: actor}
	err := s.store.Tx(ctx, func(tx Tx) error {
		c.tx, c.events = tx, c.events[:0] // a retried transaction starts afresh
		if err := fn(c); err != nil {
			return err
		}
		return c.writeEvents(ctx)
	})
	if err != nil {
		return err
	}
	for k, e := range c.events {
		if k == 0 || e.AgentID != c.events[k-1].AgentID {
			s.hub.signal(e.AgentID)
		}
	}
	return nil
}

// event adds an event for agentID to the change; it is written at the end of the change's
// transaction.
func (c *change) event(_ context.Context, agentID string, typ EventType, identifier string, d EventData) error {
	c.events = append(c.events, Event{AgentID: agentID, Type: typ, Identifier: identifier, Time: c.now, Data: d})
	return nil
}

// writeEvents writes the change's events last, ordered by agent (each agent's in the order
// they were made). Numbering an agent's event locks the agent's counter until the
// transaction ends, so writing last holds those locks briefly, and taking them in one order
// keeps two changes that concern the same agents from deadlocking.
func (c *change) writeEvents(ctx context.Context) error {
	slices.SortStableFunc(c.events, func(a, b Event) int { return strings.Compare(a.AgentID, b.AgentID) })
	for _, e := range c.events {
		if _, err := c.tx.AppendEvent(ctx, e); err != nil {
			return err
		}
	}
	return nil
}

// journal writes the change's journal entry for one object.
func (c *change) journal(ctx context.Context, action, objType, objID string, before, after any) error {
	return c.s.journal(ctx, c.tx, c.now, c.actor, action, objType, objID, before, after)
}

// updateIdentifier stores next as the identifier's next version, at the change's time.
func (c *change) updateIdentifier(ctx context.Context, next *Identifier) error {
	next.UpdateTime = c.now
	next.Version++
	return c.tx.UpdateIdentifier(ctx, *next)
}

// eventHub wakes the watchers of an agent's events when this process commits one.
type eventHub struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

// wait returns a channel closed at the next signal for agentID.
func (h *eventHub) wait(agentID string) <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ch == nil {
		h.ch = make(map[string]chan struct{})
	}
	c, ok := h.ch[agentID]
	if !ok {
		c = make(chan struct{})
		h.ch[agentID] = c
	}
	return c
}

// signal wakes everyone waiting for agentID.
func (h *eventHub) signal(agentID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c, ok := h.ch[agentID]; ok {
		close(c)
		delete(h.ch, agentID)
	}
}

// orderedIDEncoding is base32 with an alphabet in ASCII order, so encoded IDs sort as their bytes.
var orderedIDEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// newOrderedID returns prefix followed by t (nanoseconds, big-endian) and 64 random bits:
// IDs made later sort later.
func newOrderedID(prefix string, t time.Time) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.UnixNano()))
	rand.Read(b[8:])
	return prefix + orderedIDEncoding.EncodeToString(b[:])
}

// withStatus returns ss with s added, sorted and without duplicates.
func withStatus(ss []Status, add ...Status) []Status {
	out := append(slices.Clone(ss), add...)
	slices.Sort(out)
	return slices.Compact(out)
}

// withoutStatus returns ss without the statuses drop reports true for.
func withoutStatus(ss []Status, drop func(Status) bool) []Status {
	var out []Status
	for _, s := range ss {
		if !drop(s) {
			out = append(out, s)
		}
	}
	return out
}
