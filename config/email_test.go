package config

import (
	"strings"
	"testing"
	"time"
)

// defaultEmail is the email configuration with nothing set.
func defaultEmail() EmailConfig {
	return EmailConfig{VerificationTTL: 24 * time.Hour, ResetTTL: 30 * time.Minute,
		PerAddressPerHour: 3, PerIPPerHour: 20}
}

func TestLoad_EmailValues(t *testing.T) {
	got, err := Load(env(map[string]string{
		"PUBLIC_URL":                 "https://auth.example.com/",
		"MAIL_LINK_URL":              "https://app.example.com/account",
		"EMAIL_REQUIRED":             "true",
		"EMAIL_VERIFICATION_TTL":     "2h",
		"PASSWORD_RESET_TTL":         "10m",
		"MAILS_PER_ADDRESS_PER_HOUR": "5",
		"MAILS_PER_IP_PER_HOUR":      "50",
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := EmailConfig{LinkURL: "https://app.example.com/account", Required: true,
		VerificationTTL: 2 * time.Hour, ResetTTL: 10 * time.Minute, PerAddressPerHour: 5, PerIPPerHour: 50}
	if got.Email != want {
		t.Fatalf("got %+v, want %+v", got.Email, want)
	}
	if got.MailLinks() != "https://app.example.com/account" {
		t.Fatalf("links go to %q, want MAIL_LINK_URL", got.MailLinks())
	}
	if c, _ := Load(env(map[string]string{"ADDR": "127.0.0.1:7001"})); c.MailLinks() != "http://localhost:7001" {
		t.Fatalf("without MAIL_LINK_URL links go to %q, want PUBLIC_URL's default", c.MailLinks())
	}
}

func TestLoad_BadEmailValueNamesVariable(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"PUBLIC_URL", "auth.example.com"},
		{"PUBLIC_URL", "https://auth.example.com/?x=1"},
		{"PUBLIC_URL", "ftp://auth.example.com"},
		{"MAIL_LINK_URL", "https://user:pass@app.example.com"},
		{"MAIL_LINK_URL", "https://app.example.com/#frag"},
		{"EMAIL_REQUIRED", "sometimes"},
		{"EMAIL_VERIFICATION_TTL", "10s"},
		{"PASSWORD_RESET_TTL", "forever"},
		{"PASSWORD_RESET_TTL", "48h"},
		{"MAILS_PER_ADDRESS_PER_HOUR", "0"},
		{"MAILS_PER_IP_PER_HOUR", "x"},
	} {
		t.Run(tc.name+"="+tc.value, func(t *testing.T) {
			_, err := Load(env(map[string]string{tc.name: tc.value}))
			if err == nil || !strings.HasPrefix(err.Error(), "config: "+tc.name+" ") {
				t.Fatalf("got %v, want an error naming %s", err, tc.name)
			}
		})
	}
}
