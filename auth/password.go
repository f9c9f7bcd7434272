package auth

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alexedwards/argon2id"
	"golang.org/x/sync/semaphore"
)

// PasswordParams are the OWASP argon2id parameters (19 MiB, 2 passes, 1 lane).
var PasswordParams = argon2id.Params{
	Memory:      19 * 1024,
	Iterations:  2,
	Parallelism: 1,
	SaltLength:  16,
	KeyLength:   32,
}

// Hasher hashes and checks passwords with argon2id on a bounded pool: each hash
// takes 19 MiB and a core for tens of milliseconds, so at most Concurrency
// run at a time (by default one less than the cores). A burst of logins then
// waits its turn instead of exhausting memory or starving requests that only
// check a token.
type Hasher struct {
	params argon2id.Params
	slots  *semaphore.Weighted
	// dummy is checked against for unknown users, so that a login costs the
	// same whether or not the username exists.
	dummy string
	// runs counts the hashes computed (Hash and Check alike).
	runs atomic.Int64
	// waiting and running are the callers queued for a slot and holding one.
	waiting, running atomic.Int64
	concurrency      int
	// procs, when set (GrowProcs, SetIdleGCPercent), tunes the runtime
	// around each running hash.
	procs *procs
}

// Concurrency is the number of hashes that may run at once.
func (h *Hasher) Concurrency() int { return h.concurrency }

// Runs is the number of argon2id computations so far.
func (h *Hasher) Runs() int64 { return h.runs.Load() }

// Waiting is the number of hashes queued for a free slot right now.
func (h *Hasher) Waiting() int64 { return h.waiting.Load() }

// Running is the number of hashes being computed right now.
func (h *Hasher) Running() int64 { return h.running.Load() }

// hashMargin is how long before its context's deadline a hash stops waiting
// for a slot: time for the hash itself (tens of milliseconds) and for the
// answer.
const hashMargin = time.Second

// ErrHasherBusy refuses a password check or hash that could not start in
// time: every slot of the pool stayed taken until hashMargin before the
// request's deadline. The client may try again; nothing was decided.
var ErrHasherBusy = &Error{Code: CodeRateLimited, Reason: ReasonServerBusy, RetryAfter: 1,
	Message: "The server is busy checking passwords: try again in a moment."}

// acquire waits for a slot, counting the wait; release gives it back. Under
// a deadline, it waits until hashMargin before it and then gives up with
// ErrHasherBusy: a login in a long queue gets an answer that says to retry,
// instead of an internal error when the deadline strikes.
func (h *Hasher) acquire(ctx context.Context) error {
	h.waiting.Add(1)
	wait := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		wait, cancel = context.WithDeadline(ctx, deadline.Add(-hashMargin))
		defer cancel()
	}
	err := h.slots.Acquire(wait, 1)
	h.waiting.Add(-1)
	switch {
	case err != nil && ctx.Err() == nil:
		return ErrHasherBusy
	case err != nil:
		return fmt.Errorf("wait for hasher: %w", err)
	}
	h.running.Add(1)
	h.runs.Add(1)
	if h.procs != nil {
		h.procs.add(1)
	}
	return nil
}

func (h *Hasher) release() {
	if h.procs != nil {
		h.procs.collect(h.waiting.Load() > 0)
		h.procs.add(-1)
	}
	h.running.Add(-1)
	h.slots.Release(1)
}

// GrowProcs makes each running hash add a P to GOMAXPROCS (from its value
// now), for as long as it runs. A program calls it once, at start, unless
// its operator chose GOMAXPROCS (the server does; a library must not change
// its host's scheduler).
//
// Why: an argon2id computation runs for tens of milliseconds with no
// preemption point, and a request made runnable on the P it holds waits for
// the scheduler's 10 ms preemption, or for another P to steal it. With a P
// of its own for each hash, the kernel shares the cores between the hashing
// threads and the others instead: during a login storm on 2 cores,
// { protected } p99 fell from 47 to 11 ms. A P added for good, hashing or
// not, cost 15 % of { protected } throughput (bench/README.md): the P comes
// and goes with the hashes.
func (h *Hasher) GrowProcs() {
	t := h.tune()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.grow, t.base = true, runtime.GOMAXPROCS(0)
}

// tune returns the hasher's runtime tuning, made on first use: GrowProcs and
// SetIdleGCPercent are called at start, before any hash.
func (h *Hasher) tune() *procs {
	if h.procs == nil {
		h.procs = &procs{}
	}
	return h.procs
}

// procs sets GOMAXPROCS to base plus the hashes running, when grow is set
// (GrowProcs), and GOGC to idleGC once no hash has run for idleAfter, when
// idleGC is set (SetIdleGCPercent).
type procs struct {
	mu          sync.Mutex
	grow        bool
	base, extra int
	idleGC      int
	idleAfter   time.Duration
	// gc is the GOGC last set (setGC); live reads the live heap (liveHeap,
	// or the tests' own) for the floor under the idle goal (idlePercent).
	gc   int
	live func() (live, scanned uint64)
	// busyGC is set while GOGC is busyGCPercent; lull counts the moments the last
	// running hash ended, so that a timer armed at an earlier one does nothing.
	busyGC bool
	lull   int
	// after runs f after d (time.AfterFunc; tests run f themselves).
	after func(d time.Duration, f func())
}

// busyGCPercent is GOGC while hashes run (SetIdleGCPercent): the heap is
// then mostly the hashes' 19 MiB blocks, which hold no pointers and cost the
// collector nothing to mark, so collecting often is cheap, and it keeps the
// last hash's block from lingering beside the next one's.
const busyGCPercent = 50

// idleGCAfter is how long no hash must have run before GOGC goes back up: the
// hashes of a login storm come back to back, and the garbage of each should
// be collected at busyGCPercent, not wait at the idle value.
const idleGCAfter = time.Second

// add changes the count of hashes running by d. A change of GOMAXPROCS or
// GOGC stops the world for a moment: tens of microseconds, against a hash's
// tens of milliseconds.
func (p *procs) add(d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.extra += d
	if p.grow {
		runtime.GOMAXPROCS(p.base + p.extra)
	}
	switch {
	case p.idleGC == 0:
	case p.extra > 0 && !p.busyGC:
		p.busyGC = true
		p.setGC(busyGCPercent)
	case p.extra == 0 && p.busyGC:
		p.lull++
		if p.idleAfter <= 0 {
			p.idle()
			return
		}
		lull := p.lull
		p.after(p.idleAfter, func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.extra == 0 && p.lull == lull && p.busyGC {
				p.idle()
			}
		})
	}
}

// collect runs a garbage collection when the GC is tuned (SetIdleGCPercent)
// and another hash waits for the slot this one is about to free.
//
// Why: the hash that ends leaves its 19 MiB block as garbage, and the next
// one allocates its own at once, before the collector has run: the heap then
// held both, and a login storm's peak RSS was 85-100 MB. Collected in
// between, the next block reuses the last one's pages: 81-83 MB over three
// storms (bench/README.md). The block holds no pointers and the live heap
// is a few MB, so the cycle costs a few milliseconds of the slot, not of
// the requests: storms served 12.6-19.3 logins/s against 16.8-22.8 without
// it, and none failed.
func (p *procs) collect(waiting bool) {
	p.mu.Lock()
	tuned := p.idleGC != 0
	p.mu.Unlock()
	if tuned && waiting {
		runtime.GC()
	}
}

// idle sets GOGC back to its idle value (idlePercent); p.mu is held.
func (p *procs) idle() {
	p.busyGC = false
	p.setGC(p.idlePercent())
}

// SetIdleGCPercent sets GOGC to percent while no hash runs (or higher,
// while the live heap is small: idleHeapFloor), and to busyGCPercent from
// the start of a hash until idleGCAfter after the last. A program calls it
// once, at start, unless its operator chose GOGC.
//
// Why: between hashes the heap is small (a few MB live) and every request
// leaves a few kB of garbage, so the collector runs dozens of times a second
// and each cycle has a fixed cost; at 200, { protected } served 8 % more
// requests a second (bench/README.md) for a few MB of heap. A hash puts
// 19 MiB on the heap at once: under a GOGC of 200 each would raise the
// heap's goal by 57 MiB, and a login storm would pass 100 MB of RSS (112 MB
// when GOGC went back to 200 between the storm's hashes, 104 MB at 100
// during the storm, 98-99 MB at 50).
func (h *Hasher) SetIdleGCPercent(percent int) {
	t := h.tune()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.idleGC, t.idleAfter = percent, idleGCAfter
	t.after = func(d time.Duration, f func()) { time.AfterFunc(d, f) }
	if t.live == nil {
		t.live = liveHeap
	}
	if t.extra == 0 {
		t.idle()
	}
	followHeap(t)
}

// DefaultHashConcurrency is the size of the hashing pool when none is set:
// one less than GOMAXPROCS, at least 1. Logins then queue on the pool while
// a core stays free for requests that only check a token: with every core
// hashing, a login storm pushed the p99 of { protected } from a few
// milliseconds to tens (bench/README.md), for a few more logins per second.
func DefaultHashConcurrency() int {
	return max(1, runtime.GOMAXPROCS(0)-1)
}

// NewHasher returns a Hasher with params and concurrency slots (at most that
// many hashes at a time); concurrency <= 0 means DefaultHashConcurrency.
func NewHasher(params argon2id.Params, concurrency int) (*Hasher, error) {
	if concurrency <= 0 {
		concurrency = DefaultHashConcurrency()
	}
	h := &Hasher{params: params, slots: semaphore.NewWeighted(int64(concurrency)), concurrency: concurrency}
	dummy, err := argon2id.CreateHash(string(NewRandomHMACSecret()), &h.params)
	if err != nil {
		return nil, fmt.Errorf("hash dummy password: %w", err)
	}
	h.dummy = dummy
	return h, nil
}

// Hash returns the PHC string of password ($argon2id$v=19$m=…$salt$hash).
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	var s string
	var err error
	yielding(func() { s, err = argon2id.CreateHash(password, &h.params) })
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return s, nil
}

// Check reports whether password matches hash, in constant time. An empty hash
// (unknown user) is checked against a dummy hash and never matches.
func (h *Hasher) Check(ctx context.Context, password, hash string) (bool, error) {
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	if hash == "" {
		var err error
		yielding(func() { _, err = argon2id.ComparePasswordAndHash(password, h.dummy) })
		return false, err
	}
	var ok bool
	var err error
	yielding(func() { ok, err = argon2id.ComparePasswordAndHash(password, hash) })
	if err != nil {
		return false, fmt.Errorf("check password: %w", err)
	}
	return ok, nil
}
