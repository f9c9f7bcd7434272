package auth_test

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/db/dbtest"
	"tollgate/mail"
)

// recoveryService is a Service on a fresh database of kind with users
// "vera" (verified vera@example.com) and "uma" (unverified
// uma@example.com), and no mail sender: only the request's own statements
// reach the store, so that they can be counted exactly.
func recoveryService(tb testing.TB, kind string, limit int) (*auth.Service, *db.Store, *sqlx.DB) {
	tb.Helper()
	ctx := context.Background()
	dbx := dbtest.Open(tb, kind)
	store := db.NewStore(dbx)
	key, err := auth.NewHMACKey([]byte("test-secret-test-secret-test-secret!"))
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now
	tokens, err := auth.NewTokenIssuer(auth.TokenConfig{Issuer: "t", Audience: "t", TTL: time.Minute}, now, key)
	if err != nil {
		tb.Fatal(err)
	}
	hasher, err := auth.NewHasher(auth.PasswordParams, 0)
	if err != nil {
		tb.Fatal(err)
	}
	composer, err := mail.NewComposer("http://localhost:8080")
	if err != nil {
		tb.Fatal(err)
	}
	svc, err := auth.NewService(ctx, auth.Config{
		RefreshTTL: time.Hour, SignupOpen: true, SessionsPerUser: 100,
		VerificationTTL: time.Hour, ResetTTL: 30 * time.Minute, Mail: composer,
		Limits: auth.Limits{
			RegisterPerIP:      auth.Limit{Max: 1000, Window: time.Hour},
			LoginPerUserIP:     auth.Limit{Max: limit, Window: time.Hour},
			LoginPerIP:         auth.Limit{Max: limit, Window: time.Hour},
			LoginAttemptsPerIP: auth.Limit{Max: limit, Window: time.Hour},
			MailPerAddress:     auth.Limit{Max: limit, Window: time.Hour},
			MailPerIP:          auth.Limit{Max: limit, Window: time.Hour},
		},
	}, store, tokens, hasher, slog.New(slog.DiscardHandler), now)
	if err != nil {
		tb.Fatal(err)
	}
	for _, u := range []string{"vera", "uma"} {
		email := u + "@example.com"
		if _, err := svc.Register(requestCtx(), u, "correct horse", &email); err != nil {
			tb.Fatal(err)
		}
	}
	if _, err := dbx.ExecContext(ctx, `UPDATE users SET email_verified_at = CURRENT_TIMESTAMP WHERE username = 'vera'`); err != nil {
		tb.Fatal(err)
	}
	return svc, store, dbx
}

// queuedAfter is what a match writes after the answer (IssueEmailToken: end
// the earlier tokens, insert the token, insert its mail): the statements
// counted after the request settled, less these for each mail it queued, are
// the request's own.
const queuedAfter = 3

// requestStatements runs requestPasswordReset for addr, waits for what it
// queues, and returns how long the request took and how many statements it
// sent itself.
func requestStatements(tb testing.TB, svc *auth.Service, store *db.Store, dbx *sqlx.DB, addr string) (time.Duration, int64) {
	var mailsBefore, mailsAfter int64
	if err := dbx.Get(&mailsBefore, `SELECT count(*) FROM mail_outbox`); err != nil { // not through the store: not counted
		tb.Fatal(err)
	}
	before := store.Queries()
	start := time.Now()
	if err := svc.RequestPasswordReset(requestCtx(), addr); err != nil {
		tb.Fatal(err)
	}
	took := time.Since(start)
	svc.WaitMail()
	if err := dbx.Get(&mailsAfter, `SELECT count(*) FROM mail_outbox`); err != nil {
		tb.Fatal(err)
	}
	return took, store.Queries() - before - queuedAfter*(mailsAfter-mailsBefore)
}

func requestCtx() context.Context {
	return auth.WithRequest(context.Background(), &auth.Request{Client: auth.Client{IP: "192.0.2.1", RequestID: "test"}})
}

// resetCases are the three addresses requestPasswordReset must not tell apart.
var resetCases = []string{"nobody@example.com", "uma@example.com", "vera@example.com"}

// requestPasswordReset sends the same statements to the database while the
// request runs, whatever the address: the throttle counts and one lookup. A
// match's token and mail are written after the answer. The times of the
// three cases are reported, not asserted: `go test -bench
// RequestPasswordReset ./auth` and bench/README.md measure them.
func TestRequestPasswordReset_SameDatabaseWorkWhateverTheAddress(t *testing.T) {
	for _, kind := range dbtest.Kinds {
		t.Run(kind, func(t *testing.T) {
			svc, store, dbx := recoveryService(t, kind, 1_000_000)
			const rounds = 30
			queries := map[string][]int64{}
			took := map[string][]time.Duration{}
			for i := range rounds {
				for j := range resetCases {
					addr := resetCases[(i+j)%len(resetCases)] // each case first in turn
					elapsed, n := requestStatements(t, svc, store, dbx, addr)
					if i > 0 { // the first round opens the throttle windows
						queries[addr] = append(queries[addr], n)
						took[addr] = append(took[addr], elapsed)
					}
				}
			}
			for _, addr := range resetCases {
				if !slices.Equal(queries[addr], queries[resetCases[0]]) {
					t.Fatalf("statements per request: %v; want the same for every address", queries)
				}
				slices.Sort(took[addr])
				t.Logf("%-19s %d statements, median %v", addr, queries[addr][0], took[addr][len(took[addr])/2])
			}
			// No more than a login attempt's database work: a wrong password
			// for a known user, counted the same way (its windows open).
			failedLogin := func() int64 {
				before := store.Queries()
				if _, err := svc.Login(requestCtx(), "vera", "wrong password"); err == nil {
					t.Fatal("a wrong password signed in")
				}
				return store.Queries() - before
			}
			failedLogin() // opens the windows
			login := failedLogin()
			if reset := queries[resetCases[0]][0]; reset > login {
				t.Fatalf("requestPasswordReset sends %d statements, a failed login %d", reset, login)
			}
			t.Logf("a failed login: %d statements", login)
			// And only the verified address got a reset.
			var mails []string
			if err := dbx.Select(&mails, `SELECT DISTINCT recipient FROM mail_outbox WHERE kind = 'password_reset'`); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(mails, []string{"vera@example.com"}) {
				t.Fatalf("resets mailed to %v", mails)
			}
		})
	}
}

// BenchmarkRequestPasswordReset times the three cases on each database,
// with the statements each sends (stmts/op; the match's queued token and
// mail excluded, as they run after the answer).
func BenchmarkRequestPasswordReset(b *testing.B) {
	for _, kind := range dbtest.Kinds {
		b.Run(kind, func(b *testing.B) {
			svc, store, dbx := recoveryService(b, kind, 1_000_000_000)
			for _, addr := range resetCases {
				b.Run(addr, func(b *testing.B) {
					var stmts int64
					var took time.Duration
					for b.Loop() {
						d, n := requestStatements(b, svc, store, dbx, addr)
						took += d
						stmts += n
					}
					// The loop also counts and waits: ns/op is the whole
					// round, request-ns/op the request alone.
					b.ReportMetric(float64(took.Nanoseconds())/float64(b.N), "request-ns/op")
					b.ReportMetric(float64(stmts)/float64(b.N), "stmts/op")
				})
			}
		})
	}
}
