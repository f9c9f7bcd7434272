package config

import (
	"net/url"
	"strings"
	"time"
)

// EmailConfig is the configuration of email addresses and account recovery
// (API.md, "Email addresses and account recovery").
type EmailConfig struct {
	// LinkURL (MAIL_LINK_URL), when set, is where mail links point instead
	// of Config.PublicURL: an application's own /verify-email and
	// /reset-password.
	LinkURL string
	// Required (EMAIL_REQUIRED) makes register's email argument required.
	Required bool
	// VerificationTTL and ResetTTL are the lifetimes of the mailed tokens.
	VerificationTTL time.Duration
	ResetTTL        time.Duration
	// PerAddressPerHour and PerIPPerHour bound the mails that any mutation
	// sends, per address and per client address.
	PerAddressPerHour int
	PerIPPerHour      int
}

// MailLinks is the start of mail links: MAIL_LINK_URL when set, else
// PUBLIC_URL (the server's own pages).
func (c Config) MailLinks() string {
	if c.Email.LinkURL != "" {
		return c.Email.LinkURL
	}
	return c.PublicURL
}

// email reads the email rows of the configuration (PUBLIC_URL, which they
// share with passkeys, is read by webAuthn).
func (p *parser) email() EmailConfig {
	e := EmailConfig{
		LinkURL:           p.baseURL("MAIL_LINK_URL", ""),
		VerificationTTL:   p.duration("EMAIL_VERIFICATION_TTL", 24*time.Hour, time.Minute, 30*24*time.Hour),
		ResetTTL:          p.duration("PASSWORD_RESET_TTL", 30*time.Minute, time.Minute, 24*time.Hour),
		PerAddressPerHour: p.integer("MAILS_PER_ADDRESS_PER_HOUR", 3, 1, 1000000),
		PerIPPerHour:      p.integer("MAILS_PER_IP_PER_HOUR", 20, 1, 1000000),
	}
	switch v := strings.ToLower(p.getenv("EMAIL_REQUIRED")); v {
	case "", "false", "0", "off":
	case "true", "1", "on":
		e.Required = true
	default:
		p.fail("EMAIL_REQUIRED", "must be true or false, not %q", v)
	}
	return e
}

// baseURL reads an absolute http(s) URL that links are built on: no query,
// no fragment, no credentials; a trailing slash is dropped.
func (p *parser) baseURL(name, def string) string {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		p.fail(name, "must be an absolute http(s) URL such as https://app.example.com, without query or fragment, not %q", v)
		return def
	}
	return strings.TrimSuffix(v, "/")
}
