package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// visibleEmail is u's address for whoever asks: the caller's own, or
// anyone's for an ADMIN; nil otherwise. The user of an AuthPayload is the
// one who just signed in (register, login, resetPassword), whose request
// carries no identity yet: it is their own.
func visibleEmail(ctx context.Context, u *auth.User) *string {
	if id, err := auth.FromContext(ctx); err == nil && (id.UserID == u.ID || id.Role.Satisfies(auth.RoleAdmin)) {
		return u.Email
	}
	if fc := graphql.GetFieldContext(ctx); fc != nil && fc.Parent != nil && fc.Parent.Object == "AuthPayload" {
		return u.Email
	}
	return nil
}
