package config

import (
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
		AccessTTL:         15 * time.Minute,
		RefreshTTL:        720 * time.Hour,
		RefreshReuseGrace: 10 * time.Second,
		SignupOpen:        true,
		MaxBodyBytes:      1048576,
		Playground:        true,
		Introspection:     true,
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

func TestLoad_ExplicitValues(t *testing.T) {
	got, err := Load(env(map[string]string{
		"DATABASE_URL":        "postgres://u@db/app",
		"ADDR":                "127.0.0.1:9000",
		"JWT_SECRET":          secret32,
		"JWT_LEEWAY":          "0s",
		"JWT_ISSUER":          "iss",
		"JWT_AUDIENCE":        "aud",
		"ACCESS_TOKEN_TTL":    "5m",
		"REFRESH_TOKEN_TTL":   "24h",
		"MAX_BODY_BYTES":      "2048",
		"SIGNUP":              "closed",
		"REFRESH_REUSE_GRACE": "3s",
		"PLAYGROUND":          "OFF",
		"INTROSPECTION":       "false",
		"ADMIN_USERNAME":      "root-admin",
		"ADMIN_PASSWORD":      "admin password 1",
	}))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	want := Config{
		DatabaseURL:       "postgres://u@db/app",
		Addr:              "127.0.0.1:9000",
		JWTAlg:            "HS256",
		JWTSecret:         []byte(secret32),
		JWTLeeway:         0,
		Issuer:            "iss",
		Audience:          "aud",
		AccessTTL:         5 * time.Minute,
		RefreshTTL:        24 * time.Hour,
		RefreshReuseGrace: 3 * time.Second,
		AdminUsername:     "root-admin",
		AdminPassword:     "admin password 1",
		SignupOpen:        false,
		MaxBodyBytes:      2048,
		Playground:        false,
		Introspection:     false,
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
			env:  map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32},
		},
		{
			name:       "PLAYGROUND=on overrides",
			env:        map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "PLAYGROUND": "on"},
			playground: true,
		},
		{
			name:        "INTROSPECTION=on overrides",
			env:         map[string]string{"APP_ENV": "production", "JWT_SECRET": secret32, "INTROSPECTION": "on"},
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
var secretVars = []string{"JWT_SECRET", "ADMIN_PASSWORD"}

func TestLoad_BadValueNamesVariable(t *testing.T) {
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
		{"production with a short JWT_SECRET", map[string]string{"APP_ENV": "production", "JWT_SECRET": "shortsecret"}, "JWT_SECRET"},
		{"JWT_ALG RS256", map[string]string{"JWT_ALG": "RS256"}, "JWT_ALG"},
		{"JWT_LEEWAY not a duration", map[string]string{"JWT_LEEWAY": "abc"}, "JWT_LEEWAY"},
		{"ACCESS_TOKEN_TTL negative", map[string]string{"ACCESS_TOKEN_TTL": "-1m"}, "ACCESS_TOKEN_TTL"},
		{"REFRESH_TOKEN_TTL not a duration", map[string]string{"REFRESH_TOKEN_TTL": "banana"}, "REFRESH_TOKEN_TTL"},
		{"MAX_BODY_BYTES not a number", map[string]string{"MAX_BODY_BYTES": "12x"}, "MAX_BODY_BYTES"},
		{"MAX_BODY_BYTES below minimum", map[string]string{"MAX_BODY_BYTES": "10"}, "MAX_BODY_BYTES"},
		{"SIGNUP neither open nor closed", map[string]string{"SIGNUP": "maybe"}, "SIGNUP"},
		{"PLAYGROUND neither on nor off", map[string]string{"PLAYGROUND": "yesplease"}, "PLAYGROUND"},
		{"ADMIN_USERNAME without ADMIN_PASSWORD", map[string]string{"ADMIN_USERNAME": "root-admin"}, "ADMIN_PASSWORD"},
		{"ADMIN_PASSWORD without ADMIN_USERNAME", map[string]string{"ADMIN_PASSWORD": "admin password 1"}, "ADMIN_USERNAME"},
		{"ACCESS_TOKEN_TTL longer than REFRESH_TOKEN_TTL", map[string]string{"ACCESS_TOKEN_TTL": "2h", "REFRESH_TOKEN_TTL": "1h"}, "ACCESS_TOKEN_TTL"},
		{"ACCESS_TOKEN_TTL equal to REFRESH_TOKEN_TTL", map[string]string{"ACCESS_TOKEN_TTL": "1h", "REFRESH_TOKEN_TTL": "1h"}, "ACCESS_TOKEN_TTL"},
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
			for _, name := range secretVars {
				if v := tc.env[name]; v != "" && strings.Contains(msg, v) {
					t.Errorf("error %q contains the value of %s", msg, name)
				}
			}
		})
	}
}
