package api_test

import (
	"encoding/json"
	"testing"

	"tollgate/db/dbtest"
)

// gqlInMemory runs one operation through the handler in memory and decodes
// data.field into v.
func gqlInMemory(tb testing.TB, s *testServer, token, query string, vars map[string]any, field string, v any) {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	rec := serveInMemory(s.App, "Bearer "+token, string(body))
	var res struct {
		Data   map[string]json.RawMessage `json:"data"`
		Errors []any                      `json:"errors"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || len(res.Errors) > 0 {
		tb.Fatalf("%s: %s (%v)", field, rec.Body, err)
	}
	if err := json.Unmarshal(res.Data[field], v); err != nil {
		tb.Fatal(err)
	}
}

// enrolledInMemory registers username with a verified TOTP factor and
// returns an AAL2 access token of the session that verified it, and an AAL1
// token of a later login.
func enrolledInMemory(tb testing.TB, s *testServer, username string) (aal2, aal1 string) {
	tb.Helper()
	token := registerInMemory(tb, s.App, username)
	var e enrollment
	gqlInMemory(tb, s, token, `mutation { enrollTotp { factor { id } secret } }`, nil, "enrollTotp", &e)
	var up struct {
		AccessToken string `json:"accessToken"`
	}
	gqlInMemory(tb, s, token, `mutation($f: ID!, $c: String!) { verifyTotp(factorId: $f, code: $c) { accessToken } }`,
		map[string]any{"f": e.Factor.ID, "c": code(tb, e.Secret, s.Clock.Now())}, "verifyTotp", &up)
	return up.AccessToken, s.mustLoginTB(tb, username, "correct horse")
}

// BenchmarkAuthenticatedRequest_AAL2 is BenchmarkAuthenticatedRequest for a
// user with a verified factor, whose token carries aal2, amr and mfa: the
// level is decided from the token, with the database closed.
func BenchmarkAuthenticatedRequest_AAL2(b *testing.B) {
	s := newBenchServer(b)
	authorization, _ := enrolledInMemory(b, s, "alice")
	benchProtected(b, s, "Bearer "+authorization)
}

// Deciding the level sends no query: the store's counter does not move for
// an AAL2 token let through, an AAL1 token of an enrolled user refused
// MFA_REQUIRED, and a user without a factor.
func TestAuthenticatedRequest_LevelSendsNoQuery(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		aal2, aal1 := enrolledInMemory(t, s, "alice")
		plain := registerInMemory(t, s.App, "bob")
		before := s.App.Store.Queries()
		for range 3 {
			s.wantProtected(t, aal2)
			s.post(t, aal1, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
			s.wantProtected(t, plain)
		}
		if n := s.App.Store.Queries() - before; n != 0 {
			t.Fatalf("%d queries on the authenticated path, want 0", n)
		}
	})
}
