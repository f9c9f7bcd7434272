package auth

import (
	"context"
	"errors"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

func TestHasher_HashAndCheck(t *testing.T) {
	h, err := NewHasher(PasswordParams, 0)
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

// The pool admits Concurrency hashes; a caller that cannot get a slot before
// its request ends gives up instead of queueing forever.
func TestHasher_PoolIsBounded(t *testing.T) {
	h, err := NewHasher(PasswordParams, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := int64(h.Concurrency())
	if !h.slots.TryAcquire(n) {
		t.Fatal("the pool has fewer slots than its concurrency")
	}
	if h.slots.TryAcquire(1) {
		t.Fatal("the pool has more slots than its concurrency")
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
	h, err := NewHasher(PasswordParams, 0)
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

// The pool leaves a core to the request path by default, and takes the size
// it is given (PASSWORD_HASH_CONCURRENCY): no more hashes run at once.
func TestHasher_PoolSize(t *testing.T) {
	if got, want := DefaultHashConcurrency(), max(1, runtime.GOMAXPROCS(0)-1); got != want {
		t.Fatalf("DefaultHashConcurrency() = %d, want %d", got, want)
	}
	for _, tc := range []struct{ given, want int }{{0, DefaultHashConcurrency()}, {-1, DefaultHashConcurrency()}, {1, 1}, {3, 3}} {
		h, err := NewHasher(PasswordParams, tc.given)
		if err != nil {
			t.Fatal(err)
		}
		if h.Concurrency() != tc.want {
			t.Fatalf("NewHasher(%d).Concurrency() = %d, want %d", tc.given, h.Concurrency(), tc.want)
		}
		for range tc.want {
			if err := h.acquire(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if h.slots.TryAcquire(1) {
			t.Fatalf("NewHasher(%d): a hash beyond %d found a slot", tc.given, tc.want)
		}
	}
}

// A hash that cannot get a slot by hashMargin before its deadline gives up
// with ErrHasherBusy, in time for the answer to beat the deadline; the
// caller's own cancellation stays what it is.
func TestHasher_BusyBeforeTheDeadline(t *testing.T) {
	h, err := NewHasher(PasswordParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !h.slots.TryAcquire(1) {
		t.Fatal("no free slot")
	}
	defer h.slots.Release(1)
	deadline := time.Now().Add(hashMargin + 50*time.Millisecond)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if _, err := h.Check(ctx, "correct horse", ""); !errors.Is(err, ErrHasherBusy) {
		t.Errorf("Check with the pool taken = %v, want ErrHasherBusy", err)
	}
	if left := time.Until(deadline); left < hashMargin/2 {
		t.Errorf("gave up %v before the deadline, want about %v", left, hashMargin)
	}
	if h.Waiting() != 0 {
		t.Errorf("%d still counted as waiting", h.Waiting())
	}
}

// With GrowProcs, each running hash holds a P of its own: GOMAXPROCS is one
// more while a hash runs, and back to what it was once none does.
func TestHasher_GrowProcs(t *testing.T) {
	base := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(base)
	h, err := NewHasher(PasswordParams, 2)
	if err != nil {
		t.Fatal(err)
	}
	h.GrowProcs()
	ctx := context.Background()
	for i := 1; i <= 2; i++ {
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if got := runtime.GOMAXPROCS(0); got != base+i {
			t.Errorf("%d hashes running: GOMAXPROCS = %d, want %d", i, got, base+i)
		}
	}
	h.release()
	h.release()
	if got := runtime.GOMAXPROCS(0); got != base {
		t.Errorf("no hash running: GOMAXPROCS = %d, want %d", got, base)
	}
	if _, err := h.Check(ctx, "correct horse", ""); err != nil || runtime.GOMAXPROCS(0) != base {
		t.Errorf("after a check: %v, GOMAXPROCS %d, want %d", err, runtime.GOMAXPROCS(0), base)
	}
}

// gcPercent returns GOGC as it is now.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// With SetIdleGCPercent, GOGC is that value while no hash runs and
// busyGCPercent while any does; GOMAXPROCS is left alone without GrowProcs.
func TestHasher_IdleGCPercent(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	procs := runtime.GOMAXPROCS(0)
	h, err := NewHasher(PasswordParams, 2)
	if err != nil {
		t.Fatal(err)
	}
	h.tune().live = fixedHeap(1 << 30) // the floor out of play
	h.SetIdleGCPercent(300)
	if got := gcPercent(); got != 300 {
		t.Fatalf("no hash running: GOGC = %d, want 300", got)
	}
	h.procs.idleAfter = 0 // back to 300 as soon as the last hash ends
	ctx := context.Background()
	for range 2 {
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		if got := gcPercent(); got != busyGCPercent {
			t.Errorf("hashing: GOGC = %d, want %d", got, busyGCPercent)
		}
	}
	h.release()
	if got := gcPercent(); got != busyGCPercent {
		t.Errorf("one hash still running: GOGC = %d, want %d", got, busyGCPercent)
	}
	h.release()
	if got := gcPercent(); got != 300 {
		t.Errorf("no hash running again: GOGC = %d, want 300", got)
	}
	if got := runtime.GOMAXPROCS(0); got != procs {
		t.Errorf("GOMAXPROCS = %d, want %d (no GrowProcs)", got, procs)
	}
}

// GOGC goes back up only once no hash has run for a while: a hash that
// starts before then keeps it at busyGCPercent, and the wait starts again
// after it.
func TestHasher_IdleGCPercentWaitsForALull(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	h, err := NewHasher(PasswordParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.tune().live = fixedHeap(1 << 30) // the floor out of play
	h.SetIdleGCPercent(300)
	var timers []func()
	h.procs.after = func(d time.Duration, f func()) {
		if d != idleGCAfter {
			t.Errorf("waits %v, want %v", d, idleGCAfter)
		}
		timers = append(timers, f)
	}
	ctx := context.Background()
	if err := h.acquire(ctx); err != nil {
		t.Fatal(err)
	}
	h.release()
	if got := gcPercent(); got != busyGCPercent || len(timers) != 1 {
		t.Fatalf("right after the last hash: GOGC = %d, %d timers; want %d, 1", got, len(timers), busyGCPercent)
	}
	if err := h.acquire(ctx); err != nil { // the next hash of a storm
		t.Fatal(err)
	}
	timers[0]() // the first hash's wait is over
	if got := gcPercent(); got != busyGCPercent {
		t.Errorf("while the next hash runs: GOGC = %d, want %d", got, busyGCPercent)
	}
	h.release()
	timers[0]() // stale: a hash ended since
	if got := gcPercent(); got != busyGCPercent {
		t.Errorf("after a stale timer: GOGC = %d, want %d", got, busyGCPercent)
	}
	timers[1]()
	if got := gcPercent(); got != 300 {
		t.Errorf("after a lull: GOGC = %d, want 300", got)
	}
}

// forcedGCs is the number of garbage collections run by runtime.GC so far.
func forcedGCs() uint64 {
	sample := []metrics.Sample{{Name: "/gc/cycles/forced:gc-cycles"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// With the GC tuned, a hash that ends while another waits for its slot runs a
// collection first, so that the waiting hash's block can reuse the pages of
// the one that ended; with no hash waiting, or with GOGC the operator's, it
// leaves the collector alone.
func TestHasher_CollectsBeforeAWaitingHash(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	ctx := context.Background()
	for _, tuned := range []bool{true, false} {
		h, err := NewHasher(PasswordParams, 1)
		if err != nil {
			t.Fatal(err)
		}
		if tuned {
			h.tune().live = fixedHeap(1 << 30) // the floor out of play
			h.SetIdleGCPercent(300)
			h.procs.idleAfter = 0
		}
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		before := forcedGCs()
		h.release()
		if got := forcedGCs() - before; got != 0 {
			t.Errorf("tuned=%v, no hash waiting: %d forced collections, want 0", tuned, got)
		}

		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
		next := make(chan error, 1)
		go func() { next <- h.acquire(ctx) }()
		for h.Waiting() == 0 { // the next hash is queued
			runtime.Gosched()
		}
		before = forcedGCs()
		h.release()
		want := uint64(0)
		if tuned {
			want = 1
		}
		if got := forcedGCs() - before; got != want {
			t.Errorf("tuned=%v, a hash waiting: %d forced collections, want %d", tuned, got, want)
		}
		if err := <-next; err != nil {
			t.Fatal(err)
		}
		h.release()
	}
}
