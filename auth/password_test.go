package auth

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"testing"
)

func TestHasher_HashAndCheck(t *testing.T) {
	h, err := NewHasher(PasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %s", hash)
	}
	for password, want := range map[string]bool{"correct horse": true, "correct horsE": false, "": false} {
		if got, err := h.Check(ctx, password, hash); err != nil || got != want {
			t.Errorf("Check(%q) = %v, %v; want %v", password, got, err, want)
		}
	}
	// An unknown user (empty hash) never matches, whatever the password.
	if got, err := h.Check(ctx, "correct horse", ""); err != nil || got {
		t.Errorf("Check against no hash = %v, %v", got, err)
	}
}

// The pool admits one hash per core; a caller that cannot get a slot before
// its request ends gives up instead of queueing forever.
func TestHasher_PoolIsBounded(t *testing.T) {
	h, err := NewHasher(PasswordParams)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(runtime.GOMAXPROCS(0))
	if !h.slots.TryAcquire(n) {
		t.Fatal("the pool has fewer slots than cores")
	}
	if h.slots.TryAcquire(1) {
		t.Fatal("the pool has more slots than cores")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Hash(ctx, "correct horse"); !errors.Is(err, context.Canceled) {
		t.Errorf("Hash with a full pool = %v, want context.Canceled", err)
	}
	if _, err := h.Check(ctx, "correct horse", ""); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a full pool = %v, want context.Canceled", err)
	}
	h.slots.Release(n)
	if _, err := h.Hash(context.Background(), "correct horse"); err != nil {
		t.Errorf("Hash after release: %v", err)
	}
}

// BenchmarkCheck compares a login against an existing hash with one for an
// unknown user (the dummy hash): both must cost the same.
func BenchmarkCheck(b *testing.B) {
	h, err := NewHasher(PasswordParams)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	hash, _ := h.Hash(ctx, "correct horse")
	b.Run("known-user-wrong-password", func(b *testing.B) {
		for b.Loop() {
			h.Check(ctx, "wrong horse", hash)
		}
	})
	b.Run("unknown-user", func(b *testing.B) {
		for b.Loop() {
			h.Check(ctx, "wrong horse", "")
		}
	})
}
