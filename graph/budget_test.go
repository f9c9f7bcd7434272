package graph

import (
	"context"
	"testing"
	"time"
)

// A burst of large answers that fills the shared room once made an
// ordinary page wait its 2 s and fail with SERVER_BUSY: small reservations
// come from a reserve of their own, and each is given back to the pool it
// came from.
func TestResponseBudgets_SmallAnswersNeverWaitBehindLargeOnes(t *testing.T) {
	rb := newResponseBudgets(Limits{MaxResponseBytes: 1 << 20}, nil)
	rb.wait = 50 * time.Millisecond
	ctx := context.Background()
	large := make([]*budget, inFlightResponses)
	for i := range large {
		large[i] = &budget{of: rb}
		if err := rb.reserve(ctx, large[i], 1<<20); err != nil {
			t.Fatalf("large answer %d: %v", i, err)
		}
	}
	if err := rb.reserve(ctx, &budget{of: rb}, 1<<20); err == nil {
		t.Fatal("a ninth large answer found room: the shared room is not bounded")
	}
	small := make([]*budget, (1<<20)/smallBytes)
	start := time.Now()
	for i := range small {
		small[i] = &budget{of: rb}
		if err := rb.reserve(ctx, small[i], smallBytes); err != nil {
			t.Fatalf("small answer %d with the shared room full: %v", i, err)
		}
	}
	if d := time.Since(start); d >= rb.wait {
		t.Errorf("the small answers waited %v", d)
	}
	// The reserve is bounded too, and what is settled goes back where it
	// came from.
	if err := rb.reserve(ctx, &budget{of: rb}, smallBytes); err == nil {
		t.Fatal("the reserve of small answers is not bounded")
	}
	small[0].settle()
	if err := rb.reserve(ctx, &budget{of: rb}, smallBytes); err != nil {
		t.Errorf("a settled small answer gave no room back: %v", err)
	}
	large[0].settle()
	if err := rb.reserve(ctx, &budget{of: rb}, 1<<20); err != nil {
		t.Errorf("a settled large answer gave no room back: %v", err)
	}
	if got := rb.held.Load(); got != inFlightResponses<<20 {
		t.Errorf("held = %d, want %d", got, inFlightResponses<<20)
	}
}
