package auth

import (
	"runtime"
	"syscall"
)

// hashNice is how much lower than the process's the scheduling priority
// (nice) of a thread computing a hash is.
const hashNice = 10

// niceOf returns the nice value of the thread tid. Linux's getpriority
// answers 20 minus it, so that the answer is never negative.
func niceOf(tid int) (int, error) {
	raw, err := syscall.Getpriority(syscall.PRIO_PROCESS, tid)
	return 20 - raw, err
}

// yielding runs f on an OS thread of its own, hashNice lower in priority
// than the thread that started it (at most nice 19), and waits for it.
//
// Why: an argon2id hash keeps a core busy for tens of milliseconds, and at
// the priority of the threads serving requests the kernel shares the cores
// evenly between them: during a login storm on 2 cores, requests that only
// check a token waited behind the hash. At nice 10 a hash gets about a tenth
// of a core that requests want (the kernel's weights for nice 0 and 10 are
// 1024 and 110), and all of an idle one; the storm's { protected } p99 went
// from 2.0-2.1 to 1.7 times its quiet one (bench/README.md).
//
// The goroutine locks itself to the thread it starts on and never unlocks,
// so that the runtime ends the thread with it (or, for the process's main
// thread, which cannot end, parks it for good) and the lower priority never
// passes to other goroutines (while it is locked, the runtime also starts
// new threads from a clean one, not from this one). On Linux, setpriority
// on a thread id sets that thread's priority alone.
//
// A panic in f is raised again in the caller's goroutine, where the
// request's recovery handles it, as it did when f ran there.
func yielding(f func()) {
	done := make(chan struct{})
	var panicked any
	go func() {
		defer close(done)
		defer func() { panicked = recover() }()
		runtime.LockOSThread() // never unlocked: see above
		// An error (a seccomp filter, say) leaves the thread as it was.
		tid := syscall.Gettid()
		if nice, err := niceOf(tid); err == nil {
			_ = syscall.Setpriority(syscall.PRIO_PROCESS, tid, min(nice+hashNice, 19))
		}
		f()
	}()
	<-done
	if panicked != nil {
		panic(panicked)
	}
}
