package db_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// DeleteRetired deletes every token retired before the window's start, and
// only those, a batch per statement; each batch waits for a turn behind the
// refreshes, so a caller that cannot get one leaves with its context's error.
func TestDeleteRetired_InBatchesThatTakeTurns(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			store := db.NewStore(dbx)
			store.SetRetiredBatch(3)
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			windowStart := now.Add(-10 * time.Second)
			u := db.User{ID: "00000000-0000-4000-8000-000000000001", Username: "alice", PasswordHash: "x", Role: "USER", CreatedAt: now.Add(-time.Hour)}
			if err := store.CreateUser(ctx, u); err != nil {
				t.Fatal(err)
			}
			sess := db.Session{ID: "00000000-0000-4000-8000-000000000002", UserID: u.ID, CreatedAt: now.Add(-time.Hour),
				LastUsedAt: now, ExpiresAt: now.Add(24 * time.Hour), AAL: "aal1", AMR: "pwd"}
			live := db.RefreshToken{Hash: "live", SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
			if _, err := store.CreateSession(ctx, sess, live, 100); err != nil {
				t.Fatal(err)
			}
			retire := func(name string, at time.Time) {
				t.Helper()
				if _, err := dbx.Exec(dbx.Rebind(`INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at, rotated_at)
					VALUES (?, ?, ?, ?, ?)`), name, sess.ID, at.Add(-time.Minute), sess.ExpiresAt, at); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 7 { // past the window: two batches of 3 and one of 1
				retire(fmt.Sprint("old", i), windowStart.Add(-time.Duration(i+1)*time.Second))
			}
			retire("recent0", windowStart.Add(time.Second)) // still in the window
			retire("recent1", now)

			// Every turn taken: DeleteRetired waits behind them, and gives up.
			var ends []func()
			for range dbx.Stats().MaxOpenConnections {
				end, err := store.Turn(ctx)
				if err != nil {
					t.Fatal(err)
				}
				ends = append(ends, end)
			}
			cancelled, cancel := context.WithCancel(ctx)
			cancel()
			if n, err := store.DeleteRetired(cancelled, windowStart); !errors.Is(err, context.Canceled) || n != 0 {
				t.Fatalf("without a turn: %d deleted, err %v; want 0, context.Canceled", n, err)
			}
			for _, end := range ends {
				end()
			}

			before := store.Queries()
			n, err := store.DeleteRetired(ctx, windowStart)
			if err != nil || n != 7 {
				t.Fatalf("deleted %d, err %v; want 7", n, err)
			}
			if got := store.Queries() - before; got != 3 {
				t.Errorf("%d statements, want 3 (batches of 3, 3 and 1)", got)
			}
			var left []string
			if err := dbx.Select(&left, `SELECT token_hash FROM refresh_tokens ORDER BY token_hash`); err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(left) != "[live recent0 recent1]" {
				t.Errorf("left %v, want [live recent0 recent1]", left)
			}
			if n, err := store.DeleteRetired(ctx, windowStart); err != nil || n != 0 {
				t.Errorf("again: deleted %d, err %v; want 0", n, err)
			}
		})
	}
}
