package api_test

import (
	"context"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"tollgate/auth"
	"tollgate/db"
	"tollgate/db/dbtest"
)

// mfaPayloadFields are the payload fields with the level.
const mfaPayloadFields = payloadFields + ` aal mfaRequired`

type mfaPayload struct {
	authPayload
	AAL         string `json:"aal"`
	MFARequired bool   `json:"mfaRequired"`
}

type enrollment struct {
	Factor struct {
		ID       string `json:"id"`
		Type     string `json:"type"`
		Verified bool   `json:"verified"`
	} `json:"factor"`
	Secret string `json:"secret"`
	URI    string `json:"uri"`
	QRCode string `json:"qrCode"`
}

// code is the TOTP code of secret at t, computed by the library an
// authenticator app would use, at the fake clock's time.
func code(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *testServer) enroll(t *testing.T, token string) enrollment {
	t.Helper()
	var e enrollment
	s.post(t, token, `mutation { enrollTotp(friendlyName: "phone") { factor { id type verified } secret uri qrCode } }`, nil).
		field(t, "enrollTotp", &e)
	return e
}

func (s *testServer) verifyTotp(t *testing.T, token, factorID, code string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($f: ID!, $c: String!) { verifyTotp(factorId: $f, code: $c) { `+mfaPayloadFields+` } }`,
		map[string]any{"f": factorID, "c": code})
}

func (s *testServer) mustVerifyTotp(t *testing.T, token, factorID, code string) mfaPayload {
	t.Helper()
	var p mfaPayload
	s.verifyTotp(t, token, factorID, code).field(t, "verifyTotp", &p)
	return p
}

func (s *testServer) useRecoveryCode(t *testing.T, token, code string) gqlResponse {
	t.Helper()
	return s.post(t, token, `mutation($c: String!) { useRecoveryCode(code: $c) { `+mfaPayloadFields+` } }`, map[string]any{"c": code})
}

func (s *testServer) mfaLogin(t *testing.T, username string) mfaPayload {
	t.Helper()
	var p mfaPayload
	s.post(t, "", `mutation($u: String!, $p: String!) { login(username: $u, password: $p) { `+mfaPayloadFields+` } }`,
		map[string]any{"u": username, "p": "correct horse"}).field(t, "login", &p)
	return p
}

func (s *testServer) recoveryCodes(t *testing.T, token string) []string {
	t.Helper()
	var codes []string
	s.post(t, token, `mutation { generateRecoveryCodes }`, nil).field(t, "generateRecoveryCodes", &codes)
	return codes
}

// enrolled registers username, enrolls a TOTP factor and verifies it with
// the code of the step before the clock's (so that the current step is still
// free), and returns the AAL2 payload and the enrollment.
func (s *testServer) enrolled(t *testing.T, username string) (mfaPayload, enrollment) {
	t.Helper()
	reg := s.register(t, username, "correct horse")
	e := s.enroll(t, reg.AccessToken)
	return s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now().Add(-30*time.Second))), e
}

// claims decodes the payload of a JWT (the signature is the server's business).
func jwtClaims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func wantClaims(t *testing.T, token, aal string, amr []string, mfa, fresh bool) {
	t.Helper()
	c := jwtClaims(t, token)
	if c["aal"] != aal || fmt.Sprint(c["amr"]) != fmt.Sprint(amr) || c["mfa"] != mfa || c["fresh"] != fresh {
		t.Errorf("claims aal=%v amr=%v mfa=%v fresh=%v, want %s %v %v %v", c["aal"], c["amr"], c["mfa"], c["fresh"], aal, amr, mfa, fresh)
	}
}

// The whole flow: enroll, verify, the other sessions signed out, a new
// login at AAL1 with mfaRequired, guarded fields refused until a code.
func TestMFA_WholeFlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		wantClaims(t, reg.AccessToken, "aal1", []string{"pwd"}, false, true)
		laptop := s.mfaLogin(t, "alice")
		if laptop.AAL != "AAL1" || laptop.MFARequired {
			t.Fatalf("before enrolling: aal %s, mfaRequired %v", laptop.AAL, laptop.MFARequired)
		}

		e := s.enroll(t, reg.AccessToken)
		secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
		if err != nil || len(secret) < 20 || strings.Contains(e.Secret, "=") {
			t.Fatalf("secret %q: %d bytes, %v; want at least 20, base32 without padding", e.Secret, len(secret), err)
		}
		if e.Factor.Verified || e.Factor.Type != "TOTP" {
			t.Errorf("new factor %+v", e.Factor)
		}
		for _, part := range []string{"otpauth://totp/Tollgate:alice?", "secret=" + e.Secret, "issuer=Tollgate", "algorithm=SHA1", "digits=6", "period=30"} {
			if !strings.Contains(e.URI, part) {
				t.Errorf("uri %q lacks %q", e.URI, part)
			}
		}
		png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(e.QRCode, "data:image/png;base64,"))
		if !strings.HasPrefix(e.QRCode, "data:image/png;base64,") || err != nil || !strings.HasPrefix(string(png), "\x89PNG") {
			t.Errorf("qrCode is not a PNG data URI: %.40s", e.QRCode)
		}
		// An unverified factor counts for nothing.
		s.wantProtected(t, laptop.AccessToken)

		up := s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		if up.AAL != "AAL2" || up.MFARequired || up.RefreshToken == nil {
			t.Fatalf("after verifyTotp: %+v", up)
		}
		wantClaims(t, up.AccessToken, "aal2", []string{"pwd", "otp"}, true, true)
		if c0, c1 := jwtClaims(t, reg.AccessToken), jwtClaims(t, up.AccessToken); c0["sid"] != c1["sid"] {
			t.Errorf("verifyTotp changed the session: %v -> %v", c0["sid"], c1["sid"])
		}
		s.wantProtected(t, up.AccessToken)
		// The laptop never proved the factor: signed out, token and refresh token.
		s.wantRefused(t, laptop.AccessToken, "TOKEN_REVOKED")
		s.refresh(t, *laptop.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")

		var me struct {
			MFAEnabled bool `json:"mfaEnabled"`
		}
		s.post(t, up.AccessToken, `{ me { mfaEnabled } }`, nil).field(t, "me", &me)
		var factors []struct {
			ID         string  `json:"id"`
			Verified   bool    `json:"verified"`
			Name       *string `json:"friendlyName"`
			LastUsedAt *string `json:"lastUsedAt"`
		}
		s.post(t, up.AccessToken, `{ mfaFactors { id verified friendlyName lastUsedAt } }`, nil).field(t, "mfaFactors", &factors)
		if !me.MFAEnabled || len(factors) != 1 || !factors[0].Verified || factors[0].Name == nil || *factors[0].Name != "phone" || factors[0].LastUsedAt == nil {
			t.Fatalf("me.mfaEnabled %v, factors %+v", me.MFAEnabled, factors)
		}

		// A refresh keeps the level and, as always, is not fresh.
		s.Clock.Advance(time.Minute)
		var r mfaPayload
		s.post(t, "", `mutation($t: String) { refreshToken(token: $t) { `+mfaPayloadFields+` } }`, map[string]any{"t": *up.RefreshToken}).
			field(t, "refreshToken", &r)
		if r.AAL != "AAL2" || r.MFARequired {
			t.Errorf("refreshed: %+v", r)
		}
		wantClaims(t, r.AccessToken, "aal2", []string{"pwd", "otp"}, true, false)

		// A new sign-in: AAL1, mfaRequired, and only the aal: AAL1 fields.
		phone := s.mfaLogin(t, "alice")
		if phone.AAL != "AAL1" || !phone.MFARequired {
			t.Fatalf("login of an enrolled user: aal %s, mfaRequired %v", phone.AAL, phone.MFARequired)
		}
		wantClaims(t, phone.AccessToken, "aal1", []string{"pwd"}, true, true)
		for _, q := range []string{`{ protected }`, `{ sessions { id } }`, `{ notes { id } }`, `mutation { createNote(title: "t", body: "b") { id } }`,
			`mutation { enrollTotp { secret } }`, `mutation { generateRecoveryCodes }`} {
			s.post(t, phone.AccessToken, q, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		}
		s.post(t, phone.AccessToken, `{ me { username } mfaFactors { id } }`, nil).field(t, "me", &struct{}{})
		// Its refresh stays at AAL1 too.
		p2 := s.mustRefresh(t, *phone.RefreshToken)
		s.post(t, p2.AccessToken, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")

		s.Clock.Advance(30 * time.Second)
		phoneUp := s.mustVerifyTotp(t, p2.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		wantClaims(t, phoneUp.AccessToken, "aal2", []string{"pwd", "otp"}, true, true)
		s.wantProtected(t, phoneUp.AccessToken)
		// A second verification revokes nothing: the first device stays in.
		s.wantProtected(t, r.AccessToken)
		if res := s.post(t, p2.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout at AAL1: %s", res.Raw)
		}
	})
}

// A wrong code is BAD_USER_INPUT/INVALID_CODE on the argument code, and
// leaves the session at AAL1.
func TestMFA_WrongCode(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		e := s.enroll(t, reg.AccessToken)
		right := code(t, e.Secret, s.Clock.Now())
		wrong := fmt.Sprintf("%06d", (mustAtoi(t, right)+1)%1000000)
		for _, c := range []string{wrong, "", "12345", "abcdef", right + " "} {
			if got := s.verifyTotp(t, reg.AccessToken, e.Factor.ID, c).wantError(t, "BAD_USER_INPUT", "INVALID_CODE"); got.Extensions["field"] != "code" {
				t.Errorf("code %q: field %v, want code", c, got.Extensions["field"])
			}
			if s.App.Auth.Revocations().Len() != 0 {
				t.Fatal("a wrong code revoked something")
			}
		}
	})
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		t.Fatal(err)
	}
	return n
}

// The codes of the step before and after the clock's are accepted (drift,
// a code typed as it changes); two steps away is refused.
func TestMFA_StepWindow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		e := s.enroll(t, reg.AccessToken)
		step := 30 * time.Second

		// Two steps away, on either side: refused.
		now := s.Clock.Now()
		s.verifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, now.Add(-2*step))).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		s.verifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, now.Add(2*step))).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		// The step before: accepted.
		first := s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, now.Add(-step)))
		// The step after, on a new session: accepted.
		b := s.mfaLogin(t, "alice")
		s.mustVerifyTotp(t, b.AccessToken, e.Factor.ID, code(t, e.Secret, now.Add(step)))
		// The current step is now older than the last accepted one: refused,
		// although it is in the window.
		c := s.mfaLogin(t, "alice")
		s.verifyTotp(t, c.AccessToken, e.Factor.ID, code(t, e.Secret, now)).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		s.wantProtected(t, first.AccessToken)
	})
}

// A code accepted on one session is refused on another (and on the same).
func TestMFA_ReplayOnAnotherSessionIsRefused(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		e := s.enroll(t, reg.AccessToken)
		c := code(t, e.Secret, s.Clock.Now())
		s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, c)
		other := s.mfaLogin(t, "alice")
		s.verifyTotp(t, other.AccessToken, e.Factor.ID, c).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		s.Clock.Advance(20 * time.Second) // still the same step, or the next: the code is still in the window
		s.verifyTotp(t, other.AccessToken, e.Factor.ID, c).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		s.post(t, other.AccessToken, `{ protected }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
	})
}

// Twenty sessions presenting one code at the same moment: exactly one is
// stepped up. The others are refused (INVALID_CODE, or RATE_LIMITED once
// the wrong attempts pass the limit; db's TestAcceptTOTP_ConcurrentOnce races
// twenty without the throttle).
func TestMFA_ConcurrentVerificationSucceedsOnce(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		_, e := s.enrolled(t, "alice")
		tokens := make([]string, 20)
		for i := range tokens {
			tokens[i] = s.mfaLogin(t, "alice").AccessToken
		}
		c := code(t, e.Secret, s.Clock.Now())
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			outcomes = map[string]int{}
		)
		for _, tok := range tokens {
			wg.Go(func() {
				res := s.post(t, tok, `mutation($f: ID!, $c: String!) { verifyTotp(factorId: $f, code: $c) { aal } }`,
					map[string]any{"f": e.Factor.ID, "c": c})
				outcome := "ok"
				if len(res.Errors) > 0 {
					reason, _ := res.Errors[0].Extensions["reason"].(string)
					outcome = fmt.Sprint(res.Errors[0].Extensions["code"], "/", reason)
				}
				mu.Lock()
				outcomes[outcome]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if outcomes["ok"] != 1 || outcomes["ok"]+outcomes["BAD_USER_INPUT/INVALID_CODE"]+outcomes["RATE_LIMITED/"] != 20 {
			t.Fatalf("outcomes %v, want exactly one ok and the rest refused", outcomes)
		}
	})
}

// Five wrong codes (TOTP and recovery alike) in 15 minutes: then
// RATE_LIMITED with retryAfter, even for the right code, until the window ends.
func TestMFA_WrongCodesAreThrottled(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		_, e := s.enrolled(t, "alice")
		a := s.mfaLogin(t, "alice")
		s.Clock.Advance(2 * time.Minute)
		for range 3 {
			s.verifyTotp(t, a.AccessToken, e.Factor.ID, "000000").wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		}
		for range 2 {
			s.useRecoveryCode(t, a.AccessToken, "AAAA-BBBB-CCCC").wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		}
		// Shared by the user's sessions: another one is throttled too.
		b := s.mfaLogin(t, "alice")
		for _, tok := range []string{a.AccessToken, b.AccessToken} {
			got := s.verifyTotp(t, tok, e.Factor.ID, code(t, e.Secret, s.Clock.Now())).wantError(t, "RATE_LIMITED", "")
			// The clock started on a window boundary; 2 minutes have passed.
			if got.Extensions["retryAfter"] != float64(13*60) {
				t.Errorf("retryAfter = %v, want %d", got.Extensions["retryAfter"], 13*60)
			}
		}
		s.useRecoveryCode(t, a.AccessToken, "AAAA-BBBB-CCCC").wantError(t, "RATE_LIMITED", "")
		// Refused attempts are taken back: after the window, the right code passes.
		s.Clock.Advance(13 * time.Minute)
		up := s.mustVerifyTotp(t, a.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		s.wantProtected(t, up.AccessToken)
	})
}

// Recovery codes: 10, shown once, each good for one step-up, and replaced
// as a set; none without a verified factor.
func TestMFA_RecoveryCodes(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		bob := s.register(t, "bob", "correct horse")
		s.post(t, bob.AccessToken, `mutation { generateRecoveryCodes }`, nil).wantError(t, "BAD_USER_INPUT", "MFA_NOT_ENROLLED")

		up, _ := s.enrolled(t, "alice")
		codes := s.recoveryCodes(t, up.AccessToken)
		seen := map[string]bool{}
		for _, c := range codes {
			if !regexp.MustCompile(`^[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}$`).MatchString(c) || seen[c] {
				t.Fatalf("codes %v", codes)
			}
			seen[c] = true
		}
		if len(codes) != 10 {
			t.Fatalf("%d codes, want 10", len(codes))
		}

		a := s.mfaLogin(t, "alice")
		var p mfaPayload
		s.useRecoveryCode(t, a.AccessToken, codes[0]).field(t, "useRecoveryCode", &p)
		if p.AAL != "AAL2" || p.MFARequired {
			t.Fatalf("after a recovery code: %+v", p)
		}
		wantClaims(t, p.AccessToken, "aal2", []string{"pwd", "mfa"}, true, true)
		s.wantProtected(t, p.AccessToken)
		// Single use, even on another session.
		b := s.mfaLogin(t, "alice")
		s.useRecoveryCode(t, b.AccessToken, codes[0]).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		// Typed loosely: any case, without dashes.
		s.useRecoveryCode(t, b.AccessToken, strings.ToLower(strings.ReplaceAll(codes[1], "-", ""))).field(t, "useRecoveryCode", &p)

		// A new set replaces the old one.
		fresh := s.recoveryCodes(t, p.AccessToken)
		c := s.mfaLogin(t, "alice")
		s.useRecoveryCode(t, c.AccessToken, codes[2]).wantError(t, "BAD_USER_INPUT", "INVALID_CODE")
		s.useRecoveryCode(t, c.AccessToken, fresh[0]).field(t, "useRecoveryCode", &p)

		// Only hashes are stored.
		var stored []string
		if err := s.DB.Select(&stored, `SELECT code_hash FROM recovery_codes`); err != nil {
			t.Fatal(err)
		}
		if len(stored) != 10 {
			t.Errorf("%d rows, want the 10 of the new set", len(stored))
		}
		for _, h := range stored {
			for _, c := range append(codes, fresh...) {
				if strings.Contains(strings.ToUpper(h), strings.ReplaceAll(c, "-", "")) {
					t.Fatalf("a recovery code is stored in plaintext")
				}
			}
		}
	})
}

// removeFactor: the user is back to a password alone (AAL1 is enough
// everywhere, no mfaRequired) and the recovery codes are gone.
func TestMFA_RemoveFactorReturnsToAAL1(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		up, e := s.enrolled(t, "alice")
		s.recoveryCodes(t, up.AccessToken)
		// An unverified second factor: removing it changes nothing else.
		second := s.enroll(t, up.AccessToken)

		// Removing needs a fresh token (a refreshed one is not).
		refreshed := s.mustRefresh(t, *up.RefreshToken)
		s.post(t, refreshed.AccessToken, `mutation($id: ID!) { removeFactor(id: $id) }`, map[string]any{"id": e.Factor.ID}).
			wantError(t, "FORBIDDEN", "FRESH_TOKEN_REQUIRED")

		for _, id := range []string{second.Factor.ID, e.Factor.ID} {
			if res := s.post(t, up.AccessToken, `mutation($id: ID!) { removeFactor(id: $id) }`, map[string]any{"id": id}); string(res.Data["removeFactor"]) != "true" {
				t.Fatalf("removeFactor: %s", res.Raw)
			}
		}
		var n int
		if err := s.DB.Get(&n, `SELECT count(*) FROM recovery_codes`); err != nil || n != 0 {
			t.Fatalf("%d recovery codes left (%v), want 0", n, err)
		}
		a := s.mfaLogin(t, "alice")
		if a.AAL != "AAL1" || a.MFARequired {
			t.Fatalf("login after removing the factor: %+v", a)
		}
		wantClaims(t, a.AccessToken, "aal1", []string{"pwd"}, false, true)
		s.wantProtected(t, a.AccessToken)
		var me struct {
			MFAEnabled bool `json:"mfaEnabled"`
		}
		s.post(t, a.AccessToken, `{ me { mfaEnabled } }`, nil).field(t, "me", &me)
		if me.MFAEnabled {
			t.Error("mfaEnabled after removing the only factor")
		}
	})
}

// Another user's factor is NOT_FOUND, exactly like one that does not exist,
// and is left as it was.
func TestMFA_AnotherUsersFactorIsNotFound(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		_, e := s.enrolled(t, "alice")
		bob := s.register(t, "bob", "correct horse")
		c := code(t, e.Secret, s.Clock.Now())
		s.verifyTotp(t, bob.AccessToken, e.Factor.ID, c).wantError(t, "NOT_FOUND", "")
		s.verifyTotp(t, bob.AccessToken, "00000000-0000-4000-8000-000000000000", c).wantError(t, "NOT_FOUND", "")
		s.post(t, bob.AccessToken, `mutation($id: ID!) { removeFactor(id: $id) }`, map[string]any{"id": e.Factor.ID}).wantError(t, "NOT_FOUND", "")
		var factors []struct{ ID string }
		s.post(t, bob.AccessToken, `{ mfaFactors { id } }`, nil).field(t, "mfaFactors", &factors)
		if len(factors) != 0 {
			t.Errorf("bob sees factors %v", factors)
		}
		// Alice's code of this step is still unused: bob's attempt did not consume it.
		a := s.mfaLogin(t, "alice")
		s.mustVerifyTotp(t, a.AccessToken, e.Factor.ID, c)
	})
}

// Once a factor is verified, a password alone can neither enroll another
// factor nor complete the enrollment of one left unverified: whoever knows
// the password would otherwise add their own device and reach AAL2.
func TestMFA_PasswordAloneCannotAddAFactor(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		up, _ := s.enrolled(t, "alice")
		pending := s.enroll(t, up.AccessToken) // at AAL2: allowed, left unverified
		a := s.mfaLogin(t, "alice")
		s.post(t, a.AccessToken, `mutation { enrollTotp { secret } }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.verifyTotp(t, a.AccessToken, pending.Factor.ID, code(t, pending.Secret, s.Clock.Now())).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
	})
}

// The one token whose mfa claim is stale, the previous access token of the
// session that verified the first factor, still opens AAL1-level fields until
// it expires (README, "Second factor"), but cannot manage factors: those
// mutations check the database.
func TestMFA_StaleTokenOfTheVerifyingSessionCannotManageFactors(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		e := s.enroll(t, reg.AccessToken)
		pending := s.enroll(t, reg.AccessToken)
		s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		wantClaims(t, reg.AccessToken, "aal1", []string{"pwd"}, false, true)
		s.wantProtected(t, reg.AccessToken)
		for _, q := range []string{`mutation { enrollTotp { secret } }`, `mutation { generateRecoveryCodes }`,
			`mutation { removeFactor(id: "` + e.Factor.ID + `") }`} {
			s.post(t, reg.AccessToken, q, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		}
		s.verifyTotp(t, reg.AccessToken, pending.Factor.ID, code(t, pending.Secret, s.Clock.Now())).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
	})
}

// At most 10 factors per user.
func TestMFA_FactorLimit(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, db.SQLite), nil)
	reg := s.register(t, "alice", "correct horse")
	for range auth.MaxFactors {
		s.enroll(t, reg.AccessToken)
	}
	s.post(t, reg.AccessToken, `mutation { enrollTotp { secret } }`, nil).wantError(t, "BAD_USER_INPUT", "LIMIT_REACHED")
}

// An AAL1 token of an enrolled user is refused a subscription with an
// error message FORBIDDEN/MFA_REQUIRED; an AAL2 token subscribes.
func TestMFA_SubscriptionNeedsAAL2(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		up, _ := s.enrolled(t, "alice")
		a := s.mfaLogin(t, "alice")
		ws := s.connect(t, a.AccessToken)
		ws.subscribe("1", noteCreated)
		m := ws.next(5 * time.Second)
		if m.Type != "error" || m.ID != "1" {
			t.Fatalf("want an error message, got %s %s", m.Type, m.Payload)
		}
		var errs []gqlError
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 {
			t.Fatalf("payload %s: %v", m.Payload, err)
		}
		if errs[0].Extensions["code"] != "FORBIDDEN" || errs[0].Extensions["reason"] != "MFA_REQUIRED" {
			t.Errorf("error = %+v", errs[0])
		}

		ok := s.connect(t, up.AccessToken)
		ok.subscribe("1", noteCreated)
		waitSubscribed(t, s, 1)
		s.createNote(t, up.AccessToken, "after the code", "")
		ok.wantNote("after the code")
	})
}

// The refresh token a session had before its step-up never yields a token
// after it: inside the grace window it is refused (the session lives on),
// after it, it counts as reuse.
func TestMFA_RefreshTokenOfBeforeTheStepUpIsRetired(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		_, e := s.enrolled(t, "alice")
		a := s.mfaLogin(t, "alice")
		s.Clock.Advance(30 * time.Second)
		up := s.mustVerifyTotp(t, a.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		s.refresh(t, *a.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantProtected(t, up.AccessToken)
		next := s.mustRefresh(t, *up.RefreshToken)
		s.wantProtected(t, next.AccessToken)
		s.Clock.Advance(time.Minute)
		s.refresh(t, *a.RefreshToken).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		s.wantRefused(t, next.AccessToken, "TOKEN_REVOKED")
	})
}

// The TOTP secret appears in the enrollment's response and nowhere else: not
// in another response, not in the log, not in any database row (it is
// sealed, and the ciphertext opens only for its own factor).
func TestMFA_SecretNeverLeaks(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		res := s.post(t, reg.AccessToken, `mutation { enrollTotp { factor { id } secret uri qrCode } }`, nil)
		var e enrollment
		res.field(t, "enrollTotp", &e)
		raw, _ := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(e.Secret)
		var responses []string
		keep := func(r gqlResponse) gqlResponse { responses = append(responses, r.Raw); return r }
		keep(s.verifyTotp(t, reg.AccessToken, e.Factor.ID, "000000"))
		var up mfaPayload
		keep(s.verifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))).field(t, "verifyTotp", &up)
		keep(s.post(t, up.AccessToken, `{ me { username mfaEnabled } mfaFactors { id type friendlyName verified createdAt lastUsedAt } sessions { id } }`, nil))
		keep(s.post(t, up.AccessToken, `mutation { generateRecoveryCodes }`, nil))
		second := s.enroll(t, up.AccessToken)
		keep(s.refresh(t, *up.RefreshToken))

		for _, r := range responses {
			if strings.Contains(r, e.Secret) {
				t.Errorf("a response holds the secret: %s", r)
			}
		}
		if strings.Contains(s.Log.String(), e.Secret) {
			t.Errorf("the log holds the secret")
		}
		// Every column of every factor row, as text.
		rows, err := s.DB.Queryx(`SELECT * FROM mfa_factors`)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			row := map[string]any{}
			if err := rows.MapScan(row); err != nil {
				t.Fatal(err)
			}
			n++
			for col, v := range row {
				text := fmt.Sprintf("%s", v)
				if strings.Contains(text, e.Secret) || strings.Contains(text, second.Secret) || strings.Contains(text, string(raw)) {
					t.Errorf("column %s holds the secret in plaintext", col)
				}
			}
		}
		rows.Close()
		if n != 2 {
			t.Fatalf("%d factor rows, want 2", n)
		}
		if strings.HasPrefix(url, "sqlite:") {
			// The whole database file, write-ahead log included.
			for _, suffix := range []string{"", "-wal"} {
				b, err := os.ReadFile(strings.TrimPrefix(url, "sqlite:") + suffix)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if strings.Contains(string(b), e.Secret) || strings.Contains(string(b), string(raw)) {
					t.Errorf("the database file%s holds the secret", suffix)
				}
			}
		}

		// A ciphertext moved to another factor's row does not open there.
		if _, err := s.DB.Exec(s.DB.Rebind(`UPDATE mfa_factors SET secret = (SELECT secret FROM mfa_factors WHERE id = ?) WHERE id = ?`), e.Factor.ID, second.Factor.ID); err != nil {
			t.Fatal(err)
		}
		s.Clock.Advance(30 * time.Second)
		s.verifyTotp(t, up.AccessToken, second.Factor.ID, code(t, e.Secret, s.Clock.Now())).wantError(t, "INTERNAL_SERVER_ERROR", "")
		if strings.Contains(s.Log.String(), e.Secret) {
			t.Errorf("the log holds the secret")
		}
	})
}

// MFA_ENCRYPTION_KEY seals the secrets under a key of their own: a server
// with another key (or none) cannot read them, one with the same key can,
// whatever its signing key.
func TestMFA_EncryptionKey(t *testing.T) {
	url := dbtest.URL(t, db.SQLite)
	key := "an-mfa-encryption-key-of-32-bytes-or-more"
	a := newTestServer(t, url, map[string]string{"MFA_ENCRYPTION_KEY": key})
	_, e := a.enrolled(t, "alice")

	other := newTestServer(t, url, map[string]string{"JWT_SECRET": "another-signing-secret-another-signing!", "MFA_ENCRYPTION_KEY": key})
	other.Clock.Advance(30 * time.Second)
	p := other.mfaLogin(t, "alice")
	other.mustVerifyTotp(t, p.AccessToken, e.Factor.ID, code(t, e.Secret, other.Clock.Now()))

	without := newTestServer(t, url, nil)
	without.Clock.Advance(60 * time.Second)
	q := without.mfaLogin(t, "alice")
	without.verifyTotp(t, q.AccessToken, e.Factor.ID, code(t, e.Secret, without.Clock.Now())).wantError(t, "INTERNAL_SERVER_ERROR", "")
}

// ResetMFA, the operator's remedy for a lost device: factors and recovery
// codes gone, every session signed out, the next login needs no code.
func TestResetMFA(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		up, _ := s.enrolled(t, "alice")
		s.recoveryCodes(t, up.AccessToken)
		a := s.mfaLogin(t, "alice")
		bob := s.register(t, "bob", "correct horse")

		if err := s.App.Auth.ResetMFA(context.Background(), "Alice"); err != nil {
			t.Fatal(err)
		}
		s.wantRefused(t, up.AccessToken, "TOKEN_REVOKED")
		s.wantRefused(t, a.AccessToken, "TOKEN_REVOKED")
		s.wantProtected(t, bob.AccessToken)
		var n int
		if err := s.DB.Get(&n, `SELECT (SELECT count(*) FROM mfa_factors) + (SELECT count(*) FROM recovery_codes)`); err != nil || n != 0 {
			t.Fatalf("%d rows left (%v)", n, err)
		}
		p := s.mfaLogin(t, "alice")
		if p.MFARequired || p.AAL != "AAL1" {
			t.Fatalf("login after the reset: %+v", p)
		}
		s.wantProtected(t, p.AccessToken)
		if err := s.App.Auth.ResetMFA(context.Background(), "nobody"); !errors.Is(err, auth.ErrNotFound) {
			t.Errorf("unknown user: %v, want NOT_FOUND", err)
		}
	})
}
