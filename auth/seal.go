package auth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// sealer encrypts the few secrets that the database must keep readable for
// a while (a rotated refresh token's successor, during the grace window), so
// that a copy of the database, a backup or a replica yields none of them.
// It is AES-256-GCM (standard library) with a random nonce per message and
// additional data that binds each ciphertext to the row it belongs to, so a
// ciphertext moved to another row does not open.
type sealer struct {
	aead cipher.AEAD
}

// newSealer derives a key for purpose (HKDF-SHA256, RFC 5869) from the
// server's signing key: every instance sharing that key derives the same
// one, the signing key itself is never used for anything but signing, and
// each purpose gets a key of its own.
func newSealer(signing Key, purpose string) (*sealer, error) {
	key, err := deriveKey(signing, purpose)
	if err != nil {
		return nil, err
	}
	return sealerWithKey(key)
}

// newSealerFromKey derives the key for purpose (HKDF-SHA256) from material of
// its own, such as MFA_ENCRYPTION_KEY.
func newSealerFromKey(material []byte, purpose string) (*sealer, error) {
	key, err := hkdfKey(material, purpose)
	if err != nil {
		return nil, err
	}
	return sealerWithKey(key)
}

func sealerWithKey(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// deriveKey returns a 32-byte key for purpose (HKDF-SHA256, RFC 5869) from
// the server's signing key.
func deriveKey(signing Key, purpose string) ([]byte, error) {
	switch k := signing.SigningKey().(type) {
	case []byte:
		return hkdfKey(k, purpose)
	case ed25519.PrivateKey:
		return hkdfKey(k.Seed(), purpose)
	}
	return nil, errors.New("derive key: the signing key cannot sign")
}

func hkdfKey(material []byte, purpose string) ([]byte, error) {
	key, err := hkdf.Key(sha256.New, material, nil, "tollgate "+purpose, 32)
	if err != nil {
		return nil, fmt.Errorf("derive key: %w", err)
	}
	return key, nil
}

// seal encrypts plaintext bound to aad and returns it as base64 text.
func (s *sealer) seal(plaintext, aad []byte) string {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	rand.Read(nonce)
	return base64.RawStdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, aad))
}

// open decrypts what seal returned for the same aad.
func (s *sealer) open(sealed string, aad []byte) ([]byte, error) {
	raw, err := base64.RawStdEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return nil, errors.New("open sealed value: malformed")
	}
	n := s.aead.NonceSize()
	return s.aead.Open(nil, raw[:n], raw[n:], aad)
}
