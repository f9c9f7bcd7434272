package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"tollgate/api"
	"tollgate/auth"
	"tollgate/db"
	"tollgate/db/dbtest"
)

// protectedBody is the whole answer to { protected } with a valid token.
const protectedBody = `{"data":{"protected":` + protectedAnswer + `}}`

// newBenchServer is the real handler on a fresh SQLite database, for
// benchmarks that call it in memory, without the network.
func newBenchServer(b *testing.B) *testServer {
	b.Helper()
	return newTestServer(b, dbtest.URL(b, db.SQLite), nil)
}

// serveInMemory runs one GraphQL request through the handler, without a network.
func serveInMemory(h http.Handler, authorization, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// registerInMemory signs up a user through the handler and returns its access token.
func registerInMemory(tb testing.TB, h http.Handler, username string) string {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{
		"query":     `mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken } }`,
		"variables": map[string]any{"u": username, "p": "correct horse"},
	})
	rec := serveInMemory(h, "", string(body))
	var res struct {
		Data struct {
			Register struct {
				AccessToken string `json:"accessToken"`
			} `json:"register"`
		} `json:"data"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil || res.Data.Register.AccessToken == "" {
		tb.Fatalf("register: %d %s (%v)", rec.Code, rec.Body, err)
	}
	return res.Data.Register.AccessToken
}

// BenchmarkAuthenticatedRequest measures the server's own cost of an
// authenticated request: the whole handler (request id, body limit, bearer
// verification, revocation check, the @auth directive, GraphQL execution) on
// an in-memory request, so that neither the network nor a client is counted.
//
// The database is closed before the loop: every iteration must still answer,
// which proves that authenticating costs no query, whatever the size of the
// revocation list.
func BenchmarkAuthenticatedRequest(b *testing.B) {
	for _, revoked := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("revoked=%d", revoked), func(b *testing.B) {
			s := newBenchServer(b)
			authorization := "Bearer " + registerInMemory(b, s.App, "alice")
			for i := range revoked {
				s.App.Auth.Revocations().Add(fmt.Sprint(i), s.Clock.Now())
			}
			if got := s.App.Auth.Revocations().Len(); got != revoked {
				b.Fatalf("revocation list has %d sessions, want %d", got, revoked)
			}
			benchProtected(b, s, authorization)
		})
	}
}

// benchProtected measures { protected } with authorization through the
// whole handler, the database closed first so that any query would fail.
func benchProtected(b *testing.B, s *testServer, authorization string) {
	b.Helper()
	if err := s.DB.Close(); err != nil {
		b.Fatal(err)
	}
	const query = `{"query":"{ protected }"}`
	want := []byte(protectedBody)
	b.ReportAllocs()
	for b.Loop() {
		rec := serveInMemory(s.App, authorization, query)
		if rec.Code != http.StatusOK || !bytes.Equal(bytes.TrimSpace(rec.Body.Bytes()), want) {
			b.Fatalf("with the database closed: %d %s", rec.Code, rec.Body)
		}
	}
}

// TestAuthenticatedRequest_NeedsNoDatabase is what BenchmarkAuthenticatedRequest
// proves, as a test that CI runs: with the database closed, a valid token is
// still accepted and a token of a revoked session still refused, because both
// checks are in memory.
func TestAuthenticatedRequest_NeedsNoDatabase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		var q authPayload
		s.login(t, "", "alice", "correct horse").field(t, "login", &q)
		if res := s.post(t, q.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout: %s", res.Raw)
		}
		s.DB.Close()

		// The control: the database is really gone for whatever needs it.
		s.login(t, "", "alice", "correct horse").wantError(t, "INTERNAL_SERVER_ERROR", "")

		for range 3 {
			s.protectedWith(t, p.AccessToken, "with the database closed")
			if rec := serveInMemory(s.App, "Bearer "+p.AccessToken, `{"query":"{ protected }"}`); strings.TrimSpace(rec.Body.String()) != protectedBody {
				t.Fatalf("in memory with the database closed: %d %s", rec.Code, rec.Body)
			}
			s.post(t, q.AccessToken, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_REVOKED")
		}
	})
}

// BenchmarkMiddlewareChain measures the HTTP middleware alone (request id,
// client address, log line, deadlines, security headers, CORS, body limit,
// CSRF guard, database deadline, bearer verification from the token cache):
// the GraphQL handler is replaced by one that writes the answer.
func BenchmarkMiddlewareChain(b *testing.B) {
	s := newBenchServer(b)
	authorization := "Bearer " + registerInMemory(b, s.App, "alice")
	h := api.New(api.Options{
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil)),
		GraphQL: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, err := auth.FromContext(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			io.WriteString(w, protectedBody)
		}),
		Auth:         s.App.Auth,
		Ready:        func(context.Context) error { return nil },
		MaxBodyBytes: 1 << 20,
	})
	want := []byte(protectedBody)
	b.ReportAllocs()
	for b.Loop() {
		rec := serveInMemory(h, authorization, `{"query":"{ protected }"}`)
		if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), want) {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
}
