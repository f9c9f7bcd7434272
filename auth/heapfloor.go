package auth

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// idleHeapFloor is the least heap goal while no hash runs, when the GC is
// tuned (SetIdleGCPercent): GOGC is raised above the idle percent as far as
// it takes for the goal to reach it.
//
// Why: between hashes the live heap is 2-3 MB, and Go's goal is then its
// least, 4 MiB times GOGC/100: at 200 the collector ran every 8 MiB of
// garbage, 30 times a second under a load of { protected }, each request
// leaving 13 kB. With the goal at 32 MiB it runs under a third as often,
// and in rounds alternating with the bare handler { protected } served
// 0.85-1.03x its rate where it served 0.75-0.91x (bench/README.md). Once
// the live heap passes a third of the floor, the idle percent alone sets
// the goal, as before: the floor lets a small heap hold up to 32 MiB of
// garbage, and never makes a large heap larger.
const idleHeapFloor = 32 << 20

// GOGC is the process's, so one tuning acts on it: the latest to be set
// (SetIdleGCPercent), which in a server is its only one.
var (
	heapFloor      atomic.Pointer[procs]
	heapFloorHooks sync.Once
)

// followHeap makes p the tuning that every garbage collection from now on
// updates (retune).
func followHeap(p *procs) {
	heapFloor.Store(p)
	heapFloorHooks.Do(func() { afterEachGC(retune) })
}

// afterEachGC calls f after each garbage collection, on the runtime's
// cleanup goroutine: a fresh object is unreachable at the next cycle, and
// its cleanup arms the next one. The runtime has no hook of its own for the
// end of a cycle; this is the usual stand-in (the finalizer form of it is
// what GC tuners such as Uber's are built on), and a library for it would
// set GOGC itself, against the hashes' setting of it.
func afterEachGC(f func()) {
	// Not a tiny object (under 16 bytes without pointers), which would
	// share a block whose other objects could keep it alive.
	sentinel := &struct{ _ *byte }{}
	runtime.AddCleanup(sentinel, func(struct{}) {
		f()
		afterEachGC(f)
	}, struct{}{})
}

// retune sets GOGC for the live heap that the collection just found, unless
// a hash runs (GOGC is then busyGCPercent, and stays so until the lull).
func retune() {
	p := heapFloor.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.idleGC != 0 && !p.busyGC {
		p.setGC(p.idlePercent())
	}
}

// idlePercent is GOGC while no hash runs: idleGC, or more while the live
// heap is so small that its goal would be under the floor (at most half
// the memory limit, for a process given little memory). p.mu is held.
//
// The runtime's goal is the larger of two (Go's GC guide, and
// gcControllerState.commit): the live heap plus GOGC percent of the live
// heap, the stacks and the globals together; and a minimum heap of 4 MiB
// times GOGC/100. The percent is the least of the two that bring the goal
// to the floor: the first for a live heap of a few MB, the second below.
func (p *procs) idlePercent() int {
	live, scanned := p.live()
	floor := uint64(idleHeapFloor)
	if limit := debug.SetMemoryLimit(-1); limit > 0 && uint64(limit)/2 < floor {
		floor = uint64(limit) / 2
	}
	if live == 0 || live >= floor || scanned < live {
		return p.idleGC
	}
	percent := min(floor*100/runtimeHeapMinimum, (floor-live)*100/scanned)
	return max(p.idleGC, int(min(percent, math.MaxInt32)))
}

// runtimeHeapMinimum is the runtime's least heap goal at a GOGC of 100,
// scaled by GOGC/100 at others (defaultHeapMinimum in runtime/mgcpacer.go).
const runtimeHeapMinimum = 4 << 20

// setGC sets GOGC to percent unless it is that already; p.mu is held.
func (p *procs) setGC(percent int) {
	if percent != p.gc {
		p.gc = percent
		debug.SetGCPercent(percent)
	}
}

// liveHeap is the heap that the last collection marked live, and that
// heap with the stacks and globals it scanned: what GOGC is a percent of.
func liveHeap() (live, scanned uint64) {
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}
	metrics.Read(samples)
	for i, s := range samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return 0, 0
		}
		if i == 0 {
			live = s.Value.Uint64()
		}
		scanned += s.Value.Uint64()
	}
	return live, scanned
}
