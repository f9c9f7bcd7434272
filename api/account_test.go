package api_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"tollgate/db/dbtest"
)

const protectedAnswer = `"This is a protected endpoint."`

func TestRegister_LoginAndCallProtected(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)

		reg := s.register(t, "  Alice  ", "correct horse")
		if reg.TokenType != "Bearer" || reg.ExpiresIn != 900 || reg.RefreshToken == nil || reg.AccessToken == "" {
			t.Fatalf("register payload: %+v", reg)
		}
		if got, want := reg.User.Username, "Alice"; got != want {
			t.Errorf("username = %q, want %q (trimmed, case kept)", got, want)
		}
		if got, want := reg.User.Role, "USER"; got != want {
			t.Errorf("role = %q, want %q", got, want)
		}
		if got, want := reg.User.CreatedAt, "2026-03-01T12:00:00Z"; got != want {
			t.Errorf("createdAt = %q, want %q (RFC 3339, UTC)", got, want)
		}

		res := s.post(t, reg.AccessToken, `{ protected me { id username role createdAt } }`, nil)
		if string(res.Data["protected"]) != protectedAnswer {
			t.Fatalf("protected: %s", res.Raw)
		}
		var me user
		res.field(t, "me", &me)
		if me != reg.User {
			t.Errorf("me = %+v, want %+v", me, reg.User)
		}

		// Login is case-insensitive on the username and opens a second session.
		var in authPayload
		s.login(t, "", "ALICE", "correct horse").field(t, "login", &in)
		if in.User.ID != reg.User.ID {
			t.Fatalf("login user = %+v, want %+v", in.User, reg.User)
		}
		if sid(t, in.AccessToken) == sid(t, reg.AccessToken) {
			t.Error("login reused the register session")
		}
		if *in.RefreshToken == *reg.RefreshToken {
			t.Error("login returned the same refresh token")
		}
		if got := string(s.post(t, in.AccessToken, `{ protected }`, nil).Data["protected"]); got != protectedAnswer {
			t.Errorf("protected with login token = %s", got)
		}
	})
}

func TestLogin_WrongPasswordAndUnknownUserLookTheSame(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "alice", "correct horse")

		wrong := s.login(t, "", "alice", "wrong horse!").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		unknown := s.login(t, "", "bob", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		invalidName := s.login(t, "", "x", "correct horse").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		tooLong := s.login(t, "", "alice", strings.Repeat("p", 129)).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		for _, e := range []gqlError{unknown, invalidName, tooLong} {
			if e.Message != wrong.Message || len(e.Extensions) != len(wrong.Extensions) {
				t.Errorf("error %+v differs from %+v", e, wrong)
			}
		}
		if strings.Contains(strings.ToLower(wrong.Message), "password") && strings.Contains(strings.ToLower(wrong.Message), "wrong") {
			t.Errorf("message says which part was wrong: %q", wrong.Message)
		}
	})
}

func TestRegister_BadInput(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		for _, tc := range []struct {
			name, username, password string
			reason, field            string
		}{
			{"username too short", "ab", "correct horse", "INVALID_INPUT", "username"},
			{"username too short after trim", "  ab  ", "correct horse", "INVALID_INPUT", "username"},
			{"username too long", strings.Repeat("a", 65), "correct horse", "INVALID_INPUT", "username"},
			{"username with space", "al ice", "correct horse", "INVALID_INPUT", "username"},
			{"username with @", "alice@example.com", "correct horse", "INVALID_INPUT", "username"},
			{"username not ASCII", "élodie", "correct horse", "INVALID_INPUT", "username"},
			{"username empty", "", "correct horse", "INVALID_INPUT", "username"},
			{"password too short", "alice", "1234567", "WEAK_PASSWORD", "password"},
			{"password empty", "alice", "", "WEAK_PASSWORD", "password"},
			{"password of 7 characters in 14 bytes", "alice", "ééééééé", "WEAK_PASSWORD", "password"},
			{"password over 128 bytes", "alice", strings.Repeat("p", 129), "WEAK_PASSWORD", "password"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := s.post(t, "", `mutation($u: String!, $p: String!) { register(username: $u, password: $p) { accessToken } }`,
					map[string]any{"u": tc.username, "p": tc.password})
				e := res.wantError(t, "BAD_USER_INPUT", tc.reason)
				if e.Extensions["field"] != tc.field {
					t.Errorf("field = %v, want %s", e.Extensions["field"], tc.field)
				}
				if tc.password != "" && strings.Contains(res.Raw, tc.password) {
					t.Errorf("the error echoes the password: %s", res.Raw)
				}
			})
		}
		var n int
		if err := s.DB.Get(&n, `SELECT count(*) FROM users`); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d users were created by refused sign-ups", n)
		}

		// The limits themselves are allowed.
		s.register(t, "abc", "12345678")
		s.register(t, strings.Repeat("b", 64), strings.Repeat("p", 128))
		s.register(t, "a.b_c-D9", "ééééééé!")
	})
}

func TestRegister_UsernameTakenWithoutRegardToCase(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		s.register(t, "Alice", "correct horse")
		for _, name := range []string{"Alice", "alice", " ALICE "} {
			res := s.post(t, "", `mutation($u: String!) { register(username: $u, password: "another horse") { accessToken } }`,
				map[string]any{"u": name})
			if e := res.wantError(t, "BAD_USER_INPUT", "USERNAME_TAKEN"); e.Extensions["field"] != "username" {
				t.Errorf("field = %v", e.Extensions["field"])
			}
		}
		var sessions int
		if err := s.DB.Get(&sessions, `SELECT count(*) FROM sessions`); err != nil {
			t.Fatal(err)
		}
		if sessions != 1 {
			t.Errorf("sessions = %d, want 1: a refused sign-up left a session behind", sessions)
		}
	})
}

func TestRegister_SignupClosed(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"SIGNUP": "closed"})
		res := s.post(t, "", `mutation { register(username: "alice", password: "correct horse") { accessToken } }`, nil)
		res.wantError(t, "FORBIDDEN", "SIGNUP_CLOSED")
		if res.Status != 200 {
			t.Errorf("status = %d, want 200 (the operation executed)", res.Status)
		}
	})
}

func TestAdminBootstrap(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		env := map[string]string{"ADMIN_USERNAME": "root", "ADMIN_PASSWORD": "admin password"}
		s := newTestServer(t, url, env)
		newTestServer(t, url, env) // a second start finds the admin and leaves it alone
		var p authPayload
		s.login(t, "", "root", "admin password").field(t, "login", &p)
		if p.User.Role != "ADMIN" {
			t.Fatalf("role = %s, want ADMIN", p.User.Role)
		}
		if role := claims(t, p.AccessToken)["role"]; role != "ADMIN" {
			t.Errorf("token role = %v, want ADMIN", role)
		}
		var n int
		if err := s.DB.Get(&n, `SELECT count(*) FROM users WHERE role = 'ADMIN'`); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d admins, want 1", n)
		}
	})
}

// What is stored: an argon2id hash with the OWASP parameters, a session whose
// id is the token's sid, and only a hash of the refresh token.
func TestRegister_StoresHashesOnly(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		req := s.post(t, "", `mutation { register(username: "alice", password: "correct horse") { refreshToken accessToken } }`, nil)
		var p authPayload
		req.field(t, "register", &p)

		var hash string
		if err := s.DB.Get(&hash, `SELECT password_hash FROM users`); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("password hash %q is not argon2id with 19 MiB, 2 passes, 1 lane", hash)
		}

		var stored struct {
			Hash      string    `db:"token_hash"`
			SessionID string    `db:"session_id"`
			ExpiresAt time.Time `db:"expires_at"`
		}
		if err := s.DB.Get(&stored, `SELECT token_hash, session_id, expires_at FROM refresh_tokens`); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(*p.RefreshToken))
		if stored.Hash != hex.EncodeToString(sum[:]) {
			t.Error("the refresh token is not stored as its SHA-256")
		}
		if len(*p.RefreshToken) < 43 { // 256 bits in base64url
			t.Errorf("refresh token %d characters, want at least 43", len(*p.RefreshToken))
		}
		if stored.SessionID != sid(t, p.AccessToken) {
			t.Errorf("refresh token session %s, token sid %s", stored.SessionID, sid(t, p.AccessToken))
		}
		if got, want := stored.ExpiresAt.UTC(), s.Clock.Now().Add(720*time.Hour); !got.Equal(want) {
			t.Errorf("refresh token expires %s, want %s", got, want)
		}
		var ua string
		if err := s.DB.Get(&ua, `SELECT user_agent FROM sessions`); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ua, "Go-http-client") {
			t.Errorf("session user agent = %q", ua)
		}
	})
}

// The dev key is generated once and kept in the database: tokens survive a restart.
func TestGeneratedKey_SurvivesRestart(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		noSecret := map[string]string{"JWT_SECRET": ""}
		a := newTestServer(t, url, noSecret)
		p := a.register(t, "alice", "correct horse")
		b := newTestServer(t, url, noSecret)
		if got := string(b.post(t, p.AccessToken, `{ protected }`, nil).Data["protected"]); got != protectedAnswer {
			t.Fatalf("a token of the first instance is refused by the second: %s", got)
		}
		var alg string
		if err := b.DB.Get(&alg, `SELECT alg FROM generated_keys`); err != nil {
			t.Fatal(err)
		}
		// And a configured secret is not the generated one.
		c := newTestServer(t, url, nil)
		c.post(t, p.AccessToken, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_INVALID")
	})
}

func sid(t *testing.T, token string) string {
	t.Helper()
	s, _ := claims(t, token)["sid"].(string)
	return s
}

// claims decodes a token's payload without verifying it.
func claims(t *testing.T, token string) jwt.MapClaims {
	t.Helper()
	c := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, c); err != nil {
		t.Fatal(err)
	}
	return c
}
