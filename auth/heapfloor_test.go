package auth

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

// fixedHeap is a live heap that is always n bytes, with no stacks or
// globals.
func fixedHeap(n uint64) func() (uint64, uint64) { return func() (uint64, uint64) { return n, n } }

// settled returns the GOGC that p set last, once the retune that read the
// heap (it holds p.mu from the reading to the setting) is over.
func settled(p *procs) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gc
}

// While no hash runs, GOGC is raised for a small live heap until the goal
// reaches idleHeapFloor (at most half the memory limit), never set below the
// idle percent; while a hash runs it is busyGCPercent whatever the heap.
func TestHasher_IdleHeapFloor(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(1 << 40)
	defer heapFloor.Store(nil)
	var live, stacks atomic.Uint64
	h, err := NewHasher(PasswordParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.tune().live = func() (uint64, uint64) { return live.Load(), live.Load() + stacks.Load() }
	live.Store(2 << 20)
	h.SetIdleGCPercent(300)
	h.procs.idleAfter = 0
	// The runtime's least goal at 800 % is 32 MiB (4 MiB times 8), and
	// 2 MiB plus 800 % of it is less.
	if got := gcPercent(); got != 800 {
		t.Fatalf("2 MiB live: GOGC = %d, want 800", got)
	}
	for _, c := range []struct {
		live uint64
		want int
	}{
		{8 << 20, 300},  // 32 MiB from 8 MiB: 300 %, the idle percent
		{4 << 20, 700},  // 700 %
		{16 << 20, 300}, // the idle percent alone already passes the floor
		{1 << 30, 300},
		{0, 300}, // no collection yet: nothing to go by
	} {
		live.Store(c.live)
		retune()
		if got := gcPercent(); got != c.want {
			t.Errorf("%d bytes live: GOGC = %d, want %d", c.live, got, c.want)
		}
	}

	// With 2 MiB of stacks and globals beside 2 MiB live, the 30 MiB
	// left to the floor are 750 % of the 4 MiB GOGC applies to, less than
	// the least goal's 800 %.
	live.Store(2 << 20)
	stacks.Store(2 << 20)
	retune()
	if got := gcPercent(); got != 750 {
		t.Errorf("2 MiB live and 2 MiB of stacks: GOGC = %d, want 750", got)
	}
	stacks.Store(0)

	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	retune() // a collection while the hash runs
	if got := gcPercent(); got != busyGCPercent {
		t.Errorf("hashing: GOGC = %d, want %d", got, busyGCPercent)
	}
	h.release()
	if got := gcPercent(); got != 800 {
		t.Errorf("after the hash: GOGC = %d, want 800", got)
	}

	// In 40 MiB of memory the floor is 20 MiB: the least goal at 500 %.
	debug.SetMemoryLimit(40 << 20)
	retune()
	if got := gcPercent(); got != 500 {
		t.Errorf("a 40 MiB memory limit: GOGC = %d, want 500", got)
	}
}

// A real collection updates GOGC from the heap it found live, on the
// runtime's own goroutine, with no call from the program.
func TestHasher_FollowsTheHeapAtEachCollection(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(1 << 40)
	defer heapFloor.Store(nil)
	var live atomic.Uint64
	live.Store(1 << 30)
	read := make(chan struct{}, 1)
	h, err := NewHasher(PasswordParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	h.tune().live = func() (uint64, uint64) {
		select {
		case read <- struct{}{}:
		default:
		}
		return live.Load(), live.Load()
	}
	h.SetIdleGCPercent(300)
	<-read // SetIdleGCPercent's own reading
	if got := gcPercent(); got != 300 {
		t.Fatalf("1 GiB live: GOGC = %d, want 300", got)
	}
	for _, c := range []struct {
		live uint64
		want int
	}{{4 << 20, 700}, {1 << 30, 300}} {
		live.Store(c.live)
		select { // a reading before this one's value
		case <-read:
		default:
		}
		runtime.GC()
		select {
		case <-read:
		case <-time.After(10 * time.Second):
			t.Fatal("no reading of the live heap after a collection")
		}
		if got := settled(h.procs); got != c.want {
			t.Errorf("after a collection, %d bytes live: set GOGC to %d, want %d", c.live, got, c.want)
		}
		if got := gcPercent(); got != c.want {
			t.Errorf("after a collection, %d bytes live: GOGC = %d, want %d", c.live, got, c.want)
		}
	}
}

// liveHeap reads what the runtime reports: after a collection, at least
// what this test keeps reachable.
func TestLiveHeap_CountsWhatIsReachable(t *testing.T) {
	keep := make([]byte, 8<<20)
	runtime.GC()
	live, scanned := liveHeap()
	if live < uint64(len(keep)) || scanned <= live {
		t.Errorf("live heap %d bytes, with stacks and globals %d; want at least %d, and more", live, scanned, len(keep))
	}
	runtime.KeepAlive(keep)
}

// With the heap read from the runtime, the goal the runtime sets after a
// collection is the floor, or the idle percent's own when that is larger:
// idlePercent reckons as the runtime does.
func TestHasher_IdleGoalIsTheFloor(t *testing.T) {
	defer debug.SetGCPercent(gcPercent())
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(1 << 40)
	defer heapFloor.Store(nil)
	h, err := NewHasher(PasswordParams, 1)
	if err != nil {
		t.Fatal(err)
	}
	type reading struct{ live, scanned uint64 }
	read := make(chan reading, 1)
	h.tune().live = func() (uint64, uint64) {
		live, scanned := liveHeap()
		select {
		case read <- reading{live, scanned}:
		default:
		}
		return live, scanned
	}
	h.SetIdleGCPercent(200)
	<-read
	select { // a reading of a collection before this one
	case <-read:
	default:
	}
	runtime.GC()
	var r reading
	select {
	case r = <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("no reading of the live heap after a collection")
	}
	settled(h.procs)
	sample := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}}
	metrics.Read(sample)
	goal := sample[0].Value.Uint64()
	want := max(uint64(idleHeapFloor), r.live+r.scanned*2)
	if goal < want*99/100 || goal > want*101/100+64<<10 {
		t.Errorf("live %d, scanned %d, GOGC %d: the runtime's goal is %d bytes, want about %d",
			r.live, r.scanned, gcPercent(), goal, want)
	}
}
