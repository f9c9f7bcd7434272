package graph

import (
	"context"
	"net/http"

	"tollgate/auth"
)

// Refresh cookie names (API.md, "Browser sessions"). The __Host- prefix makes
// browsers insist on Secure, Path=/ and no Domain, so no subdomain can plant
// or read it; plain HTTP in development cannot carry it.
const (
	secureCookieName = "__Host-tollgate_refresh"
	devCookieName    = "tollgate_refresh"
)

type exchangeKey struct{}

// exchange gives resolvers the HTTP request and response, for the refresh cookie.
type exchange struct {
	w      http.ResponseWriter
	r      *http.Request
	secure bool
}

// withExchange records the HTTP exchange in the request context.
func withExchange(secure bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), exchangeKey{}, &exchange{w: w, r: r, secure: secure})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func exchangeFrom(ctx context.Context) *exchange {
	ex, _ := ctx.Value(exchangeKey{}).(*exchange)
	return ex
}

func (ex *exchange) cookieName() string {
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
	http.SetCookie(ex.w, &http.Cookie{
		Name:     ex.cookieName(),
		Value:    *t.RefreshToken,
		Path:     "/",
		MaxAge:   t.RefreshExpiresIn,
		Secure:   ex.secure,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
	t.RefreshToken = nil
	return t
}

// refreshCookie returns the refresh token of the cookie, if any.
func refreshCookie(ctx context.Context) (string, bool) {
	ex := exchangeFrom(ctx)
	if ex == nil {
		return "", false
	}
	c, err := ex.r.Cookie(ex.cookieName())
	if err != nil || c.Value == "" {
		return "", false
	}
	return c.Value, true
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
