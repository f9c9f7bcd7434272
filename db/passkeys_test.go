package db_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// newPasskeyUser creates a user with one live session for the passkey tests.
func newPasskeyUser(t *testing.T, store *db.Store, n int, now time.Time) (userID, sessionID string) {
	t.Helper()
	ctx := context.Background()
	u := db.User{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", n), Username: fmt.Sprint("user", n), PasswordHash: "x", Role: "USER", CreatedAt: now}
	if err := store.CreateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	sess := db.Session{ID: fmt.Sprintf("00000000-0000-4000-9000-%012d", n), UserID: u.ID, CreatedAt: now, LastUsedAt: now,
		ExpiresAt: now.Add(time.Hour), AAL: "aal1", AMR: "pwd"}
	if _, err := store.CreateSession(ctx, sess, db.RefreshToken{Hash: fmt.Sprint("rt", n), SessionID: sess.ID, CreatedAt: now, ExpiresAt: sess.ExpiresAt}, 100); err != nil {
		t.Fatal(err)
	}
	return u.ID, sess.ID
}

func passkeyRow(userID, factorID, credID string, now time.Time) (db.Factor, db.Passkey) {
	f := db.Factor{ID: factorID, UserID: userID, Type: "WEBAUTHN", CreatedAt: now, VerifiedAt: &now}
	p := db.Passkey{FactorID: factorID, UserID: userID, CredentialID: credID, PublicKey: "pk", AttestationType: "none",
		AttestationFormat: "none", AAGUID: "00000000-0000-0000-0000-000000000000", SignCount: 1, Transports: "internal",
		UserPresent: true, UserVerified: true, BackupEligible: true}
	return f, p
}

// A passkey is a verified factor (mfa_enabled), a credential id is
// registered once whoever asks, a conflict writes nothing, and deleting the
// factor deletes the credential.
func TestPasskeys_StoredAsFactors(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			alice, aliceSession := newPasskeyUser(t, store, 1, now)
			bob, _ := newPasskeyUser(t, store, 2, now)

			f, p := passkeyRow(alice, "00000000-0000-4000-8000-0000000000f1", "cred-1", now)
			first, err := store.CreatePasskey(ctx, f, p, 10, aliceSession)
			if err != nil || !first {
				t.Fatalf("first passkey: first=%v, %v", first, err)
			}
			u, err := store.UserByID(ctx, alice)
			if err != nil || !u.MFAEnabled {
				t.Fatalf("mfa_enabled after a passkey: %+v, %v", u, err)
			}
			// The same credential id, for bob: refused, and bob has no factor.
			f2, p2 := passkeyRow(bob, "00000000-0000-4000-8000-0000000000f2", "cred-1", now)
			if _, err := store.CreatePasskey(ctx, f2, p2, 10, ""); !errors.Is(err, db.ErrConflict) {
				t.Fatalf("a credential registered twice: %v, want ErrConflict", err)
			}
			if fs, err := store.Factors(ctx, bob); err != nil || len(fs) != 0 {
				t.Fatalf("half-written: bob's factors %+v, %v", fs, err)
			}
			got, err := store.PasskeyByCredentialID(ctx, "cred-1")
			if err != nil || got.UserID != alice || !got.BackupEligible || got.BackupState || got.Transports != "internal" {
				t.Fatalf("stored credential: %+v, %v", got, err)
			}
			// A second passkey is not the first.
			f3, p3 := passkeyRow(alice, "00000000-0000-4000-8000-0000000000f3", "cred-3", now)
			if first, err := store.CreatePasskey(ctx, f3, p3, 10, aliceSession); err != nil || first {
				t.Fatalf("second passkey: first=%v, %v", first, err)
			}
			if ps, err := store.Passkeys(ctx, alice); err != nil || len(ps) != 2 {
				t.Fatalf("alice's passkeys: %+v, %v", ps, err)
			}
			if err := store.DeleteFactor(ctx, alice, f.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := store.PasskeyByCredentialID(ctx, "cred-1"); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("credential of a deleted factor: %v, want ErrNotFound", err)
			}
			// The limit of factors counts passkeys.
			for i := 4; ; i++ {
				fi, pi := passkeyRow(alice, fmt.Sprintf("00000000-0000-4000-8000-0000000000%02d", i), fmt.Sprint("cred-", i), now)
				if _, err := store.CreatePasskey(ctx, fi, pi, 3, aliceSession); err != nil {
					if !errors.Is(err, db.ErrLimitReached) || i != 6 {
						t.Fatalf("passkey %d: %v, want ErrLimitReached at the 4th factor", i, err)
					}
					break
				}
			}
			// The operator's reset deletes credentials too.
			if _, err := store.ResetMFA(ctx, "user1", now.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			if ps, err := store.Passkeys(ctx, alice); err != nil || len(ps) != 0 {
				t.Fatalf("after reset: %+v, %v", ps, err)
			}
		})
	}
}

// The counter advances by one conditional UPDATE: twenty assertions carrying
// the same counter at once, and one is accepted; a lower one is refused; a
// key that never counts (always 0) is accepted each time.
func TestUsePasskey_CounterAdvancesOnce(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			alice, sid := newPasskeyUser(t, store, 1, now)
			f, p := passkeyRow(alice, "00000000-0000-4000-8000-0000000000f1", "cred-1", now)
			if _, err := store.CreatePasskey(ctx, f, p, 10, sid); err != nil {
				t.Fatal(err)
			}
			var (
				wg sync.WaitGroup
				mu sync.Mutex
				ok int
			)
			for range 20 {
				wg.Go(func() {
					err := store.UsePasskey(ctx, db.PasskeyUse{FactorID: f.ID, SignCount: 5, Now: now})
					if err != nil && !errors.Is(err, db.ErrCounterNotAdvanced) {
						t.Error(err)
					}
					if err == nil {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if ok != 1 {
				t.Fatalf("%d of 20 assertions with counter 5 accepted, want 1", ok)
			}
			if err := store.UsePasskey(ctx, db.PasskeyUse{FactorID: f.ID, SignCount: 4, Now: now}); !errors.Is(err, db.ErrCounterNotAdvanced) {
				t.Fatalf("a counter going backwards: %v", err)
			}
			fs, _ := store.Factors(ctx, alice)
			if len(fs) != 1 || fs[0].LastUsedAt == nil {
				t.Fatalf("last_used_at: %+v", fs)
			}
			f0, p0 := passkeyRow(alice, "00000000-0000-4000-8000-0000000000f0", "cred-0", now)
			p0.SignCount = 0
			if _, err := store.CreatePasskey(ctx, f0, p0, 10, sid); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if err := store.UsePasskey(ctx, db.PasskeyUse{FactorID: f0.ID, SignCount: 0, Now: now}); err != nil {
					t.Fatalf("a key that does not count: %v", err)
				}
			}
		})
	}
}

// A challenge is taken once: of twenty concurrent takers one gets it; and
// the cleanup deletes expired ones only.
func TestTakeChallenge_Once(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			store := db.NewStore(dbtest.Open(t, kind))
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			for i, exp := range []time.Time{now.Add(5 * time.Minute), now.Add(-time.Minute)} {
				if err := store.CreateChallenge(ctx, db.Challenge{Hash: fmt.Sprint("h", i), Ceremony: db.CeremonyLogin,
					SessionData: "{}", CreatedAt: now, ExpiresAt: exp}); err != nil {
					t.Fatal(err)
				}
			}
			var (
				wg  sync.WaitGroup
				mu  sync.Mutex
				got int
			)
			for range 20 {
				wg.Go(func() {
					c, err := store.TakeChallenge(ctx, "h0")
					if err != nil && !errors.Is(err, db.ErrNotFound) {
						t.Error(err)
					}
					if err == nil {
						if c.Ceremony != db.CeremonyLogin || !c.ExpiresAt.Equal(now.Add(5*time.Minute)) {
							t.Errorf("taken: %+v", c)
						}
						mu.Lock()
						got++
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if got != 1 {
				t.Fatalf("challenge taken %d times, want once", got)
			}
			n, err := store.DeleteExpired(ctx, now, now.Add(-time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("cleanup: %d, %v; want the one expired challenge", n, err)
			}
			if _, err := store.TakeChallenge(ctx, "h1"); !errors.Is(err, db.ErrNotFound) {
				t.Fatalf("expired challenge after cleanup: %v", err)
			}
		})
	}
}

// The passkey migration goes down and up again on both databases: TOTP
// factors survive both ways, passkeys go down with their factor rows (and
// the recovery codes of a user left without a verified factor).
func TestMigration00009_DownAndUp(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dbx := dbtest.Open(t, kind)
			store := db.NewStore(dbx)
			now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			alice, _ := newPasskeyUser(t, store, 1, now)
			bob, _ := newPasskeyUser(t, store, 2, now)
			totp := db.Factor{ID: "00000000-0000-4000-8000-0000000000a1", UserID: alice, Type: "TOTP", Secret: "sealed", CreatedAt: now, VerifiedAt: &now}
			if err := store.CreateFactor(ctx, totp, 10); err != nil {
				t.Fatal(err)
			}
			f, p := passkeyRow(bob, "00000000-0000-4000-8000-0000000000b1", "cred-b", now)
			if _, err := store.CreatePasskey(ctx, f, p, 10, ""); err != nil {
				t.Fatal(err)
			}
			for _, u := range []string{alice, bob} {
				if err := store.ReplaceRecoveryCodes(ctx, u, []string{"h-" + u}, now); err != nil {
					t.Fatal(err)
				}
			}
			dialect := goose.DialectSQLite3
			if kind == db.Postgres {
				dialect = goose.DialectPostgres
			}
			pr, err := goose.NewProvider(dialect, dbx.DB, db.Migrations())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := pr.DownTo(ctx, 8); err != nil {
				t.Fatalf("down: %v", err)
			}
			var types []string
			if err := dbx.Select(&types, `SELECT type FROM mfa_factors ORDER BY id`); err != nil || len(types) != 1 || types[0] != "TOTP" {
				t.Fatalf("factors after down: %v, %v", types, err)
			}
			var codes []string
			if err := dbx.Select(&codes, `SELECT user_id FROM recovery_codes`); err != nil || len(codes) != 1 || codes[0] != alice {
				t.Fatalf("recovery codes after down: %v, %v", codes, err)
			}
			if _, err := dbx.Exec(`INSERT INTO mfa_factors (id, user_id, type, secret, created_at) VALUES ('x', '` + bob + `', 'WEBAUTHN', '', CURRENT_TIMESTAMP)`); err == nil {
				t.Fatal("the old CHECK is back: WEBAUTHN must be refused below 00009")
			}
			if _, err := pr.Up(ctx); err != nil {
				t.Fatalf("up: %v", err)
			}
			u, err := store.UserByID(ctx, alice)
			if err != nil || !u.MFAEnabled {
				t.Fatalf("alice after up: %+v, %v", u, err)
			}
			f2, p2 := passkeyRow(bob, "00000000-0000-4000-8000-0000000000b2", "cred-b", now)
			if _, err := store.CreatePasskey(ctx, f2, p2, 10, ""); err != nil {
				t.Fatalf("a passkey after up: %v", err)
			}
		})
	}
}
