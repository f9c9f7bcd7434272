package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tollgate/db/dbtest"
)

// upgradeHeader is a valid WebSocket handshake offering graphql-transport-ws.
func upgradeHeader() http.Header {
	return http.Header{
		"Upgrade":                {"websocket"},
		"Connection":             {"Upgrade"},
		"Sec-Websocket-Version":  {"13"},
		"Sec-Websocket-Key":      {"dGhlIHNhbXBsZSBub25jZQ=="},
		"Sec-Websocket-Protocol": {"graphql-transport-ws"},
	}
}

// The upgrade's Origin must be the server's own or a CORS_ORIGINS entry,
// scheme, host and port alike; the refusal is a JSON 403.
func TestSocket_OriginMustMatchExactly(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"CORS_ORIGINS": "https://app.example.com"})
	host := strings.TrimPrefix(s.URL, "http://")
	for _, origin := range []string{
		"http://app.example.com", // the listed host over another scheme
		"https://app.example.com:8443",
		"https://evil.example.com",
		"https://app.example.com.evil.com",
		"null",
		"https://" + host, // our own host, but not the scheme it was reached by
		"ws://" + host,
		"not a url",
	} {
		t.Run(origin, func(t *testing.T) {
			h := upgradeHeader()
			h.Set("Origin", origin)
			res := s.send(t, "GET", "/graphql", h, "")
			if res.Status != http.StatusForbidden {
				t.Fatalf("status %d, want 403: %s", res.Status, res.Raw)
			}
			res.wantError(t, "FORBIDDEN", "ORIGIN_NOT_ALLOWED")
		})
	}
	for _, origin := range []string{"https://app.example.com", "https://APP.example.com:443", s.URL, ""} {
		t.Run("allowed "+origin, func(t *testing.T) {
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			dialRaw(t, s.URL, h).init("")
		})
	}
	t.Run("own host behind a TLS proxy", func(t *testing.T) {
		dialRaw(t, s.URL, http.Header{"Origin": {"https://" + host}, "X-Forwarded-Proto": {"https"}}).init("")
	})
}

// A client that does not offer graphql-transport-ws is closed with 4406,
// not served gqlgen's legacy protocol, which none of the rules cover.
func TestSocket_OtherSubprotocolsAre4406(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	for _, protocols := range [][]string{nil, {"graphql-ws"}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{Subprotocols: protocols})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c := &rawSocket{t: t, conn: conn}
		c.wantClosed(4406, time.Second)
		conn.CloseNow()
	}
}

// Slowloris through Upgrade: a request that says "Upgrade: websocket" and
// announces a body it never sends is closed by the server within the read
// deadline (it used to be exempt from every deadline, and stayed open).
// A socket that did upgrade outlives the deadline.
func TestSocket_SlowUpgradeIsClosedByTheReadDeadline(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	const deadline = 300 * time.Millisecond
	url := newTunedServer(t, s, deadline, 0)
	addr := strings.TrimPrefix(url, "http://")
	for name, head := range map[string]string{
		"only Upgrade":   "GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nContent-Length: 100\r\n\r\n",
		"full handshake": "GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: graphql-transport-ws\r\nContent-Length: 100\r\n\r\n",
		"a POST":         "POST /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
	} {
		t.Run(name, func(t *testing.T) {
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			start := time.Now()
			if _, err := io.WriteString(conn, head); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = io.Copy(io.Discard, conn) // until the server closes
			took := time.Since(start)
			if err != nil {
				t.Fatalf("the server kept the connection open for %v: %v", took, err)
			}
			if took > deadline+2*time.Second {
				t.Errorf("closed after %v, deadline %v", took, deadline)
			}
		})
	}
	t.Run("a real socket outlives it", func(t *testing.T) {
		c := dialRaw(t, url, nil)
		c.init("")
		for start := time.Now(); time.Since(start) < 3*deadline; time.Sleep(deadline / 3) {
			c.write(`{"type":"ping"}`)
			if m := c.next(time.Second); m.Type != "pong" {
				t.Fatalf("want pong, got %+v", m)
			}
		}
	})
}
