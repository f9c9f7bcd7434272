package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"tollgate/api"
	"tollgate/config"
	"tollgate/db"
)

// testSecret is the HS256 key of test servers, so that tests can forge tokens
// with it (and with other keys) to prove what the verifier refuses.
const testSecret = "test-secret-test-secret-test-secret!"

// fakeClock is the injected clock: tests move time instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// syncBuffer collects the server's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type testServer struct {
	URL   string
	DB    *sqlx.DB
	Clock *fakeClock
	Log   *syncBuffer
	App   *api.Server
}

// newTestServer starts the real handler over HTTP on the database at dbURL.
// env adds to or overrides the configuration (under HS256, JWT_SECRET is testSecret unless set).
func newTestServer(t testing.TB, dbURL string, env map[string]string) *testServer {
	t.Helper()
	vars := map[string]string{"DATABASE_URL": dbURL}
	if env["SMTP_URL"] == "" {
		vars["MAIL_TRANSPORT"] = "log" // production starts without SMTP_URL
	}
	if env["JWT_ALG"] != "EdDSA" {
		vars["JWT_SECRET"] = testSecret
	}
	for k, v := range env {
		vars[k] = v
	}
	cfg, err := config.Load(func(k string) string { return vars[k] })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dbx, err := db.Open(ctx, cfg.DatabaseURL, cfg.DatabaseMaxConns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbx.Close() })
	if err := db.Migrate(ctx, dbx); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	logs := &syncBuffer{}
	logger := cfg.NewLogger(logs) // LOG_FORMAT and LOG_LEVEL as the server reads them
	app, err := api.NewServer(ctx, cfg, dbx, logger, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return &testServer{URL: srv.URL, DB: dbx, Clock: clock, Log: logs, App: app}
}

// count runs a SELECT count(*) (with ? placeholders) on the server's database.
func (s *testServer) count(t testing.TB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := s.DB.Get(&n, s.DB.Rebind(query), args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Status int
	Header http.Header
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
	Raw    string
}

// post sends one GraphQL operation with an optional bearer token.
func (s *testServer) post(t *testing.T, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		t.Fatal(err)
	}
	header := http.Header{"Content-Type": {"application/json"}}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	return s.send(t, http.MethodPost, "/graphql", header, string(body))
}

// send makes a raw request and decodes a GraphQL-shaped answer if there is one.
func (s *testServer) send(t *testing.T, method, path string, header http.Header, body string) gqlResponse {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := gqlResponse{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || strings.HasPrefix(res.Header.Get("Content-Type"), "application/graphql-response+json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return out
}

// field decodes data.name into v, failing the test on any error.
func (r gqlResponse) field(t *testing.T, name string, v any) {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %s", r.Raw)
	}
	raw, ok := r.Data[name]
	if !ok {
		t.Fatalf("no data.%s in %s", name, r.Raw)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode data.%s: %v", name, err)
	}
}

// wantError asserts exactly one error with code and reason (reason "" means none).
func (r gqlResponse) wantError(t *testing.T, code, reason string) gqlError {
	t.Helper()
	if len(r.Errors) != 1 {
		t.Fatalf("want one %s/%s error, got %s", code, reason, r.Raw)
	}
	e := r.Errors[0]
	gotReason, _ := e.Extensions["reason"].(string)
	if e.Extensions["code"] != code || gotReason != reason {
		t.Fatalf("got %v/%v, want %s/%s: %s", e.Extensions["code"], e.Extensions["reason"], code, reason, r.Raw)
	}
	return e
}

type user struct {
	ID        string `json:"id"`
	Username  string `json:"username"`
	Role      string `json:"role"`
	CreatedAt string `json:"createdAt"`
}

type authPayload struct {
	AccessToken  string  `json:"accessToken"`
	RefreshToken *string `json:"refreshToken"`
	TokenType    string  `json:"tokenType"`
	ExpiresIn    int     `json:"expiresIn"`
	User         user    `json:"user"`
}

const payloadFields = `accessToken refreshToken tokenType expiresIn user { id username role createdAt }`

// register signs up username and returns the payload, failing on any error.
func (s *testServer) register(t *testing.T, username, password string) authPayload {
	t.Helper()
	var p authPayload
	s.post(t, "", `mutation($u: String!, $p: String!) { register(username: $u, password: $p) { `+payloadFields+` } }`,
		map[string]any{"u": username, "p": password}).field(t, "register", &p)
	return p
}

// login signs in and returns the whole response.
func (s *testServer) login(t *testing.T, token, username, password string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { `+payloadFields+` } }`,
		map[string]any{"u": username, "p": password})
}
