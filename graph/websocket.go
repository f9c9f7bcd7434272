package graph

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"

	"tollgate/auth"
)

// CloseForbidden is the close code graphql-ws gives "Forbidden": a socket is
// closed with it when its token is invalid at connection_init, or expires,
// is revoked or loses its role while the socket is open.
const CloseForbidden = 4403

// socketCheckInterval is how often an open socket's token is checked against
// the clock and the revocation list (both in memory).
const socketCheckInterval = 200 * time.Millisecond

type socketKey struct{}

// socketState is shared by the transport, the connection guard and InitFunc
// of one socket.
type socketState struct {
	forbidden atomic.Bool
	conn      atomic.Pointer[protocolConn]
}

// withSocketState prepares the state of a WebSocket upgrade request (and
// only of one: any other Upgrade header is an ordinary request).
func withSocketState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if IsWebSocketUpgrade(r) {
			r = r.WithContext(context.WithValue(r.Context(), socketKey{}, &socketState{}))
		}
		next.ServeHTTP(w, r)
	})
}

// CloseGoingAway is the close code RFC 6455 gives an endpoint that is going
// away: every open socket gets it when the server shuts down. graphql-ws
// clients take it as a close to retry, not a fatal one, and reconnect, through
// the load balancer, to an instance that stays.
const CloseGoingAway = 1001

// Sockets is the registry of a handler's open WebSockets. net/http's
// Shutdown waits for HTTP requests but leaves hijacked connections alone, so
// without it a shutdown cut every socket when the process exited: the client
// saw 1006 (no close frame) and could not tell a restart from a network
// fault. GoingAway closes each socket properly instead, and Drain waits for
// their connections to close.
type Sockets struct {
	mu sync.Mutex
	// open maps each socket to its hijacked connection.
	open      map[*protocolConn]*watchedConn
	goingAway bool
	// drained is closed once going away with no socket left open.
	drained   chan struct{}
	isDrained bool
}

// NewSockets returns an empty registry.
func NewSockets() *Sockets {
	return &Sockets{open: map[*protocolConn]*watchedConn{}, drained: make(chan struct{})}
}

// add registers c until conn is closed, or reports false once the handler
// is going away (the caller then closes c at once).
func (s *Sockets) add(c *protocolConn, conn *watchedConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.goingAway {
		return false
	}
	s.open[c] = conn
	go func() {
		<-conn.done
		s.remove(c)
	}()
	return true
}

// remove forgets c, whose connection is closed.
func (s *Sockets) remove(c *protocolConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.open, c)
	s.checkDrainedLocked()
}

func (s *Sockets) checkDrainedLocked() {
	if s.goingAway && len(s.open) == 0 && !s.isDrained {
		s.isDrained = true
		close(s.drained)
	}
}

// Len is the number of open sockets.
func (s *Sockets) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// GoingAway sends every open socket a close frame with CloseGoingAway, and
// closes any socket accepted after it the same way, at once. It does not
// wait (http.Server.RegisterOnShutdown's contract): the close handshakes run
// in the background, and Drain waits for them.
func (s *Sockets) GoingAway() {
	s.mu.Lock()
	if s.goingAway {
		s.mu.Unlock()
		return
	}
	s.goingAway = true
	conns := make([]*protocolConn, 0, len(s.open))
	for c := range s.open {
		conns = append(conns, c)
	}
	s.checkDrainedLocked()
	s.mu.Unlock()
	for _, c := range conns {
		c.closeWith(CloseGoingAway, "Going Away")
	}
}

// Drain calls GoingAway and waits until the connection of every socket is
// closed. A client that answers the close frame takes a round trip; one that
// never does, at most the WebSocket library's bounds on the close handshake
// (5 s to write the frame, 5 s for the answer). Once ctx is done, the
// connections still open are cut, so that none outlives the server.
func (s *Sockets) Drain(ctx context.Context) error {
	s.GoingAway()
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	conns := make([]*watchedConn, 0, len(s.open))
	for _, conn := range s.open {
		conns = append(conns, conn)
	}
	s.mu.Unlock()
	for _, conn := range conns {
		conn.Close()
	}
	return fmt.Errorf("close sockets: %d cut after the grace period: %w", len(conns), ctx.Err())
}

// socketInitTimeout is how long a socket may wait before connection_init.
const socketInitTimeout = 10 * time.Second

// socketTransport is gqlgen's WebSocket transport behind the checks it
// lacks: it takes only real WebSocket upgrades (gqlgen's takes any request
// with an Upgrade header, a POST with curl's "Upgrade: h2c" too), checks the
// Origin exactly and the handshake before accepting, and closes the socket
// on every path out of gqlgen's transport.
type socketTransport struct {
	ws      transport.Websocket
	origins originPolicy
	sockets *Sockets
}

var _ graphql.Transport = socketTransport{}

func (t socketTransport) Supports(r *http.Request) bool { return IsWebSocketUpgrade(r) }

func (t socketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.origins.allows(r) {
		// Checked here rather than by coder/websocket, which compares only
		// the host: https://app.example.com would let http://app.example.com in.
		refuse(w, http.StatusForbidden, auth.CodeForbidden, ReasonOriginNotAllowed,
			"This origin may not open a WebSocket: use the server's own origin or one of CORS_ORIGINS.")
		return
	}
	if !checkHandshake(w, r) {
		return
	}
	if !canHijack(w) {
		refuse(w, http.StatusNotImplemented, codeBadRequest, "", "This server cannot upgrade the connection to a WebSocket.")
		return
	}
	st, _ := r.Context().Value(socketKey{}).(*socketState)
	if st == nil {
		st = &socketState{}
		r = r.WithContext(context.WithValue(r.Context(), socketKey{}, st))
	}
	t.ws.Do(&upgradeWriter{ResponseWriter: w}, r, exec)
	// gqlgen returns without closing on some paths (an init payload it
	// cannot decode left the socket in CLOSE-WAIT for good).
	if c := st.conn.Load(); c != nil {
		c.ensureClosed()
	}
}

// websocketTransport speaks graphql-transport-ws at /graphql. The access
// token comes in the connection_init payload ({"Authorization": "Bearer …"})
// and is verified exactly as over HTTP; @auth then guards subscription
// fields as it guards queries. origins are the browser origins allowed
// besides the server's own.
// sockets, if not nil, keeps the open sockets for a shutdown.
func websocketTransport(svc *auth.Service, origins []string, initTimeout time.Duration, sockets *Sockets) socketTransport {
	if initTimeout <= 0 {
		initTimeout = socketInitTimeout
	}
	if sockets == nil {
		sockets = NewSockets()
	}
	return socketTransport{origins: newOriginPolicy(origins), sockets: sockets, ws: transport.Websocket{
		Implementation: socketAdapter{
			sockets: sockets,
			inner: transport.CoderWebsocketImplementation{
				// The Origin was checked exactly by socketTransport.Do.
				AcceptOptions: websocket.AcceptOptions{InsecureSkipVerify: true},
			},
			initTimeout: initTimeout,
		},
		// The init timeout is the guard's (4408); gqlgen's would close with 1002.
		InitTimeout:      0,
		PingPongInterval: 30 * time.Second,
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			forbidden := func() (context.Context, *transport.InitPayload, error) {
				// The reason stays here: the client learns only "Forbidden".
				ctx = transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseForbidden), "Forbidden")
				return ctx, nil, errors.New("Forbidden")
			}
			for _, key := range []string{"Authorization", "authorization"} {
				if v, present := payload[key]; present {
					if _, ok := v.(string); !ok {
						// 123 or ["Bearer x"] is no token, and no absence of one either.
						return forbidden()
					}
				}
			}
			authorization := payload.Authorization()
			if authorization == "" {
				// Accepted without identity: public subscriptions may exist, and
				// @auth fields answer UNAUTHENTICATED/TOKEN_MISSING.
				return auth.NewContextWithoutIdentity(ctx, auth.ErrTokenMissing), nil, nil
			}
			id, err := svc.Verify(authorization)
			if err != nil {
				return forbidden()
			}
			ctx, cancel := context.WithCancel(auth.NewContext(ctx, id))
			st, _ := ctx.Value(socketKey{}).(*socketState)
			go watchSocket(ctx, cancel, st, svc, id)
			return ctx, nil, nil
		},
	}}
}

// watchSocket closes the socket (through cancel, with CloseForbidden) once the
// token of id has expired, its session was revoked or its user's role changed.
func watchSocket(ctx context.Context, cancel context.CancelFunc, st *socketState, svc *auth.Service, id auth.Identity) {
	tick := time.NewTicker(socketCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if svc.StillValid(id) != nil {
				if st != nil {
					st.forbidden.Store(true)
				}
				cancel()
				return
			}
		}
	}
}

// socketAdapter wraps gqlgen's coder/websocket adapter: the upgrade offers
// graphql-transport-ws only, the hijacked connection loses the HTTP
// deadlines (upgradeWriter), and every frame passes the protocol guard.
type socketAdapter struct {
	inner       transport.WebsocketImplementation
	initTimeout time.Duration
	sockets     *Sockets
}

func (a socketAdapter) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	opts.Subprotocols = []string{graphqlTransportWS}
	uw, ok := w.(*upgradeWriter) // socketTransport.Do's
	if !ok {
		uw = &upgradeWriter{ResponseWriter: w}
	}
	conn, err := a.inner.Accept(uw, r, opts)
	if err != nil {
		return nil, err
	}
	st, _ := r.Context().Value(socketKey{}).(*socketState)
	c := newProtocolConn(conn, st, a.initTimeout)
	if st != nil {
		st.conn.Store(c)
	}
	if uw.conn != nil && !a.sockets.add(c, uw.conn) {
		// Accepted while the server shuts down: told so at once.
		c.closeWith(CloseGoingAway, "Going Away")
	}
	return c, nil
}

// subscriptionErrors reports a subscription that fails at its root field
// (@auth refusing it, or its resolver failing before any event) as a
// graphql-transport-ws "error" message, which ends that subscription, instead
// of a "next" message that carries only errors. Errors deeper in an event
// (a path longer than the root field) stay in that event.
func subscriptionErrors(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	responses := next(ctx)
	oc := graphql.GetOperationContext(ctx)
	if ctx.Value(socketKey{}) == nil || oc == nil || oc.Operation == nil || oc.Operation.Operation != ast.Subscription {
		return responses
	}
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil || len(resp.Errors) == 0 {
			return resp
		}
		for _, e := range resp.Errors {
			if len(e.Path) > 1 {
				return resp
			}
		}
		for _, e := range resp.Errors {
			transport.AddSubscriptionError(ctx, e)
		}
		return nil
	}
}
