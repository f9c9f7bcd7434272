package mail_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"tollgate/mail"
)

// Reason hides the recipient in any letter case, keeps one line, and stays
// within its bound in valid UTF-8 whatever the server sent.
func TestReason(t *testing.T) {
	got := mail.Reason(errors.New("550 5.1.1 <Alice@Example.COM>: no such user\r\n550 alice@example.com unknown"), "alice@example.com")
	if want := "550 5.1.1 <<recipient>>: no such user 550 <recipient> unknown"; got != want {
		t.Errorf("Reason = %q, want %q", got, want)
	}
	long := mail.Reason(errors.New("451 "+strings.Repeat("é", 2000)+"\xff"), "")
	if len(long) > 1010 || !utf8.ValidString(long) || !strings.HasSuffix(long, "…") {
		t.Errorf("long reason: %d bytes, valid %v", len(long), utf8.ValidString(long))
	}
}
