package graph

import (
	"context"
	"net/http"

	"tollgate/auth"
)

// linkIdentityStart begins a link flow and binds its state to this browser
// with the state cookie, as the start route does for a sign-in: the
// callback refuses a browser without it, so a link URL handed to someone
// else cannot attach their provider account to the caller.
func linkIdentityStart(ctx context.Context, fed *auth.Federation, provider, redirectURI string) (string, error) {
	if overSocket(ctx) {
		return "", ErrCookieOverSocket
	}
	ex := exchangeFrom(ctx)
	if fed == nil || ex == nil {
		return "", auth.ErrUnknownProvider
	}
	b, err := fed.LinkStart(ctx, provider, redirectURI)
	if err != nil {
		return "", err
	}
	http.SetCookie(ex.w, auth.StateCookie(b.State, ex.secure))
	return b.URL, nil
}
