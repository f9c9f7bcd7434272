package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// With METRICS_ADDR, /metrics is served on that listener alone and the main
// one answers 404 for it; both start and stop with run. Without it, /metrics
// stays on the main listener.
func TestRun_MetricsAddrServesMetricsAlone(t *testing.T) {
	t.Run("unset", func(t *testing.T) {
		base, stop := startRun(t, nil)
		if status, _, body := get(t, base+"/metrics"); status != http.StatusOK || !strings.Contains(body, "tollgate_auth_attempts_total") {
			t.Errorf("GET /metrics = %d (%d bytes), want 200 with tollgate_auth_attempts_total", status, len(body))
		}
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	t.Run("set", func(t *testing.T) {
		l, stop := startRunListening(t, map[string]string{"METRICS_ADDR": "127.0.0.1:0"})
		if l.MetricsAddr == "" || l.MetricsAddr == l.Addr {
			t.Fatalf(`"listening" line: metrics_addr %q beside addr %q, want a second address`, l.MetricsAddr, l.Addr)
		}
		base, metricsBase := "http://"+l.Addr, "http://"+l.MetricsAddr
		if status, _, _ := get(t, base+"/metrics"); status != http.StatusNotFound {
			t.Errorf("GET /metrics on the main listener = %d, want 404", status)
		}
		status, contentType, body := get(t, metricsBase+"/metrics")
		if status != http.StatusOK || !strings.HasPrefix(contentType, "text/plain") ||
			!strings.Contains(body, "tollgate_auth_attempts_total") || !strings.Contains(body, "go_goroutines") {
			t.Errorf("GET /metrics on METRICS_ADDR = %d %q (%d bytes), want 200 with the registry", status, contentType, len(body))
		}
		// The second listener serves nothing else.
		for _, path := range []string{"/graphql", "/healthz", "/"} {
			if status, _, _ := get(t, metricsBase+path); status != http.StatusNotFound {
				t.Errorf("GET %s on METRICS_ADDR = %d, want 404", path, status)
			}
		}
		if status, _, _ := get(t, base+"/healthz"); status != http.StatusOK {
			t.Errorf("GET /healthz on the main listener = %d, want 200", status)
		}
		if err := stop(); err != nil {
			t.Errorf("run: %v", err)
		}
		if c, err := net.DialTimeout("tcp", l.MetricsAddr, time.Second); err == nil {
			c.Close()
			t.Errorf("METRICS_ADDR still accepts connections after run returned")
		}
	})
	t.Run("taken", func(t *testing.T) {
		taken, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer taken.Close()
		err = run(context.Background(), []string{"tollgate"}, testEnv(t, map[string]string{"METRICS_ADDR": taken.Addr().String()}),
			strings.NewReader(""), discard{})
		if err == nil || !strings.HasPrefix(err.Error(), "METRICS_ADDR: ") {
			t.Errorf("run with METRICS_ADDR taken = %v, want an error naming METRICS_ADDR", err)
		}
	})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// shutdownBound is how soon run must return once sockets are open: well
// inside shutdownGrace (20 s), whose end would mean the sockets were cut
// rather than closed.
const shutdownBound = 5 * time.Second

// On shutdown every WebSocket is closed with 1001 Going Away, which
// graphql-ws clients answer by reconnecting (to another instance), rather
// than dropped with the process (1006, abnormal closure): net/http's
// Shutdown does not touch hijacked connections. The subscription is proven
// live first by an event, and run must return well inside the grace period.
func TestRun_ShutdownClosesSocketsWithGoingAway(t *testing.T) {
	base, stop := startRun(t, nil)
	var reg struct {
		Register struct {
			AccessToken string `json:"accessToken"`
		} `json:"register"`
	}
	mustGraphQL(t, base, "", `mutation { register(username: "alice", password: "correct horse") { accessToken } }`, &reg)
	token := reg.Register.AccessToken

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	dial := func() *websocket.Conn {
		t.Helper()
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/graphql",
			&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		t.Cleanup(func() { conn.CloseNow() })
		return conn
	}
	send := func(conn *websocket.Conn, msg map[string]any) {
		t.Helper()
		b, _ := json.Marshal(msg)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatalf("write %s: %v", b, err)
		}
	}
	read := func(conn *websocket.Conn, wantType string) {
		t.Helper()
		_, b, err := conn.Read(ctx)
		if err != nil {
			t.Fatalf("read (want %s): %v", wantType, err)
		}
		var m struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &m) != nil || m.Type != wantType {
			t.Fatalf("got %s, want a %s message", b, wantType)
		}
	}

	// One socket with a live subscription, one that only said connection_init.
	sub := dial()
	send(sub, map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	read(sub, "connection_ack")
	send(sub, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "subscription { noteCreated { id } }"}})
	idle := dial()
	send(idle, map[string]any{"type": "connection_init"})
	read(idle, "connection_ack")
	// The subscription is registered once an event arrives; notes created
	// before that reach nobody, so create until one does.
	events := make(chan error, 1)
	go func() {
		_, b, err := sub.Read(ctx)
		if err == nil && !strings.Contains(string(b), `"type":"next"`) {
			err = errors.New("got " + string(b))
		}
		events <- err
	}()
	var got error
	for deadline := time.Now().Add(waitFor); ; {
		var note struct{}
		mustGraphQL(t, base, token, `mutation { createNote(title: "t", body: "b") { id } }`, &note)
		select {
		case got = <-events:
		case <-time.After(50 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			got = errors.New("no event")
		}
		break
	}
	if got != nil {
		t.Fatalf("subscription event: %v", got)
	}

	start := time.Now()
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for name, conn := range map[string]*websocket.Conn{"subscribed": sub, "idle": idle} {
		var err error
		for err == nil {
			_, _, err = conn.Read(ctx) // anything sent before the close frame
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
			t.Errorf("%s socket: closed with %v (%v), want 1001 Going Away", name, code, err)
		}
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("run = %v, want nil", err)
		}
		if d := time.Since(start); d > shutdownBound {
			t.Errorf("run returned %s after cancel, want under %s", d, shutdownBound)
		}
	case <-time.After(shutdownBound):
		t.Fatalf("run did not return within %s of cancel with sockets open", shutdownBound)
	}
}
