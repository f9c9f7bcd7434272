package auth

import (
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Role is what a user may do. ADMIN includes everything USER may do.
type Role string

// The roles, as they appear in tokens, in the database and in GraphQL.
const (
	RoleUser  Role = "USER"
	RoleAdmin Role = "ADMIN"
)

// rank orders roles so that a higher role satisfies a lower requirement.
func (r Role) rank() int {
	switch r {
	case RoleUser:
		return 1
	case RoleAdmin:
		return 2
	}
	return 0
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r.rank() > 0 }

// Satisfies reports whether a holder of r may do what required allows.
func (r Role) Satisfies(required Role) bool {
	return r.Valid() && r.rank() >= required.rank()
}

// User is an account as clients see it; the password hash never leaves the store.
type User struct {
	ID        string
	Username  string
	Role      Role
	CreatedAt time.Time
	// MFAEnabled is true when the user has a verified second factor.
	MFAEnabled bool
	// Email is the user's address, nil when none is set; EmailVerified says
	// it was proven by a mailed token. Who may see it is graph's business.
	Email         *string
	EmailVerified bool
}

// Tokens is what login and register return.
type Tokens struct {
	AccessToken string
	// RefreshToken is nil when it was delivered as a cookie instead.
	RefreshToken *string
	TokenType    string
	// ExpiresIn is the access token's lifetime in seconds.
	ExpiresIn int
	User      User
	// RefreshExpiresIn is the refresh token's remaining lifetime in seconds (for its cookie).
	RefreshExpiresIn int
	// AAL is the level of the session.
	AAL AAL
	// MFARequired is true when the session must still verify a second factor.
	MFARequired bool
}

// Username and password rules (API.md, "Precise rules"). Usernames are ASCII so
// that case-insensitive uniqueness means the same on every database.
var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{3,64}$`)

const (
	minPasswordChars = 8
	// maxPasswordBytes bounds the work one login can ask of the hasher.
	maxPasswordBytes = 128
)

// NormalizeUsername trims name and checks it against the rules.
func NormalizeUsername(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !usernamePattern.MatchString(name) {
		return "", invalidInput(ReasonInvalidInput, "username",
			"A username has 3 to 64 characters: letters, digits, '.', '_' or '-'.")
	}
	return name, nil
}

// CheckPassword checks a new password against the rules.
func CheckPassword(password string) error {
	if !utf8.ValidString(password) || utf8.RuneCountInString(password) < minPasswordChars || len(password) > maxPasswordBytes {
		return invalidInput(ReasonWeakPassword, "password",
			fmt.Sprintf("A password has at least %d characters and at most %d bytes.", minPasswordChars, maxPasswordBytes))
	}
	return nil
}
