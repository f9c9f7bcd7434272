package api_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// newAdmin starts a server with a bootstrapped ADMIN and returns it with the ADMIN's tokens.
func newAdmin(t *testing.T, url string) (*testServer, authPayload) {
	t.Helper()
	s := newTestServer(t, url, map[string]string{"ADMIN_USERNAME": "root", "ADMIN_PASSWORD": "admin password"})
	return s, s.mustLogin(t, "root", "admin password")
}

func (s *testServer) setRole(t *testing.T, token, userID, role string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($u: ID!, $r: Role!) { setRole(userId: $u, role: $r) { id username role } }`,
		map[string]any{"u": userID, "r": role})
}

type userPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   user   `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage bool    `json:"hasNextPage"`
		EndCursor   *string `json:"endCursor"`
	} `json:"pageInfo"`
}

func (s *testServer) users(t *testing.T, token string, first int, after *string) gqlResponse {
	t.Helper()
	return s.post(t, token, `query($f: Int, $a: String) { users(first: $f, after: $a) {
		edges { cursor node { id username role createdAt } } pageInfo { hasNextPage endCursor } } }`,
		map[string]any{"f": first, "a": after})
}

func TestUsers_OnlyForAdmins(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		alice := s.register(t, "alice", "correct horse")
		s.users(t, alice.AccessToken, 10, nil).wantError(t, "FORBIDDEN", "ROLE_REQUIRED")
		s.users(t, "", 10, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_MISSING")
		s.setRole(t, alice.AccessToken, alice.User.ID, "ADMIN").wantError(t, "FORBIDDEN", "ROLE_REQUIRED")
		var page userPage
		s.users(t, admin.AccessToken, 10, nil).field(t, "users", &page)
		if len(page.Edges) != 2 {
			t.Errorf("users = %+v", page)
		}
	})
}

// Pages follow createdAt, then id; a page boundary does not move when users
// are added before or after it, and every user is seen exactly once.
func TestUsers_PaginatesAcrossInsertions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		for i := range 4 {
			s.Clock.Advance(time.Second)
			s.register(t, fmt.Sprintf("user%d", i), "correct horse")
		}
		// Two users with the same createdAt: the id breaks the tie.
		s.register(t, "twin-a", "correct horse")
		s.register(t, "twin-b", "correct horse")

		seen := map[string]int{}
		var order []string
		var after *string
		for pages := 0; ; pages++ {
			var page userPage
			admin = s.mustLogin(t, "root", "admin password") // the clock moves below
			s.users(t, admin.AccessToken, 2, after).field(t, "users", &page)
			for _, e := range page.Edges {
				seen[e.Node.Username]++
				order = append(order, e.Node.CreatedAt+" "+e.Node.ID)
			}
			if pages == 0 {
				// Insert while paging: a later user appears at the end.
				s.Clock.Advance(time.Hour)
				s.register(t, "late", "correct horse")
			}
			if !page.PageInfo.HasNextPage {
				if len(page.Edges) > 0 && *page.PageInfo.EndCursor != page.Edges[len(page.Edges)-1].Cursor {
					t.Error("endCursor is not the last edge's cursor")
				}
				break
			}
			after = page.PageInfo.EndCursor
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
		}
		if len(seen) != 8 { // root, user0-3, twins, late
			t.Errorf("saw %d users: %v", len(seen), seen)
		}
		for name, n := range seen {
			if n != 1 {
				t.Errorf("%s seen %d times", name, n)
			}
		}
		for i := 1; i < len(order); i++ {
			if order[i-1] >= order[i] {
				t.Errorf("not ordered by createdAt, id: %q then %q", order[i-1], order[i])
			}
		}
	})
}

func TestUsers_BadArguments(t *testing.T) {
	s, admin := newAdmin(t, dbtest.URL(t, "sqlite"))
	for _, first := range []int{0, -1, 101} {
		if e := s.users(t, admin.AccessToken, first, nil).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "first" {
			t.Errorf("first=%d: field %v", first, e.Extensions["field"])
		}
	}
	var page userPage
	s.users(t, admin.AccessToken, 100, nil).field(t, "users", &page)
	for _, bad := range []string{"garbage", "", "bm90LWEtY3Vyc29y"} {
		res := s.users(t, admin.AccessToken, 10, &bad)
		if bad == "" {
			continue // empty means "from the start"
		}
		if e := res.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "after" {
			t.Errorf("after=%q: field %v", bad, e.Extensions["field"])
		}
	}
}

// setRole takes effect at once: tokens that carry the old role are refused,
// and a refresh brings a token with the new one.
func TestSetRole_TakesEffectAtOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		alice := s.register(t, "alice", "correct horse")
		var u user
		s.setRole(t, admin.AccessToken, alice.User.ID, "ADMIN").field(t, "setRole", &u)
		if u.Role != "ADMIN" {
			t.Fatalf("setRole = %+v", u)
		}
		s.wantRefused(t, alice.AccessToken, "TOKEN_REVOKED")
		promoted := s.mustRefresh(t, *alice.RefreshToken)
		if claims(t, promoted.AccessToken)["role"] != "ADMIN" || promoted.User.Role != "ADMIN" {
			t.Fatalf("refreshed role: %v", claims(t, promoted.AccessToken)["role"])
		}
		var page userPage
		s.users(t, promoted.AccessToken, 10, nil).field(t, "users", &page)

		// And back: the ADMIN token is refused, the user's sessions survive.
		s.setRole(t, admin.AccessToken, alice.User.ID, "USER").field(t, "setRole", &u)
		s.wantRefused(t, promoted.AccessToken, "TOKEN_REVOKED")
		demoted := s.mustRefresh(t, *promoted.RefreshToken)
		s.wantProtected(t, demoted.AccessToken)
		s.users(t, demoted.AccessToken, 10, nil).wantError(t, "FORBIDDEN", "ROLE_REQUIRED")

		// Setting the role a user already has changes nothing.
		s.setRole(t, admin.AccessToken, alice.User.ID, "USER").field(t, "setRole", &u)
		s.wantProtected(t, demoted.AccessToken)

		s.setRole(t, admin.AccessToken, "no-such-user", "ADMIN").wantError(t, "NOT_FOUND", "")
		s.setRole(t, admin.AccessToken, alice.User.ID, "ROOT").wantError(t, "GRAPHQL_VALIDATION_FAILED", "")

		// A server started afterwards knows of the change too.
		b := newTestServer(t, url, nil)
		b.wantRefused(t, promoted.AccessToken, "TOKEN_REVOKED")
	})
}

func TestSetRole_KeepsTheLastAdmin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s, admin := newAdmin(t, url)
		if e := s.setRole(t, admin.AccessToken, admin.User.ID, "USER").wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "role" {
			t.Errorf("field = %v", e.Extensions["field"])
		}
		s.wantProtected(t, admin.AccessToken)

		// Two admins demoting each other at once: exactly one succeeds.
		bob := s.register(t, "bob", "correct horse")
		var u user
		s.setRole(t, admin.AccessToken, bob.User.ID, "ADMIN").field(t, "setRole", &u)
		bobAdmin := s.mustRefresh(t, *bob.RefreshToken)
		var wg sync.WaitGroup
		results := make([]gqlResponse, 2)
		wg.Go(func() { results[0] = s.setRole(t, admin.AccessToken, bob.User.ID, "USER") })
		wg.Go(func() { results[1] = s.setRole(t, bobAdmin.AccessToken, admin.User.ID, "USER") })
		wg.Wait()
		var admins int
		if err := s.DB.Get(&admins, `SELECT count(*) FROM users WHERE role = 'ADMIN'`); err != nil {
			t.Fatal(err)
		}
		if admins != 1 {
			t.Errorf("%d admins left: %s / %s", admins, results[0].Raw, results[1].Raw)
		}
	})
}
