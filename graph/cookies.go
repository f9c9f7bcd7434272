package graph

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// Refresh cookie names (API.md, "Browser sessions"). The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain, so no subdomain can plant
// or read it; plain HTTP in development cannot carry it.
const (
	secureCookieName = "__Host-tollgate_refresh"
	devCookieName    = "tollgate_refresh"
)

// Exchange is the GraphQL layer's state for one HTTP request: the request
// and its writer (for the refresh cookie), the operation's loaders and the
// budget of its answer. It lives in the request's auth.Request (Transport),
// so that the request carries one context value rather than two; a layer
// that allocates per-request state anyway may reserve one there, zero, in
// the same allocation (the api package does). Its fields are the graph
// package's own.
type Exchange struct {
	w      http.ResponseWriter
	r      *http.Request
	secure bool
	// origins are the origins besides the server's own whose requests may
	// use the refresh cookie (CORS_ORIGINS).
	origins map[string]bool
	// loaders serve the request's operation: an HTTP request carries one
	// (withLoaders), and they come in the same allocation.
	loaders loaders
	// budget accounts for the bytes of the request's answer (responseBudgets).
	budget budget
	// socket is set for a WebSocket upgrade: its operations share it.
	socket bool
	// query and doc are what the one lookup of the operation's document
	// found (documents), if looked is set; doc is nil if it found nothing.
	query  string
	doc    *document
	looked bool
	// post is what the POST transport needs for the request's operation.
	post struct {
		w      requestErrorWriter
		params graphql.RawParams
		body   postBody
	}
}

// withExchange records the HTTP exchange in the request's auth.Request: in
// the one reserved there, if any and unused, else in one of its own.
func withExchange(secure bool, origins []string, next http.Handler) http.Handler {
	allowed := make(map[string]bool, len(origins))
	for _, o := range origins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := auth.RequestFromContext(r.Context())
		if req == nil {
			// Served without a record (the handler on its own, in tests):
			// one of its own, which says what an absent one says.
			req = &auth.Request{}
			r = r.WithContext(auth.WithRequest(r.Context(), req))
		}
		ex, _ := req.Transport.(*Exchange)
		if ex == nil || ex.r != nil {
			ex = &Exchange{}
			req.Transport = ex
		}
		ex.w, ex.r, ex.secure, ex.origins = w, r, secure, allowed
		ex.socket = r.Context().Value(socketKey{}) != nil // withSocketState comes first
		next.ServeHTTP(w, r)
	})
}

// ErrOriginNotAllowed refuses a cookie-only refreshToken sent from a page of
// a foreign origin (API.md, "Cookie CSRF rule").
var ErrOriginNotAllowed = &auth.Error{Code: auth.CodeForbidden, Reason: auth.ReasonOriginNotAllowed,
	Message: "The refresh cookie may be used only from this server's own origin or an allowed one."}

// ErrCookieOverSocket refuses what would create or rotate a refresh cookie
// over a WebSocket: no Set-Cookie can reach the browser there, so the
// browser would keep a retired token and its next refresh would look like theft.
var ErrCookieOverSocket = &auth.Error{Code: auth.CodeBadRequest,
	Message: "Refresh cookies cannot be set over a WebSocket: send this mutation over HTTP."}

// originAllowed applies the cookie rule to the request: no Origin (a
// same-origin navigation, a non-browser client), the server's own origin, or
// an allowed one, compared exactly, scheme and port included. "null" (a
// sandboxed frame, a file: page) is never allowed.
func (ex *Exchange) originAllowed() bool {
	origin := ex.r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	scheme := "http"
	if ex.secure || ex.r.TLS != nil {
		scheme = "https"
	}
	return origin == scheme+"://"+ex.r.Host || ex.origins[origin]
}

// overSocket reports whether the operation arrived over a WebSocket.
func overSocket(ctx context.Context) bool {
	return ctx.Value(socketKey{}) != nil
}

// exchangeFrom returns the request's exchange, nil outside the handler.
func exchangeFrom(ctx context.Context) *Exchange {
	if req := auth.RequestFromContext(ctx); req != nil {
		ex, _ := req.Transport.(*Exchange)
		return ex
	}
	return nil
}

func (ex *Exchange) cookieName() string {
	if ex.secure {
		return secureCookieName
	}
	return devCookieName
}

// deliver moves the refresh token of t into an HttpOnly cookie when asked
// (cookie), so that page scripts never see it, and leaves it in the payload otherwise.
func deliver(ctx context.Context, t *auth.Tokens, cookie bool) *auth.Tokens {
	ex := exchangeFrom(ctx)
	if !cookie || ex == nil || t.RefreshToken == nil {
		return t
	}
	http.SetCookie(ex.w, RefreshCookie(*t.RefreshToken, t.RefreshExpiresIn, ex.secure))
	t.RefreshToken = nil
	return t
}

// RefreshCookie is the refresh cookie holding token for maxAge seconds:
// HttpOnly, SameSite=Strict, and under secure the __Host- name and Secure.
// The OpenID Connect callback opens its session in it too.
func RefreshCookie(token string, maxAge int, secure bool) *http.Cookie {
	name := devCookieName
	if secure {
		name = secureCookieName
	}
	return &http.Cookie{
		Name:     name,
		Value:    token,
		Path:     "/",
		MaxAge:   maxAge,
		Secure:   secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	}
}

// cookieAllowed refuses cookie: true where no cookie can be set (a WebSocket),
// before anything is created.
func cookieAllowed(ctx context.Context, cookie *bool) error {
	if cookie != nil && *cookie && overSocket(ctx) {
		return ErrCookieOverSocket
	}
	return nil
}

// refreshCookie returns the refresh token of the cookie: REFRESH_TOKEN_INVALID
// when there is none, ORIGIN_NOT_ALLOWED when the request comes from a page
// that may not use it, and BAD_REQUEST over a WebSocket.
func refreshCookie(ctx context.Context) (string, error) {
	if overSocket(ctx) {
		return "", ErrCookieOverSocket
	}
	ex := exchangeFrom(ctx)
	if ex == nil {
		return "", auth.ErrRefreshTokenInvalid
	}
	c, err := ex.r.Cookie(ex.cookieName())
	if err != nil || c.Value == "" {
		return "", auth.ErrRefreshTokenInvalid
	}
	if !ex.originAllowed() {
		return "", ErrOriginNotAllowed
	}
	return c.Value, nil
}

// clearRefreshCookie tells the browser to drop the refresh cookie.
func clearRefreshCookie(ctx context.Context) {
	ex := exchangeFrom(ctx)
	if ex == nil {
		return
	}
	if _, err := ex.r.Cookie(ex.cookieName()); err != nil {
		return // nothing to clear
	}
	http.SetCookie(ex.w, &http.Cookie{
		Name: ex.cookieName(), Value: "", Path: "/", MaxAge: -1,
		Secure: ex.secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}
