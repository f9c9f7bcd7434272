package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"time"

	"github.com/google/uuid"

	"tollgate/db"
)

// A refresh token names its session: base64url(session id (16 bytes) ||
// 256 random bits || a 128-bit MAC of both under a key derived from the
// signing key). Only its SHA-256 is stored, as before.
//
// Naming the session is what lets the database forget a session's retired
// tokens once their grace window has closed: a token that is no longer
// stored but carries a valid MAC for a live session can only be one this
// server issued to that session and since retired, so presenting it is
// reuse, and the session is revoked, however many rotations ago it was
// retired. Without the MAC anyone who learned a session id (it is in every
// access token) could sign its owner out by presenting made-up tokens; with
// it, a made-up token is simply invalid.
const (
	refreshSessionBytes = 16
	refreshRandomBytes  = 32
	refreshMACBytes     = 16
	refreshTokenBytes   = refreshSessionBytes + refreshRandomBytes + refreshMACBytes
)

// newRefreshToken returns a new refresh token of session sid and the row that
// stores its hash. Each rotation extends the session by the refresh TTL.
func (s *Service) newRefreshToken(now time.Time, sid string) (db.RefreshToken, string) {
	raw := make([]byte, refreshTokenBytes)
	id := uuid.MustParse(sid) // ours: always a UUID
	copy(raw, id[:])
	rand.Read(raw[refreshSessionBytes : refreshSessionBytes+refreshRandomBytes])
	copy(raw[refreshSessionBytes+refreshRandomBytes:], s.refreshMAC(raw[:refreshSessionBytes+refreshRandomBytes]))
	token := strictBase64.EncodeToString(raw)
	return db.RefreshToken{Hash: hashRefreshToken(token), SessionID: sid, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}, token
}

// strictBase64 decodes the one spelling newRefreshToken writes: unpadded
// base64url with the unused low bits of the last character zero. Go's
// decoders otherwise ignore those low bits, and skip CR and LF anywhere in
// the input (Strict too), so "token\n", "tok\r\nen" or a last character
// one bit off decode to the very bytes of a real token and carry its valid
// MAC, while their text hashes to no stored row: taken for a retired token,
// they revoked their own session (a client reading its token from a file
// signed itself out and raised a false theft alarm).
var strictBase64 = base64.RawURLEncoding.Strict()

// canonicalRefreshToken reports whether token is spelled exactly as this
// server writes refresh tokens: strictly decoded, with no byte skipped, so
// that it encodes back to itself. Only such a token is looked up: one token
// has exactly one spelling, one hash and one row.
func canonicalRefreshToken(token string) bool {
	if strings.ContainsAny(token, "\r\n") {
		return false
	}
	raw, err := strictBase64.DecodeString(token)
	return err == nil && strictBase64.EncodeToString(raw) == token
}

// refreshSession returns the session a refresh token was issued to, if its
// MAC shows this server issued it ("" otherwise: a token of the earlier,
// unnamed form, or a made-up one). token is canonical (canonicalRefreshToken).
func (s *Service) refreshSession(token string) string {
	raw, err := strictBase64.DecodeString(token)
	if err != nil || len(raw) != refreshTokenBytes {
		return ""
	}
	body, mac := raw[:refreshSessionBytes+refreshRandomBytes], raw[refreshSessionBytes+refreshRandomBytes:]
	if !hmac.Equal(mac, s.refreshMAC(body)) {
		return ""
	}
	id, err := uuid.FromBytes(raw[:refreshSessionBytes])
	if err != nil {
		return ""
	}
	return id.String()
}

func (s *Service) refreshMAC(body []byte) []byte {
	m := hmac.New(sha256.New, s.refreshKey)
	m.Write(body)
	return m.Sum(nil)[:refreshMACBytes]
}

// hashRefreshToken is what the database keeps of a refresh token. A fast hash is
// enough: the token has 256 bits of entropy, so there is nothing to brute-force.
func hashRefreshToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
