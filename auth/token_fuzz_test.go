package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds the verifier any byte string. It must never panic, and it
// must accept a token only if the token carries our key's signature over its
// own header and payload.
func FuzzVerify(f *testing.F) {
	secret := []byte("fuzz-secret-fuzz-secret-fuzz-secret!")
	key, err := NewHMACKey(secret)
	if err != nil {
		f.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }
	iss, err := NewTokenIssuer(TokenConfig{Issuer: "tollgate", Audience: "tollgate", TTL: 15 * time.Minute, Leeway: 5 * time.Second}, now, key)
	if err != nil {
		f.Fatal(err)
	}
	id := Identity{UserID: "u1", Role: RoleUser, SessionID: "s1", Fresh: true}
	valid, err := iss.Issue(&id)
	if err != nil {
		f.Fatal(err)
	}
	parts := strings.Split(valid, ".")
	for _, seed := range []string{
		valid,
		"",
		".",
		"..",
		"a.b.c",
		parts[0] + "." + parts[1] + ".",
		"eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + parts[2] + "x",
		parts[0] + ".e30." + parts[2],
		strings.Repeat("A", 5000),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		got, err := iss.Verify(token)
		if err != nil {
			return
		}
		p := strings.Split(token, ".")
		if len(p) != 3 {
			t.Fatalf("accepted a token of %d parts: %q", len(p), token)
		}
		sig, derr := base64.RawURLEncoding.DecodeString(p[2])
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(p[0] + "." + p[1]))
		if derr != nil || !hmac.Equal(sig, mac.Sum(nil)) {
			t.Fatalf("accepted a token not signed with our key: %q", token)
		}
		if got.UserID == "" || got.SessionID == "" || !got.Role.Valid() {
			t.Fatalf("accepted a token without identity: %+v", got)
		}
	})
}
