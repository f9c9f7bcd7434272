// Package config reads Tollgate's configuration from the environment (the
// table in API.md) into one typed struct, validated once at start. A bad value
// is an error that names the variable, and the server does not start.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Config is the whole configuration of a Tollgate server.
type Config struct {
	DatabaseURL string
	Addr        string
	// Production is APP_ENV=production: no playground or introspection by
	// default, and no start without an explicit signing key.
	Production bool

	JWTAlg string
	// JWTSecret is the HS256 key; nil means "generate one and keep it in the
	// database" (development only).
	JWTSecret  []byte
	JWTLeeway  time.Duration
	Issuer     string
	Audience   string
	AccessTTL  time.Duration
	RefreshTTL time.Duration

	// AdminUsername and AdminPassword, when both set, name an ADMIN created at start.
	AdminUsername string
	AdminPassword string
	SignupOpen    bool

	MaxBodyBytes  int64
	Playground    bool
	Introspection bool
}

// Load reads the configuration through getenv (os.Getenv in production, a map in tests).
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		DatabaseURL:   p.str("DATABASE_URL", "sqlite:data/app.db"),
		Addr:          p.str("ADDR", ":8080"),
		JWTLeeway:     p.duration("JWT_LEEWAY", 5*time.Second, 0, 5*time.Minute),
		Issuer:        p.str("JWT_ISSUER", "tollgate"),
		Audience:      p.str("JWT_AUDIENCE", "tollgate"),
		AccessTTL:     p.duration("ACCESS_TOKEN_TTL", 15*time.Minute, 10*time.Second, 24*time.Hour),
		RefreshTTL:    p.duration("REFRESH_TOKEN_TTL", 720*time.Hour, time.Minute, 8760*time.Hour),
		MaxBodyBytes:  int64(p.integer("MAX_BODY_BYTES", 1<<20, 1024, 64<<20)),
		AdminUsername: getenv("ADMIN_USERNAME"),
		AdminPassword: getenv("ADMIN_PASSWORD"),
	}
	switch env := p.str("APP_ENV", "development"); env {
	case "development":
	case "production":
		c.Production = true
	default:
		p.fail("APP_ENV", "must be development or production, not %q", env)
	}
	c.SignupOpen = p.choice("SIGNUP", "open", "open", "closed") == "open"
	c.JWTAlg = p.choice("JWT_ALG", "HS256", "HS256")
	if s := getenv("JWT_SECRET"); s != "" {
		if len(s) < 32 {
			// The value itself is never printed.
			p.fail("JWT_SECRET", "must be at least 32 bytes (it has %d)", len(s))
		}
		c.JWTSecret = []byte(s)
	} else if c.Production {
		p.fail("JWT_SECRET", "is required when APP_ENV=production (at least 32 random bytes)")
	}
	c.Playground = p.onOff("PLAYGROUND", !c.Production)
	c.Introspection = p.onOff("INTROSPECTION", !c.Production)
	if (c.AdminUsername == "") != (c.AdminPassword == "") {
		p.fail("ADMIN_PASSWORD", "ADMIN_USERNAME and ADMIN_PASSWORD must be set together")
	}
	if c.Issuer == "" {
		p.fail("JWT_ISSUER", "must not be empty")
	}
	if c.Audience == "" {
		p.fail("JWT_AUDIENCE", "must not be empty")
	}
	if c.AccessTTL >= c.RefreshTTL && p.err == nil {
		p.fail("ACCESS_TOKEN_TTL", "must be shorter than REFRESH_TOKEN_TTL")
	}
	return c, p.err
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
	switch v := strings.ToLower(p.getenv(name)); v {
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
