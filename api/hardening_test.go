package api_test

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"tollgate/auth"
	"tollgate/db/dbtest"
	"tollgate/graph"
)

// The log is read by more people, and kept longer, than any response: no
// password, token, token signature or signing key may ever reach it, not even
// on the paths that log the most (theft detection, internal errors).
func TestLogs_NeverHoldSecrets(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		const (
			oldPassword   = "correct horse"
			newPassword   = "battery staple"
			wrongPassword = "wrong horse guess"
		)
		var tokens []string
		keep := func(p authPayload) authPayload {
			tokens = append(tokens, p.AccessToken)
			if p.RefreshToken != nil {
				tokens = append(tokens, *p.RefreshToken)
			}
			return p
		}

		reg := keep(s.register(t, "alice", oldPassword))
		login := keep(s.mustLogin(t, "alice", oldPassword))
		s.login(t, "", "alice", wrongPassword).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		keep(s.mustRefresh(t, *login.RefreshToken))

		// A retired refresh token presented after the grace window: theft, logged.
		keep(s.mustRefresh(t, *reg.RefreshToken))
		s.Clock.Advance(11 * time.Second)
		s.refresh(t, *reg.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")

		fresh := keep(s.mustLogin(t, "alice", oldPassword))
		res := s.post(t, fresh.AccessToken, `mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) }`,
			map[string]any{"c": oldPassword, "n": newPassword})
		if string(res.Data["changePassword"]) != "true" {
			t.Fatalf("changePassword: %s", res.Raw)
		}
		if res := s.post(t, fresh.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout: %s", res.Raw)
		}

		// An internal error while the request carries a password: the detail
		// goes to the log, the password must not go with it.
		if err := s.DB.Close(); err != nil {
			t.Fatal(err)
		}
		s.login(t, fresh.AccessToken, "alice", newPassword).wantError(t, "INTERNAL_SERVER_ERROR", "")

		log := s.Log.String()
		if log == "" {
			t.Fatal("nothing was logged: the test proves nothing")
		}
		for _, want := range []string{"refresh token reused", "internal error"} {
			if !strings.Contains(log, want) {
				t.Errorf("the log lacks %q:\n%s", want, log)
			}
		}
		secrets := map[string]string{
			"the old password":   oldPassword,
			"the new password":   newPassword,
			"the wrong password": wrongPassword,
			"JWT_SECRET":         testSecret,
		}
		if u, err := neturl.Parse(url); err == nil {
			if password, ok := u.User.Password(); ok {
				secrets["the database password"] = password
			}
		}
		for i, token := range tokens {
			secrets[fmt.Sprintf("token %d", i)] = token
			if parts := strings.Split(token, "."); len(parts) == 3 {
				secrets[fmt.Sprintf("the signature of token %d", i)] = parts[2]
			}
		}
		if len(tokens) != 10 {
			t.Fatalf("collected %d tokens, want 10", len(tokens))
		}
		for name, secret := range secrets {
			if secret == "" {
				t.Fatalf("%s is empty", name)
			}
			if strings.Contains(log, secret) {
				t.Errorf("the log holds %s", name)
			}
		}
	})
}

// Whether a username exists must not show in what a login costs or answers:
// an unknown user, a known user with a wrong password and a username that
// could not even exist each cost one argon2id computation and get the same
// error. (Wall-clock timing is left to auth's BenchmarkCheck.)
func TestLogin_UnknownUserAndWrongPasswordCostTheSame(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	s.register(t, "alice", "correct horse")

	attempt := func(username, password string) gqlError {
		t.Helper()
		before := s.App.Hasher.Runs()
		e := s.login(t, "", username, password).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		if runs := s.App.Hasher.Runs() - before; runs != 1 {
			t.Errorf("login(%q) computed %d hashes, want 1", username, runs)
		}
		return e
	}
	unknown := attempt("bob", "correct horse")
	wrong := attempt("alice", "wrong horse")
	invalid := attempt("x", "correct horse")

	for name, e := range map[string]gqlError{"wrong password": wrong, "invalid username": invalid} {
		if e.Message != unknown.Message || !reflect.DeepEqual(e.Extensions, unknown.Extensions) {
			t.Errorf("%s answers %q %v, unknown user %q %v", name, e.Message, e.Extensions, unknown.Message, unknown.Extensions)
		}
	}
}

// A panic in a resolver is that field's INTERNAL_SERVER_ERROR, with its stack
// in the log and nothing of it in the response; the process serves on.
func TestPanic_InResolverIsInternalErrorAndServerLivesOn(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")

	logs := &syncBuffer{}
	// Notes is nil: the notes resolver dereferences a nil pointer.
	gql := graph.NewHandler(&graph.Resolver{Auth: s.App.Auth, Notes: nil}, graph.Options{
		Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Limits: graph.Limits{MaxDepth: 12, MaxComplexity: 1000, MaxFields: 500, MaxAliases: 50, MaxQueryBytes: 100000},
	})
	srv := httptest.NewServer(auth.Middleware(s.App.Auth)(gql))
	t.Cleanup(srv.Close)
	panicky := &testServer{URL: srv.URL, Clock: s.Clock, Log: logs, App: s.App}

	res := panicky.post(t, p.AccessToken, `{ notes { id } }`, nil)
	if res.Status != http.StatusOK {
		t.Errorf("status = %d, want 200: %s", res.Status, res.Raw)
	}
	e := res.wantError(t, "INTERNAL_SERVER_ERROR", "")
	if e.Message == "" {
		t.Error("empty message")
	}
	for _, leak := range []string{"nil pointer", "runtime error", "goroutine", "panic", ".go:"} {
		if strings.Contains(res.Raw, leak) {
			t.Errorf("the response reveals %q: %s", leak, res.Raw)
		}
	}
	log := logs.String()
	for _, want := range []string{"panic in resolver", "nil pointer dereference", "goroutine", "schema.resolvers.go"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}

	panicky.wantProtected(t, p.AccessToken)
}

// The database goes away under a running server and comes back; the server
// is not restarted. Meanwhile it says it is not ready, fails what needs the
// database quickly and vaguely, and goes on checking tokens from memory;
// afterwards everything written before the outage is still in force.
func TestDatabaseOutage_PostgreSQL(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		t.Fatalf("no database name in %s", url)
	}
	s := newTestServer(t, url, nil)
	s.register(t, "alice", "correct horse")
	a := s.mustLogin(t, "alice", "correct horse")
	gone := s.mustLogin(t, "alice", "correct horse")
	if res := s.post(t, gone.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
		t.Fatalf("logout: %s", res.Raw)
	}

	admin := superuser(t)
	allow := func(ok bool) error {
		_, err := admin.Exec(fmt.Sprintf(`ALTER DATABASE %s ALLOW_CONNECTIONS %t`, pq.QuoteIdentifier(name), ok))
		return err
	}
	// Whatever happens, pgtestdb must be able to connect to drop it.
	t.Cleanup(func() {
		if err := allow(true); err != nil {
			t.Errorf("re-allow connections: %v", err)
		}
	})
	if err := allow(false); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name); err != nil {
		t.Fatal(err)
	}

	// The outage.
	if got := readyStatus(t, s); got != http.StatusServiceUnavailable {
		t.Errorf("readyz during the outage = %d, want 503", got)
	}
	start := time.Now()
	res := s.login(t, "", "alice", "correct horse")
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("login took %v during the outage", took)
	}
	res.wantError(t, "INTERNAL_SERVER_ERROR", "")
	for _, leak := range []string{"pq:", "database", "connection", "ALLOW_CONNECTIONS", name} {
		if strings.Contains(strings.ToLower(res.Raw), strings.ToLower(leak)) {
			t.Errorf("the response reveals %q: %s", leak, res.Raw)
		}
	}
	s.wantProtected(t, a.AccessToken)
	s.wantRefused(t, gone.AccessToken, "TOKEN_REVOKED")

	// The database comes back: the server recovers by itself.
	if err := allow(true); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for readyStatus(t, s) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("readyz still not 200 10s after the database came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.wantProtected(t, s.mustLogin(t, "alice", "correct horse").AccessToken)
	s.wantProtected(t, s.mustRefresh(t, *a.RefreshToken).AccessToken)
	s.wantRefused(t, gone.AccessToken, "TOKEN_REVOKED")
	s.refresh(t, *gone.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")

	// The operator, unlike the client, is told what went wrong, but not the
	// database password.
	log := s.Log.String()
	for _, want := range []string{"not ready", "internal error"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log lacks %q:\n%s", want, log)
		}
	}
	if password, ok := u.User.Password(); ok && strings.Contains(log, password) {
		t.Error("the log holds the database password")
	}
}

// superuser connects to the maintenance database of the test PostgreSQL
// server, as db/dbtest does.
func superuser(t *testing.T) *sql.DB {
	t.Helper()
	base := os.Getenv("TEST_POSTGRES_URL")
	if base == "" {
		base = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	}
	conn, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := conn.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	return conn
}

// readyStatus is the status of GET /readyz.
func readyStatus(t *testing.T, s *testServer) int {
	t.Helper()
	return s.send(t, http.MethodGet, "/readyz", http.Header{}, "").Status
}

func TestMetrics_Exposed(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	scrape := func() string {
		t.Helper()
		res, err := http.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics = %d: %s", res.StatusCode, body)
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "version=0.0.4") {
			t.Errorf("Content-Type = %q, want the Prometheus text format", ct)
		}
		return string(body)
	}

	body := scrape()
	for _, name := range []string{"tollgate_db_queries_total", "tollgate_password_hashes_total", "tollgate_revocations", "go_goroutines"} {
		if !strings.Contains(body, "# TYPE "+name+" ") {
			t.Errorf("/metrics lacks %s:\n%s", name, body)
		}
	}

	s.register(t, "alice", "correct horse")
	if got := metricValue(t, scrape(), "tollgate_password_hashes_total"); got < 1 {
		t.Errorf("tollgate_password_hashes_total = %v after a register, want at least 1", got)
	}
}

// metricValue reads the value of an unlabelled sample from a text-format scrape.
func metricValue(t *testing.T, body, name string) float64 {
	t.Helper()
	for line := range strings.Lines(body) {
		value, ok := strings.CutPrefix(strings.TrimSpace(line), name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	t.Fatalf("no sample of %s in:\n%s", name, body)
	return 0
}
