package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strconv"

	"tollgate/auth"
	"tollgate/graph"
)

// The routes of sign-in with an OpenID Connect provider (API.md): the HTTP
// half of the flow. The account rules, the providers and the flows are
// auth.Federation's; these handlers only read the request, set the
// cookies and redirect.
const (
	oidcStartPath    = "GET /auth/oidc/{provider}/start"
	oidcCallbackPath = "GET /auth/oidc/{provider}/callback"
)

// oidcRoutes registers the two routes on mux.
func oidcRoutes(mux *http.ServeMux, fed *auth.Federation, secure bool, logger *slog.Logger) {
	mux.Handle(oidcStartPath, noStore(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fed.Start(r.Context(), r.PathValue("provider"), r.URL.Query().Get("redirect_uri"))
		var ae *auth.Error
		switch {
		case err == auth.ErrUnknownProvider:
			writeText(w, http.StatusNotFound, "No such sign-in provider.")
			return
		case err == auth.ErrRedirectURINotAllowed:
			// No redirect at all: an unlisted redirect_uri is never followed.
			writeText(w, http.StatusBadRequest, "This redirect_uri is not allowed.")
			return
		case err == auth.ErrProviderUnavailable:
			w.Header().Set("Retry-After", "5")
			writeText(w, http.StatusServiceUnavailable, "The sign-in provider cannot be reached right now: try again in a moment.")
			return
		case errors.As(err, &ae) && ae.Code == auth.CodeRateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
			writeText(w, http.StatusTooManyRequests, ae.Message)
			return
		case err != nil:
			logger.Error("oidc start failed", "request_id", auth.ClientFromContext(r.Context()).RequestID, "error", err.Error())
			writeText(w, http.StatusInternalServerError, "The sign-in could not begin.")
			return
		}
		http.SetCookie(w, auth.StateCookie(b.State, secure))
		http.Redirect(w, r, b.URL, http.StatusFound)
	})))
	mux.Handle(oidcCallbackPath, noStore(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		req := auth.CallbackRequest{Provider: r.PathValue("provider"), State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")}
		if c, err := r.Cookie(auth.StateCookieName(secure)); err == nil {
			req.StateCookie = c.Value
		}
		res, err := fed.Callback(r.Context(), req)
		// The state cookie has served, whatever the outcome.
		clear := auth.StateCookie("", secure)
		clear.MaxAge = -1
		http.SetCookie(w, clear)
		var fe *auth.FederationError
		var ae *auth.Error
		switch {
		case errors.As(err, &fe) && fe.RedirectURI != "":
			http.Redirect(w, r, auth.ErrorRedirect(fe.RedirectURI, fe.Code), http.StatusFound)
			return
		case errors.As(err, &fe):
			writeText(w, http.StatusBadRequest, "This sign-in cannot be finished: begin again.")
			return
		case errors.As(err, &ae) && ae.Code == auth.CodeRateLimited:
			w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
			writeText(w, http.StatusTooManyRequests, ae.Message)
			return
		case err != nil:
			logger.Error("oidc callback failed", "request_id", auth.ClientFromContext(r.Context()).RequestID, "error", err.Error())
			writeText(w, http.StatusInternalServerError, "The sign-in could not be finished.")
			return
		}
		if res.Tokens != nil {
			// The session goes to the refresh cookie of the contract, never
			// into the URL; the page then calls refreshToken without a token.
			http.SetCookie(w, graph.RefreshCookie(*res.Tokens.RefreshToken, res.Tokens.RefreshExpiresIn, secure))
		}
		http.Redirect(w, r, res.RedirectURI, http.StatusFound)
	})))
}
