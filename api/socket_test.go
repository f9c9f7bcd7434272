package api_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"tollgate/api"
	"tollgate/db/dbtest"
	"tollgate/graph"
)

// rawSocket speaks to the server frame by frame, so that tests can send what
// no well-behaved client would.
type rawSocket struct {
	t    *testing.T
	conn *websocket.Conn
	// answerPings makes read answer each ping with a pong and pass over
	// pongs, as a client library does (wsClient).
	answerPings bool
}

// openSocket opens a graphql-transport-ws socket to baseURL, closed when the
// test ends.
func openSocket(t *testing.T, baseURL string, header http.Header) (*websocket.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(baseURL, "http")+"/graphql", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader:   header,
	})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.CloseNow() })
	return conn, nil
}

// dialRaw opens a graphql-transport-ws socket and sends nothing.
func dialRaw(t *testing.T, baseURL string, header http.Header) *rawSocket {
	t.Helper()
	conn, err := openSocket(t, baseURL, header)
	if err != nil {
		t.Fatal(err)
	}
	return &rawSocket{t: t, conn: conn}
}

func (c *rawSocket) write(frame string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
		c.t.Fatalf("write %s: %v", frame, err)
	}
}

// read returns the next message (pings and pongs included, unless
// answerPings), or the read error.
func (c *rawSocket) read(within time.Duration) (wsMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			return wsMessage{}, err
		}
		var m wsMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.t.Fatalf("the server sent %q: %v", b, err)
		}
		switch {
		case c.answerPings && m.Type == "ping":
			c.write(`{"type":"pong"}`)
		case c.answerPings && m.Type == "pong":
		default:
			return m, nil
		}
	}
}

func (c *rawSocket) next(within time.Duration) wsMessage {
	c.t.Helper()
	m, err := c.read(within)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// wantClosed expects the server's close frame with code within d, and no
// operation result before it.
func (c *rawSocket) wantClosed(code websocket.StatusCode, within time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			if got := websocket.CloseStatus(err); got != code {
				c.t.Fatalf("closed with %d (%v), want %d within %v", got, err, code, within)
			}
			return
		}
		if m.Type == "next" {
			c.t.Fatalf("a result arrived instead of the close: %s", m.Payload)
		}
	}
}

// init sends connection_init (with a token if any) and expects connection_ack.
func (c *rawSocket) init(token string) {
	c.t.Helper()
	if token == "" {
		c.write(`{"type":"connection_init"}`)
	} else {
		c.write(`{"type":"connection_init","payload":{"Authorization":"Bearer ` + token + `"}}`)
	}
	if m := c.next(5 * time.Second); m.Type != "connection_ack" {
		c.t.Fatalf("want connection_ack, got %+v", m)
	}
}

func subscribeFrame(id, query string) string {
	b, _ := json.Marshal(map[string]any{"id": id, "type": "subscribe", "payload": map[string]any{"query": query}})
	return string(b)
}

// Every breach of graphql-transport-ws closes the socket at once with the
// code PROTOCOL.md gives it, never gqlgen's 1002 (fatal to graphql-ws).
func TestSocket_ProtocolViolationsCloseWithTheirCode(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	const ack = "ack" // the frames after it are sent once connection_ack came
	const subscribe = `{"id":"1","type":"subscribe","payload":{"query":"{ __typename }"}}`
	for _, tc := range []struct {
		name   string
		frames []string
		code   websocket.StatusCode
	}{
		{"invalid JSON", []string{`{"type":`}, 4400},
		{"an array", []string{`[1]`}, 4400},
		{"a string", []string{`"connection_init"`}, 4400},
		{"a number", []string{`1`}, 4400},
		{"null", []string{`null`}, 4400},
		{"no type", []string{`{"id":"1"}`}, 4400},
		{"a type that is not a string", []string{`{"type":1}`}, 4400},
		{"an unknown type", []string{`{"type":"hello"}`}, 4400},
		{"an unknown type after ack", []string{`{"type":"connection_init"}`, ack, `{"type":"start","id":"1"}`}, 4400},
		{"a server message from the client", []string{`{"type":"connection_init"}`, ack, `{"type":"next","id":"1","payload":{}}`}, 4400},
		{"a ping whose payload is not an object", []string{`{"type":"ping","payload":[1]}`}, 4400},
		{"subscribe without an id", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","payload":{"query":"{ __typename }"}}`}, 4400},
		{"subscribe with an empty id", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","id":"","payload":{"query":"{ __typename }"}}`}, 4400},
		{"subscribe with a numeric id", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","id":1,"payload":{"query":"{ __typename }"}}`}, 4400},
		{"subscribe without a payload", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","id":"1"}`}, 4400},
		{"subscribe whose query is not a string", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","id":"1","payload":{"query":1}}`}, 4400},
		{"subscribe whose variables are a list", []string{`{"type":"connection_init"}`, ack, `{"type":"subscribe","id":"1","payload":{"query":"{ __typename }","variables":[]}}`}, 4400},
		{"complete without an id", []string{`{"type":"connection_init"}`, ack, `{"type":"complete"}`}, 4400},
		{"subscribe before connection_init", []string{subscribe}, 4401},
		{"a second connection_init", []string{`{"type":"connection_init"}`, ack, `{"type":"connection_init"}`}, 4429},
		{"an init payload that is a list", []string{`{"type":"connection_init","payload":[1]}`}, 4403},
		{"an init payload that is a string", []string{`{"type":"connection_init","payload":"x"}`}, 4403},
		{"an init payload that is a number", []string{`{"type":"connection_init","payload":1}`}, 4403},
		{"an Authorization that is a number", []string{`{"type":"connection_init","payload":{"Authorization":123}}`}, 4403},
		{"an Authorization that is a list", []string{`{"type":"connection_init","payload":{"Authorization":["Bearer x"]}}`}, 4403},
		{"an authorization that is an object", []string{`{"type":"connection_init","payload":{"authorization":{}}}`}, 4403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, s.URL, nil)
			for _, f := range tc.frames {
				if f == ack {
					if m := c.next(5 * time.Second); m.Type != "connection_ack" {
						t.Fatalf("want connection_ack, got %+v", m)
					}
					continue
				}
				c.write(f)
			}
			c.wantClosed(tc.code, time.Second)
		})
	}
}

// A ping is answered with a pong at any time, before connection_init too,
// with its payload.
func TestSocket_PingIsAnsweredBeforeInit(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	c := dialRaw(t, s.URL, nil)
	c.write(`{"type":"ping"}`)
	if m := c.next(time.Second); m.Type != "pong" {
		t.Fatalf("before init: want pong, got %+v", m)
	}
	c.write(`{"type":"pong"}`) // unsolicited pongs are allowed as a heartbeat
	c.init("")
	c.write(`{"type":"ping","payload":{"n":1}}`)
	if m := c.next(time.Second); m.Type != "pong" || string(m.Payload) != `{"n":1}` {
		t.Fatalf("after init: want pong with the payload, got %+v", m)
	}
}

// newTunedServer serves the real handler of s (same service, same database)
// with the deadlines and the init timeout a test needs to be short.
func newTunedServer(t *testing.T, s *testServer, readDeadline, initTimeout time.Duration) string {
	t.Helper()
	gql := graph.NewHandler(&graph.Resolver{Auth: s.App.Auth, Notes: s.App.Notes}, graph.Options{
		Logger:            s.logger(),
		Introspection:     true,
		SocketInitTimeout: initTimeout,
		Limits:            graph.Limits{MaxDepth: 12, MaxComplexity: 1000, MaxFields: 500, MaxAliases: 50, MaxQueryBytes: 100_000},
	})
	srv := httptest.NewServer(api.New(api.Options{
		Logger:       s.logger(),
		GraphQL:      gql,
		Auth:         s.App.Auth,
		Ready:        s.App.Store.Ping,
		MaxBodyBytes: 1 << 20,
		ReadDeadline: readDeadline,
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A socket that sends no connection_init is closed with 4408 once the init
// timeout has passed, not before.
func TestSocket_InitTimeoutIs4408(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	const timeout = 300 * time.Millisecond
	url := newTunedServer(t, s, 0, timeout)
	start := time.Now()
	c := dialRaw(t, url, nil)
	c.wantClosed(4408, 3*time.Second)
	if took := time.Since(start); took < timeout {
		t.Errorf("closed after %v, before the %v timeout", took, timeout)
	}
}

// A subscribe with the id of a live operation closes the socket with 4409:
// there are never two live subscriptions under one id.
func TestSocket_DuplicateIDIs4409(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	c := dialRaw(t, s.URL, nil)
	c.init(p.AccessToken)
	c.write(subscribeFrame("1", noteCreated))
	waitSubscribed(t, s, 1)
	c.write(subscribeFrame("1", noteCreated))
	c.wantClosed(4409, time.Second)
	if n := s.App.Notes.Subscribers(); n > 1 {
		t.Errorf("%d subscriptions under one id", n)
	}
}

// Once the client completes an id, it may use it again at once: the new
// operation gets the events, and the old one's late messages (gqlgen
// completes it as it winds down) never reach it.
func TestSocket_IDMayBeReusedAfterComplete(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	c := dialRaw(t, s.URL, nil)
	c.init(p.AccessToken)
	c.write(subscribeFrame("1", noteCreated))
	waitSubscribed(t, s, 1)
	c.write(`{"type":"complete","id":"1"}`)
	c.write(subscribeFrame("1", noteCreated))
	msgs := c.pump()
	// Notes until the new subscription has one (it registers asynchronously).
	deadline := time.After(5 * time.Second)
	for delivered := false; !delivered; {
		s.createNote(t, p.AccessToken, "note", "")
		select {
		case m := <-msgs:
			if m.Type != "next" || m.ID != "1" {
				t.Fatalf("want a note under id 1, got %s %s %s", m.Type, m.ID, m.Payload)
			}
			delivered = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("the reused id got no note")
		}
	}
	c.write(`{"type":"ping"}`)
	for {
		select {
		case m := <-msgs:
			if m.Type == "pong" {
				if n := s.App.Notes.Subscribers(); n != 1 {
					t.Errorf("%d subscriptions, want 1", n)
				}
				return
			}
			if m.Type != "next" || m.ID != "1" {
				t.Fatalf("want only notes under id 1, got %s %s %s (the old operation's messages leaked)", m.Type, m.ID, m.Payload)
			}
		case <-deadline:
			t.Fatal("no pong")
		}
	}
}

// pump reads every message into a channel from now on.
func (c *rawSocket) pump() <-chan wsMessage {
	ch := make(chan wsMessage, 100)
	go func() {
		defer close(ch)
		for {
			_, b, err := c.conn.Read(context.Background())
			if err != nil {
				return
			}
			var m wsMessage
			if json.Unmarshal(b, &m) == nil {
				ch <- m
			}
		}
	}()
	return ch
}

// waitSubscriptions waits until exactly n subscriptions are registered.
func waitSubscriptions(t *testing.T, s *testServer, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.App.Notes.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d subscriptions, want %d", s.App.Notes.Subscribers(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// An operation that ends with an error message is not completed as well:
// error ends it (PROTOCOL.md), and gqlgen would send complete after it.
func TestSocket_NoCompleteAfterError(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	c := dialRaw(t, s.URL, nil)
	c.init("")
	c.write(subscribeFrame("1", `{ nope }`))
	c.write(subscribeFrame("2", `{ __typename }`))
	var got []string
	for len(got) < 3 {
		m := c.next(5 * time.Second)
		got = append(got, m.Type+":"+m.ID)
	}
	if want := "error:1 next:2 complete:2"; strings.Join(got, " ") != want {
		t.Errorf("messages %v, want %s", got, want)
	}
}

// A socket carries at most 20 operations at once: the next subscribe is
// answered with RATE_LIMITED/TOO_MANY_OPERATIONS, and the socket and its
// operations go on; completing one makes room for another.
func TestSocket_AtMost20Operations(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	p := s.register(t, "alice", "correct horse")
	c := dialRaw(t, s.URL, nil)
	c.init(p.AccessToken)
	for i := 1; i <= 20; i++ {
		c.write(subscribeFrame(strings.Repeat("x", i), noteCreated))
	}
	waitSubscribed(t, s, 20)
	c.write(subscribeFrame("one too many", noteCreated))
	m := c.next(5 * time.Second)
	if m.Type != "error" || m.ID != "one too many" {
		t.Fatalf("want an error message, got %s %s %s", m.Type, m.ID, m.Payload)
	}
	var errs []gqlError
	if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 ||
		errs[0].Extensions["code"] != "RATE_LIMITED" || errs[0].Extensions["reason"] != "TOO_MANY_OPERATIONS" {
		t.Fatalf("payload %s: %v", m.Payload, err)
	}
	if n := s.App.Notes.Subscribers(); n != 20 {
		t.Errorf("%d subscriptions, want 20", n)
	}
	// Still usable: room is made by completing one.
	c.write(`{"type":"complete","id":"x"}`)
	waitSubscriptions(t, s, 19)
	c.write(subscribeFrame("one too many", noteCreated))
	waitSubscriptions(t, s, 20)
	s.createNote(t, p.AccessToken, "to all", "")
	ids := map[string]bool{}
	for len(ids) < 20 {
		m := c.next(5 * time.Second)
		if m.Type != "next" {
			t.Fatalf("want a note, got %s %s %s", m.Type, m.ID, m.Payload)
		}
		ids[m.ID] = true
	}
	if ids["x"] || !ids["one too many"] {
		t.Errorf("the note went to %v", ids)
	}
}

// Sockets whose connection_init the transport refuses, for any reason, are
// closed at once and leave nothing behind: gqlgen returned from a
// connection_init payload that was not an object without closing, leaving
// the socket in CLOSE-WAIT on the server for good (240 of them exhaust a
// 256-descriptor limit).
func TestSocket_RefusedSocketsAreClosedAndFreed(t *testing.T) {
	s := newTestServer(t, dbtest.URL(t, "sqlite"), nil)
	frames := []string{
		`{"type":"connection_init","payload":[1]}`,
		`{"type":"connection_init","payload":"x"}`,
		`{"type":"connection_init","payload":1}`,
		`{"type":"connection_init","payload":{"Authorization":123}}`,
		`{"type":"connection_init","payload":{"Authorization":"Bearer garbage"}}`,
		`[1]`,
		`{"type":"subscribe","id":"1","payload":{"query":"{ __typename }"}}`,
	}
	codes := []websocket.StatusCode{4403, 4403, 4403, 4403, 4403, 4400, 4401}
	// Warm up, then count: whatever runs now is the baseline.
	dialRaw(t, s.URL, nil).init("")
	baseline := settledGoroutines()

	const sockets = 70
	start := time.Now()
	for i := range sockets {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.URL, "http")+"/graphql", &websocket.DialOptions{
			Subprotocols: []string{"graphql-transport-ws"},
		})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		c := &rawSocket{t: t, conn: conn}
		c.write(frames[i%len(frames)])
		c.wantClosed(codes[i%len(frames)], time.Second)
		conn.CloseNow()
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("%d refusals took %v", sockets, took)
	}
	// Poll (not sleep) until the server's goroutines for those sockets are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseline+5 {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines %v after %d refused sockets, baseline %d:\n%s",
				n, time.Since(start), sockets, baseline, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *testServer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(s.Log, nil))
}

// settledGoroutines is the goroutine count once it has stopped falling.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}
