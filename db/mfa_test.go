package db_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// The conditional UPDATE alone decides: twenty sessions presenting the same
// time step at once, on both databases, and exactly one is accepted; an
// earlier step is refused after it, a later one accepted.
func TestAcceptTOTP_ConcurrentOnce(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			u := db.User{ID: "00000000-0000-4000-8000-000000000001", Username: "alice", PasswordHash: "x", Role: "USER", CreatedAt: now}
			if err := store.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			f := db.Factor{ID: "00000000-0000-4000-8000-0000000000f1", UserID: u.ID, Type: "TOTP", Secret: "sealed", CreatedAt: now}
			if err := store.CreateFactor(ctx, f, 10); err != nil {
				t.Fatal(err)
			}
			sessions := make([]string, 20)
			for i := range sessions {
				sessions[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", 100+i)
				sess := db.Session{ID: sessions[i], UserID: u.ID, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(time.Hour), AAL: "aal1", AMR: "pwd"}
				rt := db.RefreshToken{Hash: fmt.Sprint("old", i), SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
				if _, err := store.CreateSession(ctx, sess, rt, 100); err != nil {
					t.Fatal(err)
				}
			}
			up := func(sid string, n int) db.StepUp {
				return db.StepUp{SessionID: sid, AAL: "aal2", AMR: "pwd otp", Now: now,
					Next: db.RefreshToken{Hash: fmt.Sprint("next", n), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}}
			}
			const step = 59000000
			var (
				wg       sync.WaitGroup
				mu       sync.Mutex
				accepted []string
			)
			for i, sid := range sessions {
				wg.Go(func() {
					r, err := store.AcceptTOTP(ctx, u.ID, f.ID, step, up(sid, i))
					if err != nil {
						t.Error(err)
						return
					}
					if r.Accepted {
						mu.Lock()
						accepted = append(accepted, sid)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if len(accepted) != 1 {
				t.Fatalf("%d sessions accepted one step, want 1", len(accepted))
			}
			// The winner verified the factor and revoked the 19 others; a later
			// step on the winner is accepted, an earlier one refused.
			if r, err := store.AcceptTOTP(ctx, u.ID, f.ID, step-1, up(accepted[0], 100)); err != nil || r.Accepted {
				t.Fatalf("earlier step: %+v, %v", r, err)
			}
			r, err := store.AcceptTOTP(ctx, u.ID, f.ID, step+1, up(accepted[0], 101))
			if err != nil || !r.Accepted || r.FirstVerification || r.Session.AAL != "aal2" || !r.User.MFAEnabled {
				t.Fatalf("later step: %+v, %v", r, err)
			}
		})
	}
}
