package mail

import (
	"bytes"
	"embed"
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"strings"
	"text/template"
	"time"

	"tollgate/db"
)

// Kind is what a mail is for; it names its templates and the outbox row's kind.
type Kind string

// The kinds of mail the account flows send.
const (
	// KindVerifyEmail carries the token that proves an address.
	KindVerifyEmail Kind = "verify_email"
	// KindPasswordReset carries the token that sets a new password.
	KindPasswordReset Kind = "password_reset"
	// KindEmailChanged tells the old address that a new one was asked for.
	KindEmailChanged Kind = "email_changed"
)

// paths are the pages a kind's link opens (api/playground serves them, or
// the application's own under MAIL_LINK_URL).
var paths = map[Kind]string{
	KindVerifyEmail:   "/verify-email",
	KindPasswordReset: "/reset-password",
}

//go:embed templates/*.txt templates/*.html
var templateFiles embed.FS

// Every kind has templates/<kind>.txt, which defines "subject" and "text"
// (text/template: plain text is not escaped), and templates/<kind>.html,
// which defines "html" (html/template: whatever a user typed, a username or
// an address, is escaped for its context). Both are parsed once,
// when the package loads, so that a broken template fails every test and
// stops the server before it serves.
var (
	textTemplates = template.Must(template.New("").Option("missingkey=error").ParseFS(templateFiles, "templates/*.txt"))
	htmlTemplates = htmltemplate.Must(htmltemplate.New("").Option("missingkey=error").ParseFS(templateFiles, "templates/*.html"))
)

// Data is what a mail says: the fields its kind uses.
type Data struct {
	// Username is the account's name.
	Username string
	// Token is the mailed token (verification, reset); the link carries it too.
	Token string
	// TTL is how long the token lives.
	TTL time.Duration
	// NewEmail is the address asked for (the change notice).
	NewEmail string
}

// view is what the templates see.
type view struct {
	Data
	Link    string
	Expires string
}

// Composer renders the mails of the account flows. Links point at LinkBase
// (PUBLIC_URL, or MAIL_LINK_URL when the application has pages of its own).
type Composer struct {
	linkBase string
}

// NewComposer returns a Composer whose links start with linkBase, an
// absolute http(s) URL without query or fragment.
func NewComposer(linkBase string) (*Composer, error) {
	u, err := url.Parse(linkBase)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("mail links: %q is not an absolute http(s) URL without query", linkBase)
	}
	return &Composer{linkBase: strings.TrimSuffix(linkBase, "/")}, nil
}

// Link is the page of kind carrying token: <base>/verify-email?token=….
func (c *Composer) Link(kind Kind, token string) string {
	return c.linkBase + paths[kind] + "?" + url.Values{"token": {token}}.Encode()
}

// Compose renders a mail of kind to the address to: its subject, plain text
// and HTML. The caller gives the row its id and time and queues it.
func (c *Composer) Compose(kind Kind, to string, d Data) (db.OutboxMail, error) {
	v := view{Data: d, Expires: humanDuration(d.TTL)}
	if _, ok := paths[kind]; ok {
		v.Link = c.Link(kind, d.Token)
	}
	name := string(kind)
	var subject, text, html bytes.Buffer
	if err := textTemplates.ExecuteTemplate(&subject, name+".subject", v); err != nil {
		return db.OutboxMail{}, fmt.Errorf("render %s subject: %w", kind, err)
	}
	if err := textTemplates.ExecuteTemplate(&text, name+".text", v); err != nil {
		return db.OutboxMail{}, fmt.Errorf("render %s text: %w", kind, err)
	}
	if err := htmlTemplates.ExecuteTemplate(&html, name+".html", v); err != nil {
		return db.OutboxMail{}, fmt.Errorf("render %s html: %w", kind, err)
	}
	return db.OutboxMail{
		Kind:      name,
		Recipient: to,
		// A subject is one header line: whatever a template makes of it,
		// no line break may reach the header.
		Subject: strings.Join(strings.Fields(subject.String()), " "),
		Text:    text.String(),
		HTML:    html.String(),
	}, nil
}

// humanDuration says d as a mail would: "30 minutes", "24 hours".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	default:
		return d.String()
	}
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
