package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// accessTokenType is the JWT "typ" header of access tokens (RFC 9068). Checking
// it keeps any other JWT signed with the same key (an ID token, say) from being
// accepted as an access token.
const accessTokenType = "at+jwt"

// A Key signs and verifies access tokens with one algorithm. HS256 keys are
// both; asymmetric keys publish VerificationKey and keep SigningKey private.
type Key interface {
	// ID is the "kid" header of the tokens this key signs.
	ID() string
	// Method is the only algorithm this key accepts.
	Method() jwt.SigningMethod
	SigningKey() any
	VerificationKey() any
}

// MinHMACKeyBytes is the shortest HS256 secret accepted: as many bytes as the hash.
const MinHMACKeyBytes = 32

// NewHMACKey returns an HS256 key. Its id is derived from the secret with HMAC,
// so that it names the key without revealing anything about it.
func NewHMACKey(secret []byte) (Key, error) {
	if len(secret) < MinHMACKeyBytes {
		return nil, fmt.Errorf("an HS256 key needs at least %d bytes", MinHMACKeyBytes)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte("tollgate key id"))
	id := "hs256-" + base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:9])
	return hmacKey{id: id, secret: append([]byte(nil), secret...)}, nil
}

// NewRandomHMACSecret returns 32 random bytes for NewHMACKey.
func NewRandomHMACSecret() []byte {
	b := make([]byte, MinHMACKeyBytes)
	rand.Read(b) // never fails (crypto/rand documents that it panics instead)
	return b
}

type hmacKey struct {
	id     string
	secret []byte
}

func (k hmacKey) ID() string                { return k.id }
func (k hmacKey) Method() jwt.SigningMethod { return jwt.SigningMethodHS256 }
func (k hmacKey) SigningKey() any           { return k.secret }
func (k hmacKey) VerificationKey() any      { return k.secret }

// accessClaims are the claims of an access token (API.md, "Tokens").
type accessClaims struct {
	jwt.RegisteredClaims
	SessionID string `json:"sid"`
	Role      Role   `json:"role"`
	Fresh     bool   `json:"fresh"`
	// AAL, Methods and MFA decode without allocating (see aal.go): they are
	// read on every authenticated request.
	AAL     AAL     `json:"aal"`
	Methods Methods `json:"amr"`
	MFA     bool    `json:"mfa"`
}

// TokenConfig sets the issuer's parameters.
type TokenConfig struct {
	Issuer   string
	Audience string
	TTL      time.Duration
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway time.Duration
	// CacheSize bounds the cache of verified tokens (tokencache.go); zero
	// means DefaultTokenCacheSize.
	CacheSize int
}

// TokenIssuer issues and verifies access tokens. The first key signs; every key verifies.
type TokenIssuer struct {
	cfg    TokenConfig
	now    func() time.Time
	signer Key
	keys   map[string]Key
	// ordered lists keys as given, the signing key first (for JWKS).
	ordered []Key
	parser  *jwt.Parser
	cache   *tokenCache
}

// NewTokenIssuer returns a TokenIssuer that signs with keys[0] and verifies
// with any of keys, reading the time from now.
func NewTokenIssuer(cfg TokenConfig, now func() time.Time, keys ...Key) (*TokenIssuer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no signing key")
	}
	if keys[0].SigningKey() == nil {
		return nil, errors.New("the first key must be able to sign")
	}
	t := &TokenIssuer{cfg: cfg, now: now, signer: keys[0], keys: make(map[string]Key, len(keys)), ordered: keys, cache: newTokenCache(cfg.CacheSize)}
	var methods []string
	for _, k := range keys {
		if _, dup := t.keys[k.ID()]; dup {
			return nil, fmt.Errorf("two keys with id %q", k.ID())
		}
		t.keys[k.ID()] = k
		methods = append(methods, k.Method().Alg())
	}
	// The algorithm is pinned twice: the parser accepts only the algorithms of
	// our keys (never "none"), and keyFor hands out a key only for its own
	// algorithm, so an HS256 token "signed" with a public key is refused.
	t.parser = jwt.NewParser(
		jwt.WithValidMethods(methods),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(now),
	)
	return t, nil
}

// TTL is the lifetime of the access tokens issued.
func (t *TokenIssuer) TTL() time.Duration { return t.cfg.TTL }

// signingKey is the key that signs new tokens.
func (t *TokenIssuer) signingKey() Key { return t.signer }

// Issue signs an access token for id; it sets id.TokenID and id.ExpiresAt.
func (t *TokenIssuer) Issue(id *Identity) (string, error) {
	now := t.now()
	id.TokenID = newID()
	id.ExpiresAt = now.Add(t.cfg.TTL).Truncate(time.Second)
	claims := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.cfg.Issuer,
			Subject:   id.UserID,
			Audience:  jwt.ClaimStrings{t.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(id.ExpiresAt),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        id.TokenID,
		},
		SessionID: id.SessionID,
		Role:      id.Role,
		Fresh:     id.Fresh,
		AAL:       id.AAL,
		Methods:   id.Methods,
		MFA:       id.MFA,
	}
	tok := jwt.NewWithClaims(t.signer.Method(), claims)
	tok.Header["typ"] = accessTokenType
	tok.Header["kid"] = t.signer.ID()
	s, err := tok.SignedString(t.signer.SigningKey())
	if err != nil {
		return "", fmt.Errorf("sign access token: %w", err)
	}
	return s, nil
}

// Verify checks an access token and returns the identity it carries, or
// ErrTokenExpired or ErrTokenInvalid (wrapping the parser's reason, for the log).
// A token verified before is found in the cache (tokencache.go), where its
// times are checked again; any other is parsed and, if valid, remembered.
func (t *TokenIssuer) Verify(token string) (Identity, error) {
	key := t.cache.key(token)
	if e, ok := t.cache.lru.Get(key); ok {
		return t.checkCached(key, e)
	}
	id, e, err := t.parse(token)
	if err != nil {
		return Identity{}, err
	}
	t.cache.lru.Add(key, e)
	return id, nil
}

// checkCached repeats on a cached token the checks that depend on the time,
// as the parser makes them, and that its key is still one of ours.
func (t *TokenIssuer) checkCached(key [32]byte, e cachedToken) (Identity, error) {
	now := t.now()
	if !now.Before(e.id.ExpiresAt.Add(t.cfg.Leeway)) {
		t.cache.lru.Remove(key)
		return Identity{}, ErrTokenExpired
	}
	if !e.notBefore.IsZero() && now.Before(e.notBefore.Add(-t.cfg.Leeway)) {
		return Identity{}, ErrTokenInvalid
	}
	if _, ok := t.keys[e.kid]; !ok {
		t.cache.lru.Remove(key)
		return Identity{}, ErrTokenInvalid
	}
	return e.id, nil
}

// parse verifies a token's signature and claims.
func (t *TokenIssuer) parse(token string) (Identity, cachedToken, error) {
	var claims accessClaims
	tok, err := t.parser.ParseWithClaims(token, &claims, t.keyFor)
	switch {
	// The signature is checked before the claims, so "expired" is only ever
	// said of a token that we signed.
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, cachedToken{}, ErrTokenExpired
	case err != nil:
		return Identity{}, cachedToken{}, &Error{Code: ErrTokenInvalid.Code, Reason: ErrTokenInvalid.Reason, Message: ErrTokenInvalid.Message, Err: err}
	case claims.Subject == "" || claims.ID == "" || claims.SessionID == "" || !claims.Role.Valid():
		return Identity{}, cachedToken{}, ErrTokenInvalid
	}
	if claims.AAL != AAL2 {
		claims.AAL = AAL1 // a token from before levels existed proved one factor
	}
	id := Identity{
		UserID:    claims.Subject,
		Role:      claims.Role,
		SessionID: claims.SessionID,
		TokenID:   claims.ID,
		Fresh:     claims.Fresh,
		AAL:       claims.AAL,
		Methods:   claims.Methods,
		MFA:       claims.MFA,
		ExpiresAt: claims.ExpiresAt.Time,
	}
	e := cachedToken{id: id}
	e.kid, _ = tok.Header["kid"].(string)
	if claims.IssuedAt != nil {
		e.notBefore = claims.IssuedAt.Time
	}
	if claims.NotBefore != nil && claims.NotBefore.After(e.notBefore) {
		e.notBefore = claims.NotBefore.Time
	}
	return id, e, nil
}

func (t *TokenIssuer) keyFor(tok *jwt.Token) (any, error) {
	if typ, _ := tok.Header["typ"].(string); !strings.EqualFold(typ, accessTokenType) && !strings.EqualFold(typ, "application/"+accessTokenType) {
		return nil, errors.New("not an access token (typ)")
	}
	kid, _ := tok.Header["kid"].(string)
	k, ok := t.keys[kid]
	if !ok {
		return nil, errors.New("unknown kid")
	}
	if tok.Method.Alg() != k.Method().Alg() {
		return nil, errors.New("algorithm does not match the key")
	}
	return k.VerificationKey(), nil
}
