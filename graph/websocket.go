package graph

import (
	"context"
	"errors"
	"net/http"
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

// socketState is shared by the connection adapter and InitFunc of one socket.
type socketState struct {
	forbidden atomic.Bool
}

// withSocketState prepares the state of a WebSocket upgrade request.
func withSocketState(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			r = r.WithContext(context.WithValue(r.Context(), socketKey{}, &socketState{}))
		}
		next.ServeHTTP(w, r)
	})
}

// websocketTransport speaks graphql-transport-ws (and the older graphql-ws)
// at /graphql. The access token comes in the connection_init payload
// ({"Authorization": "Bearer …"}) and is verified exactly as over HTTP; @auth
// then guards subscription fields as it guards queries. originHosts are the
// hosts allowed besides the server's own (coder/websocket refuses every
// other Origin at the upgrade).
func websocketTransport(svc *auth.Service, originHosts []string) transport.Websocket {
	return transport.Websocket{
		Implementation: socketAdapter{transport.CoderWebsocketImplementation{
			AcceptOptions: websocket.AcceptOptions{OriginPatterns: originHosts},
		}},
		InitTimeout:      10 * time.Second,
		PingPongInterval: 30 * time.Second,
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			authorization := payload.Authorization()
			if authorization == "" {
				// Accepted without identity: public subscriptions may exist, and
				// @auth fields answer UNAUTHENTICATED/TOKEN_MISSING.
				return auth.NewContextWithoutIdentity(ctx, auth.ErrTokenMissing), nil, nil
			}
			id, err := svc.Verify(authorization)
			if err != nil {
				// Present but unusable: closed at once. The reason stays here.
				ctx = transport.AppendCloseReason(transport.WithWebsocketCloseCode(ctx, CloseForbidden), "Forbidden")
				return ctx, nil, errors.New("Forbidden")
			}
			ctx, cancel := context.WithCancel(auth.NewContext(ctx, id))
			st, _ := ctx.Value(socketKey{}).(*socketState)
			go watchSocket(ctx, cancel, st, svc, id)
			return ctx, nil, nil
		},
	}
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

// socketAdapter wraps gqlgen's coder/websocket adapter so that a socket
// closed by watchSocket carries CloseForbidden instead of a normal closure.
type socketAdapter struct {
	inner transport.WebsocketImplementation
}

func (a socketAdapter) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := a.inner.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	st, _ := r.Context().Value(socketKey{}).(*socketState)
	return &socketConn{WebsocketConn: conn, st: st}, nil
}

type socketConn struct {
	transport.WebsocketConn
	st *socketState
}

func (c *socketConn) WriteClose(code int, message string) error {
	if c.st != nil && c.st.forbidden.Load() {
		code, message = CloseForbidden, "Forbidden"
	}
	return c.WebsocketConn.WriteClose(code, message)
}

// SetReadLimit and SetReadDeadline pass on the optional interfaces of the
// wrapped connection, which gqlgen uses for its payload limit and pongs.
func (c *socketConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *socketConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
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
