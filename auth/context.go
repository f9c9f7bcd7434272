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

type contextKey int

const (
	identityKey contextKey = iota
	clientKey
)

// identityState is the verified identity, or the reason there is none. The
// context holds a pointer to it: one allocation per request, where a value
// would box a copy and the identity be allocated again.
type identityState struct {
	id  Identity
	ok  bool
	err error
}

// NewContext returns ctx carrying the verified identity id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey, &identityState{id: id, ok: true})
}

// NewContextWithoutIdentity returns ctx recording why it has no identity
// (one of the UNAUTHENTICATED errors).
func NewContextWithoutIdentity(ctx context.Context, reason error) context.Context {
	return context.WithValue(ctx, identityKey, &identityState{err: reason})
}

// FromContext returns the identity verified for this request, or the
// UNAUTHENTICATED error that says why there is none.
func FromContext(ctx context.Context) (Identity, error) {
	st, found := ctx.Value(identityKey).(*identityState)
	switch {
	case !found:
		return Identity{}, ErrTokenMissing
	case !st.ok:
		return Identity{}, st.err
	}
	return st.id, nil
}

// NewClientContext returns ctx carrying the caller's connection details.
func NewClientContext(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey, c)
}

// ClientFromContext returns the connection details recorded by the middleware.
func ClientFromContext(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey).(Client)
	return c
}
