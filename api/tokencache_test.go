package api_test

import (
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// The cache of verified tokens skips only the parsing: a token already
// accepted (so cached) is refused as soon as its session is revoked.
func TestTokenCache_RevokedRefusedAlthoughCached(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	s.register(t, "alice", "correct horse")
	var p authPayload
	s.login(t, "", "alice", "correct horse").field(t, "login", &p)
	for range 2 {
		s.protectedWith(t, p.AccessToken, "before logout")
	}
	if res := s.post(t, p.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
		t.Fatalf("logout: %s", res.Raw)
	}
	s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
}

// ... and as soon as it expires on the server's clock.
func TestTokenCache_ExpiredRefusedAlthoughCached(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	s.protectedWith(t, p.AccessToken, "fresh")
	s.Clock.Advance(15*time.Minute - time.Second)
	s.protectedWith(t, p.AccessToken, "within its lifetime")
	s.Clock.Advance(time.Second + 5*time.Second) // past exp and the leeway
	s.wantRefused(t, p.AccessToken, "TOKEN_EXPIRED")
}
