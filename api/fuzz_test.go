package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/db"
	"tollgate/db/dbtest"
)

// FuzzGraphQL sends random queries and variables through the real handler.
// Nothing may panic, and the only 5xx answers are none at all: bad input is
// 2xx (field errors) or 4xx (parse, validation, limits).
func FuzzGraphQL(f *testing.F) {
	s := newTestServer(f, dbtest.URL(f, db.SQLite), map[string]string{"ADMIN_USERNAME": "root", "ADMIN_PASSWORD": "admin password"})
	token := s.mustLoginTB(f, "root", "admin password")
	for _, seed := range []struct{ query, variables string }{
		{`{ protected }`, ``},
		{`{ me { id username role createdAt } }`, `{}`},
		{`mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }`, `{"u":"root","p":"wrong"}`},
		{`mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken } }`, `{"u":"x","p":1}`},
		{`{ users(first: 5) { edges { cursor node { id } } pageInfo { endCursor hasNextPage } } }`, ``},
		{`query($a: String) { users(first: 2, after: $a) { edges { cursor } } }`, `{"a":"!!notacursor"}`},
		{`{ note(id: "x") { id owner { id } } }`, ``},
		{`mutation { createNote(title: "t", body: "b") { id } }`, ``},
		{`{ __schema { types { name } } }`, ``},
		{`{ ...F } fragment F on Query { ...F }`, ``},
		{`subscription { noteCreated { id } }`, ``},
		{`mutation { setRole(userId: "nobody", role: ADMIN) { id } }`, ``},
		{`{ sessions { id current } }`, `null`},
		{`{`, `[`},
		{"\x00", "\x00"},
	} {
		f.Add(seed.query, seed.variables)
	}
	f.Fuzz(func(t *testing.T, query, variables string) {
		body := map[string]any{"query": query}
		if json.Valid([]byte(variables)) {
			body["variables"] = json.RawMessage(variables)
		}
		raw, err := json.Marshal(body)
		if err != nil {
			return // not valid UTF-8 in a way json refuses: not a request anyone can send
		}
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(string(raw)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		rec := httptest.NewRecorder()
		s.App.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q / %q: %s", rec.Code, query, variables, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "INTERNAL_SERVER_ERROR") {
			t.Fatalf("internal error for %q / %q: %s", query, variables, rec.Body)
		}
	})
}
