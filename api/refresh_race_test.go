package api_test

import (
	"encoding/json"
	"sync"
	"testing"

	"tollgate/db/dbtest"
)

// Fifty clients of one session (tabs, a retrying app) hammer its refresh at
// once, each starting from the same token and going on with whatever token
// its last answer carried. Inside the grace window every presentation of a
// token already rotated gets the successor that rotation issued, so they
// all succeed and converge: at the end the session is not revoked and holds
// exactly one live refresh token, the one every client ends up with.
func TestRefresh_FiftyConcurrentClientsLeaveOneChain(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"REFRESH_PER_IP_PER_MINUTE": "100000"})
		reg := s.register(t, "alice", "correct horse")
		const clients, rounds = 50, 4
		last := make([]string, clients)
		failures := make([]string, clients)
		var wg sync.WaitGroup
		for i := range clients {
			wg.Go(func() {
				token := *reg.RefreshToken
				for range rounds {
					r := s.refresh(t, token)
					var p authPayload
					if len(r.Errors) > 0 || json.Unmarshal(r.Data["refreshToken"], &p) != nil || p.RefreshToken == nil {
						failures[i] = string(r.Raw)
						return
					}
					token = *p.RefreshToken
				}
				last[i] = token
			})
		}
		wg.Wait()
		for i, f := range failures {
			if f != "" {
				t.Fatalf("client %d: a refresh failed: %s", i, f)
			}
		}

		var live []string
		if err := s.DB.Select(&live, `SELECT session_id FROM refresh_tokens WHERE rotated_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		if len(live) != 1 {
			t.Fatalf("%d live refresh tokens, want exactly 1", len(live))
		}
		var revoked int
		if err := s.DB.Get(&revoked, `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if revoked != 0 {
			t.Fatalf("%d sessions revoked: concurrent clients were taken for a thief", revoked)
		}
		// The chain that survives is the one the clients hold: the most
		// rotated of their last tokens refreshes, and so the session lives on.
		var next authPayload
		for _, token := range last {
			if r := s.refresh(t, token); len(r.Errors) == 0 && json.Unmarshal(r.Data["refreshToken"], &next) == nil {
				break
			}
		}
		if next.AccessToken == "" {
			t.Fatal("no client's last token refreshes")
		}
		s.protectedWith(t, next.AccessToken, "after the fifty clients")
	})
}
