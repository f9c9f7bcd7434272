// Package scalar holds the String, ID and JSON scalars of Tollgate's schema: the
// built-in ones, with every value that arrives as an argument checked once,
// where it enters. A string that is not valid UTF-8, holds a NUL character
// or is longer than MaxBytes is refused with BAD_USER_INPUT/INVALID_INPUT
// before any resolver runs, so that no such value reaches a database (which
// would answer it with an error, PostgreSQL in particular), a log or a
// comparison. A check made in each resolver would be one that some
// resolver forgets.
package scalar

import (
	"bytes"
	"encoding/json"
	"io"
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

// JSON bounds: a WebAuthn JSON value is a small object (a response with an
// attestation certificate chain is a few kilobytes) a few levels deep.
const (
	MaxJSONBytes = auth.MaxPasskeyJSONBytes
	MaxJSONDepth = 8
)

// MarshalJSON writes a JSON value as it is: options built by the server.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			io.WriteString(w, "null")
			return
		}
		w.Write(v)
	})
}

// UnmarshalJSON reads a JSON argument: an object, at most MaxJSONBytes once
// written out and MaxJSONDepth deep, every string and key passing Check. It
// is refused here, before any resolver (and the WebAuthn library's parsers)
// see it, with BAD_USER_INPUT/INVALID_INPUT. The walk stops as soon as a
// bound is passed, so a hostile value costs no more than its own reading.
func UnmarshalJSON(v any) (json.RawMessage, error) {
	if _, ok := v.(map[string]any); !ok {
		return nil, invalid("A JSON argument must be a JSON object.")
	}
	budget := MaxJSONBytes
	if err := walkJSON(v, 1, &budget); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as sent: "<" stays one byte
	if err := enc.Encode(v); err != nil {
		return nil, invalid("A JSON argument could not be read.")
	}
	b := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(b) > MaxJSONBytes {
		return nil, invalid("A JSON argument is larger than the limit.")
	}
	return b, nil
}

// walkJSON checks v, taking from budget a lower bound of its written size
// (the exact size is checked once it is written), so that the walk stops
// as soon as the value cannot fit. depth counts the objects and arrays
// around v.
func walkJSON(v any, depth int, budget *int) error {
	spend := func(n int) error {
		if *budget -= n; *budget < 0 {
			return invalid("A JSON argument is larger than the limit.")
		}
		return nil
	}
	switch x := v.(type) {
	case map[string]any:
		if depth > MaxJSONDepth {
			return invalid("A JSON argument is nested deeper than the limit.")
		}
		if err := spend(2); err != nil {
			return err
		}
		for k, e := range x {
			if err := spend(len(k) + 3); err != nil {
				return err
			}
			if err := Check(k); err != nil {
				return err
			}
			if err := walkJSON(e, depth+1, budget); err != nil {
				return err
			}
		}
	case []any:
		if depth > MaxJSONDepth {
			return invalid("A JSON argument is nested deeper than the limit.")
		}
		if err := spend(2); err != nil {
			return err
		}
		for _, e := range x {
			if err := walkJSON(e, depth+1, budget); err != nil {
				return err
			}
		}
	case string:
		if err := spend(len(x) + 2); err != nil {
			return err
		}
		return Check(x)
	case nil, bool:
		return spend(4)
	case json.Number:
		return spend(len(x))
	case int, int32, int64, float32, float64:
		return spend(1)
	default:
		return invalid("A JSON argument holds a value that is not JSON.")
	}
	return nil
}
