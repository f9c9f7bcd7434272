package config

import (
	"net/url"
	"regexp"
	"strings"
	"time"
)

// OIDCProvider is one OpenID Connect provider (OIDC_<NAME>_…).
type OIDCProvider struct {
	// Name is the provider's name in OIDC_PROVIDERS, in the routes
	// (/auth/oidc/<name>/…) and in oidcProviders.
	Name     string
	Issuer   string
	ClientID string
	// ClientSecret is never logged nor shown in an error.
	ClientSecret string
	// Scopes default to openid email profile; openid is always asked for.
	Scopes []string
}

// OIDCConfig is the configuration of sign-in with OpenID Connect providers
// (API.md, "Sign-in with an OpenID Connect provider").
type OIDCConfig struct {
	Providers []OIDCProvider
	// RedirectURIs (OIDC_REDIRECT_URIS) are the exact redirect_uri values a
	// sign-in may end at.
	RedirectURIs []string
	// Timeout (OIDC_HTTP_TIMEOUT) bounds each request to a provider:
	// discovery, keys, the code exchange.
	Timeout time.Duration
}

var providerName = regexp.MustCompile(`^[a-z0-9-]{1,32}$`)

// envName is the part of the variables' names for provider name:
// uppercase, '-' as '_'.
func envName(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// oidc reads OIDC_PROVIDERS, each provider's rows and OIDC_REDIRECT_URIS.
func (p *parser) oidc() OIDCConfig {
	c := OIDCConfig{Timeout: p.duration("OIDC_HTTP_TIMEOUT", 10*time.Second, 100*time.Millisecond, time.Minute)}
	seen := map[string]bool{}
	for _, name := range strings.Split(p.getenv("OIDC_PROVIDERS"), ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !providerName.MatchString(name) {
			p.fail("OIDC_PROVIDERS", "must list provider names of 1 to 32 characters a-z, 0-9 and '-', not %q", name)
			return OIDCConfig{}
		}
		key := envName(name)
		if seen[key] {
			p.fail("OIDC_PROVIDERS", "names %q twice", name)
			return OIDCConfig{}
		}
		seen[key] = true
		prefix := "OIDC_" + key + "_"
		pr := OIDCProvider{Name: name, Issuer: p.getenv(prefix + "ISSUER"), ClientID: p.getenv(prefix + "CLIENT_ID"),
			ClientSecret: p.getenv(prefix + "CLIENT_SECRET"), Scopes: []string{"openid", "email", "profile"}}
		u, err := url.Parse(pr.Issuer)
		if pr.Issuer == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			p.fail(prefix+"ISSUER", "must be the provider's issuer URL such as https://accounts.google.com, not %q", pr.Issuer)
			return OIDCConfig{}
		}
		if pr.ClientID == "" {
			p.fail(prefix+"CLIENT_ID", "must be set: the client id the provider gave Tollgate")
			return OIDCConfig{}
		}
		if v := p.getenv(prefix + "SCOPES"); v != "" {
			pr.Scopes = []string{"openid"}
			for _, s := range strings.Fields(strings.ReplaceAll(v, ",", " ")) {
				if s != "openid" {
					pr.Scopes = append(pr.Scopes, s)
				}
			}
		}
		c.Providers = append(c.Providers, pr)
	}
	for _, v := range strings.Split(p.getenv("OIDC_REDIRECT_URIS"), ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" || u.User != nil {
			p.fail("OIDC_REDIRECT_URIS", "must list absolute http(s) URLs without fragment, not %q", v)
			return OIDCConfig{}
		}
		c.RedirectURIs = append(c.RedirectURIs, v)
	}
	if len(c.Providers) > 0 && len(c.RedirectURIs) == 0 {
		p.fail("OIDC_REDIRECT_URIS", "must list at least one redirect_uri when OIDC_PROVIDERS is set")
		return OIDCConfig{}
	}
	return c
}
