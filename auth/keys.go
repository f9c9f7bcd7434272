package auth

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// NewEd25519Key returns an EdDSA key that signs with priv. Its id is the RFC
// 7638 thumbprint of its public key, so every instance and every JWKS client
// derives the same kid from the key alone.
func NewEd25519Key(priv ed25519.PrivateKey) (Key, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("not an Ed25519 private key")
	}
	pub := priv.Public().(ed25519.PublicKey)
	return edKey{id: thumbprint(pub), priv: priv, pub: pub}, nil
}

// NewEd25519VerifyKey returns an EdDSA key that only verifies: a previous
// signing key kept while the tokens it signed have not yet expired.
func NewEd25519VerifyKey(pub ed25519.PublicKey) (Key, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("not an Ed25519 public key")
	}
	return edKey{id: thumbprint(pub), pub: pub}, nil
}

type edKey struct {
	id   string
	priv ed25519.PrivateKey // nil for a verify-only key
	pub  ed25519.PublicKey
}

func (k edKey) ID() string                { return k.id }
func (k edKey) Method() jwt.SigningMethod { return jwt.SigningMethodEdDSA }

// SigningKey is nil (an untyped nil) for a verify-only key.
func (k edKey) SigningKey() any {
	if k.priv == nil {
		return nil
	}
	return k.priv
}
func (k edKey) VerificationKey() any { return k.pub }

// thumbprint is the RFC 7638 JWK thumbprint of an Ed25519 public key: the
// SHA-256 of its required members, in lexical order, without whitespace.
func thumbprint(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWK is a public key in RFC 7517 form (RFC 8037 for Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the JSON Web Key Set of the public keys that verify tokens,
// the signing key first. Symmetric keys are never published: under HS256
// the set is empty.
func (t *TokenIssuer) JWKS() []byte {
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	for _, k := range t.ordered {
		if ek, ok := k.(edKey); ok {
			set.Keys = append(set.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(ek.pub),
				Kid: ek.id, Alg: "EdDSA", Use: "sig"})
		}
	}
	b, _ := json.Marshal(set)
	return b
}
