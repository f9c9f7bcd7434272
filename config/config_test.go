package config

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/mail"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// env returns a getenv backed by m, so that tests never read the process environment.
func env(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

// secret32 is a valid HS256 key: exactly the 32-byte minimum.
const secret32 = "0123456789abcdef0123456789abcdef"

func TestLoad_Defaults(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil {
		t.Fatalf("Load(empty environment): %v", err)
	}
	want := Config{
		DatabaseURL:       "sqlite:data/app.db",
		Addr:              ":8080",
		Production:        false,
		JWTAlg:            "HS256",
		JWTSecret:         nil,
		JWTLeeway:         5 * time.Second,
		Issuer:            "tollgate",
		Audience:          "tollgate",
		TOTPIssuer:        "Tollgate",
		AccessTTL:         15 * time.Minute,
		RefreshTTL:        720 * time.Hour,
		RefreshReuseGrace: 10 * time.Second,
		SignupOpen:        true,
		MaxBodyBytes:      1048576,
		Playground:        true,
		Introspection:     true,

		LoginFailuresPerUserIP:      5,
		LoginFailuresPerIP:          50,
		LoginFailureWindow:          15 * time.Minute,
		RegisterPerIPPerHour:        30,
		RefreshPerIPPerMinute:       120,
		LoginAttemptsPerIPPerMinute: 60,
		SessionsPerUser:             100,
		MaxDepth:                    12,
		MaxComplexity:               1000,
		Email:                       defaultEmail(),
		OIDC:                        OIDCConfig{Timeout: 10 * time.Second},
		Mail: Mail{
			Transport: "log",
			From:      &mail.Address{Name: "Tollgate", Address: "no-reply@localhost"},
			RetryFor:  24 * time.Hour,
		},
		MaxResponseBytes:   4194304,
		WSConnectionsPerIP: 50,
		PublicURL:          "http://localhost:8080",
		WebAuthnRPID:       "localhost",
		WebAuthnOrigins:    []string{"http://localhost:8080"},
		port:               "8080",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load(empty environment)\n got %+v\nwant %+v", got, want)
	}
	// DeepEqual already tells nil from empty, but "nil means generate a key
	// and keep it in the database" is worth saying on its own.
	if got.JWTSecret != nil {
		t.Errorf("JWTSecret = %q, want nil (generated in development)", got.JWTSecret)
	}
}

// MFA_ENCRYPTION_KEY is unset by default (the TOTP secrets are then sealed
// under a key derived from the signing key) and taken as raw bytes when set.
func TestLoad_MFAEncryptionKey(t *testing.T) {
	got, err := Load(env(nil))
	if err != nil || got.MFAEncryptionKey != nil {
		t.Fatalf("default: %q, %v; want nil", got.MFAEncryptionKey, err)
	}
	key := secret32 + "-mfa"
	got, err = Load(env(map[string]string{"MFA_ENCRYPTION_KEY": key}))
	if err != nil || string(got.MFAEncryptionKey) != key {
		t.Fatalf("set: %q, %v; want %q", got.MFAEncryptionKey, err, key)
	}
}

func TestLoad_ExplicitValues(t *testing.T) {
	got, err := Load(env(map[string]string{
		"DATABASE_URL":        "postgres://u@db/app",
		"ADDR":                "127.0.0.1:9000",
		"JWT_SECRET":          secret32,
		"JWT_LEEWAY":          "0s",
		"JWT_ISSUER":          "iss",
		"JWT_AUDIENCE":        "aud",
		"TOTP_ISSUER":         "Example Co (staging) / Auth & Co",
		"METRICS_ADDR":        "127.0.0.1:9090",
		"ACCESS_TOKEN_TTL":    "5m",
		"REFRESH_TOKEN_TTL":   "24h",
		"MAX_BODY_BYTES":      "2048",
		"SIGNUP":              "closed",
		"REFRESH_REUSE_GRACE": "3s",
		"PLAYGROUND":          "OFF",
		"INTROSPECTION":       "false",
		"ADMIN_USERNAME":      "root-admin",
		"ADMIN_PASSWORD":      "admin password 1",

		"LOGIN_FAILURES_PER_USER_IP":       "3",
		"LOGIN_FAILURES_PER_IP":            "30",
		"LOGIN_FAILURE_WINDOW":             "1h",
		"REGISTER_PER_IP_PER_HOUR":         "7",
		"REFRESH_PER_IP_PER_MINUTE":        "9",
		"LOGIN_ATTEMPTS_PER_IP_PER_MINUTE": "11",
		"SESSIONS_PER_USER":                "12",
		"PASSWORD_HASH_CONCURRENCY":        "3",
		"MAX_DEPTH":                        "8",
		"MAX_COMPLEXITY":                   "500",
		"MAX_RESPONSE_BYTES":               "1048576",
		"WS_CONNECTIONS_PER_IP":            "3",
		"TRUSTED_PROXIES":                  "10.0.0.0/8, 192.168.1.7,fd00::/8",
		"CORS_ORIGINS":                     "https://app.example.com, http://localhost:3000/",
		"SMTP_URL":                         "smtps://mailer:p%40ss@smtp.example.com",
		"MAIL_FROM":                        "Acme Accounts <accounts@example.com>",
		"MAIL_RETRY_FOR":                   "6h",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		DatabaseURL:       "postgres://u@db/app",
		Addr:              "127.0.0.1:9000",
		MetricsAddr:       "127.0.0.1:9090",
		JWTAlg:            "HS256",
		JWTSecret:         []byte(secret32),
		JWTLeeway:         0,
		Issuer:            "iss",
		Audience:          "aud",
		TOTPIssuer:        "Example Co (staging) / Auth & Co",
		AccessTTL:         5 * time.Minute,
		RefreshTTL:        24 * time.Hour,
		RefreshReuseGrace: 3 * time.Second,
		AdminUsername:     "root-admin",
		AdminPassword:     "admin password 1",
		SignupOpen:        false,
		MaxBodyBytes:      2048,
		Playground:        false,
		Introspection:     false,

		LoginFailuresPerUserIP:      3,
		LoginFailuresPerIP:          30,
		LoginFailureWindow:          time.Hour,
		RegisterPerIPPerHour:        7,
		RefreshPerIPPerMinute:       9,
		LoginAttemptsPerIPPerMinute: 11,
		SessionsPerUser:             12,
		PasswordHashConcurrency:     3,
		MaxDepth:                    8,
		MaxComplexity:               500,
		MaxResponseBytes:            1 << 20,
		WSConnectionsPerIP:          3,
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
			netip.MustParsePrefix("fd00::/8")},
		CORSOrigins: []string{"https://app.example.com", "http://localhost:3000"},
		Email:       defaultEmail(),
		OIDC:        OIDCConfig{Timeout: 10 * time.Second},
		Mail: Mail{
			Transport: "smtp",
			SMTP:      SMTP{Host: "smtp.example.com", Port: 465, ImplicitTLS: true, Username: "mailer", Password: "p@ss"},
			From:      &mail.Address{Name: "Acme Accounts", Address: "accounts@example.com"},
			RetryFor:  6 * time.Hour,
		},
		PublicURL:       "http://localhost:9000",
		WebAuthnRPID:    "localhost",
		WebAuthnOrigins: []string{"http://localhost:9000"},
		port:            "9000",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load\n got %+v\nwant %+v", got, want)
	}
}

func TestLoad_ProductionDefaults(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		env                     map[string]string
		playground, introspects bool
	}{
		{
			name: "off by default",
			env:  map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "log"},
		},
		{
			name:       "PLAYGROUND=on overrides",
			env:        map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "log", "PLAYGROUND": "on"},
			playground: true,
		},
		{
			name:        "INTROSPECTION=on overrides",
			env:         map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "log", "INTROSPECTION": "on"},
			introspects: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.env))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !c.Production {
				t.Errorf("Production = false, want true")
			}
			if got, want := c.Playground, tc.playground; got != want {
				t.Errorf("Playground = %v, want %v", got, want)
			}
			if got, want := c.Introspection, tc.introspects; got != want {
				t.Errorf("Introspection = %v, want %v", got, want)
			}
			if got, want := string(c.JWTSecret), secret32; got != want {
				t.Errorf("JWTSecret = %q, want %q", got, want)
			}
		})
	}
}

func TestLoad_DevelopmentOverrides(t *testing.T) {
	c, err := Load(env(map[string]string{"APP_ENV": "development", "PLAYGROUND": "off", "INTROSPECTION": "0"}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Production || c.Playground || c.Introspection {
		t.Errorf("Production, Playground, Introspection = %v, %v, %v; want all false", c.Production, c.Playground, c.Introspection)
	}
}

// secretVars are the variables whose values must never appear in an error:
// the message ends up in logs and terminals.
var secretVars = []string{"JWT_SECRET", "JWT_PREVIOUS_SECRET", "ADMIN_PASSWORD", "MFA_ENCRYPTION_KEY"}

func TestLoad_BadValueNamesVariable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := writeFile(t, dir, "not.pem", []byte("this is not a key\n"))
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	rsaPEM := writePKCS8(t, dir, "rsa.pem", rsaKey)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecPEM := writePKCS8(t, dir, "ec.pem", ecKey)
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	ecSEC1PEM := writeFile(t, dir, "ec-sec1.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}))
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPEM := writePKCS8(t, dir, "ed25519.pem", edPriv)
	edPubPEM := writePKIX(t, dir, "ed25519.pub.pem", edPub)
	rsaPubPEM := writePKIX(t, dir, "rsa.pub.pem", &rsaKey.PublicKey)
	eddsa := func(m map[string]string) map[string]string {
		m["JWT_ALG"] = "EdDSA"
		return m
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		// variable is the name the one-line error must contain.
		variable string
	}{
		{"unknown APP_ENV", map[string]string{"APP_ENV": "staging"}, "APP_ENV"},
		{"APP_ENV with a newline", map[string]string{"APP_ENV": "production\nx"}, "APP_ENV"},
		{"production without JWT_SECRET", map[string]string{"APP_ENV": "production"}, "JWT_SECRET"},
		{"JWT_SECRET too short", map[string]string{"JWT_SECRET": "shortsecret"}, "JWT_SECRET"},
		{"JWT_SECRET one byte short", map[string]string{"JWT_SECRET": secret32[1:]}, "JWT_SECRET"},
		{"MFA_ENCRYPTION_KEY too short", map[string]string{"MFA_ENCRYPTION_KEY": "short-mfa-key"}, "MFA_ENCRYPTION_KEY"},
		{"MFA_ENCRYPTION_KEY one byte short", map[string]string{"MFA_ENCRYPTION_KEY": secret32[1:]}, "MFA_ENCRYPTION_KEY"},
		{"production with a short JWT_SECRET", map[string]string{"APP_ENV": "production", "JWT_SECRET": "shortsecret"}, "JWT_SECRET"},
		{"JWT_ALG RS256", map[string]string{"JWT_ALG": "RS256"}, "JWT_ALG"},
		{"JWT_LEEWAY not a duration", map[string]string{"JWT_LEEWAY": "abc"}, "JWT_LEEWAY"},
		{"ACCESS_TOKEN_TTL negative", map[string]string{"ACCESS_TOKEN_TTL": "-1m"}, "ACCESS_TOKEN_TTL"},
		{"REFRESH_TOKEN_TTL not a duration", map[string]string{"REFRESH_TOKEN_TTL": "banana"}, "REFRESH_TOKEN_TTL"},
		{"MAX_BODY_BYTES not a number", map[string]string{"MAX_BODY_BYTES": "12x"}, "MAX_BODY_BYTES"},
		{"MAX_BODY_BYTES below minimum", map[string]string{"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"},
		{"SIGNUP neither open nor closed", map[string]string{"SIGNUP": "maybe"}, "SIGNUP"},
		{"PLAYGROUND neither on nor off", map[string]string{"PLAYGROUND": "yesplease"}, "PLAYGROUND"},
		{"TRUSTED_PROXIES not a CIDR", map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"}, "TRUSTED_PROXIES"},
		{"CORS_ORIGINS with a path", map[string]string{"CORS_ORIGINS": "https://app.example.com/login"}, "CORS_ORIGINS"},
		{"CORS_ORIGINS without a scheme", map[string]string{"CORS_ORIGINS": "app.example.com"}, "CORS_ORIGINS"},
		{"LOGIN_FAILURES_PER_IP zero", map[string]string{"LOGIN_FAILURES_PER_IP": "0"}, "LOGIN_FAILURES_PER_IP"},
		{"LOGIN_FAILURE_WINDOW not a duration", map[string]string{"LOGIN_FAILURE_WINDOW": "15"}, "LOGIN_FAILURE_WINDOW"},
		{"MAX_DEPTH too small", map[string]string{"MAX_DEPTH": "1"}, "MAX_DEPTH"},
		{"MAX_COMPLEXITY not a number", map[string]string{"MAX_COMPLEXITY": "lots"}, "MAX_COMPLEXITY"},
		{"TOTP_ISSUER a URL", map[string]string{"TOTP_ISSUER": "https://auth.example.com"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER with a colon", map[string]string{"TOTP_ISSUER": "Example:Auth"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER blank", map[string]string{"TOTP_ISSUER": "   "}, "TOTP_ISSUER"},
		{"TOTP_ISSUER with a newline", map[string]string{"TOTP_ISSUER": "Example\nInc"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER with a NUL", map[string]string{"TOTP_ISSUER": "Example\x00"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER not UTF-8", map[string]string{"TOTP_ISSUER": "Exa\xffmple"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER too long", map[string]string{"TOTP_ISSUER": strings.Repeat("é", 65)}, "TOTP_ISSUER"},
		{"METRICS_ADDR without a port", map[string]string{"METRICS_ADDR": "127.0.0.1"}, "METRICS_ADDR"},
		{"METRICS_ADDR the same as ADDR", map[string]string{"ADDR": ":9090", "METRICS_ADDR": ":9090"}, "METRICS_ADDR"},
		{"MAX_RESPONSE_BYTES below minimum", map[string]string{"MAX_RESPONSE_BYTES": "1000"}, "MAX_RESPONSE_BYTES"},
		{"MAX_RESPONSE_BYTES not a number", map[string]string{"MAX_RESPONSE_BYTES": "4MB"}, "MAX_RESPONSE_BYTES"},
		{"WS_CONNECTIONS_PER_IP zero", map[string]string{"WS_CONNECTIONS_PER_IP": "0"}, "WS_CONNECTIONS_PER_IP"},
		{"ADMIN_USERNAME without ADMIN_PASSWORD", map[string]string{"ADMIN_USERNAME": "root-admin"}, "ADMIN_PASSWORD"},
		{"EdDSA key file under HS256", map[string]string{"JWT_PRIVATE_KEY_FILE": "/nonexistent.pem"}, "JWT_PRIVATE_KEY_FILE"},
		{"HS256 secret under EdDSA", map[string]string{"JWT_ALG": "EdDSA", "JWT_SECRET": "0123456789abcdef0123456789abcdef"}, "JWT_SECRET"},
		{"ADMIN_PASSWORD without ADMIN_USERNAME", map[string]string{"ADMIN_PASSWORD": "admin password 1"}, "ADMIN_USERNAME"},
		{"ACCESS_TOKEN_TTL longer than REFRESH_TOKEN_TTL", map[string]string{"ACCESS_TOKEN_TTL": "2h", "REFRESH_TOKEN_TTL": "1h"}, "ACCESS_TOKEN_TTL"},
		{"ACCESS_TOKEN_TTL equal to REFRESH_TOKEN_TTL", map[string]string{"ACCESS_TOKEN_TTL": "1h", "REFRESH_TOKEN_TTL": "1h"}, "ACCESS_TOKEN_TTL"},
		{"REFRESH_REUSE_GRACE forever", map[string]string{"REFRESH_REUSE_GRACE": "forever"}, "REFRESH_REUSE_GRACE"},
		{"REFRESH_REUSE_GRACE longer than a minute", map[string]string{"REFRESH_REUSE_GRACE": "1h"}, "REFRESH_REUSE_GRACE"},
		{"JWT_PREVIOUS_SECRET too short", map[string]string{"JWT_SECRET": secret32, "JWT_PREVIOUS_SECRET": "old-short-secret"}, "JWT_PREVIOUS_SECRET"},
		{"JWT_PREVIOUS_SECRET one byte short", map[string]string{"JWT_SECRET": secret32, "JWT_PREVIOUS_SECRET": secret32[1:]}, "JWT_PREVIOUS_SECRET"},
		{"production EdDSA without JWT_PRIVATE_KEY_FILE", eddsa(map[string]string{"APP_ENV": "production"}), "JWT_PRIVATE_KEY_FILE"},
		{"production EdDSA with only a JWT_SECRET", eddsa(map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE missing", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": missing}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE is a directory", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": dir}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE not PEM", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": notPEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE an RSA key", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": rsaPEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE an EC key", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": ecPEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE an EC key in SEC 1 form", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": ecSEC1PEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE an Ed25519 public key", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": edPubPEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PRIVATE_KEY_FILE bad in production", eddsa(map[string]string{"APP_ENV": "production", "JWT_PRIVATE_KEY_FILE": notPEM}), "JWT_PRIVATE_KEY_FILE"},
		{"JWT_PREVIOUS_KEY_FILES missing", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": edPEM, "JWT_PREVIOUS_KEY_FILES": missing}), "JWT_PREVIOUS_KEY_FILES"},
		{"JWT_PREVIOUS_KEY_FILES second missing", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": edPEM, "JWT_PREVIOUS_KEY_FILES": edPubPEM + "," + missing}), "JWT_PREVIOUS_KEY_FILES"},
		{"JWT_PREVIOUS_KEY_FILES not PEM", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": edPEM, "JWT_PREVIOUS_KEY_FILES": notPEM}), "JWT_PREVIOUS_KEY_FILES"},
		{"JWT_PREVIOUS_KEY_FILES an RSA public key", eddsa(map[string]string{"JWT_PRIVATE_KEY_FILE": edPEM, "JWT_PREVIOUS_KEY_FILES": rsaPubPEM}), "JWT_PREVIOUS_KEY_FILES"},
		// A valid secret beside a bad value must not leak into that value's error.
		{"bad APP_ENV beside valid secrets", map[string]string{
			"APP_ENV": "staging", "JWT_SECRET": secret32,
			"ADMIN_USERNAME": "root-admin", "ADMIN_PASSWORD": "admin password 1",
		}, "APP_ENV"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil {
				t.Fatalf("Load(%q) = nil error, want one naming %s", tc.env, tc.variable)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.variable) {
				t.Errorf("error %q does not name %s", msg, tc.variable)
			}
			if strings.ContainsAny(msg, "\r\n") {
				t.Errorf("error %q is not a single line", msg)
			}
			if !strings.HasPrefix(msg, "config: ") {
				t.Errorf("error %q does not start with \"config: \"", msg)
			}
			for _, name := range secretVars {
				if v := tc.env[name]; v != "" && strings.Contains(msg, v) {
					t.Errorf("error %q contains the value of %s", msg, name)
				}
			}
		})
	}
}

// TOTP_ISSUER takes any short printable name without a colon, Unicode and
// characters a URI must escape included: the control of the refusals above.
func TestLoad_TOTPIssuer(t *testing.T) {
	for _, v := range []string{"Tollgate", "Ünïcødé GmbH", "auth.example.com/sso?x=1&y=2#f", "50% off + more", strings.Repeat("é", 64)} {
		got, err := Load(env(map[string]string{"TOTP_ISSUER": v}))
		if err != nil || got.TOTPIssuer != v {
			t.Errorf("TOTP_ISSUER=%q: %q, %v; want it kept as it is", v, got.TOTPIssuer, err)
		}
	}
	// JWT_ISSUER is no longer what the app shows: a URL there is fine.
	got, err := Load(env(map[string]string{"JWT_ISSUER": "https://auth.example.com"}))
	if err != nil || got.TOTPIssuer != "Tollgate" || got.Issuer != "https://auth.example.com" {
		t.Errorf("JWT_ISSUER a URL: TOTPIssuer %q, Issuer %q, %v", got.TOTPIssuer, got.Issuer, err)
	}
}

// TestLoad_EdDSAKeyFiles is the control of the bad key files above: the same
// helpers' files, of the right kind, load.
func TestLoad_EdDSAKeyFiles(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	oldPub, oldPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	olderPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{
		"APP_ENV":                "production",
		"MAIL_TRANSPORT":         "log",
		"JWT_ALG":                "EdDSA",
		"JWT_PRIVATE_KEY_FILE":   writePKCS8(t, dir, "new.pem", priv),
		"JWT_PREVIOUS_KEY_FILES": writePKCS8(t, dir, "old.pem", oldPriv) + " , " + writePKIX(t, dir, "older.pub.pem", olderPub),
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !priv.Equal(c.JWTPrivateKey) {
		t.Errorf("JWTPrivateKey is not the key of the file")
	}
	if len(c.JWTPreviousKeys) != 2 || !oldPub.Equal(c.JWTPreviousKeys[0]) || !olderPub.Equal(c.JWTPreviousKeys[1]) {
		t.Errorf("JWTPreviousKeys = %x, want the public keys of old.pem and older.pub.pem in order", c.JWTPreviousKeys)
	}
	if c.JWTSecret != nil || c.JWTPreviousSecret != nil {
		t.Errorf("HS256 secrets set under EdDSA")
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writePKCS8 writes key as a PKCS#8 "PRIVATE KEY" PEM file.
func writePKCS8(t *testing.T, dir, name string, key any) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
}

// writePKIX writes key as a PKIX "PUBLIC KEY" PEM file.
func writePKIX(t *testing.T, dir, name string, key any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dir, name, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

func TestLoad_Logging(t *testing.T) {
	for _, tc := range []struct {
		format, level string
		wantFormat    LogFormat
		wantLevel     slog.Level
	}{
		{"", "", LogJSON, slog.LevelInfo},
		{"json", "debug", LogJSON, slog.LevelDebug},
		{"text", "info", LogText, slog.LevelInfo},
		{"TEXT", "Warn", LogText, slog.LevelWarn},
		{"JSON", "error", LogJSON, slog.LevelError},
	} {
		got, err := Load(env(map[string]string{"LOG_FORMAT": tc.format, "LOG_LEVEL": tc.level}))
		if err != nil {
			t.Fatalf("LOG_FORMAT=%q LOG_LEVEL=%q: %v", tc.format, tc.level, err)
		}
		if got.LogFormat != tc.wantFormat || got.LogLevel != tc.wantLevel {
			t.Errorf("LOG_FORMAT=%q LOG_LEVEL=%q: got %s/%s, want %s/%s",
				tc.format, tc.level, got.LogFormat, got.LogLevel, tc.wantFormat, tc.wantLevel)
		}
	}
}

func TestLoad_BadLoggingNamesVariable(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"LOG_FORMAT", "xml"},
		{"LOG_FORMAT", "json\nlevel=debug"},
		{"LOG_LEVEL", "verbose"},
		{"LOG_LEVEL", "INFO+2"},
		{"LOG_LEVEL", "0"},
	} {
		_, err := Load(env(map[string]string{tc.name: tc.value}))
		if err == nil {
			t.Fatalf("%s=%q: no error", tc.name, tc.value)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "config: "+tc.name+" ") || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("%s=%q: error %q is not one line naming the variable", tc.name, tc.value, msg)
		}
	}
}

// The logger follows LOG_FORMAT and LOG_LEVEL.
func TestConfig_NewLogger(t *testing.T) {
	var buf strings.Builder
	text := Config{LogFormat: LogText, LogLevel: slog.LevelWarn}.NewLogger(&buf)
	text.Info("hidden")
	text.Warn("shown", "k", "v")
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "level=WARN msg=shown k=v") {
		t.Errorf("text logger wrote %q", got)
	}
	buf.Reset()
	Config{}.NewLogger(&buf).Info("shown", "k", "v")
	if got := buf.String(); !strings.HasPrefix(got, "{") || !strings.Contains(got, `"msg":"shown","k":"v"`) {
		t.Errorf("default logger wrote %q", got)
	}
}

// PASSWORD_HASH_CONCURRENCY is a pool size: a whole number from 1, or unset.
func TestLoad_BadPasswordHashConcurrency(t *testing.T) {
	for _, v := range []string{"0", "-1", "two", "1025"} {
		_, err := Load(env(map[string]string{"PASSWORD_HASH_CONCURRENCY": v}))
		if err == nil || !strings.HasPrefix(err.Error(), "config: PASSWORD_HASH_CONCURRENCY ") {
			t.Errorf("PASSWORD_HASH_CONCURRENCY=%q: err = %v, want one naming the variable", v, err)
		}
	}
}

// DATABASE_MAX_CONNS is a pool size from 1 to 1000, or unset (the driver's default).
func TestLoad_DatabaseMaxConns(t *testing.T) {
	for _, v := range []string{"0", "-3", "many", "1001"} {
		_, err := Load(env(map[string]string{"DATABASE_MAX_CONNS": v}))
		if err == nil || !strings.HasPrefix(err.Error(), "config: DATABASE_MAX_CONNS ") {
			t.Errorf("DATABASE_MAX_CONNS=%q: err = %v, want one naming the variable", v, err)
		}
	}
	for v, want := range map[string]int{"": 0, "7": 7} {
		cfg, err := Load(env(map[string]string{"DATABASE_MAX_CONNS": v}))
		if err != nil || cfg.DatabaseMaxConns != want {
			t.Errorf("DATABASE_MAX_CONNS=%q: %d, %v; want %d", v, cfg.DatabaseMaxConns, err, want)
		}
	}
}

func TestLoad_Mail(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want Mail
	}{
		{"smtp with the default port", map[string]string{"SMTP_URL": "smtp://relay.example.com"},
			Mail{Transport: "smtp", SMTP: SMTP{Host: "relay.example.com", Port: 587}}},
		{"smtps with a port and credentials", map[string]string{"SMTP_URL": "smtps://u%3Ax:p%2Fw@[::1]:2465/"},
			Mail{Transport: "smtp", SMTP: SMTP{Host: "::1", Port: 2465, ImplicitTLS: true, Username: "u:x", Password: "p/w"}}},
		{"SMTP_URL but MAIL_TRANSPORT=log", map[string]string{"SMTP_URL": "smtp://relay.example.com:25", "MAIL_TRANSPORT": "log"},
			Mail{Transport: "log", SMTP: SMTP{Host: "relay.example.com", Port: 25}}},
		{"production with MAIL_TRANSPORT=log", map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "log"},
			Mail{Transport: "log"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			c.Mail.From, c.Mail.RetryFor = nil, 0
			if !reflect.DeepEqual(c.Mail, tc.want) {
				t.Errorf("Mail = %+v, want %+v", c.Mail, tc.want)
			}
		})
	}
}

// Every refusal names its variable; none repeats a password of SMTP_URL.
func TestLoad_MailRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, variable string
		env            map[string]string
	}{
		{"production without SMTP_URL", "SMTP_URL", map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32}},
		{"production with MAIL_TRANSPORT=smtp and no SMTP_URL", "MAIL_TRANSPORT", map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "smtp"}},
		{"MAIL_TRANSPORT unknown", "MAIL_TRANSPORT", map[string]string{"MAIL_TRANSPORT": "sendmail"}},
		{"another scheme", "SMTP_URL", map[string]string{"SMTP_URL": "http://u:hunter2-smtp@relay.example.com"}},
		{"a path", "SMTP_URL", map[string]string{"SMTP_URL": "smtp://u:hunter2-smtp@relay.example.com/x"}},
		{"a query", "SMTP_URL", map[string]string{"SMTP_URL": "smtp://u:hunter2-smtp@relay.example.com?tls=off"}},
		{"no host", "SMTP_URL", map[string]string{"SMTP_URL": "smtp://u:hunter2-smtp@:25"}},
		{"a bad port", "SMTP_URL", map[string]string{"SMTP_URL": "smtp://u:hunter2-smtp@relay.example.com:0"}},
		{"not a URL", "SMTP_URL", map[string]string{"SMTP_URL": "smtp://u:hunter2-smtp@relay.example.com:x y"}},
		{"MAIL_FROM not an address", "MAIL_FROM", map[string]string{"MAIL_FROM": "Tollgate"}},
		{"MAIL_RETRY_FOR too short", "MAIL_RETRY_FOR", map[string]string{"MAIL_RETRY_FOR": "1s"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(env(tc.env))
			if err == nil || !strings.Contains(err.Error(), tc.variable) || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Load = %v, want an error naming %s without the password", err, tc.variable)
			}
		})
	}
}

func TestSMTP_StringHasNoPassword(t *testing.T) {
	s := SMTP{Host: "relay.example.com", Port: 465, ImplicitTLS: true, Username: "mailer", Password: "hunter2-smtp"}
	if got, want := s.String(), "smtps://mailer@relay.example.com:465"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// The relying party: defaults from PUBLIC_URL, explicit values as given,
// and configurations under which no ceremony could succeed refused at start.
func TestLoad_WebAuthn(t *testing.T) {
	for _, tc := range []struct {
		env     map[string]string
		rpID    string
		origins []string
		err     string
	}{
		{env: map[string]string{"PUBLIC_URL": "https://auth.example.com"}, rpID: "auth.example.com",
			origins: []string{"https://auth.example.com"}},
		{env: map[string]string{"PUBLIC_URL": "https://auth.example.com", "APP_ENV": "production", "JWT_SECRET": secret32, "MAIL_TRANSPORT": "log"},
			rpID: "auth.example.com", origins: []string{"https://auth.example.com"}},
		{env: map[string]string{"WEBAUTHN_RP_ID": "Example.com", "WEBAUTHN_ORIGINS": "https://example.com,https://app.example.com"},
			rpID: "example.com", origins: []string{"https://example.com", "https://app.example.com"}},
		{env: map[string]string{"PUBLIC_URL": "http://127.0.0.1:8080"}, rpID: "localhost",
			origins: []string{"http://localhost:8080"}},
		{env: map[string]string{"PUBLIC_URL": "http://localhost:3000", "ADDR": ":9000"}, rpID: "localhost",
			origins: []string{"http://localhost:3000", "http://localhost:9000"}},
		{env: map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://evil.com"}, err: "WEBAUTHN_ORIGINS"},
		{env: map[string]string{"WEBAUTHN_RP_ID": "10.0.0.1"}, err: "WEBAUTHN_RP_ID"},
		{env: map[string]string{"PUBLIC_URL": "ftp://x"}, err: "PUBLIC_URL"},
	} {
		got, err := Load(env(tc.env))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: %v, want an error naming %s", tc.env, err, tc.err)
			}
			continue
		}
		if err != nil || got.WebAuthnRPID != tc.rpID || !reflect.DeepEqual(got.WebAuthnOrigins, tc.origins) {
			t.Errorf("%v: %q %q, %v; want %q %q", tc.env, got.WebAuthnRPID, got.WebAuthnOrigins, err, tc.rpID, tc.origins)
		}
	}
}

// ADDR=:0: the defaults name the port the kernel gave, explicit values stay.
func TestBindPort_FillsInTheKernelsPort(t *testing.T) {
	c, err := Load(env(map[string]string{"ADDR": "127.0.0.1:0"}))
	if err != nil {
		t.Fatal(err)
	}
	c.BindPort(41234)
	if c.PublicURL != "http://localhost:41234" || c.WebAuthnRPID != "localhost" || !reflect.DeepEqual(c.WebAuthnOrigins, []string{"http://localhost:41234"}) {
		t.Errorf("after BindPort: %q %q %q", c.PublicURL, c.WebAuthnRPID, c.WebAuthnOrigins)
	}
	c, _ = Load(env(map[string]string{"ADDR": "127.0.0.1:0", "WEBAUTHN_ORIGINS": "http://localhost:3000"}))
	c.BindPort(41234)
	if !reflect.DeepEqual(c.WebAuthnOrigins, []string{"http://localhost:3000"}) {
		t.Errorf("explicit origins changed: %q", c.WebAuthnOrigins)
	}
}
