package auth

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// A hash runs on a thread of its own, hashNice lower in priority than the
// caller's, and that thread ends with it: no other goroutine ever runs at
// its priority, and the caller's thread keeps its own.
func TestYielding_RunsOnALowerPriorityThreadThatEndsWithIt(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := syscall.Gettid()
	before, err := niceOf(self)
	if err != nil {
		t.Fatal(err)
	}
	var tid, inside int
	yielding(func() {
		tid = syscall.Gettid()
		inside, err = niceOf(tid)
	})
	if err != nil {
		t.Fatal(err)
	}
	if tid == self {
		t.Fatalf("f ran on the caller's thread %d", tid)
	}
	if want := min(before+hashNice, 19); inside != want {
		t.Errorf("nice inside = %d, want %d (the caller's is %d)", inside, want, before)
	}
	if after, err := niceOf(self); err != nil || after != before {
		t.Errorf("the caller's nice after = %d (%v), want %d", after, err, before)
	}
	// The runtime ends the thread as the goroutine exits, just after f's
	// caller has been told it is done: wait for that, not for a set time.
	// The process's main thread it cannot end: it parks that one for good,
	// and no goroutine runs there again.
	if tid == os.Getpid() {
		return
	}
	task := fmt.Sprintf("/proc/self/task/%d", tid)
	for deadline := time.Now().Add(10 * time.Second); ; runtime.Gosched() {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d is still running 10 s after its hash", tid)
		}
	}
}

// A panic in the hash reaches the caller's goroutine, where a request's
// recovery can answer it, instead of ending the process from another one.
func TestYielding_RaisesAPanicInTheCaller(t *testing.T) {
	defer func() {
		if got := recover(); got != "corrupt hash" {
			t.Fatalf("recovered %v, want the panic of f", got)
		}
	}()
	yielding(func() { panic("corrupt hash") })
	t.Fatal("yielding returned after f panicked")
}
