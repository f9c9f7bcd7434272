// Package config reads Tollgate's configuration from the environment (the
// table in API.md) into one typed struct, validated once at start. A bad value
// is an error that names the variable, and the server does not start.
package config

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Config is the whole configuration of a Tollgate server.
type Config struct {
	DatabaseURL string
	// DatabaseMaxConns (DATABASE_MAX_CONNS) bounds the connection pool; 0
	// means db.DefaultMaxConns.
	DatabaseMaxConns int
	Addr             string
	// MetricsAddr (METRICS_ADDR), when set, is the address of a second
	// listener that alone serves /metrics; the main listener then answers 404
	// for it. Empty: /metrics is served on Addr.
	MetricsAddr string
	// Production is APP_ENV=production: no playground or introspection by
	// default, and no start without an explicit signing key.
	Production bool

	// JWTAlg is HS256 or EdDSA.
	JWTAlg string
	// JWTSecret is the HS256 key; nil means "generate one and keep it in the
	// database" (development only).
	JWTSecret []byte
	// JWTPreviousSecret still verifies HS256 tokens signed before a key rotation.
	JWTPreviousSecret []byte
	// JWTPrivateKey is the EdDSA signing key (JWT_PRIVATE_KEY_FILE); nil means
	// "generate one and keep it in the database" (development only).
	JWTPrivateKey ed25519.PrivateKey
	// JWTPreviousKeys still verify EdDSA tokens signed before a key rotation.
	JWTPreviousKeys []ed25519.PublicKey
	JWTLeeway       time.Duration
	Issuer          string
	Audience        string
	AccessTTL       time.Duration
	RefreshTTL      time.Duration
	// RefreshReuseGrace is how long a just-rotated refresh token still works.
	RefreshReuseGrace time.Duration
	// MFAEncryptionKey (MFA_ENCRYPTION_KEY, at least 32 bytes) seals the TOTP
	// secrets; nil means a key derived from the signing key.
	MFAEncryptionKey []byte
	// TOTPIssuer (TOTP_ISSUER) is the name authenticator apps show for a
	// TOTP factor: a name for people, kept apart from JWT_ISSUER, which is
	// often a URL and cannot change without invalidating every token.
	TOTPIssuer string

	// AdminUsername and AdminPassword, when both set, name an ADMIN created at start.
	AdminUsername string
	AdminPassword string
	SignupOpen    bool

	// CORSOrigins are the browser origins, besides the server's own, that may
	// call the API and open WebSockets (scheme://host[:port]).
	CORSOrigins []string

	// PublicURL (PUBLIC_URL) is the server's public origin, as browsers
	// reach it: links in mails, the WebAuthn relying party. Default:
	// http://localhost:<port of ADDR>.
	PublicURL string
	// WebAuthnRPID (WEBAUTHN_RP_ID) is the passkey relying party's id, a
	// domain: the host of PublicURL by default. A passkey is bound to it for
	// good: changing it makes every registered passkey unusable.
	WebAuthnRPID string
	// WebAuthnOrigins (WEBAUTHN_ORIGINS) are the exact origins a passkey
	// ceremony may come from: PublicURL's origin by default, and
	// http://localhost:<port> in development.
	WebAuthnOrigins []string
	// publicURLSet and webAuthnOriginsSet record what the environment set,
	// so that BindPort only fills in defaults.
	publicURLSet, webAuthnOriginsSet bool
	// port is the port browsers reach the listener on ADDR at.
	port string

	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix

	LoginFailuresPerUserIP int
	LoginFailuresPerIP     int
	LoginFailureWindow     time.Duration
	RegisterPerIPPerHour   int
	RefreshPerIPPerMinute  int
	// LoginAttemptsPerIPPerMinute counts every login attempt, right or wrong,
	// so that correct passwords cannot keep the password hasher busy.
	LoginAttemptsPerIPPerMinute int
	// SessionsPerUser bounds a user's live sessions; a new one beyond it
	// revokes the least recently used.
	SessionsPerUser int
	// PasswordHashConcurrency (PASSWORD_HASH_CONCURRENCY) is how many
	// argon2id hashes may run at once; 0 means one less than GOMAXPROCS, at
	// least 1 (auth.DefaultHashConcurrency).
	PasswordHashConcurrency int
	// HashProcs gives each running hash a P of its own (auth.Hasher.GrowProcs),
	// and IdleGCPercent, when above 0, is GOGC while no hash runs
	// (auth.Hasher.SetIdleGCPercent). Not read from the environment: the
	// server sets them unless GOMAXPROCS, or GOGC, is set.
	HashProcs     bool
	IdleGCPercent int

	MaxDepth      int
	MaxComplexity int
	MaxBodyBytes  int64
	// MaxResponseBytes bounds the JSON of one answer (MAX_RESPONSE_BYTES);
	// the answers in flight together hold at most eight times as much.
	MaxResponseBytes int64
	// WSConnectionsPerIP bounds the WebSockets open at once from one client
	// address (WS_CONNECTIONS_PER_IP).
	WSConnectionsPerIP int
	Playground         bool
	Introspection      bool

	// LogFormat (LOG_FORMAT) and LogLevel (LOG_LEVEL) shape the log; see NewLogger.
	LogFormat LogFormat
	LogLevel  slog.Level

	// Email holds the rules of email addresses and recovery.
	Email EmailConfig

	// OIDC holds the OpenID Connect providers users may sign in with.
	OIDC OIDCConfig

	// Mail is how mail is delivered (SMTP_URL, MAIL_FROM, MAIL_TRANSPORT,
	// MAIL_RETRY_FOR).
	Mail Mail
}

// Mail is the configuration of mail delivery.
type Mail struct {
	// Transport is "smtp" (SMTP_URL set) or "log" (each mail written to the
	// log, link included: development).
	Transport string
	// SMTP is the relay of SMTP_URL; zero when unset.
	SMTP SMTP
	// From (MAIL_FROM) is the sender of every mail.
	From *mail.Address
	// RetryFor (MAIL_RETRY_FOR) is how long a mail is retried after its
	// creation while the relay is down or answers 4xx.
	RetryFor time.Duration
}

// SMTP is a parsed SMTP_URL. Its password is never printed: String leaves
// it out, and no error of Load repeats the URL.
type SMTP struct {
	Host string
	Port int
	// ImplicitTLS is smtps:// (TLS from the first byte, port 465 by
	// default); smtp:// uses STARTTLS (port 587 by default).
	ImplicitTLS bool
	Username    string
	Password    string
}

// String is the relay as a log may show it: scheme, user and address, no password.
func (s SMTP) String() string {
	scheme := "smtp"
	if s.ImplicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(s.Host, strconv.Itoa(s.Port))}
	if s.Username != "" {
		u.User = url.User(s.Username)
	}
	return u.String()
}

// Load reads the configuration through getenv (os.Getenv in production, a map in tests).
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:       p.str("DATABASE_URL", "sqlite:data/app.db"),
		DatabaseMaxConns:  p.integer("DATABASE_MAX_CONNS", 0, 1, 1000),
		Addr:              p.str("ADDR", ":8080"),
		MetricsAddr:       p.getenv("METRICS_ADDR"),
		JWTLeeway:         p.duration("JWT_LEEWAY", 5*time.Second, 0, 5*time.Minute),
		Issuer:            p.str("JWT_ISSUER", "tollgate"),
		Audience:          p.str("JWT_AUDIENCE", "tollgate"),
		TOTPIssuer:        p.totpIssuer("TOTP_ISSUER", "Tollgate"),
		AccessTTL:         p.duration("ACCESS_TOKEN_TTL", 15*time.Minute, 10*time.Second, 24*time.Hour),
		RefreshTTL:        p.duration("REFRESH_TOKEN_TTL", 720*time.Hour, time.Minute, 8760*time.Hour),
		RefreshReuseGrace: p.duration("REFRESH_REUSE_GRACE", 10*time.Second, 0, time.Minute),
		MaxBodyBytes:      int64(p.integer("MAX_BODY_BYTES", 1<<20, 1024, 64<<20)),
		MaxDepth:          p.integer("MAX_DEPTH", 12, 2, 100),
		MaxComplexity:     p.integer("MAX_COMPLEXITY", 1000, 10, 1000000),
		// 64 KiB holds a page of small fields; 1 GiB is far past any answer worth building.
		MaxResponseBytes:   int64(p.integer("MAX_RESPONSE_BYTES", 4<<20, 64<<10, 1<<30)),
		WSConnectionsPerIP: p.integer("WS_CONNECTIONS_PER_IP", 50, 1, 1000000),

		LoginFailuresPerUserIP:      p.integer("LOGIN_FAILURES_PER_USER_IP", 5, 1, 1000000),
		LoginFailuresPerIP:          p.integer("LOGIN_FAILURES_PER_IP", 50, 1, 1000000),
		LoginFailureWindow:          p.duration("LOGIN_FAILURE_WINDOW", 15*time.Minute, time.Second, 24*time.Hour),
		RegisterPerIPPerHour:        p.integer("REGISTER_PER_IP_PER_HOUR", 30, 1, 1000000),
		RefreshPerIPPerMinute:       p.integer("REFRESH_PER_IP_PER_MINUTE", 120, 1, 1000000),
		LoginAttemptsPerIPPerMinute: p.integer("LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", 60, 1, 1000000),
		SessionsPerUser:             p.integer("SESSIONS_PER_USER", 100, 1, 1000000),
		PasswordHashConcurrency:     p.integer("PASSWORD_HASH_CONCURRENCY", 0, 1, 1024),
		TrustedProxies:              p.prefixes("TRUSTED_PROXIES"),
		AdminUsername:               getenv("ADMIN_USERNAME"),
		AdminPassword:               getenv("ADMIN_PASSWORD"),
	}
	switch env := p.str("APP_ENV", "development"); env {
	case "development":
	case "production":
		c.Production = true
	default:
		p.fail("APP_ENV", "must be development or production, not %q", env)
	}
	c.SignupOpen = p.choice("SIGNUP", "open", "open", "closed") == "open"
	c.JWTAlg = p.choice("JWT_ALG", "HS256", "HS256", "EdDSA")

	switch c.JWTAlg {
	case "HS256":
		c.JWTSecret = p.secret("JWT_SECRET")
		c.JWTPreviousSecret = p.secret("JWT_PREVIOUS_SECRET")
		if c.JWTSecret == nil && c.Production {
			p.fail("JWT_SECRET", "is required when APP_ENV=production and JWT_ALG=HS256 (at least 32 random bytes)")
		}
	case "EdDSA":
		if path := getenv("JWT_PRIVATE_KEY_FILE"); path != "" {
			c.JWTPrivateKey = p.privateKeyFile("JWT_PRIVATE_KEY_FILE", path)
		} else if c.Production {
			p.fail("JWT_PRIVATE_KEY_FILE", "is required when APP_ENV=production and JWT_ALG=EdDSA (a PKCS#8 Ed25519 PEM file)")
		}
		if list := getenv("JWT_PREVIOUS_KEY_FILES"); list != "" {
			for _, path := range strings.Split(list, ",") {
				c.JWTPreviousKeys = append(c.JWTPreviousKeys, p.publicKeyFile("JWT_PREVIOUS_KEY_FILES", strings.TrimSpace(path)))
			}
		}
	}
	// A key for the other algorithm is a mistake, not something to ignore:
	// the server would quietly sign with a key nobody configured.
	for _, v := range map[string][]string{
		"HS256": {"JWT_PRIVATE_KEY_FILE", "JWT_PREVIOUS_KEY_FILES"},
		"EdDSA": {"JWT_SECRET", "JWT_PREVIOUS_SECRET"},
	}[c.JWTAlg] {
		if getenv(v) != "" {
			p.fail(v, "is set but JWT_ALG is %s; set JWT_ALG to match or unset %s", c.JWTAlg, v)
		}
	}
	c.MFAEncryptionKey = p.secret("MFA_ENCRYPTION_KEY")
	c.Email = p.email()
	c.OIDC = p.oidc()
	c.CORSOrigins = p.origins("CORS_ORIGINS")
	p.webAuthn(&c)
	c.LogFormat = p.logFormat("LOG_FORMAT")
	c.LogLevel = p.logLevel("LOG_LEVEL")
	c.Mail = p.mail(c.Production)
	c.Playground = p.onOff("PLAYGROUND", !c.Production)
	c.Introspection = p.onOff("INTROSPECTION", !c.Production)
	if (c.AdminUsername == "") != (c.AdminPassword == "") {
		p.fail("ADMIN_PASSWORD", "and ADMIN_USERNAME must be set together")
	}
	if c.Issuer == "" {
		p.fail("JWT_ISSUER", "must not be empty")
	}
	if c.Audience == "" {
		p.fail("JWT_AUDIENCE", "must not be empty")
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			p.fail("METRICS_ADDR", "must be host:port or :port, such as 127.0.0.1:9090, not %q", c.MetricsAddr)
		} else if c.MetricsAddr == c.Addr && port != "0" {
			p.fail("METRICS_ADDR", "must differ from ADDR (%s): it is a second listener", c.Addr)
		}
	}
	if c.AccessTTL >= c.RefreshTTL && p.err == nil {
		p.fail("ACCESS_TOKEN_TTL", "must be shorter than REFRESH_TOKEN_TTL")
	}
	return c, p.err
}

// mail reads SMTP_URL, MAIL_FROM, MAIL_TRANSPORT and MAIL_RETRY_FOR.
func (p *parser) mail(production bool) Mail {
	m := Mail{RetryFor: p.duration("MAIL_RETRY_FOR", 24*time.Hour, time.Minute, 30*24*time.Hour)}
	from := p.str("MAIL_FROM", "Tollgate <no-reply@localhost>")
	addr, err := mail.ParseAddress(from)
	if err != nil {
		p.fail("MAIL_FROM", "must be an address such as \"Tollgate <no-reply@example.com>\", not %q", from)
	}
	m.From = addr
	raw := p.getenv("SMTP_URL")
	if raw != "" {
		m.SMTP = p.smtpURL("SMTP_URL", raw)
	}
	def := "log"
	if raw != "" {
		def = "smtp"
	}
	m.Transport = p.choice("MAIL_TRANSPORT", def, "smtp", "log")
	switch {
	case m.Transport == "smtp" && raw == "":
		p.fail("MAIL_TRANSPORT", "is smtp but SMTP_URL is not set")
	case production && raw == "" && p.getenv("MAIL_TRANSPORT") != "log":
		// The log transport writes every mailed token to the log: in
		// production only when the operator asks for it by name.
		p.fail("SMTP_URL", "is required when APP_ENV=production (smtp://user:pass@host:587), unless MAIL_TRANSPORT=log writes mails, links included, to the log")
	}
	return m
}

// smtpURL parses smtp://user:pass@host[:port] or smtps://…. No error repeats
// the value: it holds a password.
func (p *parser) smtpURL(name, raw string) SMTP {
	u, err := url.Parse(raw)
	if err != nil {
		p.fail(name, "is not a valid URL (smtp://user:pass@host:587 or smtps://user:pass@host:465)")
		return SMTP{}
	}
	var s SMTP
	switch u.Scheme {
	case "smtp":
		s.Port = 587
	case "smtps":
		s.Port, s.ImplicitTLS = 465, true
	default:
		p.fail(name, "must start with smtp:// or smtps://, not %q", u.Scheme+":")
		return SMTP{}
	}
	s.Host = u.Hostname()
	if s.Host == "" || u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		p.fail(name, "must be %s://[user:pass@]host[:port] with nothing after the port", u.Scheme)
		return SMTP{}
	}
	if port := u.Port(); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			p.fail(name, "has a bad port %q", port)
			return SMTP{}
		}
		s.Port = n
	}
	if u.User != nil {
		s.Username = u.User.Username()
		s.Password, _ = u.User.Password()
	}
	return s
}

// webAuthn reads PUBLIC_URL, WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS. Every
// origin must be the RP ID or one of its subdomains (what browsers require
// of a relying party): a configuration where no origin could ever finish a
// ceremony is refused at start rather than at the first passkey.
func (p *parser) webAuthn(c *Config) {
	c.port = portOf(c.Addr)
	c.publicURLSet = p.getenv("PUBLIC_URL") != ""
	if c.publicURLSet {
		if o := p.origins("PUBLIC_URL"); len(o) == 1 {
			c.PublicURL = o[0]
		} else if p.err == nil {
			p.fail("PUBLIC_URL", "must be one origin such as https://auth.example.com")
		}
	} else {
		c.PublicURL = "http://localhost:" + c.port
	}
	c.WebAuthnRPID = strings.ToLower(p.getenv("WEBAUTHN_RP_ID"))
	c.webAuthnOriginsSet = p.getenv("WEBAUTHN_ORIGINS") != ""
	if c.webAuthnOriginsSet {
		c.WebAuthnOrigins = p.origins("WEBAUTHN_ORIGINS")
	}
	c.fillWebAuthn()
	if p.err != nil {
		return
	}
	if net.ParseIP(strings.Trim(c.WebAuthnRPID, "[]")) != nil || c.WebAuthnRPID == "" || strings.ContainsAny(c.WebAuthnRPID, ":/ ") {
		p.fail("WEBAUTHN_RP_ID", "must be a domain such as example.com (browsers refuse an IP address), not %q; set it, or PUBLIC_URL to a URL with a domain name", c.WebAuthnRPID)
		return
	}
	for _, o := range c.WebAuthnOrigins {
		u, _ := url.Parse(o)
		if !onRPID(u.Hostname(), c.WebAuthnRPID) {
			p.fail("WEBAUTHN_ORIGINS", "must list origins on WEBAUTHN_RP_ID %q or its subdomains, not %q", c.WebAuthnRPID, o)
			return
		}
	}
}

// fillWebAuthn derives the defaults of the relying party from PublicURL.
func (c *Config) fillWebAuthn() {
	if c.WebAuthnRPID == "" {
		if u, err := url.Parse(c.PublicURL); err == nil {
			c.WebAuthnRPID = strings.ToLower(u.Hostname())
		}
		if !c.Production && net.ParseIP(c.WebAuthnRPID) != nil {
			// http://127.0.0.1:8080 in development: browsers accept no IP
			// address as an RP ID, but do accept localhost over plain HTTP.
			c.WebAuthnRPID = "localhost"
		}
	}
	if !c.webAuthnOriginsSet {
		// Only the candidates on the RP ID: a browser would refuse the others
		// (http://127.0.0.1:8080 cannot use the RP ID localhost).
		c.WebAuthnOrigins = nil
		candidates := []string{c.PublicURL}
		if !c.Production {
			candidates = append(candidates, "http://localhost:"+c.port)
		}
		for _, o := range candidates {
			if u, err := url.Parse(o); err == nil && onRPID(u.Hostname(), c.WebAuthnRPID) && !slices.Contains(c.WebAuthnOrigins, o) {
				c.WebAuthnOrigins = append(c.WebAuthnOrigins, o)
			}
		}
	}
}

// onRPID reports whether host is rpID or one of its subdomains.
func onRPID(host, rpID string) bool {
	host = strings.ToLower(host)
	return host == rpID || strings.HasSuffix(host, "."+rpID)
}

// BindPort fills in the port that the listener on ADDR was given, where
// ADDR asked the kernel for one (":0") and PUBLIC_URL or WEBAUTHN_ORIGINS
// were left to their defaults: they must name the port browsers reach.
func (c *Config) BindPort(port int) {
	if portOf(c.Addr) != "0" {
		return
	}
	c.port = strconv.Itoa(port)
	if !c.publicURLSet {
		c.PublicURL = "http://localhost:" + c.port
	}
	c.fillWebAuthn()
}

func portOf(addr string) string {
	if _, port, err := net.SplitHostPort(addr); err == nil && port != "" {
		return port
	}
	return "8080"
}

// parser collects the first error; later reads still run so that Load stays linear.
type parser struct {
	getenv func(string) string
	err    error
}

func (p *parser) fail(name, format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf("config: %s %s", name, fmt.Sprintf(format, args...))
	}
}

func (p *parser) str(name, def string) string {
	if v := p.getenv(name); v != "" {
		return v
	}
	return def
}

// maxTOTPIssuer bounds TOTP_ISSUER, in characters: authenticator apps show
// it in a list row, and it travels in every enrollment's QR code.
const maxTOTPIssuer = 64

// totpIssuer reads the name authenticator apps show. It goes into the
// otpauth:// label, where Google's Key Uri Format has ":" separate the
// issuer from the account name and forbids it in either, escaped as %3A or
// not (apps decode the label before they split it). So a ":" is refused
// rather than escaped, as are control characters, which an app would show
// as they are.
func (p *parser) totpIssuer(name, def string) string {
	v := p.str(name, def)
	switch {
	case !utf8.ValidString(v):
		p.fail(name, "must be UTF-8 text")
	case strings.TrimSpace(v) == "":
		p.fail(name, "must not be blank")
	case utf8.RuneCountInString(v) > maxTOTPIssuer:
		p.fail(name, "must have at most %d characters (it has %d)", maxTOTPIssuer, utf8.RuneCountInString(v))
	case strings.ContainsFunc(v, unicode.IsControl):
		p.fail(name, "must not contain control characters, not %q", v)
	case strings.Contains(v, ":"):
		p.fail(name, "must not contain \":\", the otpauth:// label's separator, not %q: it is the name an app shows, such as \"Example Inc\", not a URL", v)
	default:
		return v
	}
	return def
}

// secret reads an HS256 key: the raw bytes of the variable, at least 32.
func (p *parser) secret(name string) []byte {
	s := p.getenv(name)
	if s == "" {
		return nil
	}
	if len(s) < 32 {
		// The value itself is never printed.
		p.fail(name, "must be at least 32 bytes (it has %d)", len(s))
	}
	return []byte(s)
}

// privateKeyFile reads a PEM file holding a PKCS#8 Ed25519 private key.
func (p *parser) privateKeyFile(name, path string) ed25519.PrivateKey {
	block := p.pemFile(name, path)
	if block == nil {
		return nil
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	priv, ok := key.(ed25519.PrivateKey)
	if err != nil || !ok {
		p.fail(name, "%q does not hold a PKCS#8 Ed25519 private key (openssl genpkey -algorithm ed25519)", path)
		return nil
	}
	return priv
}

// publicKeyFile reads the Ed25519 public key of a PEM file holding either
// the public key (PKIX) or the private key (PKCS#8).
func (p *parser) publicKeyFile(name, path string) ed25519.PublicKey {
	block := p.pemFile(name, path)
	if block == nil {
		return nil
	}
	if key, err := x509.ParsePKIXPublicKey(block.Bytes); err == nil {
		if pub, ok := key.(ed25519.PublicKey); ok {
			return pub
		}
	}
	if key, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if priv, ok := key.(ed25519.PrivateKey); ok {
			return priv.Public().(ed25519.PublicKey)
		}
	}
	p.fail(name, "%q does not hold an Ed25519 key in PEM (PKIX public or PKCS#8 private)", path)
	return nil
}

func (p *parser) pemFile(name, path string) *pem.Block {
	data, err := os.ReadFile(path)
	if err != nil {
		p.fail(name, "cannot read %q: %v", path, errors.Unwrap(err))
		return nil
	}
	block, _ := pem.Decode(data)
	if block == nil {
		p.fail(name, "%q is not a PEM file", path)
	}
	return block
}

// prefixes reads a comma-separated list of CIDRs (a bare address is a /32 or /128).
func (p *parser) prefixes(name string) []netip.Prefix {
	v := p.getenv(name)
	if v == "" {
		return nil
	}
	var out []netip.Prefix
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			addr, aerr := netip.ParseAddr(s)
			if aerr != nil {
				p.fail(name, "must list CIDRs such as 10.0.0.0/8, not %q", s)
				return nil
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out
}

// origins reads a comma-separated list of origins such as https://app.example.com.
func (p *parser) origins(name string) []string {
	v := p.getenv(name)
	if v == "" {
		return nil
	}
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimSpace(o)
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
			p.fail(name, "must list origins such as https://app.example.com, not %q", o)
			return nil
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out
}

func (p *parser) choice(name, def string, allowed ...string) string {
	v := p.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, "must be one of %s, not %q", strings.Join(allowed, ", "), v)
	return def
}

func (p *parser) onOff(name string, def bool) bool {
	v := p.getenv(name)
	switch strings.ToLower(v) {
	case "":
		return def
	case "on", "true", "1":
		return true
	case "off", "false", "0":
		return false
	default:
		p.fail(name, "must be on or off, not %q", v)
		return def
	}
}

func (p *parser) duration(name string, def, min, max time.Duration) time.Duration {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.fail(name, "must be a Go duration such as 15m or 720h, not %q", v)
		return def
	}
	if d < min || d > max {
		p.fail(name, "must be between %s and %s, not %s", min, max, d)
		return def
	}
	return d
}

func (p *parser) integer(name string, def, min, max int) int {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(name, "must be a whole number, not %q", v)
		return def
	}
	if n < min || n > max {
		p.fail(name, "must be between %d and %d, not %d", min, max, n)
		return def
	}
	return n
}
