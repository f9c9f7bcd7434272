package api_test

import (
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// Two instances share one PostgreSQL database. A logout served by A is
// refused by A at once and by B within a second (LISTEN/NOTIFY), and by an
// instance started afterwards (the sessions table).
func TestRevocation_ReachesEveryInstance(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	a := newTestServer(t, url, nil)
	b := newTestServer(t, url, nil)
	p := a.register(t, "alice", "correct horse")
	other := a.mustLogin(t, "alice", "correct horse")
	b.wantProtected(t, p.AccessToken)

	if res := a.post(t, p.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
		t.Fatalf("logout: %s", res.Raw)
	}
	a.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
	waitRefused(t, b, p.AccessToken, time.Second)

	// revokeSession and logout(allSessions) travel the same way.
	third := b.mustLogin(t, "alice", "correct horse")
	b.post(t, third.AccessToken, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": sid(t, other.AccessToken)})
	waitRefused(t, a, other.AccessToken, time.Second)
	b.post(t, third.AccessToken, `mutation { logout(allSessions: true) }`, nil)
	waitRefused(t, a, third.AccessToken, time.Second)

	c := newTestServer(t, url, nil)
	for _, token := range []string{p.AccessToken, other.AccessToken, third.AccessToken} {
		c.wantRefused(t, token, "TOKEN_REVOKED")
	}
}

// waitRefused polls s until token is refused as revoked, failing after within.
// Polling, not sleeping: the notification's arrival is what is measured.
func waitRefused(t *testing.T, s *testServer, token string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		res := s.post(t, token, `{ protected }`, nil)
		if len(res.Errors) == 1 && res.Errors[0].Extensions["reason"] == "TOKEN_REVOKED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still accepted after %s: %s", within, res.Raw)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A revocation whose notification never arrived (here: written behind the
// servers' backs, as a lost connection would leave it) is picked up by the
// periodic resync.
func TestRevocation_ResyncCatchesAMissedNotification(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		if _, err := s.DB.Exec(s.DB.Rebind(`UPDATE sessions SET revoked_at = ?`), s.Clock.Now()); err != nil {
			t.Fatal(err)
		}
		s.wantProtected(t, p.AccessToken) // not yet known
		if err := s.App.Auth.SyncRevocations(t.Context()); err != nil {
			t.Fatal(err)
		}
		s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
	})
}
