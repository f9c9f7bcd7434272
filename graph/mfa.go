package graph

import "context"

// usesRefreshCookie reports whether the client keeps its refresh token in the
// cookie (the request carries it, from an allowed origin): then the new
// refresh token of a step-up (verifyTotp, useRecoveryCode) replaces the
// cookie instead of appearing in the payload, where page scripts would see it.
func usesRefreshCookie(ctx context.Context) bool {
	ex := exchangeFrom(ctx)
	if ex == nil || overSocket(ctx) {
		return false
	}
	c, err := ex.r.Cookie(ex.cookieName())
	return err == nil && c.Value != "" && ex.originAllowed()
}
