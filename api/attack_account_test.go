package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jmoiron/sqlx"

	"tollgate/db/dbtest"
	"tollgate/note"
)

// insertNotes stores n notes of ownerID with bodies of body, straight into the
// database in one transaction (the API would take minutes for thousands).
func insertNotes(t *testing.T, dbx *sqlx.DB, ownerID string, n int, body string, start time.Time) {
	t.Helper()
	tx := dbx.MustBegin()
	defer tx.Rollback()
	stmt, err := tx.Preparex(tx.Rebind(`INSERT INTO notes (id, owner_id, title, body, created_at) VALUES (?, ?, ?, ?, ?)`))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := stmt.Exec(uuid.NewString(), ownerID, fmt.Sprintf("n%d", i), body, start.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// One ordinary account once reached 2.2 GB of RSS with 1,500 notes of 64 KiB
// read by four concurrent { notes { body } }. Notes are now bounded in size
// and number, and read a page at a time.
func TestAttack_NoteSizeCountAndPages(t *testing.T) {
	dbtest.ForEachInTurn(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		create := func(title, body string) gqlResponse {
			return s.post(t, p.AccessToken, `mutation($t: String!, $b: String!) { createNote(title: $t, body: $b) { id } }`,
				map[string]any{"t": title, "b": body})
		}
		// Characters, not bytes: 20,000 two-byte characters fit, one more does not.
		if res := create("t", strings.Repeat("é", note.MaxBodyChars)); len(res.Errors) != 0 {
			t.Fatalf("a body of %d characters: %s", note.MaxBodyChars, res.Raw)
		}
		if e := create("t", strings.Repeat("x", note.MaxBodyChars+1)).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "body" {
			t.Errorf("field = %v, want body", e.Extensions["field"])
		}
		if e := create(strings.Repeat("t", 201), "b").wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "title" {
			t.Errorf("field = %v, want title", e.Extensions["field"])
		}

		// The count: 10,000 notes, then LIMIT_REACHED.
		// The newest hundred are as large as notes get; the others small, to
		// keep the test quick.
		start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		insertNotes(t, s.DB, p.User.ID, note.MaxPerUser-102, "b", start)
		insertNotes(t, s.DB, p.User.ID, 100, strings.Repeat("b", note.MaxBodyChars), start.Add(24*time.Hour))
		if res := create("last", "b"); len(res.Errors) != 0 {
			t.Fatalf("note %d: %s", note.MaxPerUser, res.Raw)
		}
		create("one too many", "b").wantError(t, "BAD_USER_INPUT", "LIMIT_REACHED")

		// Four concurrent reads of the largest page: bounded by first, not by
		// what the account holds.
		var wg sync.WaitGroup
		bytes := allocated(func() {
			for range 4 {
				wg.Go(func() {
					res := s.post(t, p.AccessToken, `{ notes(first: 100) { id body } }`, nil)
					if len(res.Raw) < 100*note.MaxBodyChars {
						t.Errorf("a page of %d bytes: not the largest notes", len(res.Raw))
					}
					var got []noteOut
					res.field(t, "notes", &got)
					if len(got) != 100 {
						t.Errorf("%d notes, want 100", len(got))
					}
				})
			}
			wg.Wait()
		})
		if bytes > 256<<20 {
			t.Errorf("four pages of 100 notes allocated %d MB", bytes>>20)
		}
		t.Logf("four concurrent pages of 100 notes of %d characters: %d MB allocated", note.MaxBodyChars, bytes>>20)

		for _, bad := range []string{`{ notes(first: 101) { id } }`, `{ notes(first: 0) { id } }`, `{ notes(first: null) { id } }`} {
			if e := s.post(t, p.AccessToken, bad, nil).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "first" {
				t.Errorf("%s: field = %v", bad, e.Extensions["field"])
			}
		}
	})
}

// notes(first, after) pages newest first without overlap, and after must be
// one of the caller's own notes.
func TestNotes_PagesNewestFirst(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		bob := s.register(t, "bobby", "correct horse")
		var ids []string
		for i := range 5 {
			ids = append(ids, s.createNote(t, alice.AccessToken, fmt.Sprint("n", i), "b").ID)
			s.Clock.Advance(time.Second)
		}
		page := func(after string) []string {
			vars := map[string]any{}
			if after != "" {
				vars["a"] = after
			}
			var got []noteOut
			s.post(t, alice.AccessToken, `query($a: ID) { notes(first: 2, after: $a) { id } }`, vars).field(t, "notes", &got)
			out := make([]string, len(got))
			for i, n := range got {
				out[i] = n.ID
			}
			return out
		}
		var all []string
		for after, n := "", 0; n < 4; n++ {
			p := page(after)
			if len(p) == 0 {
				break
			}
			all = append(all, p...)
			after = p[len(p)-1]
		}
		want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
		if fmt.Sprint(all) != fmt.Sprint(want) {
			t.Errorf("pages %v, want %v", all, want)
		}
		bobs := s.createNote(t, bob.AccessToken, "b", "b").ID
		s.post(t, alice.AccessToken, `query($a: ID) { notes(after: $a) { id } }`, map[string]any{"a": bobs}).wantError(t, "NOT_FOUND", "")
	})
}

// A user has at most SESSIONS_PER_USER live sessions: a login beyond it
// revokes the least recently used one, at once and on every instance.
func TestAttack_UnlimitedSessions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"SESSIONS_PER_USER": "3"})
		first := s.register(t, "alice", "correct horse")
		s.Clock.Advance(time.Second)
		second := s.mustLogin(t, "alice", "correct horse")
		s.Clock.Advance(time.Second)
		third := s.mustLogin(t, "alice", "correct horse")
		s.Clock.Advance(time.Second)
		// Refreshing the first session makes the second the least recently used.
		first = s.mustRefresh(t, *first.RefreshToken)
		s.Clock.Advance(time.Second)
		fourth := s.mustLogin(t, "alice", "correct horse")

		s.wantRefused(t, second.AccessToken, "TOKEN_REVOKED")
		s.refresh(t, *second.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		for _, p := range []authPayload{first, third, fourth} {
			s.wantProtected(t, p.AccessToken)
		}
		if n := len(s.sessions(t, fourth.AccessToken)); n != 3 {
			t.Errorf("%d live sessions, want 3", n)
		}
	})
}

// Every login attempt, right or wrong, counts toward
// LOGIN_ATTEMPTS_PER_IP_PER_MINUTE: one address cannot keep the argon2id
// pool busy with a password it knows.
func TestAttack_CorrectPasswordsKeepTheHasherBusy(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "5"})
		s.register(t, "alice", "correct horse")
		for i := range 5 {
			if res := s.login(t, "", "alice", "correct horse"); len(res.Errors) != 0 {
				t.Fatalf("login %d: %s", i+1, res.Raw)
			}
		}
		before := s.App.Hasher.Runs()
		e := s.login(t, "", "alice", "correct horse").wantError(t, "RATE_LIMITED", "")
		if ra, _ := e.Extensions["retryAfter"].(float64); ra < 1 || ra > 60 {
			t.Errorf("retryAfter = %v", e.Extensions["retryAfter"])
		}
		if runs := s.App.Hasher.Runs() - before; runs != 0 {
			t.Errorf("a refused login hashed %d times", runs)
		}
		s.Clock.Advance(time.Minute)
		if res := s.login(t, "", "alice", "correct horse"); len(res.Errors) != 0 {
			t.Fatalf("after a minute: %s", res.Raw)
		}
	})
}

// Twenty concurrent refreshes of one token once returned twenty refresh
// tokens that all kept rotating on their own: a thief replaying a token
// inside the grace window got a chain of their own that nothing detected.
// Inside the window every presentation now gets the one successor.
func TestAttack_GraceWindowForksSession(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")

		var (
			mu       sync.Mutex
			distinct = map[string]bool{}
			wg       sync.WaitGroup
		)
		for range 20 {
			wg.Go(func() {
				var p authPayload
				res := s.refresh(t, *reg.RefreshToken)
				if len(res.Errors) != 0 {
					t.Errorf("concurrent refresh: %s", res.Raw)
					return
				}
				res.field(t, "refreshToken", &p)
				mu.Lock()
				distinct[*p.RefreshToken] = true
				mu.Unlock()
			})
		}
		wg.Wait()
		if len(distinct) != 1 {
			t.Fatalf("%d distinct refresh tokens, want 1", len(distinct))
		}
		var successor string
		for tok := range distinct {
			successor = tok
		}
		if n := len(s.sessions(t, reg.AccessToken)); n != 1 {
			t.Errorf("%d sessions, want 1", n)
		}
		// The copy kept for the window is sealed: no row holds the token.
		if s.count(t, `SELECT count(*) FROM refresh_tokens WHERE successor LIKE ?`, "%"+successor+"%") != 0 {
			t.Error("the successor is stored in plain text")
		}

		// A replay after the owner rotated again, still inside the window,
		// gets what the owner already had, nothing of its own.
		owner := s.mustRefresh(t, successor)
		replay := s.mustRefresh(t, *reg.RefreshToken)
		if *replay.RefreshToken != successor {
			t.Fatal("a replay inside the window got a refresh token of its own")
		}
		// After the window, the thief's next use of the chain is theft: the
		// session goes, the owner's token with it.
		s.Clock.Advance(11 * time.Second)
		s.refresh(t, *replay.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.refresh(t, *owner.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantRefused(t, owner.AccessToken, "TOKEN_REVOKED")

		// Once the window has closed, the sealed copies are dropped.
		if err := s.App.Auth.DeleteRetired(context.Background()); err != nil {
			t.Fatal(err)
		}
		if kept := s.count(t, `SELECT count(*) FROM refresh_tokens WHERE successor IS NOT NULL`); kept != 0 {
			t.Errorf("%d successor copies outlive the window", kept)
		}
	})
}

// A refresh cookie sent by a page of a foreign origin is not acted on:
// FORBIDDEN/ORIGIN_NOT_ALLOWED, and nothing rotates.
func TestAttack_RefreshCookieFromForeignOrigin(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"CORS_ORIGINS": "https://app.example.com"})
		res := s.send(t, http.MethodPost, "/graphql", http.Header{"Content-Type": {"application/json"}},
			`{"query":"mutation { register(username: \"alice\", password: \"correct horse\", cookie: true) { accessToken } }"}`)
		var cookie *http.Cookie
		for _, c := range (&http.Response{Header: res.Header}).Cookies() {
			if c.Name == "tollgate_refresh" {
				cookie = c
			}
		}
		if cookie == nil {
			t.Fatalf("no refresh cookie: %v", res.Header)
		}
		refresh := func(origin string) gqlResponse {
			h := http.Header{"Content-Type": {"application/json"}, "Cookie": {cookie.Name + "=" + cookie.Value}}
			if origin != "" {
				h.Set("Origin", origin)
			}
			return s.send(t, http.MethodPost, "/graphql", h, `{"query":"mutation { refreshToken { accessToken } }"}`)
		}
		own := s.URL // http://127.0.0.1:port
		for _, origin := range []string{"http://evil.example", "null", "http://app.example.com", "https://app.example.com:8443",
			strings.Replace(own, "http://", "https://", 1), own + "/", "HTTP://" + strings.TrimPrefix(own, "http://")} {
			refresh(origin).wantError(t, "FORBIDDEN", "ORIGIN_NOT_ALLOWED")
		}
		// Nothing rotated: the cookie still works, from the server's own
		// origin, from an allowed one, and without Origin.
		for _, origin := range []string{own, "https://app.example.com", ""} {
			res := refresh(origin)
			if len(res.Errors) != 0 {
				t.Fatalf("origin %q: %s", origin, res.Raw)
			}
			for _, c := range (&http.Response{Header: res.Header}).Cookies() {
				if c.Name == cookie.Name {
					cookie = c
				}
			}
		}
	})
}

// Over a WebSocket no cookie can be set: login(cookie: true) and a cookie-only
// refreshToken are refused before anything is created or rotated (the
// browser would keep a retired token, and its next refresh would look like theft).
func TestAttack_CookieMutationsOverWebSocket(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		before := s.count(t, `SELECT count(*) FROM sessions`)
		c := s.connect(t, p.AccessToken)
		for i, op := range []string{
			`mutation { login(username: "alice", password: "correct horse", cookie: true) { accessToken } }`,
			`mutation { register(username: "bobby", password: "correct horse", cookie: true) { accessToken } }`,
			`mutation { refreshToken { accessToken } }`,
		} {
			id := fmt.Sprint(i + 1)
			c.subscribe(id, op)
			m := c.next(5 * time.Second)
			if !strings.Contains(string(m.Payload), `"code":"BAD_REQUEST"`) {
				t.Errorf("%s: got %s %s", op, m.Type, m.Payload)
			}
			for m.Type == "next" {
				m = c.next(5 * time.Second) // the complete that follows
			}
		}
		if after := s.count(t, `SELECT count(*) FROM sessions`); after != before {
			t.Errorf("sessions %d -> %d: something was created over the socket", before, after)
		}
		if runs := s.App.Hasher.Runs(); runs != 1 { // the register above
			t.Errorf("%d passwords hashed", runs)
		}
	})
}

// users(first: null) once dereferenced a nil pointer (a recovered panic,
// INTERNAL_SERVER_ERROR and an ERROR line per request).
func TestAttack_NullPageSize(t *testing.T) {
	s, admin := newAdmin(t, dbtest.URL(t, "sqlite"))
	for _, q := range []string{`{ users(first: null) { edges { cursor } } }`, `{ notes(first: null) { id } }`} {
		if e := s.post(t, admin.AccessToken, q, nil).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "first" {
			t.Errorf("%s: field %v", q, e.Extensions["field"])
		}
	}
	if strings.Contains(s.Log.String(), "panic") {
		t.Errorf("the log holds a panic:\n%s", s.Log.String())
	}
}
