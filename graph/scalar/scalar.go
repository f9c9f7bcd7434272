// Package scalar holds the String and ID scalars of Tollgate's schema: the
// built-in ones, with every value that arrives as an argument checked once,
// where it enters. A string that is not valid UTF-8, holds a NUL character
// or is longer than MaxBytes is refused with BAD_USER_INPUT/INVALID_INPUT
// before any resolver runs, so that no such value reaches a database (which
// would answer it with an error, PostgreSQL in particular), a log or a
// comparison. A check made in each resolver would be one that some
// resolver forgets.
package scalar

import (
	"strings"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"

	"tollgate/auth"
)

// MaxBytes bounds any string argument: room for the longest legitimate one
// (a note body of 20,000 characters of up to four bytes each).
const MaxBytes = 100_000

// MarshalString writes a String as gqlgen's built-in scalar does.
func MarshalString(s string) graphql.Marshaler { return graphql.MarshalString(s) }

// UnmarshalString reads a String argument and checks it.
func UnmarshalString(v any) (string, error) {
	s, err := graphql.UnmarshalString(v)
	if err != nil {
		return "", err
	}
	return s, Check(s)
}

// MarshalID writes an ID as gqlgen's built-in scalar does.
func MarshalID(s string) graphql.Marshaler { return graphql.MarshalID(s) }

// UnmarshalID reads an ID argument and checks it.
func UnmarshalID(v any) (string, error) {
	s, err := graphql.UnmarshalID(v)
	if err != nil {
		return "", err
	}
	return s, Check(s)
}

// Check refuses a string that no argument may hold.
func Check(s string) error {
	switch {
	case len(s) > MaxBytes:
		return invalid("A string argument is longer than the limit.")
	case !utf8.ValidString(s):
		return invalid("A string argument is not valid UTF-8.")
	case strings.IndexByte(s, 0) >= 0:
		return invalid("A string argument holds a NUL character.")
	}
	return nil
}

// invalid is BAD_USER_INPUT/INVALID_INPUT; the error presenter names the
// argument (extensions.field) from the error's path.
func invalid(message string) error {
	return &auth.Error{Code: auth.CodeBadUserInput, Reason: auth.ReasonInvalidInput, Message: message}
}
