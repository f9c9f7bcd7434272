package auth

import (
	"net/http"
	"strings"
)

// Middleware verifies the bearer token of each request and records the
// identity, or why there is none, in the request context. It never refuses a
// request: public fields such as login must work with a stale token in the
// header, and the @auth directive decides what needs an identity.
func Middleware(s *Service) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r.WithContext(s.Authenticate(r.Context(), r.Header.Get("Authorization"))))
		})
	}
}

// bearer extracts the token of an Authorization value ("Bearer <token>").
func bearer(authorization string) (string, error) {
	if authorization == "" {
		return "", ErrTokenMissing
	}
	scheme, token, ok := strings.Cut(authorization, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", ErrTokenInvalid
	}
	return token, nil
}
