package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination that server goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The writer that records the status passes on what http.ResponseController
// offers (deadlines, flushing, taking over the connection): a handler behind
// it must not lose a feature.
func TestLogWriter_KeepsResponseControllerFeatures(t *testing.T) {
	var buf lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, nil))
	errs := make(chan error, 8)
	h := withRequest(requestTimes{}, nil, logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		errs <- rc.SetReadDeadline(time.Now().Add(time.Minute))
		errs <- rc.SetWriteDeadline(time.Now().Add(time.Minute))
		if r.URL.Path == "/hijack" {
			conn, rw, err := rc.Hijack()
			errs <- err
			if err == nil {
				rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n")
				rw.Flush()
				conn.Close()
			}
			return
		}
		w.Write([]byte("partial"))
		errs <- rc.Flush()
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the writer is not an http.Flusher")
		}
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()

	res, err := http.Get(srv.URL + "/flush")
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(res.Body) // to the end: the handler has returned
	res.Body.Close()
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("ResponseController through the log writer: %v", err)
		}
	}

	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /hijack HTTP/1.1\r\nHost: x\r\n\r\n"))
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(status, "101") {
		t.Fatalf("hijacked answer %q, %v", status, err)
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("ResponseController through the log writer: %v", err)
		}
	}

	var statuses []float64
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, m["status"].(float64))
	}
	if len(statuses) != 2 || statuses[0] != 200 || statuses[1] != 101 {
		t.Errorf("statuses logged %v, want [200 101]", statuses)
	}
}
