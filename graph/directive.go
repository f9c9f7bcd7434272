package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// authDirective implements @auth(requires, fresh): the one place where access
// to a field is decided. The HTTP middleware has already verified the token (or
// recorded why there is none); here we only read that verdict.
func authDirective(ctx context.Context, _ any, next graphql.Resolver, requires *auth.Role, fresh *bool) (any, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if requires != nil && !id.Role.Satisfies(*requires) {
		return nil, auth.ErrRoleRequired
	}
	if fresh != nil && *fresh && !id.Fresh {
		return nil, auth.ErrFreshTokenRequired
	}
	return next(ctx)
}
