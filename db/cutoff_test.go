package db_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// Two instances sign a user out everywhere, the second with a clock a minute
// behind: its cutoff is written later but dated earlier. Overwriting the
// first brought back to life, in the database, the sessions created between
// the two (an instance that started afterwards accepted them again). The
// stored cutoff now only ever moves forward, on both databases.
func TestCutoff_NeverMovesBackInTime(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			// Each instance's clock, injected.
			ahead := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			behind := ahead.Add(-time.Minute)
			u := db.User{ID: "00000000-0000-4000-8000-000000000001", Username: "alice", PasswordHash: "x", Role: "USER", CreatedAt: behind.Add(-time.Hour)}
			if err := store.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			session := func(n int, created time.Time) string {
				t.Helper()
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
				sess := db.Session{ID: id, UserID: u.ID, CreatedAt: created, LastUsedAt: created, ExpiresAt: created.Add(24 * time.Hour), AAL: "aal1", AMR: "pwd"}
				rt := db.RefreshToken{Hash: fmt.Sprint("rt", n), SessionID: id, CreatedAt: created, ExpiresAt: sess.ExpiresAt}
				if _, err := store.CreateSession(ctx, sess, rt, 100); err != nil {
					t.Fatal(err)
				}
				return id
			}
			live := func() int {
				t.Helper()
				n, err := store.CountLiveSessions(ctx, u.ID, ahead)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			stored := func() db.Cutoff {
				t.Helper()
				cs, err := store.CutoffsSince(ctx, time.Time{})
				if err != nil || len(cs) != 1 {
					t.Fatalf("cutoffs: %v %v", cs, err)
				}
				return cs[0]
			}

			session(1, behind.Add(-time.Second))        // before both cutoffs
			session(2, behind.Add(30*time.Second))      // between the two
			keep := session(3, ahead.Add(-time.Second)) // the caller of the later cutoff
			if err := store.RevokeUserSessions(ctx, u.ID, keep, ahead); err != nil {
				t.Fatal(err)
			}
			if got := live(); got != 1 {
				t.Fatalf("%d live sessions after the cutoff that keeps one, want 1", got)
			}

			// The instance that is behind writes its cutoff afterwards, keeping
			// its own caller's session.
			if err := store.RevokeUserSessions(ctx, u.ID, "00000000-0000-4000-8000-000000000001", behind); err != nil {
				t.Fatal(err)
			}
			c := stored()
			if !c.At.Equal(ahead) {
				t.Errorf("cutoff at %v after an earlier one was written, want it kept at %v", c.At, ahead)
			}
			// The two disagree on the session to spare, so neither is spared:
			// the earlier cutoff covered session 3 too.
			if c.Except != nil {
				t.Errorf("cutoff spares %s, want none", *c.Except)
			}
			if got := live(); got != 0 {
				t.Errorf("%d live sessions, want 0: a cutoff dated earlier revived sessions", got)
			}

			// A later cutoff still replaces the kept one, its exception included.
			later := ahead.Add(time.Minute)
			survivor := session(4, later.Add(-time.Second))
			if err := store.RevokeUserSessions(ctx, u.ID, survivor, later); err != nil {
				t.Fatal(err)
			}
			if c := stored(); !c.At.Equal(later) || c.Except == nil || *c.Except != survivor {
				t.Errorf("cutoff = %v %v, want %v sparing %s", c.At, c.Except, later, survivor)
			}
			// And an earlier one that spares the same session keeps the exception.
			if err := store.RevokeUserSessions(ctx, u.ID, survivor, ahead); err != nil {
				t.Fatal(err)
			}
			if c := stored(); !c.At.Equal(later) || c.Except == nil || *c.Except != survivor {
				t.Errorf("cutoff = %v %v, want %v sparing %s", c.At, c.Except, later, survivor)
			}
			if n, err := store.CountLiveSessions(ctx, u.ID, later); err != nil || n != 1 {
				t.Errorf("%d live sessions (%v), want the survivor alone", n, err)
			}
		})
	}
}
