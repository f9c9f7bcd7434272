package auth

import (
	"context"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// Loads overlap in a running server (the periodic resync, the one after a
// reconnect, a caller's own). One that started earlier but finished later
// once moved the mark back, and every resync after it read again what had
// already been read: the mark only moves forward.
func TestRevocationsLoad_MarkNeverMovesBack(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 2, 0, 0, time.UTC)
			r := NewRevocations(15*time.Minute, func() time.Time { return now })
			ctx := context.Background()
			if err := r.Load(ctx, store); err != nil {
				t.Fatal(err)
			}
			later := r.synced
			now = now.Add(-2 * time.Minute) // a load that started before the last one
			if err := r.Load(ctx, store); err != nil {
				t.Fatal(err)
			}
			if !r.synced.Equal(later) {
				t.Errorf("the mark moved from %v to %v", later, r.synced)
			}
		})
	}
}
