package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// A flow is taken once, whoever asks at the same moment; an identity is
// linked to one user; the last way to sign in cannot be unlinked, and
// another user's identity is not found.
func TestIdentities_FlowsAndLinks(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

			f := db.Flow{StateHash: "h1", Provider: "acme", Nonce: "n", CodeVerifier: "v", RedirectURI: "http://app/done",
				CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
			if err := store.CreateFlow(ctx, f); err != nil {
				t.Fatal(err)
			}
			if uri, err := store.FlowRedirectURI(ctx, "h1"); err != nil || uri != f.RedirectURI {
				t.Fatalf("redirect of a live flow: %q, %v", uri, err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			taken := 0
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, err := store.TakeFlow(ctx, "h1"); err == nil {
						mu.Lock()
						taken++
						mu.Unlock()
					} else if !errors.Is(err, db.ErrNotFound) {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			if taken != 1 {
				t.Fatalf("a flow taken %d times at once; want 1", taken)
			}

			// A user without a password, created with its identity.
			u := db.User{ID: "00000000-0000-4000-8000-000000000001", Username: "fed", Role: "USER", CreatedAt: now}
			sess := db.Session{ID: "00000000-0000-4000-9000-000000000001", UserID: u.ID, CreatedAt: now, LastUsedAt: now,
				ExpiresAt: now.Add(time.Hour), AAL: "aal1", AMR: "fed"}
			rt := db.RefreshToken{Hash: "rt1", SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
			i1 := db.Identity{ID: "00000000-0000-4000-a000-000000000001", Provider: "acme", Subject: "sub-1", UserID: u.ID, CreatedAt: now}
			if _, err := store.CreateUserWithIdentity(ctx, u, i1, sess, rt); err != nil {
				t.Fatal(err)
			}
			u2 := u
			u2.ID, u2.Username = "00000000-0000-4000-8000-000000000002", "fed2"
			sess2 := sess
			sess2.ID, sess2.UserID = "00000000-0000-4000-9000-000000000002", u2.ID
			rt2 := db.RefreshToken{Hash: "rt2", SessionID: sess2.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}
			again := i1
			again.ID, again.UserID = "00000000-0000-4000-a000-000000000002", u2.ID
			if _, err := store.CreateUserWithIdentity(ctx, u2, again, sess2, rt2); !errors.Is(err, db.ErrIdentityTaken) {
				t.Fatalf("the same (provider, subject) for a second user: %v; want ErrIdentityTaken", err)
			}
			if _, err := store.UserByID(ctx, u2.ID); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("a refused sign-up left its user: %v", err)
			}
			if err := store.UnlinkIdentity(ctx, u.ID, i1.ID); !errors.Is(err, db.ErrLastSignInMethod) {
				t.Fatalf("unlink of the only method: %v; want ErrLastSignInMethod", err)
			}
			i2 := db.Identity{ID: "00000000-0000-4000-a000-000000000003", Provider: "other", Subject: "sub-1", UserID: u.ID, CreatedAt: now}
			if err := store.LinkIdentity(ctx, i2, sess.ID, now); err != nil {
				t.Fatal(err)
			}
			if err := store.LinkIdentity(ctx, i2, sess.ID, now); !errors.Is(err, db.ErrIdentityTaken) {
				t.Fatalf("linking twice: %v", err)
			}
			bob, _ := newPasskeyUser(t, store, 3, now)
			if err := store.UnlinkIdentity(ctx, bob, i1.ID); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("unlink of another user's identity: %v; want ErrNotFound", err)
			}
			if err := store.UnlinkIdentity(ctx, u.ID, i1.ID); err != nil {
				t.Fatalf("unlink with another identity left: %v", err)
			}
			ids, err := store.Identities(ctx, u.ID)
			if err != nil || len(ids) != 1 || ids[0].ID != i2.ID {
				t.Fatalf("identities after unlink: %+v, %v", ids, err)
			}
			// A link from a revoked session does nothing.
			if _, err := store.RevokeSession(ctx, u.ID, sess.ID, now); err != nil {
				t.Fatal(err)
			}
			i3 := db.Identity{ID: "00000000-0000-4000-a000-000000000004", Provider: "third", Subject: "x", UserID: u.ID, CreatedAt: now}
			if err := store.LinkIdentity(ctx, i3, sess.ID, now); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("link from a revoked session: %v; want ErrNotFound", err)
			}
		})
	}
}

func TestMigration00010_DownAndUp(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			dialect := goose.DialectSQLite3
			if kind == db.Postgres {
				dialect = goose.DialectPostgres
			}
			p, err := goose.NewProvider(dialect, dbx.DB, db.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`INSERT INTO users (id, username, password_hash, role, created_at) VALUES ('u1', 'alice', '', 'USER', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`INSERT INTO oidc_identities (id, provider, subject, user_id, created_at) VALUES ('i1', 'acme', 's', 'u1', CURRENT_TIMESTAMP)`); err != nil {
				t.Fatal(err)
			}
			if _, err := dbx.Exec(`INSERT INTO oidc_identities (id, provider, subject, user_id, created_at) VALUES ('i2', 'acme', 's', 'u1', CURRENT_TIMESTAMP)`); err == nil {
				t.Fatal("(provider, subject) stored twice")
			}
			if _, err := p.DownTo(ctx, 9); err != nil {
				t.Fatalf("down: %v", err)
			}
			if _, err := dbx.Exec(`SELECT 1 FROM oidc_identities`); err == nil {
				t.Fatal("oidc_identities survived the down migration")
			}
			if _, err := p.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			var n int
			if err := dbx.Get(&n, `SELECT count(*) FROM oidc_flows`); err != nil || n != 0 {
				t.Fatalf("flows after up: %d, %v", n, err)
			}
		})
	}
}
