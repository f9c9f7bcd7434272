package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tollgate/api"
	"tollgate/db/dbtest"
	"tollgate/graph"
	"tollgate/note"
)

// rawExchange writes raw to a new connection to baseURL and returns all
// the server sends back until it closes the connection (or within passes).
func rawExchange(t *testing.T, baseURL, raw string, within time.Duration) (string, bool) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(within))
	out, err := io.ReadAll(c)
	closed := err == nil // EOF: the server closed the connection
	return string(out), closed
}

// A request with both Content-Length and Transfer-Encoding is read by its
// chunks (as RFC 9112 says), and whatever followed the chunks was then read
// as a second request on the same connection: behind a proxy that goes by
// the length, someone else's request. The connection is now closed after
// such a request, so nothing that follows is ever executed; conflicting
// lengths and unknown codings are refused.
func TestAttack_RequestSmuggling(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		smuggledBody := `{"query":"mutation { register(username: \"smuggled\", password: \"correct horse\") { accessToken } }"}`
		smuggled := "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			fmt.Sprint(len(smuggledBody)) + "\r\n\r\n" + smuggledBody
		query := `{"query":"{ __typename }"}`
		chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(query), query)
		head := "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		for _, c := range []struct {
			name, raw string
			status    string // of the one answer
		}{
			{"CL.TE", head + "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + smuggled, "200"},
			{"TE.CL", head + "Transfer-Encoding: chunked\r\nContent-Length: 200\r\n\r\n" + chunk + smuggled, "200"},
			{"chunked alone", head + "Transfer-Encoding: chunked\r\n\r\n" + chunk + smuggled, "200"},
			{"two lengths", head + "Content-Length: 26\r\nContent-Length: 0\r\n\r\n" + query + smuggled, "400"},
			{"a list of lengths", head + "Content-Length: 26, 26\r\n\r\n" + query + smuggled, "400"},
			{"a signed length", head + "Content-Length: +26\r\n\r\n" + query + smuggled, "400"},
			{"an unknown coding", head + "Transfer-Encoding: xchunked\r\nContent-Length: 26\r\n\r\n" + query + smuggled, "501"},
			{"two codings", head + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk + smuggled, "501"},
			{"a space before the colon", head + "Transfer-Encoding : chunked\r\nContent-Length: 26\r\n\r\n" + query + smuggled, "400"},
		} {
			out, closed := rawExchange(t, s.URL, c.raw, 5*time.Second)
			if !strings.HasPrefix(out, "HTTP/1.1 "+c.status) {
				t.Errorf("%s: answered %.120q, want %s", c.name, out, c.status)
			}
			if n := strings.Count(out, "HTTP/1.1 "); n != 1 {
				t.Errorf("%s: %d answers on one connection: %q", c.name, n, out)
			}
			if !closed {
				t.Errorf("%s: the connection stayed open", c.name)
			}
		}
		if n := s.count(t, `SELECT count(*) FROM users WHERE username = ?`, "smuggled"); n != 0 {
			t.Fatal("a smuggled request was executed")
		}
		// An ordinary pipelined pair on one connection is still served in full.
		plain := head + fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(query), query)
		if out, _ := rawExchange(t, s.URL, plain+plain, time.Second); strings.Count(out, "HTTP/1.1 200") != 2 {
			t.Errorf("keep-alive without chunks: %q", out)
		}
	})
}

// Every address may hold WS_CONNECTIONS_PER_IP sockets open at once; the
// next upgrade is refused with 429 before anything is hijacked, and a
// closed socket frees its place. Another address is unaffected.
func TestAttack_ManySocketsFromOneAddress(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), map[string]string{"WS_CONNECTIONS_PER_IP": "5", "TRUSTED_PROXIES": "127.0.0.1/32"})
	dial := func(forwardedFor string) (*websocket.Conn, *http.Response, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h := http.Header{}
		if forwardedFor != "" {
			h.Set("X-Forwarded-For", forwardedFor)
		}
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: h,
		})
		if conn != nil {
			t.Cleanup(func() { conn.CloseNow() })
		}
		return conn, resp, err
	}
	var open []*websocket.Conn
	for i := range 5 {
		conn, _, err := dial("")
		if err != nil {
			t.Fatalf("socket %d: %v", i+1, err)
		}
		c := &rawSocket{t: t, conn: conn}
		c.init("")
		open = append(open, conn)
	}
	for range 20 {
		_, resp, err := dial("")
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("socket beyond the limit: %v %v", resp, err)
		}
		var body struct {
			Errors []gqlError `json:"errors"`
		}
		json.NewDecoder(resp.Body).Decode(&body)
		if len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "RATE_LIMITED" || body.Errors[0].Extensions["reason"] != "TOO_MANY_SOCKETS" {
			t.Fatalf("refusal: %+v", body)
		}
	}
	// Another client, behind the same trusted proxy, has places of its own.
	if _, _, err := dial("203.0.113.7"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// Closing one frees its place (once the server has seen the close).
	open[0].Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, _, err := dial("")
		if err == nil {
			(&rawSocket{t: t, conn: conn}).init("")
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no place after a close: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialSlowReader opens a connection whose receive buffer is as small as the
// kernel allows, sends request and never reads: a client that takes an
// answer a few bytes at a time, or not at all.
func dialSlowReader(t *testing.T, baseURL, request string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) {
			syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
		})
	}}
	c, err := d.Dial("tcp", strings.TrimPrefix(baseURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	return c
}

// Clients that ask for the largest answers and never read them hold their
// answers' room only until the write deadline: then the connection is cut,
// the room given back, and other answers are built again.
func TestAttack_SlowReadersOfLargeAnswers(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, url string) {
		s := newTestServer(t, url, nil)
		alice := s.register(t, "alice", "correct horse")
		insertNotes(t, s.DB, alice.User.ID, 100, strings.Repeat("b", note.MaxBodyChars), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		const writeDeadline = 500 * time.Millisecond
		gql := graph.NewHandler(&graph.Resolver{Auth: s.App.Auth, Notes: s.App.Notes}, graph.Options{
			Logger: s.logger(),
			Limits: graph.Limits{MaxDepth: 12, MaxComplexity: 1000, MaxFields: 500, MaxAliases: 50, MaxQueryBytes: 100_000,
				MaxResponseBytes: 4 << 20},
		})
		// Two listeners in front of one GraphQL handler, and so of one room
		// for answers: the slow readers' with a short write deadline, the
		// other's with the default.
		serve := func(write time.Duration) *httptest.Server {
			srv := httptest.NewServer(api.New(api.Options{
				Logger: s.logger(), GraphQL: gql, Auth: s.App.Auth, Ready: s.App.Store.Ping,
				MaxBodyBytes: 1 << 20, WriteDeadline: write,
			}))
			t.Cleanup(srv.Close)
			return srv
		}
		srv, other := serve(writeDeadline), serve(0)

		query := aliasedBodies(2) // 4 MB: eight of them fill the room of all answers
		body, _ := json.Marshal(map[string]any{"query": query})
		request := fmt.Sprintf("POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s",
			alice.AccessToken, len(body), body)
		var slow []net.Conn
		for range 8 {
			slow = append(slow, dialSlowReader(t, srv.URL, request))
		}
		// A reader that keeps up is served: it waits for room at most until
		// the slow ones are cut off, well within its own wait.
		start := time.Now()
		fast := &testServer{URL: other.URL}
		status, n, head := fast.rawPost(t, alice.AccessToken, query)
		if status != http.StatusOK || n < 2*100*note.MaxBodyChars {
			t.Fatalf("a reader that keeps up, after %v: %d, %d bytes: %s", time.Since(start), status, n, head)
		}
		t.Logf("served after %v behind 8 readers that never read", time.Since(start))
		// And the slow ones were cut off, each with a fraction of its answer.
		for i, c := range slow {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.Copy(io.Discard, bufio.NewReader(c))
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Errorf("slow reader %d: still connected 5 s after the write deadline", i)
			}
			if got >= int64(2*100*note.MaxBodyChars) {
				t.Errorf("slow reader %d got its whole answer (%d bytes): nothing was slow", i, got)
			}
		}
	})
}

// Operation names are chosen by clients: 2,000 distinct ones, valid and
// long, leave the metrics at the first 100 names and a bounded exposition.
func TestAttack_OperationNamesFloodTheMetrics(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	long := strings.Repeat("N", 1000)
	for i := range 2000 {
		name := fmt.Sprintf("Op%04d", i)
		if i%2 == 1 {
			name = long + name
		}
		s.post(t, "", fmt.Sprintf(`query %s { __typename }`, name), nil)
	}
	res, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	exposition, _ := io.ReadAll(res.Body)
	names := map[string]bool{}
	for line := range bytes.Lines(exposition) {
		if _, rest, ok := bytes.Cut(line, []byte(`tollgate_graphql_operations_total{operation="`)); ok {
			name, _, _ := bytes.Cut(rest, []byte(`"`))
			names[string(name)] = true
		}
	}
	if len(names) > 103 {
		t.Errorf("%d operation labels", len(names))
	}
	if bytes.Contains(exposition, []byte(long)) {
		t.Error("a 1,000-byte operation name became a label")
	}
	if len(exposition) > 512<<10 {
		t.Errorf("the exposition grew to %d KB", len(exposition)>>10)
	}
	t.Logf("2,000 operation names: %d labels, %d KB of metrics", len(names), len(exposition)>>10)
}
