// Package graph is Tollgate's GraphQL transport: the gqlgen schema bindings,
// thin resolvers that call package auth, the @auth directive that enforces
// identity and role, and the error presenter that maps domain errors to the
// codes of the contract.
package graph

//go:generate go tool gqlgen generate

import (
	"tollgate/auth"
	"tollgate/note"
)

// Resolver is the root of the resolvers and the place where their
// dependencies are injected. gqlgen never regenerates this file.
type Resolver struct {
	Auth  *auth.Service
	Notes *note.Service
	// Federation is sign-in with OpenID Connect providers; nil when none is
	// configured.
	Federation *auth.Federation
}
