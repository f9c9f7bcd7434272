package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
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
	token := base64.RawURLEncoding.EncodeToString(raw)
	return db.RefreshToken{Hash: hashRefreshToken(token), SessionID: sid, CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL)}, token
}

// refreshSession returns the session a refresh token was issued to, if its
// MAC shows this server issued it ("" otherwise: a token of the earlier,
// unnamed form, or a made-up one).
func (s *Service) refreshSession(token string) string {
	raw, err := base64.RawURLEncoding.DecodeString(token)
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
