package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// refresh calls refreshToken with token and returns the whole response.
func (s *testServer) refresh(t *testing.T, token string) gqlResponse {
	t.Helper()
	return s.post(t, "", `mutation($t: String) { refreshToken(token: $t) { `+payloadFields+` } }`, map[string]any{"t": token})
}

func (s *testServer) mustRefresh(t *testing.T, token string) authPayload {
	t.Helper()
	var p authPayload
	s.refresh(t, token).field(t, "refreshToken", &p)
	return p
}

// mustLoginTB logs in for tests, benchmarks and fuzz targets alike, in
// memory, and returns the access token.
func (s *testServer) mustLoginTB(tb testing.TB, username, password string) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }`,
		"variables": map[string]any{"u": username, "p": password},
	})
	rec := serveInMemory(s.App, "", string(body))
	var res struct {
		Data struct {
			Login struct {
				AccessToken string `json:"accessToken"`
			} `json:"login"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Data.Login.AccessToken == "" {
		tb.Fatalf("login: %d %s (%v)", rec.Code, rec.Body, err)
	}
	return res.Data.Login.AccessToken
}

func (s *testServer) mustLogin(t *testing.T, username, password string) authPayload {
	t.Helper()
	var p authPayload
	s.login(t, "", username, password).field(t, "login", &p)
	return p
}

// wantProtected asserts that token opens { protected }.
func (s *testServer) wantProtected(t *testing.T, token string) {
	t.Helper()
	if res := s.post(t, token, `{ protected }`, nil); string(res.Data["protected"]) != protectedAnswer {
		t.Fatalf("protected refused: %s", res.Raw)
	}
}

// wantRefused asserts that token is refused on { protected } with reason.
func (s *testServer) wantRefused(t *testing.T, token, reason string) {
	t.Helper()
	s.post(t, token, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", reason)
}

func TestRefresh_RotatesIntoANonFreshPair(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		s.Clock.Advance(time.Minute)

		next := s.mustRefresh(t, *reg.RefreshToken)
		if *next.RefreshToken == *reg.RefreshToken || next.AccessToken == reg.AccessToken {
			t.Fatal("refresh returned the same tokens")
		}
		if sid(t, next.AccessToken) != sid(t, reg.AccessToken) {
			t.Error("refresh moved to another session")
		}
		if fresh := claims(t, next.AccessToken)["fresh"]; fresh != false {
			t.Errorf("refreshed token fresh = %v, want false", fresh)
		}
		if next.User != reg.User || next.TokenType != "Bearer" || next.ExpiresIn != 900 {
			t.Errorf("payload = %+v", next)
		}
		s.wantProtected(t, next.AccessToken)
		// The new refresh token rotates in turn.
		s.mustRefresh(t, *next.RefreshToken)
	})
}

// Two tabs refreshing with the same token at once both get a working pair.
func TestRefresh_ReuseWithinGraceYieldsAPairForTheSameSession(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		tab1 := s.mustRefresh(t, *reg.RefreshToken)
		s.Clock.Advance(10 * time.Second) // the grace window's very end
		tab2 := s.mustRefresh(t, *reg.RefreshToken)
		if sid(t, tab2.AccessToken) != sid(t, reg.AccessToken) {
			t.Error("the grace pair is in another session")
		}
		for _, p := range []authPayload{tab1, tab2} {
			s.wantProtected(t, p.AccessToken)
			s.mustRefresh(t, *p.RefreshToken)
		}
	})
}

func TestRefresh_ReuseAfterGraceRevokesSession(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		other := s.mustLogin(t, "alice", "correct horse") // another device, untouched by the theft
		legit := s.mustRefresh(t, *reg.RefreshToken)
		s.Clock.Advance(10*time.Second + time.Microsecond)

		// The stolen copy of the retired token is presented: refused, and the
		// whole session goes, including the legitimate client's new pair.
		s.refresh(t, *reg.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.refresh(t, *legit.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantRefused(t, legit.AccessToken, "TOKEN_REVOKED")
		s.wantRefused(t, reg.AccessToken, "TOKEN_REVOKED")

		s.wantProtected(t, other.AccessToken)
		s.mustRefresh(t, *other.RefreshToken)
		if !strings.Contains(s.Log.String(), "refresh token reused") {
			t.Error("the theft was not logged")
		}
		if strings.Contains(s.Log.String(), *reg.RefreshToken) {
			t.Error("the log holds the refresh token")
		}
	})
}

func TestRefresh_InvalidTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		loggedOut := s.mustLogin(t, "alice", "correct horse")
		if res := s.post(t, loggedOut.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout: %s", res.Raw)
		}
		for name, token := range map[string]string{
			"unknown":                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			"empty":                        "",
			"an access token":              reg.AccessToken,
			"huge":                         strings.Repeat("x", 10000),
			"of a session that logged out": *loggedOut.RefreshToken,
		} {
			t.Run(name, func(t *testing.T) {
				s.refresh(t, token).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
			})
		}
		// No token and no cookie.
		s.post(t, "", `mutation { refreshToken { accessToken } }`, nil).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")

		// Expired: the refresh TTL (720h) has passed.
		s.Clock.Advance(720*time.Hour + time.Second)
		s.refresh(t, *reg.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
	})
}

// N concurrent refreshes of one token with no grace window: the row lock lets
// exactly one rotate; every other presentation is a reuse, which revokes the
// session. Without the lock, two could both see the token live and both rotate.
func TestRefresh_ConcurrentRotationIsAtomic(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"REFRESH_REUSE_GRACE": "0s"})
		reg := s.register(t, "alice", "correct horse")
		const n = 12
		results := make([]gqlResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = s.refresh(t, *reg.RefreshToken) })
		}
		wg.Wait()
		ok := 0
		for _, r := range results {
			if len(r.Errors) == 0 {
				ok++
				continue
			}
			r.wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
		if ok != 1 {
			t.Fatalf("%d of %d concurrent refreshes succeeded, want exactly 1", ok, n)
		}
		var successors int
		if err := s.DB.Get(&successors, `SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NULL`); err != nil {
			t.Fatal(err)
		}
		if successors != 1 {
			t.Errorf("%d live successors, want 1", successors)
		}
		// The other presentations were reuses: the session is revoked.
		var revoked int
		if err := s.DB.Get(&revoked, `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if revoked != 1 {
			t.Errorf("revoked sessions = %d, want 1", revoked)
		}
	})
}

// With the default grace window, tabs racing on one token all succeed, in one session.
func TestRefresh_ConcurrentRefreshesWithinGraceAllSucceed(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		const n = 8
		results := make([]gqlResponse, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = s.refresh(t, *reg.RefreshToken) })
		}
		wg.Wait()
		for _, r := range results {
			var p authPayload
			r.field(t, "refreshToken", &p)
			if sid(t, p.AccessToken) != sid(t, reg.AccessToken) {
				t.Error("a concurrent refresh opened another session")
			}
		}
		var retired int
		if err := s.DB.Get(&retired, `SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL`); err != nil {
			t.Fatal(err)
		}
		if retired != 1 {
			t.Errorf("retired tokens = %d, want 1", retired)
		}
	})
}

// Thieves and the legitimate client racing after the grace window: the
// revocation is never lost, whatever the interleaving.
func TestRefresh_ConcurrentTheftNeverLosesTheRevocation(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		legit := s.mustRefresh(t, *reg.RefreshToken)
		s.Clock.Advance(time.Minute)
		var (
			mu     sync.Mutex
			issued []authPayload
			wg     sync.WaitGroup
		)
		for i := range 10 {
			token := *reg.RefreshToken // the stolen, retired token
			if i%2 == 0 {
				token = *legit.RefreshToken
			}
			wg.Go(func() {
				res := s.refresh(t, token)
				if len(res.Errors) == 0 {
					var p authPayload
					res.field(t, "refreshToken", &p)
					mu.Lock()
					issued = append(issued, p)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		for _, p := range append(issued, legit) {
			s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
			s.refresh(t, *p.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
	})
}

func TestLogout_RevokesTheSessionAtOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		a := s.register(t, "alice", "correct horse")
		b := s.mustLogin(t, "alice", "correct horse")

		res := s.post(t, a.AccessToken, `mutation { logout }`, nil)
		if string(res.Data["logout"]) != "true" {
			t.Fatalf("logout: %s", res.Raw)
		}
		s.wantRefused(t, a.AccessToken, "TOKEN_REVOKED")
		s.refresh(t, *a.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		// The other device stays signed in.
		s.wantProtected(t, b.AccessToken)
		s.mustRefresh(t, *b.RefreshToken)
		// Logging out twice is refused like any revoked token.
		s.post(t, a.AccessToken, `mutation { logout }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_REVOKED")
		s.post(t, "", `mutation { logout }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_MISSING")
	})
}

func TestLogout_AllSessions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		a := s.register(t, "alice", "correct horse")
		b := s.mustLogin(t, "alice", "correct horse")
		bRefreshed := s.mustRefresh(t, *b.RefreshToken)
		bob := s.register(t, "bob", "correct horse")

		res := s.post(t, a.AccessToken, `mutation { logout(allSessions: true) }`, nil)
		if string(res.Data["logout"]) != "true" {
			t.Fatalf("logout: %s", res.Raw)
		}
		for _, p := range []authPayload{a, b, bRefreshed} {
			s.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
			s.refresh(t, *p.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
		s.wantProtected(t, bob.AccessToken)
		// Alice can sign in again.
		s.wantProtected(t, s.mustLogin(t, "alice", "correct horse").AccessToken)
	})
}

type session struct {
	ID         string  `json:"id"`
	CreatedAt  string  `json:"createdAt"`
	LastUsedAt string  `json:"lastUsedAt"`
	UserAgent  *string `json:"userAgent"`
	Current    bool    `json:"current"`
}

func (s *testServer) sessions(t *testing.T, token string) []session {
	t.Helper()
	var out []session
	s.post(t, token, `{ sessions { id createdAt lastUsedAt userAgent current } }`, nil).field(t, "sessions", &out)
	return out
}

func TestSessions_ListsLiveSessionsWithTheCurrentOne(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")
		s.register(t, "bob", "correct horse") // never listed for alice
		var phone authPayload
		s.Clock.Advance(time.Minute)
		s.send(t, "POST", "/graphql", http.Header{"Content-Type": {"application/json"}, "User-Agent": {"Phone/1.0"}},
			`{"query":"mutation { login(username: \"alice\", password: \"correct horse\") { `+payloadFields+` } }"}`).field(t, "login", &phone)
		s.Clock.Advance(time.Minute)
		laptop := s.mustLogin(t, "alice", "correct horse")
		gone := s.mustLogin(t, "alice", "correct horse")
		s.post(t, gone.AccessToken, `mutation { logout }`, nil)

		list := s.sessions(t, laptop.AccessToken)
		if len(list) != 3 {
			t.Fatalf("sessions = %+v, want 3 (register, phone, laptop)", list)
		}
		current := 0
		for _, sess := range list {
			if sess.Current {
				current++
				if sess.ID != sid(t, laptop.AccessToken) {
					t.Errorf("current session %s, token sid %s", sess.ID, sid(t, laptop.AccessToken))
				}
			}
			if sess.ID == sid(t, gone.AccessToken) {
				t.Error("a logged-out session is listed")
			}
			if sess.ID == sid(t, phone.AccessToken) {
				if sess.UserAgent == nil || *sess.UserAgent != "Phone/1.0" {
					t.Errorf("phone user agent = %v", sess.UserAgent)
				}
				if sess.CreatedAt != "2026-03-01T12:01:00Z" || sess.LastUsedAt != sess.CreatedAt {
					t.Errorf("phone times = %s, %s", sess.CreatedAt, sess.LastUsedAt)
				}
			}
		}
		if current != 1 {
			t.Errorf("%d sessions are current, want 1", current)
		}

		// A refresh moves lastUsedAt, and the refreshed token still knows its session as current.
		s.Clock.Advance(time.Hour)
		refreshed := s.mustRefresh(t, *phone.RefreshToken)
		for _, sess := range s.sessions(t, refreshed.AccessToken) {
			if sess.ID == sid(t, phone.AccessToken) {
				if sess.LastUsedAt != "2026-03-01T13:02:00Z" || !sess.Current {
					t.Errorf("after refresh: %+v", sess)
				}
			}
		}
	})
}

func TestRevokeSession_OwnAndForeign(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		laptop := s.register(t, "alice", "correct horse")
		phone := s.mustLogin(t, "alice", "correct horse")
		bob := s.register(t, "bob", "correct horse")
		revoke := func(token, id string) gqlResponse {
			return s.post(t, token, `mutation($id: ID!) { revokeSession(id: $id) }`, map[string]any{"id": id})
		}

		// Another user's session is NOT_FOUND, and stays signed in.
		revoke(laptop.AccessToken, sid(t, bob.AccessToken)).wantError(t, "NOT_FOUND", "")
		s.wantProtected(t, bob.AccessToken)
		revoke(laptop.AccessToken, "no-such-session").wantError(t, "NOT_FOUND", "")

		// One's own other session is signed out at once.
		if res := revoke(laptop.AccessToken, sid(t, phone.AccessToken)); string(res.Data["revokeSession"]) != "true" {
			t.Fatalf("revokeSession: %s", res.Raw)
		}
		s.wantRefused(t, phone.AccessToken, "TOKEN_REVOKED")
		s.refresh(t, *phone.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantProtected(t, laptop.AccessToken)
		// Already revoked: nothing left to revoke.
		revoke(laptop.AccessToken, sid(t, phone.AccessToken)).wantError(t, "NOT_FOUND", "")
	})
}

func TestChangePassword(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		other := s.register(t, "alice", "correct horse")
		current := s.mustLogin(t, "alice", "correct horse")
		change := func(token, cur, next string) gqlResponse {
			return s.post(t, token, `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`,
				map[string]any{"c": cur, "n": next})
		}

		// A refreshed (non-fresh) token may not change the password.
		refreshed := s.mustRefresh(t, *current.RefreshToken)
		change(refreshed.AccessToken, "correct horse", "battery staple").wantError(t, "FORBIDDEN", "FRESH_TOKEN_REQUIRED")
		current = s.mustLogin(t, "alice", "correct horse")

		if e := change(current.AccessToken, "wrong horse", "battery staple").wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "currentPassword" {
			t.Errorf("field = %v", e.Extensions["field"])
		}
		if e := change(current.AccessToken, "correct horse", "short").wantError(t, "BAD_USER_INPUT", "WEAK_PASSWORD"); e.Extensions["field"] != "newPassword" {
			t.Errorf("field = %v", e.Extensions["field"])
		}
		s.wantProtected(t, other.AccessToken) // nothing changed so far

		res := change(current.AccessToken, "correct horse", "battery staple")
		if string(res.Data["changePassword"]) != "true" {
			t.Fatalf("changePassword: %s", res.Raw)
		}
		// Every other session is signed out; this one stays.
		s.wantRefused(t, other.AccessToken, "TOKEN_REVOKED")
		s.refresh(t, *other.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantProtected(t, current.AccessToken)
		s.mustRefresh(t, *current.RefreshToken)
		// The old password no longer works; the new one does.
		s.login(t, "", "alice", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		s.mustLogin(t, "alice", "battery staple")
	})
}

func TestRefreshCookie(t *testing.T) {
	for _, tc := range []struct {
		name, env, cookie string
		secure            bool
	}{
		{"development", "development", "tollgate_refresh", false},
		{"production", "production", "__Host-tollgate_refresh", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"APP_ENV": tc.env})
			post := func(query string, cookie *http.Cookie) (gqlResponse, *http.Cookie) {
				h := http.Header{"Content-Type": {"application/json"}}
				if cookie != nil {
					h.Set("Cookie", cookie.String())
				}
				res := s.send(t, "POST", "/graphql", h, fmt.Sprintf(`{"query":%q}`, query))
				var got *http.Cookie
				for _, c := range (&http.Response{Header: res.Header}).Cookies() {
					if c.Name == tc.cookie {
						got = c
					}
				}
				return res, got
			}
			res, c := post(`mutation { register(username: "alice", password: "correct horse", cookie: true) { accessToken refreshToken } }`, nil)
			var p authPayload
			res.field(t, "register", &p)
			if p.RefreshToken != nil {
				t.Error("refreshToken is in the payload as well as in the cookie")
			}
			if c == nil || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure != tc.secure || c.MaxAge != 720*3600 {
				t.Fatalf("cookie = %+v", c)
			}
			if strings.Contains(res.Raw, c.Value) {
				t.Error("the cookie's token is in the body")
			}

			// refreshToken without an argument rotates the cookie.
			res, next := post(`mutation { refreshToken { accessToken refreshToken } }`, c)
			res.field(t, "refreshToken", &p)
			if p.RefreshToken != nil || next == nil || next.Value == c.Value {
				t.Fatalf("cookie refresh: %s, cookie %+v", res.Raw, next)
			}
			s.refresh(t, c.Value).field(t, "refreshToken", &p) // within grace
			s.wantProtected(t, p.AccessToken)

			// logout clears it.
			h := http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer " + p.AccessToken}, "Cookie": {next.String()}}
			res = s.send(t, "POST", "/graphql", h, `{"query":"mutation { logout }"}`)
			cleared := false
			for _, c := range (&http.Response{Header: res.Header}).Cookies() {
				cleared = cleared || (c.Name == tc.cookie && c.MaxAge < 0)
			}
			if !cleared {
				t.Errorf("logout did not clear the cookie: %v", res.Header["Set-Cookie"])
			}
		})
	}
}

// Revocations are kept in the database: a server started after a logout
// refuses the logged-out token too.
func TestRevocation_SurvivesRestart(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		a := newTestServer(t, url, nil)
		p := a.register(t, "alice", "correct horse")
		a.post(t, p.AccessToken, `mutation { logout }`, nil)
		b := newTestServer(t, url, nil)
		b.Clock.Advance(5 * time.Minute) // still within the token's lifetime
		b.wantRefused(t, p.AccessToken, "TOKEN_REVOKED")
	})
}

func TestCleanup_DeletesWhatCanNoLongerMatter(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		old := s.register(t, "alice", "correct horse")
		s.mustRefresh(t, *old.RefreshToken)
		s.Clock.Advance(720*time.Hour + 16*time.Minute) // past the refresh TTL and an access token's life
		fresh := s.mustLogin(t, "alice", "correct horse")
		s.post(t, fresh.AccessToken, `mutation { logout }`, nil) // revoked just now: must be kept

		n, err := s.App.Auth.DeleteExpired(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 { // the old session, its two refresh tokens, and last month's register and refresh counters
			t.Errorf("deleted %d rows, want 5", n)
		}
		var sessions int
		if err := s.DB.Get(&sessions, `SELECT count(*) FROM sessions`); err != nil {
			t.Fatal(err)
		}
		if sessions != 1 {
			t.Errorf("%d sessions left, want the recently revoked one", sessions)
		}
		s.wantRefused(t, fresh.AccessToken, "TOKEN_REVOKED")

		// The in-memory list forgets a revocation once its tokens are all expired.
		if got := s.App.Auth.Revocations().Len(); got != 1 {
			t.Errorf("revocation list has %d entries, want 1", got)
		}
		s.Clock.Advance(15*time.Minute + 6*time.Second)
		s.App.Auth.Revocations().Prune()
		if got := s.App.Auth.Revocations().Len(); got != 0 {
			t.Errorf("after prune: %d entries, want 0", got)
		}
		s.wantRefused(t, fresh.AccessToken, "TOKEN_EXPIRED")
	})
}

// An expired session is found through its refresh token (sessions.expires_at
// has no index): the cleanup keeps the token, refused all the while, until
// the session can go, and then deletes both.
func TestCleanup_FindsExpiredSessionsThroughTheirTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		s.Clock.Advance(720*time.Hour + time.Minute) // expired, but an access token's life ago: not yet
		if _, err := s.App.Auth.DeleteExpired(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := s.count(t, `SELECT count(*) FROM refresh_tokens`); n != 1 {
			t.Fatalf("%d refresh tokens left; the expired session's must stay until the session goes", n)
		}
		s.refresh(t, *p.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.Clock.Advance(15 * time.Minute)
		if _, err := s.App.Auth.DeleteExpired(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := s.count(t, `SELECT count(*) FROM sessions`) + s.count(t, `SELECT count(*) FROM refresh_tokens`); n != 0 {
			t.Fatalf("%d sessions and refresh tokens left after the cleanup", n)
		}
	})
}
