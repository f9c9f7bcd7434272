package api_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"tollgate/auth"
	"tollgate/db/dbtest"
)

// forge signs claims with method and key, under the given header fields.
func forge(t *testing.T, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(tok.Header, k)
		} else {
			tok.Header[k] = v
		}
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testKID(t *testing.T) string {
	t.Helper()
	k, err := auth.NewHMACKey([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return k.ID()
}

// validClaims are the claims of a genuine token for p, issued now.
func validClaims(t *testing.T, p authPayload, now time.Time) jwt.MapClaims {
	t.Helper()
	return jwt.MapClaims{
		"iss": "tollgate", "aud": []string{"tollgate"}, "sub": p.User.ID,
		"exp": now.Add(15 * time.Minute).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		"jti": "forged-id", "sid": sid(t, p.AccessToken), "role": "USER", "fresh": true,
	}
}

func with(c jwt.MapClaims, k string, v any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for key, val := range c {
		out[key] = val
	}
	if v == nil {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// TestAccessToken_Refusals is the failure matrix of the verifier: every way a
// token can be wrong, and the code and reason each one gets on an @auth field.
func TestAccessToken_Refusals(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		now := s.Clock.Now()
		kid := testKID(t)
		header := map[string]any{"typ": "at+jwt", "kid": kid}
		good := validClaims(t, p, now)
		secret := []byte(testSecret)

		// The control: a token forged with the real key and the real claims
		// passes, so every refusal below is caused by the one thing changed.
		if got := string(s.post(t, forge(t, jwt.SigningMethodHS256, secret, header, good), `{ protected }`, nil).Data["protected"]); got != protectedAnswer {
			t.Fatalf("control token refused: %s", got)
		}

		_, edKey, _ := ed25519.GenerateKey(rand.Reader)
		genuine := p.AccessToken
		parts := strings.Split(genuine, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		var m map[string]any
		json.Unmarshal(payload, &m)
		m["role"] = "ADMIN"
		tamperedPayload, _ := json.Marshal(m)
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(tamperedPayload) + "." + parts[2]
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt","kid":"` + kid + `"}`))

		for _, tc := range []struct {
			name, authorization, reason string
		}{
			{"no header", "", "TOKEN_MISSING"},
			{"not bearer", "Basic YWxpY2U6cGFzcw==", "TOKEN_INVALID"},
			{"bearer without token", "Bearer ", "TOKEN_INVALID"},
			{"garbage", "Bearer not-a-jwt", "TOKEN_INVALID"},
			{"alg none", "Bearer " + noneHeader + "." + parts[1] + ".", "TOKEN_INVALID"},
			{"alg none via library", "Bearer " + forge(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, header, good), "TOKEN_INVALID"},
			{"another HMAC key", "Bearer " + forge(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-12345"), header, good), "TOKEN_INVALID"},
			{"HS512 with our key", "Bearer " + forge(t, jwt.SigningMethodHS512, secret, header, good), "TOKEN_INVALID"},
			{"EdDSA with its own key", "Bearer " + forge(t, jwt.SigningMethodEdDSA, edKey, header, good), "TOKEN_INVALID"},
			{"tampered payload", "Bearer " + tampered, "TOKEN_INVALID"},
			{"wrong typ", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, map[string]any{"typ": "JWT", "kid": kid}, good), "TOKEN_INVALID"},
			{"no typ", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, map[string]any{"typ": nil, "kid": kid}, good), "TOKEN_INVALID"},
			{"unknown kid", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, map[string]any{"typ": "at+jwt", "kid": "other"}, good), "TOKEN_INVALID"},
			{"wrong iss", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "iss", "evil")), "TOKEN_INVALID"},
			{"no iss", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "iss", nil)), "TOKEN_INVALID"},
			{"wrong aud", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "aud", "another-api")), "TOKEN_INVALID"},
			{"no exp", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "exp", nil)), "TOKEN_INVALID"},
			{"not yet valid", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "nbf", now.Add(time.Minute).Unix())), "TOKEN_INVALID"},
			{"issued in the future", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "iat", now.Add(time.Minute).Unix())), "TOKEN_INVALID"},
			{"no sid", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "sid", nil)), "TOKEN_INVALID"},
			{"unknown role", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "role", "ROOT")), "TOKEN_INVALID"},
			{"expired", "Bearer " + forge(t, jwt.SigningMethodHS256, secret, header, with(good, "exp", now.Add(-time.Minute).Unix())), "TOKEN_EXPIRED"},
			{"expired and signed with another key", "Bearer " + forge(t, jwt.SigningMethodHS256, []byte("another-secret-another-secret-12345"), header, with(good, "exp", now.Add(-time.Minute).Unix())), "TOKEN_INVALID"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := s.send(t, "POST", "/graphql", map[string][]string{
					"Content-Type": {"application/json"}, "Authorization": {tc.authorization},
				}, `{"query":"{ protected }"}`)
				if res.Status != 200 {
					t.Errorf("status = %d, want 200", res.Status)
				}
				res.wantError(t, "UNAUTHENTICATED", tc.reason)
				if res.Errors[0].Path[0] != "protected" {
					t.Errorf("path = %v", res.Errors[0].Path)
				}
			})
		}
	})
}

func TestAccessToken_ExpiresWithTheClock(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		// Within the leeway (5s) past exp the token still works; beyond it, it is expired.
		s.Clock.Advance(15*time.Minute + 4*time.Second)
		if got := string(s.post(t, p.AccessToken, `{ protected }`, nil).Data["protected"]); got != protectedAnswer {
			t.Fatalf("refused within the leeway: %s", got)
		}
		s.Clock.Advance(2 * time.Second)
		s.post(t, p.AccessToken, `{ protected }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_EXPIRED")
	})
}

// A stale or broken token in the header does not stop public fields: a client
// whose access token expired must still be able to log in again.
func TestPublicFields_WorkWithAnInvalidToken(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		p := s.register(t, "alice", "correct horse")
		s.Clock.Advance(time.Hour)
		for _, token := range []string{p.AccessToken, "garbage"} {
			var again authPayload
			s.login(t, token, "alice", "correct horse").field(t, "login", &again)
			res := s.post(t, token, `mutation { register(username: "bob-`+strings.ToLower(token[:4])+`", password: "correct horse") { user { username } } }`, nil)
			if len(res.Errors) != 0 {
				t.Errorf("register with a bad token in the header: %s", res.Raw)
			}
		}
	})
}

func TestAccessToken_Claims(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	tok, _, err := jwt.NewParser().ParseUnverified(p.AccessToken, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Header["typ"] != "at+jwt" || tok.Header["kid"] != testKID(t) || tok.Header["alg"] != "HS256" {
		t.Errorf("header = %v", tok.Header)
	}
	c := tok.Claims.(jwt.MapClaims)
	now := s.Clock.Now().Unix()
	for name, want := range map[string]any{
		"iss": "tollgate", "sub": p.User.ID, "role": "USER", "fresh": true,
		"iat": float64(now), "nbf": float64(now), "exp": float64(now + 900),
	} {
		if c[name] != want {
			t.Errorf("%s = %v, want %v", name, c[name], want)
		}
	}
	if aud, _ := c.GetAudience(); len(aud) != 1 || aud[0] != "tollgate" {
		t.Errorf("aud = %v", aud)
	}
	if c["jti"] == "" || c["sid"] == "" || c["jti"] == nil || c["sid"] == nil {
		t.Errorf("jti/sid missing: %v", c)
	}
}

func jwtHS256() jwt.SigningMethod { return jwt.SigningMethodHS256 }

// HS256 rotation: the previous secret keeps verifying; naming the current
// secret as the previous one as well is harmless.
func TestPreviousSecret_KeepsOldTokensValid(t *testing.T) {
	url := dbtest.URL(t, "sqlite")
	const next = "next-secret-next-secret-next-secret!!"
	old := newTestServer(t, url, nil)
	p := old.register(t, "alice", "correct horse")
	rotated := newTestServer(t, url, map[string]string{"JWT_SECRET": next, "JWT_PREVIOUS_SECRET": testSecret})
	rotated.wantProtected(t, p.AccessToken)
	fresh := rotated.mustLogin(t, "alice", "correct horse")
	if tok, _, _ := jwt.NewParser().ParseUnverified(fresh.AccessToken, jwt.MapClaims{}); tok.Header["kid"] == testKID(t) {
		t.Error("the rotated server signs with the previous secret")
	}
	same := newTestServer(t, url, map[string]string{"JWT_PREVIOUS_SECRET": testSecret})
	same.wantProtected(t, p.AccessToken)
	retired := newTestServer(t, url, map[string]string{"JWT_SECRET": next})
	retired.wantRefused(t, p.AccessToken, "TOKEN_INVALID")
}
