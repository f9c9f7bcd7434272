package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// Close codes of graphql-transport-ws (graphql-ws's PROTOCOL.md) that the
// guard below sends. gqlgen closes with 1002 in their place, which the
// graphql-ws client treats as fatal and which tells a client nothing.
const (
	CloseBadRequest           = 4400 // a message the protocol does not allow
	CloseUnauthorized         = 4401 // subscribe before connection_ack
	CloseSubprotocol          = 4406 // the client did not offer graphql-transport-ws
	CloseInitTimeout          = 4408 // no connection_init in time
	CloseSubscriberExists     = 4409 // subscribe with the id of a live operation
	CloseTooManyInitRequests  = 4429 // a second connection_init
	CloseInternalServerError  = 4500 // the transport stopped for a reason of its own
	graphqlTransportWS        = "graphql-transport-ws"
	maxOperationsPerSocket    = 20
	maxOperationIDBytes       = 256
	ReasonTooManyOperations   = "TOO_MANY_OPERATIONS"
	tooManyOperationsRetrySec = 1
)

// errSocketClosed ends gqlgen's read loop once the guard has closed the socket.
var errSocketClosed = fmt.Errorf("socket closed by the protocol guard: %w", transport.ErrWebsocketClosed)

// protocolConn stands between the WebSocket and gqlgen's graphql-transport-ws
// implementation and enforces PROTOCOL.md to the letter, which gqlgen does
// not. Every frame from the client is checked before gqlgen sees it:
//
//   - it must be a JSON object with a known client message type; a ping
//     or pong payload, if any, an object; a subscribe an id and a payload
//     whose query is a string; otherwise 4400;
//   - ping is answered with pong here, at any time, before connection_init too;
//   - connection_init must come within the init timeout (4408), once (4429),
//     with an object or no payload (4403: API.md counts anything else as an
//     invalid token, and gqlgen would leave such a socket open forever);
//   - subscribe before connection_ack is 4401; with the id of a live
//     operation 4409; beyond maxOperationsPerSocket live operations it is
//     answered with an error message and the socket stays usable.
//
// Operation ids are renamed on the way in (a fresh internal id per
// subscribe) and back on the way out. gqlgen keys its operations by the
// client's id, so a client that completes an id and reuses it at once would
// otherwise share one slot between two operations, and receive the old
// one's late messages under the new one. Messages for an operation the
// client completed, and a complete after an error, are dropped, as the
// protocol requires.
//
// The first close wins: gqlgen's own (1000, 1002) after the guard's are
// ignored, and a socket closed by watchSocket carries 4403.
type protocolConn struct {
	inner transport.WebsocketConn
	st    *socketState

	mu        sync.Mutex
	closing   bool
	initSeen  bool
	acked     bool
	initTimer *time.Timer
	seq       uint64
	// live maps the client's id of each operation it has not completed to
	// its internal id (at most maxOperationsPerSocket); running holds the
	// internal ids gqlgen has not ended yet (an operation the client
	// completed winds down at once, its messages dropped).
	live    map[string]string
	running map[string]bool
}

var (
	_ transport.WebsocketConn          = (*protocolConn)(nil)
	_ transport.WebsocketReadLimiter   = (*protocolConn)(nil)
	_ transport.WebsocketReadDeadliner = (*protocolConn)(nil)
)

func newProtocolConn(inner transport.WebsocketConn, st *socketState, initTimeout time.Duration) *protocolConn {
	c := &protocolConn{inner: inner, st: st, live: map[string]string{}, running: map[string]bool{}}
	if inner.Subprotocol() != graphqlTransportWS {
		// gqlgen would fall back to the legacy subscriptions-transport-ws
		// protocol, which none of these rules cover.
		c.closeWith(CloseSubprotocol, "Subprotocol not acceptable")
		return c
	}
	c.initTimer = time.AfterFunc(initTimeout, func() {
		c.mu.Lock()
		seen := c.initSeen
		c.mu.Unlock()
		if !seen {
			c.closeWith(CloseInitTimeout, "Connection initialisation timeout")
		}
	})
	return c
}

// closeWith sends the close frame of code, unless one was sent already.
func (c *protocolConn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	c.mu.Unlock()
	_ = c.inner.WriteClose(code, closeReason(reason))
}

// closeReason fits reason into a close frame (123 bytes of UTF-8).
func closeReason(reason string) string {
	const max = 123
	if len(reason) <= max {
		return reason
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}

func (c *protocolConn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// clientMessage is a frame from the client, its members kept raw so that
// their JSON types can be checked.
type clientMessage map[string]json.RawMessage

func (m clientMessage) str(key string) (string, bool) {
	raw, ok := m[key]
	if !ok {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// optionalObject reports whether member key is absent, null or an object.
func (m clientMessage) optionalObject(key string) bool {
	raw, ok := m[key]
	if !ok {
		return true
	}
	raw = bytes.TrimSpace(raw)
	return bytes.Equal(raw, []byte("null")) || (len(raw) > 0 && raw[0] == '{')
}

func (c *protocolConn) NextReader() (int, io.Reader, error) {
	for {
		if c.isClosing() {
			return 0, nil, errSocketClosed
		}
		kind, r, err := c.inner.NextReader()
		if err != nil {
			return kind, r, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return kind, nil, err
		}
		out, pass, reply := c.inspect(data)
		if c.isClosing() {
			return 0, nil, errSocketClosed
		}
		if reply != nil {
			// Written by the reading goroutine: a client that floods pings
			// and reads nothing blocks only itself (coder/websocket writes
			// are safe alongside gqlgen's).
			if err := c.inner.WriteJSON(reply); err != nil {
				return 0, nil, err
			}
		}
		if pass {
			return kind, bytes.NewReader(out), nil
		}
	}
}

// inspect applies the rules to one frame: it returns the frame to hand to
// gqlgen and true, or false when the frame was answered here (with reply,
// if not nil) or closed the socket.
func (c *protocolConn) inspect(data []byte) (out []byte, pass bool, reply any) {
	var m clientMessage
	if err := json.Unmarshal(data, &m); err != nil || m == nil {
		c.closeWith(CloseBadRequest, "Invalid message received")
		return nil, false, nil
	}
	typ, ok := m.str("type")
	if !ok {
		c.closeWith(CloseBadRequest, "Invalid message received: no type")
		return nil, false, nil
	}
	switch typ {
	case "ping", "pong", "connection_init":
		if !m.optionalObject("payload") {
			if typ == "connection_init" {
				// An init payload that is not an object cannot hold a
				// token, and API.md counts it as an invalid one.
				c.closeWith(CloseForbidden, "Forbidden")
			} else {
				c.closeWith(CloseBadRequest, "Invalid message received: payload must be an object")
			}
			return nil, false, nil
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	switch typ {
	case "ping":
		pong := map[string]any{"type": "pong"}
		if p, ok := m["payload"]; ok {
			pong["payload"] = p
		}
		return nil, false, pong
	case "pong":
		// gqlgen clears its read deadline on a pong, once it is running.
		return data, c.acked, nil
	case "connection_init":
		if c.initSeen {
			c.closeLocked(CloseTooManyInitRequests, "Too many initialisation requests")
			return nil, false, nil
		}
		c.initSeen = true
		if c.initTimer != nil {
			c.initTimer.Stop()
		}
		return data, true, nil
	case "subscribe":
		id, ok := m.str("id")
		if !ok || id == "" || len(id) > maxOperationIDBytes || !validSubscribePayload(m["payload"]) {
			c.closeLocked(CloseBadRequest, "Invalid message received: subscribe needs an id and a payload with a query")
			return nil, false, nil
		}
		if !c.acked {
			c.closeLocked(CloseUnauthorized, "Unauthorized")
			return nil, false, nil
		}
		if _, exists := c.live[id]; exists {
			c.closeLocked(CloseSubscriberExists, "Subscriber for "+id+" already exists")
			return nil, false, nil
		}
		if len(c.live) >= maxOperationsPerSocket {
			return nil, false, tooManyOperations(id)
		}
		c.seq++
		internal := strconv.FormatUint(c.seq, 10) + ":" + id
		c.live[id] = internal
		c.running[internal] = true
		return withID(m, internal), true, nil
	case "complete":
		id, ok := m.str("id")
		if !ok || id == "" {
			c.closeLocked(CloseBadRequest, "Invalid message received: complete needs an id")
			return nil, false, nil
		}
		internal, live := c.live[id]
		if !live {
			return nil, false, nil // an operation already over: ignored, as the protocol allows
		}
		delete(c.live, id)
		return withID(m, internal), true, nil
	default:
		// Unknown types, and the server's own (next, error, connection_ack).
		c.closeLocked(CloseBadRequest, "Invalid message received: unexpected type")
		return nil, false, nil
	}
}

// closeLocked is closeWith for a caller that holds c.mu; the close frame is
// written once the lock is released.
func (c *protocolConn) closeLocked(code int, reason string) {
	c.mu.Unlock()
	c.closeWith(code, reason)
	c.mu.Lock()
}

func validSubscribePayload(raw json.RawMessage) bool {
	var p clientMessage
	if raw == nil || json.Unmarshal(raw, &p) != nil || p == nil {
		return false
	}
	if _, ok := p.str("query"); !ok {
		return false
	}
	if raw, ok := p["operationName"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		if _, ok := p.str("operationName"); !ok {
			return false
		}
	}
	return p.optionalObject("variables") && p.optionalObject("extensions")
}

func withID(m clientMessage, id string) []byte {
	m["id"], _ = json.Marshal(id)
	out, _ := json.Marshal(m)
	return out
}

// tooManyOperations is the error message that answers a subscribe beyond
// the limit: that operation ends, the socket and its other operations go on.
func tooManyOperations(id string) map[string]any {
	return map[string]any{"id": id, "type": "error", "payload": []map[string]any{{
		"message": fmt.Sprintf("A socket may carry at most %d operations at once: complete one first.", maxOperationsPerSocket),
		"extensions": map[string]any{
			"code":       "RATE_LIMITED",
			"reason":     ReasonTooManyOperations,
			"retryAfter": tooManyOperationsRetrySec,
		},
	}}}
}

// serverMessage is what gqlgen writes; only its type and id matter here.
type serverMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (c *protocolConn) WriteJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var m serverMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return nil
	}
	switch m.Type {
	case "connection_ack":
		c.acked = true
	case "next", "error", "complete":
		seq, id, ok := strings.Cut(m.ID, ":")
		if !ok || seq == "" || !c.running[m.ID] {
			c.mu.Unlock()
			return nil // an operation already ended (error then complete): nothing more is sent
		}
		if m.Type != "next" {
			delete(c.running, m.ID)
		}
		if c.live[id] != m.ID {
			c.mu.Unlock()
			return nil // the client completed it: no further events are sent
		}
		if m.Type != "next" {
			delete(c.live, id)
		}
		m.ID = id
	}
	c.mu.Unlock()
	return c.inner.WriteJSON(m)
}

func (c *protocolConn) WriteClose(code int, message string) error {
	switch {
	case c.st != nil && c.st.forbidden.Load():
		code, message = CloseForbidden, "Forbidden"
	case code == transport.WebsocketCloseProtocolError:
		// gqlgen's 1002, for anything the guard did not catch first.
		code, message = CloseBadRequest, "Invalid message received"
	}
	c.closeWith(code, message)
	return nil
}

func (c *protocolConn) Close() error {
	c.mu.Lock()
	if c.initTimer != nil {
		c.initTimer.Stop()
	}
	c.mu.Unlock()
	return c.inner.Close()
}

// ensureClosed is called once gqlgen's transport has returned: whatever
// path it took, the socket is closed (with 4500 if nothing closed it yet),
// so that no connection outlives its handler.
func (c *protocolConn) ensureClosed() {
	c.closeWith(CloseInternalServerError, "Internal server error")
	_ = c.inner.Close()
}

func (c *protocolConn) Subprotocol() string { return c.inner.Subprotocol() }

// SetReadLimit and SetReadDeadline pass on the optional interfaces of the
// wrapped connection, which gqlgen uses for its payload limit and pongs.
func (c *protocolConn) SetReadLimit(limit int64) {
	if l, ok := c.inner.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *protocolConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.inner.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
