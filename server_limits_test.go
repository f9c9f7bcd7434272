package main

import (
	"fmt"
	"io"
	"math"
	"net"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// rawRequest sends raw to the server at baseURL and returns the status line
// of its answer and whether the server then closed the connection.
func rawRequest(t *testing.T, baseURL, raw string) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go io.WriteString(c, raw) // the server may answer before it has read everything
	c.SetReadDeadline(time.Now().Add(waitFor))
	out, err := io.ReadAll(c)
	status, _, _ := strings.Cut(string(out), "\r\n")
	return status, err == nil
}

// Headers are bounded at 64 KiB (http.Server.MaxHeaderBytes; net/http
// allows 4 KiB of slack): just under is served, just past and far past are
// refused with 431 and the connection closed, at once, however many
// connections try.
func TestRun_HeadersNearAndPastTheLimit(t *testing.T) {
	base, _ := startRun(t, nil)
	request := func(headers string) string {
		return "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
	}
	one := func(n int) string { return "X-Padding: " + strings.Repeat("a", n) + "\r\n" }
	many := func(count, size int) string {
		var b strings.Builder
		for i := range count {
			fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("b", size))
		}
		return b.String()
	}
	for _, c := range []struct {
		name, headers, status string
	}{
		{"one header of 60 KiB", one(60 << 10), "HTTP/1.1 200 OK"},
		{"1,000 headers of 50 bytes", many(1000, 50), "HTTP/1.1 200 OK"},
		{"one header of 70 KiB", one(70 << 10), "HTTP/1.1 431 Request Header Fields Too Large"},
		{"2,000 headers of 50 bytes", many(2000, 50), "HTTP/1.1 431 Request Header Fields Too Large"},
		{"one header of 16 MiB", one(16 << 20), "HTTP/1.1 431 Request Header Fields Too Large"},
	} {
		start := time.Now()
		status, closed := rawRequest(t, base, request(c.headers)+"\r\n")
		if status != c.status {
			t.Errorf("%s: %q, want %q", c.name, status, c.status)
		}
		if strings.Contains(c.status, "431") && !closed {
			t.Errorf("%s: the connection stayed open", c.name)
		}
		if took := time.Since(start); took > waitFor/2 {
			t.Errorf("%s: took %v", c.name, took)
		}
	}
	// Fifty connections at once, each past the limit.
	errs := make(chan string, 50)
	for range 50 {
		go func() {
			status, _ := rawRequest(t, base, request(one(100<<10))+"\r\n")
			errs <- status
		}()
	}
	for range 50 {
		if status := <-errs; !strings.Contains(status, "431") {
			t.Errorf("concurrent oversized headers: %q", status)
		}
	}
}

// Without GOMEMLIMIT, run sets a soft memory limit (90% of the container's
// limit, or of the machine's memory); with it, the operator's stands.
func TestRun_SetsAMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	debug.SetMemoryLimit(math.MaxInt64)
	_, stop := startRun(t, map[string]string{"GOMEMLIMIT": "1GiB"})
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set, the limit became %d", got)
	}
	stop()

	startRun(t, nil)
	if got := debug.SetMemoryLimit(-1); got == math.MaxInt64 || got <= 0 {
		t.Errorf("without GOMEMLIMIT, no limit was set (%d)", got)
	} else {
		t.Logf("GOMEMLIMIT set to %d MiB", got>>20)
	}
}
