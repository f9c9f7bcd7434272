package mail

import (
	"strings"
	"testing"
	"time"
)

func TestCompose_EveryKindHasTextHTMLAndLink(t *testing.T) {
	c, err := NewComposer("https://auth.example.com/")
	if err != nil {
		t.Fatal(err)
	}
	for kind, path := range map[Kind]string{KindVerifyEmail: "/verify-email", KindPasswordReset: "/reset-password"} {
		m, err := c.Compose(kind, "alice@example.com", Data{Username: "alice", Token: "tok_en-1", TTL: 30 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		link := "https://auth.example.com" + path + "?token=tok_en-1"
		if m.Kind != string(kind) || m.Recipient != "alice@example.com" || m.Subject == "" ||
			!strings.Contains(m.Text, link) || !strings.Contains(m.HTML, `href="`+link+`"`) || !strings.Contains(m.Text, "30 minutes") {
			t.Fatalf("%s: %+v", kind, m)
		}
	}
	m, err := c.Compose(KindEmailChanged, "old@example.com", Data{Username: "alice", NewEmail: "new@example.com"})
	if err != nil || !strings.Contains(m.Text, "new@example.com") || !strings.Contains(m.HTML, "new@example.com") {
		t.Fatalf("notice: %+v, %v", m, err)
	}
}

// What a user typed is escaped in the HTML part: an address such as
// "<img src=x onerror=alert(1)>"@example.com is not one net/mail gives back
// unchanged, but the templates must not rely on that.
func TestCompose_EscapesWhatAUserTypedInHTML(t *testing.T) {
	c, err := NewComposer("http://localhost:8080")
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Compose(KindEmailChanged, "old@example.com", Data{Username: `<script>alert(1)</script>`, NewEmail: `"><img src=x onerror=alert(1)>@example.com`})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<img") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Fatalf("HTML not escaped: %s", m.HTML)
	}
	// The plain-text part is text: shown as typed, never interpreted.
	if !strings.Contains(m.Text, "<script>") {
		t.Fatalf("text part: %s", m.Text)
	}
}

func TestCompose_SubjectIsOneLine(t *testing.T) {
	c, _ := NewComposer("http://localhost:8080")
	for _, kind := range []Kind{KindVerifyEmail, KindPasswordReset, KindEmailChanged} {
		m, err := c.Compose(kind, "a@example.com", Data{Username: "a", Token: "t", TTL: time.Hour})
		if err != nil || strings.ContainsAny(m.Subject, "\r\n") {
			t.Fatalf("%s subject %q, %v", kind, m.Subject, err)
		}
	}
}

func TestNewComposer_RefusesABadBase(t *testing.T) {
	for _, base := range []string{"", "localhost:8080", "ftp://x", "https://x/?a=1"} {
		if _, err := NewComposer(base); err == nil {
			t.Fatalf("NewComposer(%q) accepted", base)
		}
	}
}
