package api

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is a context whose deadline is armed only when something
// waits on it. A request that never reaches the database or the password
// hasher ({ protected } with a valid token) never calls Done, so it costs no
// timer; one that does gets exactly context.WithDeadline's behaviour from
// its first Done on. Written by hand because the context package has no
// lazy form: context.WithDeadline starts its timer at once.
//
// Before it is armed, Err compares the clock with the deadline itself, and
// arms it once the deadline has passed, so it never reports nil past it.
//
// It may carry values of its own too (the request's served, which answers
// for its auth.Request), which it answers for before its parent.
type lazyDeadline struct {
	parent   context.Context
	values   valuer
	deadline time.Time
	once     sync.Once
	armed    atomic.Bool
	ctx      context.Context
	cancel   context.CancelFunc
}

func newLazyDeadline(parent context.Context, d time.Duration) *lazyDeadline {
	c := &lazyDeadline{}
	c.init(parent, time.Now().Add(d), nil)
	return c
}

// valuer answers for the values of some context keys, nil for the others.
type valuer interface{ Value(key any) any }

// init sets up a zero lazyDeadline in place (one allocated with others),
// with its deadline at deadline, carrying the values of v if it is not nil.
func (c *lazyDeadline) init(parent context.Context, deadline time.Time, v valuer) {
	c.parent, c.values, c.deadline = parent, v, deadline
}

// arm creates the real deadline context, once.
func (c *lazyDeadline) arm() context.Context {
	c.once.Do(func() {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		c.armed.Store(true)
	})
	return c.ctx
}

// stop releases the timer, if one was armed.
func (c *lazyDeadline) stop() {
	if c.armed.Load() {
		c.cancel()
	}
}

// Deadline is the earlier of ours and the parent's.
func (c *lazyDeadline) Deadline() (time.Time, bool) {
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done arms the deadline: whoever waits is woken when it passes.
func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().Done() }

func (c *lazyDeadline) Err() error {
	if c.armed.Load() {
		return c.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return c.arm().Err()
	}
	return nil
}

// Value reads through the armed context once there is one, so that the
// context package finds its cancelCtx there (and a child context is
// cancelled with it, without a goroutine of its own).
func (c *lazyDeadline) Value(key any) any {
	if c.values != nil {
		if v := c.values.Value(key); v != nil {
			return v
		}
	}
	if c.armed.Load() {
		return c.ctx.Value(key)
	}
	return c.parent.Value(key)
}
