package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// authDirective implements @auth(requires, fresh, aal): the one place where
// access to a field is decided. The HTTP middleware (or the WebSocket's
// connection_init) has already verified the token, or recorded why there is
// none; here we only read that verdict, so deciding sends no query: the level
// and whether the user has a verified factor are claims of the token.
//
// aal omitted asks for AAL2 of a user who has a verified factor and AAL1 of
// one who has none: enrolling protects every guarded field at once, and only
// the fields a half-signed-in client needs say aal: AAL1.
func authDirective(ctx context.Context, _ any, next graphql.Resolver, requires *auth.Role, fresh *bool, aal *auth.AAL) (any, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if requires != nil && !id.Role.Satisfies(*requires) {
		return nil, auth.ErrRoleRequired
	}
	required := auth.AAL1
	switch {
	case aal != nil:
		required = *aal
	case id.MFA:
		required = auth.AAL2
	}
	// Before freshness: a second factor is what makes the session fresh again.
	if !id.AAL.Satisfies(required) {
		return nil, auth.ErrMFARequired
	}
	if fresh != nil && *fresh && !id.Fresh {
		return nil, auth.ErrFreshTokenRequired
	}
	return next(ctx)
}
