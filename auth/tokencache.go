package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// DefaultTokenCacheSize is how many verified access tokens a TokenIssuer
// remembers when TokenConfig.CacheSize is zero: about 4 MB at most.
const DefaultTokenCacheSize = 10_000

// tokenCache remembers access tokens whose signature and claims were
// verified, so that a token presented again is not parsed again: parsing
// (base64, JSON into maps, HMAC) is most of an authenticated request's cost.
//
// Why it is safe:
//   - The key is the SHA-256 of the exact token text. Only a token byte for
//     byte identical to one that passed the full check finds an entry;
//     finding a second text with the same digest is out of reach.
//   - An entry holds what the checks that depend on the time need: exp, iat
//     and nbf are compared again on every use against the issuer's clock,
//     with the same leeway as the parser, and an entry found expired is
//     removed. So an entry is never used past its token's exp.
//   - Only the signature and claims parsing is skipped: revocation is still
//     checked on every request by the caller (Service.Verify calls
//     Revocations.Check after TokenIssuer.Verify, cached or not).
//   - The cache belongs to one TokenIssuer, whose keys never change: a
//     restart with a key dropped builds a new issuer and an empty cache, so
//     a token signed with a retired key is parsed again and refused. Each
//     entry also names its key and is refused if the issuer no longer has it.
//   - Failures are never cached, and the LRU bounds the memory.
type tokenCache struct {
	lru *lru.Cache[[sha256.Size]byte, cachedToken]
	// scratch holds the token bytes to hash, so that a lookup allocates nothing.
	scratch sync.Pool
}

// cachedToken is what a verified token yields, with the bounds of its validity.
type cachedToken struct {
	id  Identity
	kid string
	// notBefore is the later of iat and nbf (zero if neither was set).
	notBefore time.Time
}

func newTokenCache(size int) *tokenCache {
	if size <= 0 {
		size = DefaultTokenCacheSize
	}
	c, err := lru.New[[sha256.Size]byte, cachedToken](size)
	if err != nil {
		panic(err) // only for a size <= 0, excluded above
	}
	return &tokenCache{lru: c, scratch: sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}}
}

// key is the SHA-256 of token.
func (c *tokenCache) key(token string) [sha256.Size]byte {
	p := c.scratch.Get().(*[]byte)
	*p = append((*p)[:0], token...)
	sum := sha256.Sum256(*p)
	c.scratch.Put(p)
	return sum
}

// len is the number of entries.
func (c *tokenCache) len() int { return c.lru.Len() }
