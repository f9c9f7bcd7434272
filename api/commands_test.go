package api_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"tollgate/api"
	"tollgate/config"
	"tollgate/db/dbtest"
)

// command is one run of the command line through api.RunCommand, the entry
// point that main's run calls.
type command struct {
	vars  map[string]string
	stdin string
	now   func() time.Time
}

// run runs args (without the program's name) and returns its output, the
// exit status main would give it, and its error. The server is never started.
func (c command) run(t *testing.T, args ...string) (out string, code int, err error) {
	t.Helper()
	var buf bytes.Buffer
	env := api.Env{
		Getenv: func(k string) string { return c.vars[k] },
		Stdin:  strings.NewReader(c.stdin),
		Stdout: &buf,
		Now:    c.now,
	}
	err = api.RunCommand(t.Context(), append([]string{"tollgate"}, args...), env, func(context.Context) error {
		t.Errorf("%q started the server", args)
		return nil
	})
	return buf.String(), api.ExitCode(err), err
}

// ok runs args and fails the test unless it succeeds.
func (c command) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, _, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("%q: %v", args, err)
	}
	return out
}

// fails runs args and asserts exit status code and an error of one line
// containing want.
func (c command) fails(t *testing.T, code int, want string, args ...string) {
	t.Helper()
	_, got, err := c.run(t, args...)
	if err == nil || got != code || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("%q: exit %d with %v; want exit %d and one line containing %q", args, got, err, code, want)
	}
}

// operator is the command line on the database of s, on s's clock.
func operator(s *testServer, dbURL, stdin string) command {
	return command{vars: map[string]string{"DATABASE_URL": dbURL}, stdin: stdin, now: s.Clock.Now}
}

// awaitRevoked asserts that s refuses token as revoked after a command wrote
// the revocation from outside s. PostgreSQL announces it (NOTIFY): s refuses
// it within a second. On SQLite there is no notice between processes: s
// learns it at its next resync (every 15 s), run here at once.
func awaitRevoked(t *testing.T, s *testServer, dbURL, token string) {
	t.Helper()
	if strings.HasPrefix(dbURL, "sqlite:") {
		s.wantProtected(t, token) // not yet known: the resync is what tells it
		if err := s.App.Auth.SyncRevocations(t.Context()); err != nil {
			t.Fatal(err)
		}
		s.wantRefused(t, token, "TOKEN_REVOKED")
		return
	}
	waitRefused(t, s, token, time.Second)
}

func TestCommands_UsageErrorsExitTwo(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "app.db")
	c := command{vars: map[string]string{"DATABASE_URL": "sqlite:" + dbFile}, stdin: "correct horse\n"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"--verbose"}, "flag provided but not defined: -verbose"},
		{[]string{"help", "frobnicate"}, `unknown command "help"`}, // --help is the one way
		{[]string{"user"}, "user needs a command: create, set-role"},
		{[]string{"user", "delete", "alice"}, `unknown command "user delete"`},
		{[]string{"migrate", "now"}, "migrate takes no arguments"},
		{[]string{"migrate", "--force"}, "migrate: flag provided but not defined: -force"},
		{[]string{"serve", "extra"}, "serve takes no arguments"},
		// A password can never come from the command line: no flag takes it,
		// and a second argument is refused before anything is read or written.
		{[]string{"user", "create", "--password", "correct horse", "alice"}, "flag provided but not defined: -password"},
		{[]string{"user", "create", "alice", "correct horse"}, "user create wants NAME, got 2 argument(s)"},
		{[]string{"user", "create"}, "user create wants NAME, got 0 argument(s)"},
		{[]string{"user", "create", "--role", "ROOT", "alice"}, `role must be USER or ADMIN, not "ROOT"`},
		{[]string{"user", "set-role", "alice"}, "user set-role wants NAME ROLE, got 1 argument(s)"},
		{[]string{"user", "set-role", "alice", "OWNER"}, `role must be USER or ADMIN, not "OWNER"`},
		{[]string{"sessions", "revoke"}, `Required flag "user" not set`},
		{[]string{"sessions", "revoke", "--user", "alice", "now"}, "sessions revoke takes no arguments"},
		{[]string{"keys", "generate", "--alg", "RS256"}, `--alg must be EdDSA or HS256, not "RS256"`},
		{[]string{"keys", "generate", "--bits", "4096"}, "flag provided but not defined: -bits"},
		{[]string{"version", "--short"}, "flag provided but not defined: -short"},
		{[]string{"healthcheck", "http://localhost"}, "healthcheck takes no arguments"},
	} {
		c.fails(t, 2, tc.want, tc.args...)
	}
	// None of them reached the database.
	if _, err := os.Stat(dbFile); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused command line touched the database: %v", err)
	}
}

func TestCommands_HelpForEveryCommand(t *testing.T) {
	c := command{}
	for _, args := range [][]string{
		{"--help"}, {"-h"}, {"serve", "--help"}, {"migrate", "--help"}, {"user", "--help"},
		{"user", "create", "--help"}, {"user", "set-role", "-h"}, {"sessions", "revoke", "--help"},
		{"keys", "generate", "--help"}, {"version", "--help"}, {"healthcheck", "--help"},
	} {
		out := c.ok(t, args...)
		if !strings.Contains(out, "USAGE:") {
			t.Errorf("%q printed no usage: %s", args, out)
		}
	}
	if out := c.ok(t, "user", "create", "--help"); !strings.Contains(out, "--role") || !strings.Contains(out, "standard input") {
		t.Errorf("user create --help does not say where the password comes from: %s", out)
	}
}

func TestCommands_WithoutACommandServe(t *testing.T) {
	for _, args := range [][]string{{"tollgate"}, {"tollgate", "serve"}} {
		served := false
		err := api.RunCommand(t.Context(), args, api.Env{Getenv: func(string) string { return "" }, Stdin: strings.NewReader(""), Stdout: &bytes.Buffer{}},
			func(context.Context) error { served = true; return errors.New("stopped") })
		if !served || err == nil || err.Error() != "stopped" || api.ExitCode(err) != 1 {
			t.Errorf("%q: served=%v err=%v", args, served, err)
		}
	}
}

func TestMigrate_AppliesTheMigrationsAndExits(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		c := command{vars: map[string]string{"DATABASE_URL": dbURL}}
		// Twice: the second run finds nothing to do.
		for range 2 {
			if out := c.ok(t, "migrate"); !strings.Contains(out, "migrated") {
				t.Fatalf("migrate said %q", out)
			}
		}
		// The server starts on it and works.
		s := newTestServer(t, dbURL, nil)
		s.wantProtected(t, s.register(t, "alice", "correct horse").AccessToken)
	})
	t.Run("bad configuration", func(t *testing.T) {
		command{vars: map[string]string{"DATABASE_URL": "mysql://x"}}.fails(t, 1, "DATABASE_URL", "migrate")
		// Production's rules hold for commands as for the server.
		command{vars: map[string]string{"APP_ENV": "production", "DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "a.db")}}.
			fails(t, 1, "JWT_SECRET is required", "migrate")
	})
}

func TestUserCreate_ThenLoginThroughTheHandler(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		c := command{vars: map[string]string{"DATABASE_URL": dbURL}, stdin: "correct horse\n"}
		if out := c.ok(t, "user", "create", "--role", "ADMIN", "  Root.Admin "); !strings.Contains(out, "created ADMIN Root.Admin") {
			t.Fatalf("user create said %q", out)
		}
		c.stdin = "battery staple\r\n" // a line from a Windows file
		if out := c.ok(t, "user", "create", "bob"); !strings.Contains(out, "created USER bob") {
			t.Fatalf("user create said %q", out)
		}

		s := newTestServer(t, dbURL, nil)
		admin := s.mustLogin(t, "root.admin", "correct horse")
		if admin.User.Role != "ADMIN" || admin.User.Username != "Root.Admin" {
			t.Fatalf("logged in as %+v", admin.User)
		}
		s.users(t, admin.AccessToken, 10, nil).field(t, "users", &struct{}{}) // ADMIN only
		if bob := s.mustLogin(t, "bob", "battery staple"); bob.User.Role != "USER" {
			t.Fatalf("bob is %s", bob.User.Role)
		}
		s.login(t, "", "bob", "battery staple\r").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

		for _, tc := range []struct {
			stdin, name, want string
		}{
			{"another pass\n", "ROOT.ADMIN", "That username is taken."},
			{"short\n", "carol", "A password has at least 8 characters"},
			{strings.Repeat("x", 129) + "\n", "carol", "at most 128 bytes."},
			{"correct horse\n", "no spaces", "A username has 3 to 64 characters"},
			{"", "carol", "no password: write it as one line on standard input"},
			{"\n", "carol", "no password"},
		} {
			command{vars: c.vars, stdin: tc.stdin}.fails(t, 1, tc.want, "user", "create", tc.name)
		}
		s.login(t, "", "carol", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
	})
}

func TestUserSetRole_TakesEffectAtOnceOnARunningServer(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, nil)
		op := operator(s, dbURL, "correct horse\n")
		op.ok(t, "user", "create", "--role", "ADMIN", "root")
		alice := s.register(t, "alice", "correct horse")

		if out := op.ok(t, "user", "set-role", "Alice", "admin"); out != "alice is ADMIN\n" {
			t.Fatalf("set-role said %q", out)
		}
		// Her USER token is refused on the running server, as after setRole;
		// her next refresh carries the new role.
		awaitRevoked(t, s, dbURL, alice.AccessToken)
		if p := s.mustRefresh(t, *alice.RefreshToken); p.User.Role != "ADMIN" {
			t.Fatalf("refreshed as %s", p.User.Role)
		}

		op.ok(t, "user", "set-role", "alice", "USER")
		op.ok(t, "user", "set-role", "alice", "USER") // already: nothing changes
		op.fails(t, 1, "The last ADMIN cannot be demoted.", "user", "set-role", "root", "USER")
		op.fails(t, 1, `no user is named "mallory"`, "user", "set-role", "mallory", "ADMIN")
		if p := s.mustLogin(t, "root", "correct horse"); p.User.Role != "ADMIN" {
			t.Fatalf("root is %s", p.User.Role)
		}
	})
}

func TestSessionsRevoke_RefusesLiveTokensOnARunningServer(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, nil)
		alice := s.register(t, "alice", "correct horse")
		phone := s.mustLogin(t, "alice", "correct horse")
		bob := s.register(t, "bob", "correct horse")

		op := operator(s, dbURL, "")
		if out := op.ok(t, "sessions", "revoke", "--user", "alice"); out != "revoked 2 session(s)\n" {
			t.Fatalf("sessions revoke said %q", out)
		}
		awaitRevoked(t, s, dbURL, alice.AccessToken)
		s.wantRefused(t, phone.AccessToken, "TOKEN_REVOKED")
		s.post(t, "", `mutation($t: String) { refreshToken(token: $t) { accessToken } }`, map[string]any{"t": *phone.RefreshToken}).
			wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantProtected(t, bob.AccessToken) // nobody else's

		if out := op.ok(t, "sessions", "revoke", "--user", "alice"); out != "revoked 0 session(s)\n" {
			t.Fatalf("second revoke said %q", out)
		}
		op.fails(t, 1, `no user is named "mallory"`, "sessions", "revoke", "--user", "mallory")
		s.mustLogin(t, "alice", "correct horse") // she may sign in again
	})
}

func TestKeysGenerate_EdDSAKeyStartsTheServer(t *testing.T) {
	c := command{}
	pemText := c.ok(t, "keys", "generate", "--alg", "EdDSA")
	block, rest := pem.Decode([]byte(pemText))
	if block == nil || block.Type != "PRIVATE KEY" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("not one PKCS#8 PEM block: %q", pemText)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	priv, ok := key.(ed25519.PrivateKey)
	if err != nil || !ok {
		t.Fatalf("not an Ed25519 PKCS#8 key: %T %v", key, err)
	}
	if c.ok(t, "keys", "generate") == pemText {
		t.Fatal("two keys were the same")
	}

	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, []byte(pemText), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{
		"APP_ENV": "production", "JWT_ALG": "EdDSA", "JWT_PRIVATE_KEY_FILE": path,
	})
	token := s.register(t, "alice", "correct horse").AccessToken
	s.wantProtected(t, token)
	set, _ := s.fetchJWKS(t)
	if len(set.Keys) != 1 || set.Keys[0].KeyID != joseKID(t, priv.Public().(ed25519.PublicKey)) {
		t.Fatalf("JWKS does not publish the generated key: %+v", set.Keys)
	}
}

func TestKeysGenerate_HS256SecretIsAcceptedInProduction(t *testing.T) {
	c := command{}
	secret := strings.TrimSuffix(c.ok(t, "keys", "generate", "--alg", "HS256"), "\n")
	if len(secret) < 64 || strings.ContainsAny(secret, " \n+/=") {
		t.Fatalf("secret %d bytes, or not shell- and URL-safe", len(secret))
	}
	if _, err := config.Load(func(k string) string {
		return map[string]string{"APP_ENV": "production", "JWT_SECRET": secret, "MAIL_TRANSPORT": "log"}[k]
	}); err != nil {
		t.Fatal(err)
	}
	if c.ok(t, "keys", "generate", "--alg", "HS256") == secret+"\n" {
		t.Fatal("two secrets were the same")
	}
}

func TestVersion_NamesTheGoVersion(t *testing.T) {
	out := command{}.ok(t, "version")
	if !strings.HasPrefix(out, "tollgate ") || !strings.Contains(out, runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Fatalf("version said %q", out)
	}
}

func TestHealthcheck(t *testing.T) {
	s := newTestServer(t, "sqlite::memory:", nil)
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(u.Host)
	for _, addr := range []string{":" + port, "0.0.0.0:" + port, "127.0.0.1:" + port} {
		command{vars: map[string]string{"ADDR": addr}}.ok(t, "healthcheck")
	}

	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	command{vars: map[string]string{"ADDR": strings.TrimPrefix(failing.URL, "http://")}}.fails(t, 1, "503 Service Unavailable", "healthcheck")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	command{vars: map[string]string{"ADDR": closed}}.fails(t, 1, "connection refused", "healthcheck")
	command{vars: map[string]string{"ADDR": "8080"}}.fails(t, 1, "ADDR", "healthcheck")
}

// A user who lost their device and their recovery codes: the operator clears
// their factors and signs them out; they sign in with the password alone again.
func TestUserResetMFA_ClearsFactorsAndSessions(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, nil)
		p, _ := s.enrolled(t, "alice")
		s.recoveryCodes(t, p.AccessToken)

		op := operator(s, dbURL, "")
		if out := op.ok(t, "user", "reset-mfa", "ALICE"); !strings.Contains(out, "removed") {
			t.Fatalf("user reset-mfa said %q", out)
		}
		awaitRevoked(t, s, dbURL, p.AccessToken)
		for _, table := range []string{"mfa_factors", "recovery_codes"} {
			if n := s.count(t, `SELECT count(*) FROM `+table); n != 0 {
				t.Errorf("%d rows left in %s", n, table)
			}
		}
		again := s.mfaLogin(t, "alice")
		if again.MFARequired || again.AAL != "AAL1" {
			t.Errorf("after the reset: mfaRequired %v, aal %s", again.MFARequired, again.AAL)
		}
		s.wantProtected(t, again.AccessToken)
		op.fails(t, 1, `no user is named "mallory"`, "user", "reset-mfa", "mallory")
		op.fails(t, 2, "", "user", "reset-mfa")
	})
}

// user show lists a user's address and whether it is verified, and the
// factors, passkeys with their stored record; reset-mfa removes passkeys with the TOTP factors.
func TestUserShow_ListsFactorsAndResetRemovesPasskeys(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, nil)
		p, _ := s.enrolled(t, "alice")
		a := newSoftAuthenticator(passkeyOrigin)
		s.addPasskey(t, p.AccessToken, a)
		s.register(t, "bob", "correct horse")

		op := operator(s, dbURL, "")
		out := op.ok(t, "user", "show", "ALICE")
		for _, want := range []string{"user     alice", "role     USER", "factors  2", "TOTP", "phone", "WEBAUTHN", "laptop",
			"aaguid 00000000-0000-0000-0000-000000000000, transports internal,hybrid, sign count 0, backup eligible yes, backed up yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("user show: no %q in\n%s", want, out)
			}
		}
		if out := op.ok(t, "user", "show", "bob"); !strings.Contains(out, "factors  none") || !strings.Contains(out, "email    none") {
			t.Errorf("user show bob:\n%s", out)
		}
		s.post(t, "", `mutation { register(username: "carol", password: "correct horse", email: "carol@example.com") { accessToken } }`, nil)
		if out := op.ok(t, "user", "show", "carol"); !strings.Contains(out, "email    carol@example.com (not verified") {
			t.Errorf("user show carol:\n%s", out)
		}
		op.fails(t, 1, `no user is named "mallory"`, "user", "show", "mallory")
		op.fails(t, 2, "", "user", "show")

		op.ok(t, "user", "reset-mfa", "alice")
		if n := s.count(t, `SELECT count(*) FROM webauthn_credentials`); n != 0 {
			t.Errorf("%d passkeys left after reset-mfa", n)
		}
		s.loginWithPasskey(t, a.get(t, s.loginOptions(t, nil), nil)).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		if out := op.ok(t, "user", "show", "alice"); !strings.Contains(out, "factors  none") {
			t.Errorf("user show after reset:\n%s", out)
		}
	})
}
