package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// cacheIssuer returns an issuer signing with the first of keys, on a clock
// the test moves.
func cacheIssuer(t testing.TB, now *time.Time, size int, keys ...Key) *TokenIssuer {
	t.Helper()
	iss, err := NewTokenIssuer(TokenConfig{Issuer: "tollgate", Audience: "tollgate", TTL: 15 * time.Minute, Leeway: 5 * time.Second, CacheSize: size},
		func() time.Time { return *now }, keys...)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func testKey(t testing.TB, seed string) Key {
	t.Helper()
	k, err := NewHMACKey([]byte(fmt.Sprintf("%-40s", seed)))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issueFor(t testing.TB, iss *TokenIssuer, user string) string {
	t.Helper()
	id := Identity{UserID: user, Role: RoleUser, SessionID: "s-" + user, Fresh: true}
	tok, err := iss.Issue(&id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A cached token is still refused once its exp (plus the leeway) has passed,
// exactly when the parser would refuse it, and the entry is dropped.
func TestTokenCache_ExpiredRefusedAlthoughCached(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss := cacheIssuer(t, &now, 0, testKey(t, "a"))
	tok := issueFor(t, iss, "alice")
	first, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if iss.cache.len() != 1 {
		t.Fatalf("cache holds %d tokens after a first verification, want 1", iss.cache.len())
	}
	// Just before exp+leeway: still good, from the cache.
	now = first.ExpiresAt.Add(5*time.Second - time.Nanosecond)
	if _, err := iss.Verify(tok); err != nil {
		t.Fatalf("just before exp+leeway: %v", err)
	}
	now = first.ExpiresAt.Add(5 * time.Second)
	if _, err := iss.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("at exp+leeway: err = %v, want ErrTokenExpired", err)
	}
	if iss.cache.len() != 0 {
		t.Fatalf("an expired entry stayed in the cache")
	}
	// The parser agrees: the same answer without the cache.
	if _, _, err := iss.parse(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("parse at exp+leeway: err = %v, want ErrTokenExpired", err)
	}
	if _, err := iss.Verify(tok); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("again: err = %v, want ErrTokenExpired", err)
	}
}

// A cached token is not valid before its iat (minus the leeway) either, should
// the clock step back.
func TestTokenCache_NotBeforeCheckedAlthoughCached(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss := cacheIssuer(t, &now, 0, testKey(t, "a"))
	tok := issueFor(t, iss, "alice")
	if _, err := iss.Verify(tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(-time.Minute)
	if _, err := iss.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("before iat: err = %v, want ErrTokenInvalid", err)
	}
}

// Dropping a key (a restart with fewer keys is a new issuer) refuses the
// tokens it signed, although an issuer with that key had cached them.
func TestTokenCache_RetiredKeyStopsWorking(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	old, next := testKey(t, "old"), testKey(t, "next")
	before := cacheIssuer(t, &now, 0, old, next)
	tok := issueFor(t, before, "alice")
	for range 2 {
		if _, err := before.Verify(tok); err != nil {
			t.Fatalf("with its key: %v", err)
		}
	}
	rotated := cacheIssuer(t, &now, 0, next)
	if _, err := rotated.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("key dropped: err = %v, want ErrTokenInvalid", err)
	}
	// Even an entry of the old issuer is refused once its key is gone.
	delete(before.keys, old.ID())
	if _, err := before.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Fatalf("key removed under a cached entry: err = %v, want ErrTokenInvalid", err)
	}
}

// The cache never holds more than its bound, and failures are not cached.
func TestTokenCache_Bounded(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss := cacheIssuer(t, &now, 3, testKey(t, "a"))
	for i := range 20 {
		tok := issueFor(t, iss, fmt.Sprint("user", i))
		if _, err := iss.Verify(tok); err != nil {
			t.Fatal(err)
		}
		if _, err := iss.Verify(tok + "x"); !errors.Is(err, ErrTokenInvalid) {
			t.Fatalf("tampered token: err = %v", err)
		}
		if n := iss.cache.len(); n > 3 {
			t.Fatalf("after %d tokens the cache holds %d, bound 3", i+1, n)
		}
	}
	if n := iss.cache.len(); n != 3 {
		t.Fatalf("cache holds %d, want its bound 3", n)
	}
}

// A cached verification returns the same identity as the first.
func TestTokenCache_SameIdentity(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	iss := cacheIssuer(t, &now, 0, testKey(t, "a"))
	tok := issueFor(t, iss, "alice")
	a, err := iss.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	b, err := iss.Verify(tok)
	if err != nil || a != b {
		t.Fatalf("cached: %+v, %v; first: %+v", b, err, a)
	}
}

// BenchmarkVerify measures verifying an access token the first time (the
// signature and claims parsed) and again (from the cache).
func BenchmarkVerify(b *testing.B) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b.Run("first", func(b *testing.B) {
		iss := cacheIssuer(b, &now, 1, testKey(b, "a"))
		toks := []string{issueFor(b, iss, "alice"), issueFor(b, iss, "bob")}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			// With room for one, alternating two tokens misses every time.
			if _, err := iss.Verify(toks[i%2]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("cached", func(b *testing.B) {
		iss := cacheIssuer(b, &now, 0, testKey(b, "a"))
		tok := issueFor(b, iss, "alice")
		b.ReportAllocs()
		for b.Loop() {
			if _, err := iss.Verify(tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
