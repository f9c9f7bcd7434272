package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The lazy deadline behaves as context.WithDeadline would: Done closes when
// it passes, Err says so even when nobody waited, a child context is
// cancelled with it, and the parent's cancellation passes through.
func TestLazyDeadline(t *testing.T) {
	t.Run("done fires", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), 20*time.Millisecond)
		defer c.stop()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done never closed")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, want DeadlineExceeded", c.Err())
		}
	})
	t.Run("err without waiting", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), -time.Second)
		defer c.stop()
		if c.armed.Load() {
			t.Fatal("armed before anything waited")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err past the deadline = %v, want DeadlineExceeded", c.Err())
		}
	})
	t.Run("not armed until waited on", func(t *testing.T) {
		c := newLazyDeadline(context.Background(), time.Hour)
		defer c.stop()
		if c.Err() != nil || c.armed.Load() {
			t.Fatalf("Err = %v, armed = %v before the deadline", c.Err(), c.armed.Load())
		}
		if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
			t.Fatalf("Deadline = %v, %v", d, ok)
		}
	})
	t.Run("child and parent", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.WithValue(context.Background(), ctxTestKey{}, "v"))
		c := newLazyDeadline(parent, time.Hour)
		defer c.stop()
		child, stopChild := context.WithCancel(c)
		defer stopChild()
		if child.Value(ctxTestKey{}) != "v" {
			t.Fatal("a value of the parent is lost")
		}
		cancel()
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("the child outlived the parent's cancellation")
		}
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err = %v, want Canceled", c.Err())
		}
	})
}

type ctxTestKey struct{}
