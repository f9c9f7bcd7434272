package auth

import (
	"context"
	"time"
)

// Identity is who a verified access token speaks for.
type Identity struct {
	UserID    string
	Role      Role
	SessionID string
	TokenID   string
	// Fresh is true only for tokens issued by login, register or a second factor.
	Fresh bool
	// AAL is the level the session had reached when the token was issued.
	AAL AAL
	// Methods are how the session authenticated (the amr claim).
	Methods Methods
	// MFA is true when the user had a verified second factor when the token
	// was issued: then @auth without aal asks for AAL2.
	MFA       bool
	ExpiresAt time.Time
}

// Client describes the caller's connection, as the HTTP layer saw it.
type Client struct {
	// RequestID names the request in logs and in INTERNAL_SERVER_ERROR responses.
	RequestID string
	UserAgent string
	// IP is the client's address: the connection's peer, or the first
	// untrusted hop of X-Forwarded-For behind TRUSTED_PROXIES.
	IP string
}

type requestKey struct{}

// Request is what the layers of one request record about it, in one context
// value: the caller's connection, the identity its bearer token verified to
// (or why there is none), the GraphQL operation's name for the request's
// log line, and the GraphQL layer's own state for the request. The outermost
// layer puts it in the context once (WithRequest, or a context type of its
// own that answers for it: Value) and the layers below fill it in place
// (Authenticate, the GraphQL layer): a context of their own would cost each
// of them an allocation for the value and a copy of the *http.Request.
//
// The goroutine serving the request is the only one to write it, and it
// writes before anything reads what it wrote. The operations of a WebSocket
// run on goroutines of their own for as long as the socket lives: they never
// write into the upgrade request's Request; the socket's identity gets a
// Request of its own (NewContext).
type Request struct {
	Client Client
	// Operation is the GraphQL operation's name, empty if anonymous or unknown.
	Operation string
	// Transport is the GraphQL layer's state for the request (the graph
	// package's exchange), which auth never reads. The outermost layer may
	// reserve it in its own allocation; a socket's Request keeps the
	// upgrade request's.
	Transport any

	id       Identity
	err      error // why there is no identity, when verified and id is unset
	verified bool  // id or err was set
}

// WithRequest returns ctx carrying req, which the layers below fill in.
func WithRequest(ctx context.Context, req *Request) context.Context {
	return context.WithValue(ctx, requestKey{}, req)
}

// Value returns r if key is the context key of the request's record, and
// nil otherwise. A context type of another layer that holds the record (the
// api package's request deadline) answers for it from its own Value method,
// instead of wrapping its parent in WithRequest: one allocation less.
func (r *Request) Value(key any) any {
	if _, ok := key.(requestKey); ok {
		return r
	}
	return nil
}

// RequestFromContext returns the request's record, or nil outside a request.
func RequestFromContext(ctx context.Context) *Request {
	req, _ := ctx.Value(requestKey{}).(*Request)
	return req
}

// setIdentity records the outcome of verifying the request's token, once:
// it reports false if an outcome was recorded already.
func (r *Request) setIdentity(id Identity, err error) bool {
	if r.verified {
		return false
	}
	r.id, r.err, r.verified = id, err, true
	return true
}

// NewContext returns ctx carrying the verified identity id, in a Request of
// its own that keeps the caller's connection details and the GraphQL
// layer's state.
func NewContext(ctx context.Context, id Identity) context.Context {
	return WithRequest(ctx, inherit(ctx, Request{id: id, verified: true}))
}

// NewContextWithoutIdentity returns ctx recording why it has no identity
// (one of the UNAUTHENTICATED errors).
func NewContextWithoutIdentity(ctx context.Context, reason error) context.Context {
	return WithRequest(ctx, inherit(ctx, Request{err: reason, verified: true}))
}

// inherit returns req with the connection details and the GraphQL layer's
// state of the Request in ctx, if there is one.
func inherit(ctx context.Context, req Request) *Request {
	if parent := RequestFromContext(ctx); parent != nil {
		req.Client, req.Transport = parent.Client, parent.Transport
	}
	return &req
}

// FromContext returns the identity verified for this request, or the
// UNAUTHENTICATED error that says why there is none.
func FromContext(ctx context.Context) (Identity, error) {
	req := RequestFromContext(ctx)
	switch {
	case req == nil || !req.verified:
		return Identity{}, ErrTokenMissing
	case req.err != nil:
		return Identity{}, req.err
	}
	return req.id, nil
}

// NewClientContext returns ctx carrying the caller's connection details.
func NewClientContext(ctx context.Context, c Client) context.Context {
	return WithRequest(ctx, &Request{Client: c})
}

// ClientFromContext returns the connection details recorded by the middleware.
func ClientFromContext(ctx context.Context) Client {
	if req := RequestFromContext(ctx); req != nil {
		return req.Client
	}
	return Client{}
}
