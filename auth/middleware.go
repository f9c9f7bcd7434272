package auth

import (
	"context"
	"net/http"
	"strings"
)

// Middleware verifies the bearer token of each request and records the
// identity, or why there is none, in the request context. It never refuses a
// request: public fields such as login must work with a stale token in the
// header, and the @auth directive decides what needs an identity.
func Middleware(tokens *TokenIssuer) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := Authenticate(r.Context(), tokens, r.Header.Get("Authorization"))
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// Authenticate verifies an Authorization value ("Bearer <token>") and returns
// ctx carrying the identity or the reason there is none.
func Authenticate(ctx context.Context, tokens *TokenIssuer, authorization string) context.Context {
	if authorization == "" {
		return NewContextWithoutIdentity(ctx, ErrTokenMissing)
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return NewContextWithoutIdentity(ctx, ErrTokenInvalid)
	}
	id, err := tokens.Verify(token)
	if err != nil {
		return NewContextWithoutIdentity(ctx, err)
	}
	return NewContext(ctx, id)
}
