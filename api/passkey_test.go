package api_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// The origin the tests' server accepts: the development default for ADDR :8080.
const passkeyOrigin = "http://localhost:8080"

func (s *testServer) registrationOptions(t *testing.T, token string) json.RawMessage {
	t.Helper()
	var o json.RawMessage
	s.post(t, token, `{ passkeyRegistrationOptions }`, nil).field(t, "passkeyRegistrationOptions", &o)
	return o
}

func (s *testServer) registerPasskey(t *testing.T, token string, response map[string]any) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($r: JSON!) { registerPasskey(response: $r, friendlyName: "laptop") { id type friendlyName verified } }`,
		map[string]any{"r": response})
}

// addPasskey registers a new key of a for the holder of token.
func (s *testServer) addPasskey(t *testing.T, token string, a *softAuthenticator) string {
	t.Helper()
	var f struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Verified bool   `json:"verified"`
	}
	s.registerPasskey(t, token, a.create(t, s.registrationOptions(t, token))).field(t, "registerPasskey", &f)
	if f.Type != "WEBAUTHN" || !f.Verified {
		t.Fatalf("registered factor: %+v", f)
	}
	return f.ID
}

func (s *testServer) loginOptions(t *testing.T, username *string) json.RawMessage {
	t.Helper()
	var o json.RawMessage
	s.post(t, "", `mutation($u: String) { passkeyLoginOptions(username: $u) }`, map[string]any{"u": username}).field(t, "passkeyLoginOptions", &o)
	return o
}

func (s *testServer) loginWithPasskey(t *testing.T, response any) gqlResponse {
	t.Helper()
	return s.post(t, "", `mutation($r: JSON!) { loginWithPasskey(response: $r) { `+mfaPayloadFields+` } }`, map[string]any{"r": response})
}

func (s *testServer) verifyPasskey(t *testing.T, token string, response any) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($r: JSON!) { verifyPasskey(response: $r) { `+mfaPayloadFields+` } }`, map[string]any{"r": response})
}

// The whole flow on both databases: a password user registers a passkey
// (the options as the contract and the browsers want them), the other
// sessions are signed out, a usernameless passkey sign-in is AAL2 with
// amr ["hwk","user"], a password sign-in steps up with verifyPasskey, and
// after removeFactor the passkey signs nobody in.
func TestPasskey_WholeFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		other := s.login(t, "", "alice", "correct horse")
		var otherSession authPayload
		other.field(t, "login", &otherSession)

		opts := s.registrationOptions(t, reg.AccessToken)
		var o map[string]any
		if err := json.Unmarshal(opts, &o); err != nil {
			t.Fatal(err)
		}
		sel, _ := o["authenticatorSelection"].(map[string]any)
		rp, _ := o["rp"].(map[string]any)
		challenge, _ := o["challenge"].(string)
		if o["publicKey"] != nil || rp["id"] != "localhost" || sel["residentKey"] != "required" || sel["userVerification"] != "required" ||
			len(challenge) < 22 || !strings.Contains(string(opts), `"pubKeyCredParams"`) {
			t.Fatalf("creation options: %s", opts)
		}

		a := newSoftAuthenticator(passkeyOrigin)
		factorID := s.addPasskey(t, reg.AccessToken, a)
		// The first factor signs out the other sessions, not this one.
		s.post(t, otherSession.AccessToken, `{ me { id } }`, nil).wantError(t, "UNAUTHENTICATED", "TOKEN_REVOKED")
		var me struct {
			MFAEnabled bool `json:"mfaEnabled"`
		}
		s.post(t, reg.AccessToken, `{ me { mfaEnabled } }`, nil).field(t, "me", &me)
		if !me.MFAEnabled {
			t.Fatal("mfaEnabled is false after a passkey")
		}
		var factors []struct {
			ID, Type     string
			FriendlyName string
		}
		s.post(t, reg.AccessToken, `{ mfaFactors { id type friendlyName } }`, nil).field(t, "mfaFactors", &factors)
		if len(factors) != 1 || factors[0].Type != "WEBAUTHN" || factors[0].FriendlyName != "laptop" {
			t.Fatalf("mfaFactors: %+v", factors)
		}

		// Usernameless sign-in.
		lo := s.loginOptions(t, nil)
		if strings.Contains(string(lo), "allowCredentials") || !strings.Contains(string(lo), `"userVerification":"required"`) {
			t.Fatalf("discoverable options: %s", lo)
		}
		var p mfaPayload
		s.loginWithPasskey(t, a.get(t, lo, nil)).field(t, "loginWithPasskey", &p)
		if p.AAL != "AAL2" || p.MFARequired || p.User.Username != "alice" {
			t.Fatalf("passkey sign-in: %+v", p)
		}
		wantClaims(t, p.AccessToken, "aal2", []string{"hwk", "user"}, true, true)
		var prot string
		s.post(t, p.AccessToken, `{ protected }`, nil).field(t, "protected", &prot)
		// A refresh keeps the level.
		var r mfaPayload
		s.post(t, "", `mutation($t: String) { refreshToken(token: $t) { `+mfaPayloadFields+` } }`, map[string]any{"t": *p.RefreshToken}).field(t, "refreshToken", &r)
		wantClaims(t, r.AccessToken, "aal2", []string{"hwk", "user"}, true, false)

		// Password, then the passkey as the second factor.
		var pw mfaPayload
		s.post(t, "", `mutation { login(username: "alice", password: "correct horse") { `+mfaPayloadFields+` } }`, nil).field(t, "login", &pw)
		if !pw.MFARequired || pw.AAL != "AAL1" {
			t.Fatalf("password login of an enrolled user: %+v", pw)
		}
		s.post(t, pw.AccessToken, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		name := "alice"
		var up mfaPayload
		s.verifyPasskey(t, pw.AccessToken, a.get(t, s.loginOptions(t, &name), nil)).field(t, "verifyPasskey", &up)
		if up.AAL != "AAL2" {
			t.Fatalf("verifyPasskey: %+v", up)
		}
		wantClaims(t, up.AccessToken, "aal2", []string{"pwd", "hwk"}, true, true)
		if c0, c1 := jwtClaims(t, pw.AccessToken), jwtClaims(t, up.AccessToken); c0["sid"] != c1["sid"] {
			t.Errorf("verifyPasskey changed the session: %v → %v", c0["sid"], c1["sid"])
		}
		var last struct {
			LastUsedAt *string `json:"lastUsedAt"`
		}
		var fs []json.RawMessage
		s.post(t, up.AccessToken, `{ mfaFactors { lastUsedAt } }`, nil).field(t, "mfaFactors", &fs)
		json.Unmarshal(fs[0], &last)
		if last.LastUsedAt == nil {
			t.Error("lastUsedAt not set after a use")
		}

		// Removed: the passkey signs nobody in, and the user is back to a password.
		var ok bool
		s.post(t, up.AccessToken, `mutation($id: ID!) { removeFactor(id: $id) }`, map[string]any{"id": factorID}).field(t, "removeFactor", &ok)
		s.loginWithPasskey(t, a.get(t, s.loginOptions(t, nil), nil)).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		if n := s.count(t, `SELECT count(*) FROM webauthn_credentials`); n != 0 {
			t.Errorf("%d credentials left after removeFactor", n)
		}
	})
}

// Every bad input of the contract, on both databases: each is refused with
// its error, writes no session and no credential change, says in the log
// which check failed (and nothing of it in the response), and counts toward
// the login throttles.
func TestPasskey_BadInputs(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"LOGIN_FAILURES_PER_IP": "1000", "LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "1000"})
		alice := s.register(t, "alice", "correct horse")
		a := newSoftAuthenticator(passkeyOrigin)
		s.addPasskey(t, alice.AccessToken, a)
		bob := s.register(t, "bob", "correct horse")
		b := newSoftAuthenticator(passkeyOrigin)
		s.addPasskey(t, bob.AccessToken, b)
		aliceName, bobName := "alice", "bob"
		// Adding factors now needs AAL2: a passkey sign-in gives it.
		var alice2 mfaPayload
		s.loginWithPasskey(t, a.get(t, s.loginOptions(t, nil), nil)).field(t, "loginWithPasskey", &alice2)
		var bob2 mfaPayload
		s.loginWithPasskey(t, b.get(t, s.loginOptions(t, &bobName), nil)).field(t, "loginWithPasskey", &bob2)

		failures := 0
		refusedLogin := func(t *testing.T, response any, check string) {
			t.Helper()
			sessions := s.count(t, `SELECT count(*) FROM sessions`)
			counts := s.count(t, `SELECT sum(sign_count) FROM webauthn_credentials`)
			r := s.loginWithPasskey(t, response)
			e := r.wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
			if e.Message != "Invalid username or password." {
				t.Errorf("message %q tells more than a wrong password would", e.Message)
			}
			failures++
			if n := s.count(t, `SELECT count(*) FROM sessions`); n != sessions {
				t.Errorf("%s: %d sessions after a refusal, %d before", check, n, sessions)
			}
			if n := s.count(t, `SELECT sum(sign_count) FROM webauthn_credentials`); n != counts {
				t.Errorf("%s: sign counts changed by a refusal", check)
			}
			if !strings.Contains(s.Log.String(), `"check":"`+check+`"`) {
				t.Errorf("the log does not name the check %s", check)
			}
		}
		t.Run("another challenge", func(t *testing.T) {
			opts := s.loginOptions(t, nil)
			resp := a.get(t, opts, nil)
			never := a.assert(t, a.keys[0], b64url.EncodeToString([]byte("a challenge never issued, 32 by")), a.keys[0].count+1)
			refusedLogin(t, never, "challenge_unknown_or_used")
			// A registration challenge is no login challenge.
			a.keys[0].count++
			refusedLogin(t, a.assert(t, a.keys[0], challengeOf(t, s.registrationOptions(t, alice2.AccessToken)), a.keys[0].count), "challenge_of_another_ceremony")
			// The answer to one challenge, presented for another one issued: refused.
			other := s.loginOptions(t, nil)
			resp["response"].(map[string]any)["clientDataJSON"] = b64url.EncodeToString(a.clientData(t, "webauthn.get", challengeOf(t, other)))
			refusedLogin(t, resp, "assertion_invalid")
		})
		t.Run("replayed response", func(t *testing.T) {
			resp := a.get(t, s.loginOptions(t, nil), nil)
			var p mfaPayload
			s.loginWithPasskey(t, resp).field(t, "loginWithPasskey", &p)
			refusedLogin(t, resp, "challenge_unknown_or_used")
		})
		t.Run("wrong origin", func(t *testing.T) {
			evil := *a
			evil.origin = "http://localhost:8081"
			refusedLogin(t, evil.get(t, s.loginOptions(t, nil), a.keys[0]), "assertion_invalid")
		})
		t.Run("wrong RP ID hash", func(t *testing.T) {
			evil := *a
			evil.rpIDHashOf = "evil.example"
			refusedLogin(t, evil.get(t, s.loginOptions(t, nil), a.keys[0]), "assertion_invalid")
		})
		t.Run("user verification absent", func(t *testing.T) {
			noUV := *a
			noUV.noUV = true
			refusedLogin(t, noUV.get(t, s.loginOptions(t, nil), a.keys[0]), "assertion_invalid")
		})
		t.Run("credential of another user", func(t *testing.T) {
			// Options for bob, answered with alice's key.
			refusedLogin(t, a.get(t, s.loginOptions(t, &bobName), a.keys[0]), "credential_of_another_user")
			// verifyPasskey of bob's session with alice's key.
			var pw mfaPayload
			s.post(t, "", `mutation { login(username: "bob", password: "correct horse") { `+mfaPayloadFields+` } }`, nil).field(t, "login", &pw)
			s.verifyPasskey(t, pw.AccessToken, a.get(t, s.loginOptions(t, &aliceName), nil)).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
			if !strings.Contains(s.Log.String(), `"op":"verifyPasskey","check":"credential_of_another_user"`) {
				t.Error("verifyPasskey with another user's key: the log does not say so")
			}
			s.post(t, pw.AccessToken, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		})
		t.Run("unknown credential id", func(t *testing.T) {
			stranger := newSoftAuthenticator(passkeyOrigin)
			stranger.mint(t, "localhost", []byte(alice.User.ID)) // never registered
			refusedLogin(t, stranger.get(t, s.loginOptions(t, nil), nil), "credential_unknown")
		})
		t.Run("malformed response", func(t *testing.T) {
			refusedLogin(t, map[string]any{"id": "x", "type": "public-key", "response": map[string]any{"clientDataJSON": "!!"}}, "response_malformed")
		})
		t.Run("malformed or oversized JSON value", func(t *testing.T) {
			for name, v := range map[string]any{
				"not an object": "{}",
				"an array":      []any{1},
				"oversized":     map[string]any{"id": strings.Repeat("A", 70_000)},
				"too deep":      deep(12),
				"NUL":           map[string]any{"id": "a\x00b"},
			} {
				r := s.loginWithPasskey(t, v)
				e := r.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
				if e.Extensions["field"] != "response" {
					t.Errorf("%s: field %v, want response", name, e.Extensions["field"])
				}
			}
			// Never reached the resolver: no check logged for them.
		})
		t.Run("sign count going backwards", func(t *testing.T) {
			k := a.keys[0]
			stored := uint32(s.count(t, `SELECT sign_count FROM webauthn_credentials WHERE credential_id = ?`, b64url.EncodeToString(k.id)))
			for _, c := range []uint32{stored, stored - 1} {
				refusedLogin(t, a.assert(t, k, challengeOf(t, s.loginOptions(t, nil)), c), "sign_count_not_advanced")
			}
			if !strings.Contains(s.Log.String(), `"level":"WARN","msg":"passkey refused","op":"loginWithPasskey","check":"sign_count_not_advanced"`) {
				t.Errorf("a counter going backwards is not logged as a possible clone: %s", s.Log.String())
			}
			// The key itself still works with a counter above the stored one.
			var p mfaPayload
			s.loginWithPasskey(t, a.assert(t, k, challengeOf(t, s.loginOptions(t, nil)), stored+1)).field(t, "loginWithPasskey", &p)
			k.count = stored + 1
		})
		t.Run("credential registered twice", func(t *testing.T) {
			before := s.count(t, `SELECT count(*) FROM mfa_factors`)
			// bob registers alice's key.
			r := s.registerPasskey(t, bob2.AccessToken, a.register(t, a.keys[0], challengeOf(t, s.registrationOptions(t, bob2.AccessToken))))
			if e := r.wantError(t, "BAD_USER_INPUT", "INVALID_INPUT"); e.Extensions["field"] != "response" {
				t.Errorf("field %v", e.Extensions["field"])
			}
			if n := s.count(t, `SELECT count(*) FROM mfa_factors`); n != before {
				t.Errorf("half-written: %d factors, %d before", n, before)
			}
		})
		t.Run("expired challenge", func(t *testing.T) {
			opts := s.loginOptions(t, nil)
			s.Clock.Advance(5*time.Minute + time.Second)
			refusedLogin(t, a.get(t, opts, nil), "challenge_expired")
		})
		t.Run("registration bad inputs", func(t *testing.T) {
			// Another session's challenge, a wrong origin, no user verification.
			other := s.register(t, "carol", "correct horse")
			c := newSoftAuthenticator(passkeyOrigin)
			s.registerPasskey(t, other.AccessToken, c.create(t, s.registrationOptions(t, alice2.AccessToken))).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
			evil := newSoftAuthenticator("https://evil.example")
			s.registerPasskey(t, other.AccessToken, evil.create(t, s.registrationOptions(t, other.AccessToken))).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
			noUV := newSoftAuthenticator(passkeyOrigin)
			noUV.noUV = true
			s.registerPasskey(t, other.AccessToken, noUV.create(t, s.registrationOptions(t, other.AccessToken))).wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
			if n := s.count(t, `SELECT count(*) FROM mfa_factors WHERE user_id = ?`, other.User.ID); n != 0 {
				t.Errorf("carol has %d factors after three refused registrations", n)
			}
		})

		// Every refused sign-in counted toward the address's failed logins.
		if hits := s.count(t, `SELECT coalesce(sum(hits), 0) FROM rate_limits WHERE bucket = 'login-ip:127.0.0.1'`); hits < failures {
			t.Errorf("login-ip bucket holds %d failures, want at least the %d refused passkey sign-ins", hits, failures)
		}
		// Once the credential named a user, the failure counted for that
		// (user, address) too, as a wrong password does.
		if hits := s.count(t, `SELECT coalesce(sum(hits), 0) FROM rate_limits WHERE bucket LIKE 'login-user-ip:%'`); hits == 0 {
			t.Error("no per-(user, address) failure counted for refused passkey sign-ins of known users")
		}
	})
}

// Failed passkey sign-ins hit the same limit as failed passwords: past
// LOGIN_FAILURES_PER_IP the address is RATE_LIMITED, even with a good passkey.
func TestPasskey_FailuresAreThrottled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"LOGIN_FAILURES_PER_IP": "3"})
		alice := s.register(t, "alice", "correct horse")
		a := newSoftAuthenticator(passkeyOrigin)
		s.addPasskey(t, alice.AccessToken, a)
		stranger := newSoftAuthenticator(passkeyOrigin)
		stranger.mint(t, "localhost", []byte(alice.User.ID))
		for range 3 {
			s.loginWithPasskey(t, stranger.get(t, s.loginOptions(t, nil), nil)).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		}
		r := s.loginWithPasskey(t, a.get(t, s.loginOptions(t, nil), nil))
		if e := r.wantError(t, "RATE_LIMITED", ""); e.Extensions["retryAfter"] == nil {
			t.Errorf("no retryAfter: %s", r.Raw)
		}
		// A password login from the address is refused too: one budget.
		s.login(t, "", "alice", "correct horse").wantError(t, "RATE_LIMITED", "")
	})
}

// A name without a passkey, or without an account, gets options of the
// same shape as a user with one passkey, the same every time: the options
// tell nobody who has an account.
func TestPasskey_LoginOptionsDoNotEnumerate(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		s.addPasskey(t, alice.AccessToken, newSoftAuthenticator(passkeyOrigin))
		s.register(t, "bob", "correct horse")
		shape := func(name string) (int, string) {
			var o struct {
				Allow []struct {
					ID         string   `json:"id"`
					Transports []string `json:"transports"`
				} `json:"allowCredentials"`
			}
			json.Unmarshal(s.loginOptions(t, &name), &o)
			if len(o.Allow) == 0 {
				return 0, ""
			}
			return len(o.Allow), fmt.Sprint(len(o.Allow[0].ID), o.Allow[0].Transports)
		}
		na, sa := shape("alice")
		for _, name := range []string{"bob", "nobody-at-all"} {
			n, sh := shape(name)
			if n != na || sh != sa {
				t.Errorf("%s: %d credentials %s; alice: %d %s", name, n, sh, na, sa)
			}
			var o1, o2 struct {
				Allow []struct{ ID string } `json:"allowCredentials"`
			}
			json.Unmarshal(s.loginOptions(t, &name), &o1)
			json.Unmarshal(s.loginOptions(t, &name), &o2)
			if o1.Allow[0].ID != o2.Allow[0].ID {
				t.Errorf("%s: the decoy changes between calls", name)
			}
		}
	})
}

// A password alone never adds a passkey once a factor is verified.
func TestPasskey_PasswordAloneCannotAddAPasskey(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		s.addPasskey(t, alice.AccessToken, newSoftAuthenticator(passkeyOrigin))
		var pw mfaPayload
		s.post(t, "", `mutation { login(username: "alice", password: "correct horse") { `+mfaPayloadFields+` } }`, nil).field(t, "login", &pw)
		s.post(t, pw.AccessToken, `{ passkeyRegistrationOptions }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
	})
}

func challengeOf(t *testing.T, options json.RawMessage) string {
	t.Helper()
	var o struct{ Challenge string }
	if err := json.Unmarshal(options, &o); err != nil || o.Challenge == "" {
		t.Fatalf("no challenge in %s", options)
	}
	return o.Challenge
}

func deep(n int) any {
	v := any(map[string]any{})
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

// Two instances on one PostgreSQL database: a ceremony begun on one is
// finished on the other (the challenge is in the database), a response
// replayed on the first is refused, and the first passkey's sign-out of the
// other sessions reaches the other instance.
func TestPasskey_AnotherInstanceFinishesTheCeremony(t *testing.T) {
	url := dbtest.URL(t, "postgres")
	a := newTestServer(t, url, nil)
	b := newTestServer(t, url, nil)
	reg := a.register(t, "alice", "correct horse")
	other := b.mustLogin(t, "alice", "correct horse")
	auth := newSoftAuthenticator(passkeyOrigin)
	var f struct{ ID string }
	b.registerPasskey(t, reg.AccessToken, auth.create(t, a.registrationOptions(t, reg.AccessToken))).field(t, "registerPasskey", &f)
	waitRefused(t, a, other.AccessToken, time.Second)

	response := auth.get(t, b.loginOptions(t, nil), nil)
	var p mfaPayload
	a.loginWithPasskey(t, response).field(t, "loginWithPasskey", &p)
	if p.AAL != "AAL2" {
		t.Fatalf("sign-in on the other instance: %+v", p)
	}
	b.loginWithPasskey(t, response).wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
}

// Asking for options stores a challenge each time: login options are
// limited per address and registration options per user, with the limit of
// login attempts, so that the table cannot be filled.
func TestPasskey_OptionsAreThrottled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, map[string]string{"LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "3"})
		alice := s.register(t, "alice", "correct horse")
		for range 3 {
			s.loginOptions(t, nil)
			s.registrationOptions(t, alice.AccessToken)
		}
		s.post(t, "", `mutation { passkeyLoginOptions }`, nil).wantError(t, "RATE_LIMITED", "")
		s.post(t, alice.AccessToken, `{ passkeyRegistrationOptions }`, nil).wantError(t, "RATE_LIMITED", "")
		if n := s.count(t, `SELECT count(*) FROM webauthn_challenges`); n != 6 {
			t.Errorf("%d challenges stored, want the 6 allowed", n)
		}
	})
}

// A key that never counts (its counter always 0, as synced passkeys) signs
// in again and again: only a key that counts can go backwards.
func TestPasskey_KeyThatDoesNotCount(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		a := newSoftAuthenticator(passkeyOrigin)
		a.noCount = true
		s.addPasskey(t, alice.AccessToken, a)
		for range 3 {
			var p mfaPayload
			s.loginWithPasskey(t, a.get(t, s.loginOptions(t, nil), nil)).field(t, "loginWithPasskey", &p)
		}
		if n := s.count(t, `SELECT sign_count FROM webauthn_credentials`); n != 0 {
			t.Errorf("sign_count %d, want 0", n)
		}
	})
}
