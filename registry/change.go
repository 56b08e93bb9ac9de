package registry

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"slices"
	"sync"
	"time"
)

// change is one state change in progress: its transaction, its time and actor, and the
// agents it wrote events for, to be signalled once it commits.
type change struct {
	s      *Service
	tx     Tx
	now    time.Time
	actor  Actor
	agents []string
}

// change runs fn in one store transaction as a change made by actor at now, and, once the
// transaction commits, wakes the local watchers of the agents it wrote events for.
func (s *Service) change(ctx context.Context, actor Actor, now time.Time, fn func(c *change) error) error {
	c := &change{s: s, now: now, actor: actor}
	err := s.store.Tx(ctx, func(tx Tx) error {
		c.tx, c.agents = tx, c.agents[:0] // a retried transaction starts afresh
		return fn(c)
	})
	if err != nil {
		return err
	}
	for _, a := range c.agents {
		s.hub.signal(a)
	}
	return nil
}

// event writes an event for agentID in the change's transaction.
func (c *change) event(ctx context.Context, agentID string, typ EventType, identifier string, d EventData) error {
	_, err := c.tx.AppendEvent(ctx, Event{AgentID: agentID, Type: typ, Identifier: identifier, Time: c.now, Data: d})
	if err != nil {
		return err
	}
	c.agents = append(c.agents, agentID)
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
