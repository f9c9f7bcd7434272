package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// The providers are read with their rows; scopes always hold openid.
func TestLoad_OIDCProviders(t *testing.T) {
	env := map[string]string{
		"OIDC_PROVIDERS": "google, corp-sso", "OIDC_REDIRECT_URIS": "https://app.example.com/done, http://localhost:3000/cb",
		"OIDC_GOOGLE_ISSUER": "https://accounts.google.com", "OIDC_GOOGLE_CLIENT_ID": "g-id", "OIDC_GOOGLE_CLIENT_SECRET": "g-secret",
		"OIDC_CORP_SSO_ISSUER": "https://sso.corp.example/realms/main", "OIDC_CORP_SSO_CLIENT_ID": "c-id", "OIDC_CORP_SSO_SCOPES": "email,groups",
	}
	c, err := Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	want := OIDCConfig{Timeout: 10 * time.Second, RedirectURIs: []string{"https://app.example.com/done", "http://localhost:3000/cb"},
		Providers: []OIDCProvider{
			{Name: "google", Issuer: "https://accounts.google.com", ClientID: "g-id", ClientSecret: "g-secret", Scopes: []string{"openid", "email", "profile"}},
			{Name: "corp-sso", Issuer: "https://sso.corp.example/realms/main", ClientID: "c-id", Scopes: []string{"openid", "email", "groups"}},
		}}
	if !reflect.DeepEqual(c.OIDC, want) {
		t.Fatalf("got %+v\nwant %+v", c.OIDC, want)
	}
}

// Each bad value stops the start with one line naming its variable, and
// never shows a client secret.
func TestLoad_BadOIDCNamesVariable(t *testing.T) {
	base := map[string]string{"OIDC_PROVIDERS": "acme", "OIDC_ACME_ISSUER": "https://id.example.com", "OIDC_ACME_CLIENT_ID": "x",
		"OIDC_ACME_CLIENT_SECRET": "very-secret-value", "OIDC_REDIRECT_URIS": "https://app.example.com/done"}
	cases := []struct{ name, value, variable string }{
		{"OIDC_PROVIDERS", "Acme", "OIDC_PROVIDERS"},
		{"OIDC_PROVIDERS", strings.Repeat("a", 33), "OIDC_PROVIDERS"},
		{"OIDC_PROVIDERS", "acme,acme", "OIDC_PROVIDERS"},
		{"OIDC_PROVIDERS", "a_b", "OIDC_PROVIDERS"},
		{"OIDC_ACME_ISSUER", "", "OIDC_ACME_ISSUER"},
		{"OIDC_ACME_ISSUER", "id.example.com", "OIDC_ACME_ISSUER"},
		{"OIDC_ACME_ISSUER", "https://id.example.com/?x=1", "OIDC_ACME_ISSUER"},
		{"OIDC_ACME_CLIENT_ID", "", "OIDC_ACME_CLIENT_ID"},
		{"OIDC_REDIRECT_URIS", "", "OIDC_REDIRECT_URIS"},
		{"OIDC_REDIRECT_URIS", "/done", "OIDC_REDIRECT_URIS"},
		{"OIDC_REDIRECT_URIS", "https://app.example.com/#x", "OIDC_REDIRECT_URIS"},
		{"OIDC_HTTP_TIMEOUT", "2h", "OIDC_HTTP_TIMEOUT"},
	}
	for _, c := range cases {
		env := map[string]string{}
		for k, v := range base {
			env[k] = v
		}
		env[c.name] = c.value
		_, err := Load(func(k string) string { return env[k] })
		if err == nil || !strings.Contains(err.Error(), c.variable) || strings.Contains(err.Error(), "very-secret-value") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s=%q: %v; want one line naming %s, without the secret", c.name, c.value, err, c.variable)
		}
	}
}
