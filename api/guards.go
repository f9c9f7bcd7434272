package api

import (
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/rs/cors"

	"tollgate/auth"
)

// graphqlMethods are the methods /graphql serves (OPTIONS for CORS
// preflights and gqlgen's own answer).
const graphqlMethods = "GET, POST, OPTIONS"

// allowMethods answers 405, with Allow and the contract's BAD_REQUEST body,
// for any method /graphql does not serve. It comes before csrfGuard: a bare
// PUT is no CSRF suspect but a wrong method, and was answered 400 as one.
func allowMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Allow", graphqlMethods)
		writeError(w, http.StatusMethodNotAllowed, "BAD_REQUEST", "GraphQL is served over GET and POST only.")
	})
}

// csrfGuard refuses requests that a browser could send from another site
// without a CORS preflight: a GET, or a POST whose Content-Type is one of
// the "simple" ones (form, multipart, text/plain), unless it carries a header
// that no page can set cross-site without a preflight (X-Apollo-Operation-Name
// or Apollo-Require-Preflight, the headers Apollo Server checks). Clients
// that send JSON are unaffected: application/json is not simple.
func csrfGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions || isWebSocketUpgrade(r) || !csrfSuspect(r) {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, http.StatusBadRequest, "BAD_REQUEST",
			"This request could have come from another site: send it with Content-Type: application/json, "+
				"or with an Apollo-Require-Preflight header.")
	})
}

func csrfSuspect(r *http.Request) bool {
	if r.Header.Get("X-Apollo-Operation-Name") != "" || r.Header.Get("Apollo-Require-Preflight") != "" {
		return false
	}
	ct := r.Header.Get("Content-Type")
	switch ct {
	case "":
		return true
	case "application/json":
		return false // the usual header, exactly: no parsing (ParseMediaType allocates)
	}
	mediaType, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return true
	}
	switch strings.ToLower(mediaType) {
	case "application/x-www-form-urlencoded", "multipart/form-data", "text/plain":
		return true
	}
	return false
}

// corsFor allows the listed origins, and only them, to call the API from a
// browser; credentials (the refresh cookie) are allowed for them alone.
// Without origins it adds nothing: the browser's same-origin rule stands
// (rs/cors would read an empty list as "every origin").
func corsFor(origins []string, next http.Handler) http.Handler {
	if len(origins) == 0 {
		return next
	}
	return cors.New(cors.Options{
		AllowedOrigins: origins,
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Apollo-Require-Preflight", "X-Apollo-Operation-Name",
			"Apollographql-Client-Name", "Apollographql-Client-Version"},
		AllowCredentials: true,
		MaxAge:           600,
	}).Handler(next)
}

// requestDBTimeout bounds the time one request may wait on the database (and
// on the password hasher): a request against a database that does not answer
// fails with INTERNAL_SERVER_ERROR instead of hanging. withRequest sets it.
const requestDBTimeout = 10 * time.Second

// withIdentity records the request's identity, as auth.Middleware does, in
// the request's auth.Request: no copy of the request.
func withIdentity(svc *auth.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ctx := svc.Authenticate(r.Context(), r.Header.Get("Authorization")); ctx != r.Context() {
			r = r.WithContext(ctx) // no auth.Request to record it in
		}
		next.ServeHTTP(w, r)
	})
}
