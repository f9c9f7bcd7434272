package auth

import (
	"fmt"
)

// Codes are the values of a GraphQL error's extensions.code (see API.md).
const (
	CodeUnauthenticated = "UNAUTHENTICATED"
	CodeForbidden       = "FORBIDDEN"
	CodeNotFound        = "NOT_FOUND"
	CodeBadUserInput    = "BAD_USER_INPUT"
	CodeRateLimited     = "RATE_LIMITED"
	CodeBadRequest      = "BAD_REQUEST"
)

// Reasons refine a code (extensions.reason).
const (
	ReasonTokenMissing        = "TOKEN_MISSING"
	ReasonTokenInvalid        = "TOKEN_INVALID"
	ReasonTokenExpired        = "TOKEN_EXPIRED"
	ReasonTokenRevoked        = "TOKEN_REVOKED"
	ReasonInvalidCredentials  = "INVALID_CREDENTIALS"
	ReasonRefreshTokenInvalid = "REFRESH_TOKEN_INVALID"
	ReasonRoleRequired        = "ROLE_REQUIRED"
	ReasonFreshTokenRequired  = "FRESH_TOKEN_REQUIRED"
	ReasonSignupClosed        = "SIGNUP_CLOSED"
	ReasonUsernameTaken       = "USERNAME_TAKEN"
	ReasonWeakPassword        = "WEAK_PASSWORD"
	ReasonInvalidInput        = "INVALID_INPUT"
	ReasonLimitReached        = "LIMIT_REACHED"
	ReasonOriginNotAllowed    = "ORIGIN_NOT_ALLOWED"
	ReasonServerBusy          = "SERVER_BUSY"
	ReasonEmailTaken          = "EMAIL_TAKEN"
	ReasonInvalidToken        = "INVALID_TOKEN"
	ReasonLastSignInMethod    = "LAST_SIGN_IN_METHOD"
)

// Error is a failure that a client may see: a code and reason from the
// contract and a public message. The internal cause, if any, is kept for the
// log and never shown.
type Error struct {
	Code    string
	Reason  string
	Message string
	// Field names the argument at fault, for BAD_USER_INPUT.
	Field string
	// RetryAfter is the whole seconds to wait, for RATE_LIMITED.
	RetryAfter int
	// Err is the internal cause.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s/%s: %s: %v", e.Code, e.Reason, e.Message, e.Err)
	}
	return fmt.Sprintf("%s/%s: %s", e.Code, e.Reason, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is match any *Error with the same code and reason, so that
// callers can test errors.Is(err, auth.ErrInvalidCredentials).
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Reason == e.Reason
}

// The errors that the domain returns. Their messages are deliberately plain:
// they never say which part of a credential was wrong or whether a user exists.
var (
	ErrTokenMissing       = &Error{Code: CodeUnauthenticated, Reason: ReasonTokenMissing, Message: "An access token is required."}
	ErrTokenInvalid       = &Error{Code: CodeUnauthenticated, Reason: ReasonTokenInvalid, Message: "The access token is invalid."}
	ErrTokenExpired       = &Error{Code: CodeUnauthenticated, Reason: ReasonTokenExpired, Message: "The access token has expired."}
	ErrTokenRevoked       = &Error{Code: CodeUnauthenticated, Reason: ReasonTokenRevoked, Message: "The access token has been revoked."}
	ErrInvalidCredentials = &Error{Code: CodeUnauthenticated, Reason: ReasonInvalidCredentials, Message: "Invalid username or password."}
	ErrRoleRequired       = &Error{Code: CodeForbidden, Reason: ReasonRoleRequired, Message: "Your role does not allow this."}
	ErrFreshTokenRequired = &Error{Code: CodeForbidden, Reason: ReasonFreshTokenRequired, Message: "This needs a fresh sign-in: log in again."}
	ErrSignupClosed       = &Error{Code: CodeForbidden, Reason: ReasonSignupClosed, Message: "Sign-up is closed."}
	ErrUsernameTaken      = &Error{Code: CodeBadUserInput, Reason: ReasonUsernameTaken, Field: "username", Message: "That username is taken."}
	ErrNotFound           = &Error{Code: CodeNotFound, Message: "Not found."}
)

// invalidInput returns a BAD_USER_INPUT error for field.
func invalidInput(reason, field, message string) *Error {
	return &Error{Code: CodeBadUserInput, Reason: reason, Field: field, Message: message}
}
