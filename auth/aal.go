package auth

import (
	"bytes"
	"errors"
	"strings"
)

// AAL is an authenticator assurance level (NIST SP 800-63B): what a
// session has proven. It is kept with the session and carried in every
// access token (the "aal" claim), so that @auth decides from the token alone.
type AAL string

// The levels, as they appear in GraphQL. Tokens and the database spell them
// "aal1" and "aal2".
const (
	// AAL1: one factor (the password).
	AAL1 AAL = "AAL1"
	// AAL2: two factors (the password and a TOTP code, a recovery code or a
	// passkey; or a passkey alone, which is a key and its user verification).
	AAL2 AAL = "AAL2"
)

// Satisfies reports whether a session at a has reached required. Anything
// that is not AAL2 (a token issued before levels existed says nothing) is AAL1.
func (a AAL) Satisfies(required AAL) bool {
	return required != AAL2 || a == AAL2
}

// claim is the spelling of a in the "aal" claim and in the sessions table.
func (a AAL) claim() string {
	if a == AAL2 {
		return "aal2"
	}
	return "aal1"
}

// aalFromClaim reads the spelling of claim: anything but "aal2" is AAL1.
func aalFromClaim(s string) AAL {
	if s == "aal2" {
		return AAL2
	}
	return AAL1
}

// MarshalJSON writes the claim spelling.
func (a AAL) MarshalJSON() ([]byte, error) { return []byte(`"` + a.claim() + `"`), nil }

// UnmarshalJSON reads the claim spelling. It compares bytes instead of
// decoding a string, so that verifying a token allocates nothing more for it:
// this runs on every authenticated request.
func (a *AAL) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte(`"aal2"`)) {
		*a = AAL2
	} else {
		*a = AAL1
	}
	return nil
}

// Methods is the set of ways a session authenticated: the "amr" claim
// (RFC 8176), kept as bits so that reading it allocates nothing.
type Methods uint8

// The authentication methods, with their RFC 8176 names.
const (
	// MethodPassword is "pwd".
	MethodPassword Methods = 1 << iota
	// MethodOTP is "otp": a TOTP code.
	MethodOTP
	// MethodRecoveryCode is "mfa": RFC 8176 has no name for a recovery code, and
	// "mfa" (multiple factors) is what it proves together with the password.
	MethodRecoveryCode
	// MethodHardwareKey is "hwk": proof of possession of a key (a passkey).
	MethodHardwareKey
	// MethodUserPresence is "user": the authenticator's own test of its user,
	// which a passkey performs (userVerification "required").
	MethodUserPresence
	// MethodFederated is "fed": a sign-in at an OpenID Connect provider.
	MethodFederated
)

var methodNames = [...]struct {
	m    Methods
	name string
}{{MethodPassword, "pwd"}, {MethodOTP, "otp"}, {MethodRecoveryCode, "mfa"}, {MethodHardwareKey, "hwk"}, {MethodUserPresence, "user"}, {MethodFederated, "fed"}}

// Names lists the RFC 8176 names of m, in a fixed order.
func (m Methods) Names() []string {
	var out []string
	for _, n := range methodNames {
		if m&n.m != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

// String is the space-separated names, as the sessions table keeps them.
func (m Methods) String() string { return strings.Join(m.Names(), " ") }

// methodsFromString reads what String wrote; unknown names are ignored.
func methodsFromString(s string) Methods {
	var m Methods
	for _, f := range strings.Fields(s) {
		for _, n := range methodNames {
			if f == n.name {
				m |= n.m
			}
		}
	}
	return m
}

// MarshalJSON writes the claim: a JSON array of names.
func (m Methods) MarshalJSON() ([]byte, error) {
	b := []byte{'['}
	for i, n := range m.Names() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, n...)
		b = append(b, '"')
	}
	return append(b, ']'), nil
}

// UnmarshalJSON reads a JSON array of strings, keeping the names it knows.
// It is written by hand, over the bytes, because encoding/json would allocate
// a slice and a string per name on every authenticated request. Only plain
// strings are compared (an escaped name is simply not recognised), which is
// all our own tokens contain.
func (m *Methods) UnmarshalJSON(b []byte) error {
	*m = 0
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) < 2 || b[0] != '[' || b[len(b)-1] != ']' {
		return errors.New("amr: not an array")
	}
	rest := b[1 : len(b)-1]
	for len(bytes.TrimSpace(rest)) > 0 {
		elem := rest
		if i := bytes.IndexByte(rest, ','); i >= 0 {
			elem, rest = rest[:i], rest[i+1:]
		} else {
			rest = nil
		}
		elem = bytes.TrimSpace(elem)
		if len(elem) < 2 || elem[0] != '"' || elem[len(elem)-1] != '"' {
			return errors.New("amr: not an array of strings")
		}
		name := elem[1 : len(elem)-1]
		for _, n := range methodNames {
			if string(name) == n.name { // no allocation: the compiler compares in place
				*m |= n.m
			}
		}
	}
	return nil
}

// stepUpBase is what a session had proven before a second factor: its
// methods, or the password for a token from before the amr claim. A session
// opened at a provider stays "fed" and never claims "pwd".
func stepUpBase(m Methods) Methods {
	if m == 0 {
		return MethodPassword
	}
	return m
}
