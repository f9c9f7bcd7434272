package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/netip"
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
	// LoginAttemptsPerIP counts every login attempt per client IP, right or
	// wrong, so that one address cannot keep the password hasher busy with a
	// password it knows.
	LoginAttemptsPerIP Limit
	// RegisterPerIP and RefreshPerIP count every attempt.
	RegisterPerIP Limit
	RefreshPerIP  Limit
	// MFAPerUser counts wrong second-factor codes (TOTP and recovery) per
	// user; zero means the contract's 5 in 15 minutes.
	MFAPerUser Limit
	// MailPerAddress and MailPerIP count every request that would send a
	// mail, per address mailed to and per client address, so that nobody
	// can use the server to flood a mailbox or spend its sending reputation.
	MailPerAddress Limit
	MailPerIP      Limit
}

// DefaultMFALimit is the contract's limit on wrong codes: 5 in 15 minutes.
var DefaultMFALimit = Limit{Max: 5, Window: 15 * time.Minute}

// rateLimited is the RATE_LIMITED error, with the whole seconds until the
// window that refused it ends.
func rateLimited(retryAfter time.Duration) *Error {
	return &Error{Code: CodeRateLimited, Message: "Too many attempts: try again later.",
		RetryAfter: int(math.Ceil(retryAfter.Seconds()))}
}

type bucket struct {
	key   string
	limit Limit
	// failures marks a bucket that counts failures: an attempt is counted in
	// flight until it is settled (a failure) or released (a success), and an
	// attempt that finds the limit passed only by attempts still in flight
	// waits for them instead of being refused, so that concurrent correct
	// logins are not taken for failures.
	failures bool
}

// windowStart is the start of the fixed window of l that holds now.
func (l Limit) windowStart(now time.Time) time.Time { return now.Truncate(l.Window) }

// How long an attempt waits, at most, for the attempts in flight ahead of it,
// and how often it looks again: a password check takes tens of milliseconds.
const (
	inFlightWait = 3 * time.Second
	inFlightPoll = 25 * time.Millisecond
)

// reserve counts this attempt in every bucket before any work is done, and
// refuses it with RATE_LIMITED (taking the count back) if that puts a bucket
// over its limit. Counting first, atomically, is what makes a limit hold
// against concurrent attempts: each one sees every attempt before it, in
// flight or finished. In a failures bucket, an attempt over the limit only
// because of attempts still in flight waits (inFlightWait at most) and counts
// itself again: no more than the limit of attempts is ever decided, and a
// correct password behind them still gets its turn. It returns the time the
// attempt was counted at, for release and settle.
func (s *Service) reserve(ctx context.Context, buckets ...bucket) (time.Time, error) {
	now := s.clock()
	for i, b := range buckets {
		if b.limit.Max <= 0 {
			continue
		}
		start := b.limit.windowStart(now)
		var waited time.Duration
		for {
			hits, pending, err := s.store.Hit(ctx, start, start.Add(b.limit.Window), b.key, b.failures)
			if err != nil {
				s.release(ctx, now, buckets[:i]...)
				return now, err
			}
			if hits <= b.limit.Max {
				break
			}
			s.release(ctx, now, b)
			decided := hits - pending
			if !b.failures || decided >= b.limit.Max || waited >= inFlightWait {
				s.release(ctx, now, buckets[:i]...)
				return now, rateLimited(start.Add(b.limit.Window).Sub(now))
			}
			select {
			case <-ctx.Done():
				s.release(ctx, now, buckets[:i]...)
				return now, ctx.Err()
			case <-time.After(inFlightPoll):
				waited += inFlightPoll
			}
		}
	}
	return now, nil
}

// release takes back an attempt counted at at: one that was refused, or
// that succeeded where only failures count. Failing to take it back only
// makes the limit stricter, so the error is logged, not returned.
func (s *Service) release(ctx context.Context, at time.Time, buckets ...bucket) {
	for _, b := range buckets {
		if b.limit.Max <= 0 {
			continue
		}
		if err := s.store.Unhit(ctx, b.limit.windowStart(at), b.key, b.failures); err != nil && ctx.Err() == nil {
			s.logger.Warn("could not take back a counted attempt", "error", err.Error())
		}
	}
}

// settle records that an attempt counted at at in failures buckets failed: it
// stays counted, no longer in flight.
func (s *Service) settle(ctx context.Context, at time.Time, buckets ...bucket) {
	for _, b := range buckets {
		if b.limit.Max <= 0 || !b.failures {
			continue
		}
		if err := s.store.Settle(ctx, b.limit.windowStart(at), b.key); err != nil && ctx.Err() == nil {
			s.logger.Warn("could not settle a counted attempt", "error", err.Error())
		}
	}
}

// addressKey is the part of a bucket key that names the client's address.
// An IPv6 client is named by its /64, the smallest block a site is given:
// within it, addresses are free to choose and would escape the limits.
func addressKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is6() || addr.Is4In6() {
		return ip
	}
	return netip.PrefixFrom(addr, 64).Masked().String()
}

// loginBuckets are the buckets of a login of username from the caller's address.
func (s *Service) loginBuckets(ctx context.Context, username string) (userIP, ip bucket) {
	addr := addressKey(ClientFromContext(ctx).IP)
	// The name is hashed: any string may be typed, and the key stays short.
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(username))))
	return bucket{key: fmt.Sprintf("login-user-ip:%s|%s", hex.EncodeToString(sum[:16]), addr), limit: s.cfg.Limits.LoginPerUserIP, failures: true},
		bucket{key: "login-ip:" + addr, limit: s.cfg.Limits.LoginPerIP, failures: true}
}
