package mail

import (
	"errors"
	"strings"
	"unicode/utf8"

	gomail "github.com/wneessen/go-mail"
)

// permanentError marks a failure that no retry can mend (a malformed
// recipient, a message that cannot be built).
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

func permanent(err error) error { return permanentError{err} }

// IsPermanent reports whether err means the mail will never be delivered,
// so that retrying would only repeat the refusal:
//   - the SMTP server answered 5xx to MAIL FROM, RCPT TO or DATA (go-mail's
//     SendError carries the code);
//   - the message could not be built or addressed.
//
// Everything else is transient and retried with backoff: a 4xx answer, a
// connection refused, reset or timed out, a failed TLS handshake or AUTH.
// The last ones are about the server or its configuration, not this mail:
// marking every queued mail failed because the relay is misconfigured for
// an hour would lose them all, whereas a retry delivers them once it is
// fixed (and MAIL_RETRY_FOR still ends the attempts).
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var pe permanentError
	if errors.As(err, &pe) {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code >= 500 && code < 600 {
			return true
		}
		switch se.Reason {
		case gomail.ErrGetSender, gomail.ErrGetRcpts, gomail.ErrNoUnencoded:
			return true
		}
	}
	return false
}

// maxReasonBytes bounds the failure kept in the outbox and logged: an SMTP
// answer is a line or a few, and a hostile server must not fill the table.
const maxReasonBytes = 1000

// Reason is err as the outbox keeps it and the log shows it (last_error):
// the SMTP server's answer or the connection error, with the recipient's
// address replaced by <recipient> (go-mail's SendError names the affected
// recipients, and the log never holds an address), cut to maxReasonBytes.
// It is one line, and it never holds the body: no error built here or in go-mail includes it.
func Reason(err error, recipient string) string {
	s := err.Error()
	if recipient != "" {
		s = replaceFold(s, recipient, "<recipient>")
	}
	// A multi-line SMTP reply becomes one line: one log line, one error line.
	s = strings.Join(strings.Fields(strings.ToValidUTF8(s, "?")), " ")
	if len(s) > maxReasonBytes {
		cut := maxReasonBytes
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// replaceFold replaces every occurrence of old in s, in any letter case
// (servers echo addresses as they like), with repl.
func replaceFold(s, old, repl string) string {
	lower, lowerOld := strings.ToLower(s), strings.ToLower(old)
	if len(lower) != len(s) || len(lowerOld) != len(old) {
		// Case folding changed byte lengths (rare non-ASCII): exact matches only.
		return strings.ReplaceAll(s, old, repl)
	}
	var b strings.Builder
	for {
		i := strings.Index(lower, lowerOld)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		b.WriteString(repl)
		s, lower = s[i+len(old):], lower[i+len(old):]
	}
}
