package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"time"
)

// Limit allows Max attempts per Window.
type Limit struct {
	Max    int
	Window time.Duration
}

// Limits are the attempt limits of the Service, counted in the database so
// that they hold across instances.
type Limits struct {
	// LoginPerUserIP counts failed logins per (username, client IP): a guesser
	// is stopped without letting anyone lock a victim out from elsewhere.
	LoginPerUserIP Limit
	// LoginPerIP counts failed logins per client IP, whatever the username.
	LoginPerIP Limit
	// RegisterPerIP and RefreshPerIP count every attempt.
	RegisterPerIP Limit
	RefreshPerIP  Limit
}

// rateLimited is the RATE_LIMITED error, with the whole seconds until the
// window that refused it ends.
func rateLimited(retryAfter time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: "Too many attempts: try again later.",
		RetryAfter: int(math.Ceil(retryAfter.Seconds()))}
}

type bucket struct {
	key   string
	limit Limit
}

// windowStart is the start of the fixed window of l that holds now.
func (l Limit) windowStart(now time.Time) time.Time { return now.Truncate(l.Window) }

// check refuses with RATE_LIMITED if any bucket has reached its limit,
// without counting this attempt (failed logins are counted after the fact).
func (s *Service) check(ctx context.Context, buckets ...bucket) error {
	now := s.clock()
	for _, b := range buckets {
		if b.limit.Max <= 0 {
			continue
		}
		start := b.limit.windowStart(now)
		hits, err := s.store.Hits(ctx, start, b.key)
		if err != nil {
			return err
		}
		if hits[0] >= b.limit.Max {
			return rateLimited(start.Add(b.limit.Window).Sub(now))
		}
	}
	return nil
}

// count counts one attempt in each bucket.
func (s *Service) count(ctx context.Context, buckets ...bucket) error {
	now := s.clock()
	for _, b := range buckets {
		if b.limit.Max <= 0 {
			continue
		}
		if _, err := s.store.Hit(ctx, b.limit.windowStart(now), b.key); err != nil {
			return err
		}
	}
	return nil
}

// take counts one attempt in b and refuses it if that goes over the limit.
func (s *Service) take(ctx context.Context, b bucket) error {
	if b.limit.Max <= 0 {
		return nil
	}
	now := s.clock()
	start := b.limit.windowStart(now)
	hits, err := s.store.Hit(ctx, start, b.key)
	if err != nil {
		return err
	}
	if hits[0] > b.limit.Max {
		return rateLimited(start.Add(b.limit.Window).Sub(now))
	}
	return nil
}

// loginBuckets are the buckets of a login of username from the caller's address.
func (s *Service) loginBuckets(ctx context.Context, username string) (userIP, ip bucket) {
	addr := ClientFromContext(ctx).IP
	// The name is hashed: any string may be typed, and the key stays short.
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(username))))
	return bucket{key: fmt.Sprintf("login-user-ip:%s|%s", hex.EncodeToString(sum[:16]), addr), limit: s.cfg.Limits.LoginPerUserIP},
		bucket{key: "login-ip:" + addr, limit: s.cfg.Limits.LoginPerIP}
}
