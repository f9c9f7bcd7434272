package api_test

import (
	"strings"
	"testing"
	"time"

	"tollgate/db/dbtest"
)

// nonCanonical returns spellings of token that Go's lenient base64url
// decoder reads as the very same bytes (it skips CR and LF, and ignores the
// unused low bits of the last character), and a few that no decoder takes.
func nonCanonical(t *testing.T, token string) map[string]string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, token[len(token)-1])
	if last < 0 {
		t.Fatalf("%q does not end in base64url", token)
	}
	// 64 bytes take 86 characters: the last carries 2 bits and 4 unused ones.
	flipped := token[:len(token)-1] + string(alphabet[last^1])
	return map[string]string{
		"trailing LF":        token + "\n",
		"trailing CRLF":      token + "\r\n",
		"leading LF":         "\n" + token,
		"CRLF inside":        token[:40] + "\r\n" + token[40:],
		"LF inside":          token[:20] + "\n" + token[20:],
		"unused low bit set": flipped,
		"padding":            token + "==",
		"trailing space":     token + " ",
		"tab inside":         token[:30] + "\t" + token[30:],
		"standard alphabet":  strings.NewReplacer("-", "+", "_", "/").Replace(token),
	}
}

// A client that read its refresh token from a file with a trailing newline
// revoked its own session: the newline decoded away, the MAC was valid, the
// text hashed to no row, and the server took it for reuse of a rotated
// token (a false theft alarm; 3 of 7 spellings did it). Every other spelling
// is now plain REFRESH_TOKEN_INVALID and touches nothing, on both databases.
func TestAttack_NonCanonicalRefreshTokenLeavesTheSessionAlone(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		// One rotation first, so that the session has a retired token too.
		live := s.mustRefresh(t, *reg.RefreshToken)
		token := *live.RefreshToken
		for _, variant := range nonCanonical(t, token) {
			if variant == token {
				continue // a token without - or _ reads the same in both alphabets
			}
			s.refresh(t, variant).wantError(t, "UNAUTHENTICATED", "REFRESH_TOKEN_INVALID")
		}
		// Nothing changed: the session is live, its access token accepted,
		// no row revoked, no warning of theft logged, and the token itself
		// still rotates.
		s.wantProtected(t, live.AccessToken)
		if n := s.count(t, `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL`); n != 0 {
			t.Errorf("%d sessions revoked by a misspelled token", n)
		}
		if strings.Contains(s.Log.String(), "reused") {
			t.Errorf("a misspelled token was logged as theft: %s", s.Log.String())
		}
		next := s.mustRefresh(t, token)
		s.wantProtected(t, next.AccessToken)
	})
}

// An AAL1 session of a user with a verified factor (a phished password,
// without the second factor) could call logout(allSessions: true) and
// revokeSession over and over, signing the owner's two-factor devices out.
// Both now need AAL2; signing out the AAL1 session itself still works.
func TestAttack_PasswordAloneCannotSignTheOwnerOut(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		owner, _ := s.enrolled(t, "alice")
		thief := s.mfaLogin(t, "alice")
		if thief.AAL != "AAL1" || !thief.MFARequired {
			t.Fatalf("the password alone gave %s, mfaRequired %v", thief.AAL, thief.MFARequired)
		}

		s.post(t, thief.AccessToken, `mutation { logout(allSessions: true) }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.post(t, thief.AccessToken, `mutation($id: ID!) { revokeSession(id: $id) }`,
			map[string]any{"id": sid(t, owner.AccessToken)}).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.wantProtected(t, owner.AccessToken)
		if n := s.count(t, `SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL AND id = ?`, sid(t, owner.AccessToken)); n != 0 {
			t.Error("the owner's session was revoked")
		}

		// Its own session, the thief may end.
		if res := s.post(t, thief.AccessToken, `mutation { logout }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout of the AAL1 session: %s", res.Raw)
		}
		s.wantRefused(t, thief.AccessToken, "TOKEN_REVOKED")
		s.wantProtected(t, owner.AccessToken)

		// The owner, at AAL2, may do both.
		other := s.mfaLogin(t, "alice")
		if res := s.post(t, owner.AccessToken, `mutation($id: ID!) { revokeSession(id: $id) }`,
			map[string]any{"id": sid(t, other.AccessToken)}); string(res.Data["revokeSession"]) != "true" {
			t.Fatalf("revokeSession at AAL2: %s", res.Raw)
		}
		if res := s.post(t, owner.AccessToken, `mutation { logout(allSessions: true) }`, nil); string(res.Data["logout"]) != "true" {
			t.Fatalf("logout(allSessions) at AAL2: %s", res.Raw)
		}
		s.wantRefused(t, owner.AccessToken, "TOKEN_REVOKED")
	})
}

// The token that the verifying session held before its first verification
// says mfa: false until it expires, so @auth alone would let it through: the
// check reads the database.
func TestAttack_StaleTokenCannotSignTheOwnerOut(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		reg := s.register(t, "alice", "correct horse")
		e := s.enroll(t, reg.AccessToken)
		owner := s.mustVerifyTotp(t, reg.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now().Add(-30*time.Second)))
		device := s.mfaLogin(t, "alice")
		stepped := s.mustVerifyTotp(t, device.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))

		s.post(t, reg.AccessToken, `mutation { logout(allSessions: true) }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.post(t, reg.AccessToken, `mutation($id: ID!) { revokeSession(id: $id) }`,
			map[string]any{"id": sid(t, stepped.AccessToken)}).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		s.wantProtected(t, owner.AccessToken)
		s.wantProtected(t, stepped.AccessToken)
	})
}
