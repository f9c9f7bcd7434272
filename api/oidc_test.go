package api_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"tollgate/db/dbtest"
	"tollgate/mail/mailtest"
)

// oidcRedirect is the application page flows end at: never fetched, the
// test browser stops at it.
const oidcRedirect = "http://app.test/done"

type oidcServer struct {
	*testServer
	p *testProvider
}

// newOIDCServer starts a server whose one provider, "acme", is a
// testProvider on loopback, and waits for its discovery.
func newOIDCServer(t *testing.T, dbURL string, env map[string]string) *oidcServer {
	t.Helper()
	var s *testServer
	p := newTestProvider(t, func() time.Time { return s.Clock.Now() })
	vars := map[string]string{"OIDC_PROVIDERS": "acme", "OIDC_ACME_ISSUER": p.srv.URL, "OIDC_ACME_CLIENT_ID": p.clientID,
		"OIDC_ACME_CLIENT_SECRET": p.secret, "OIDC_REDIRECT_URIS": oidcRedirect + ",http://app.test/other"}
	for k, v := range env {
		vars[k] = v
	}
	s = newTestServer(t, dbURL, vars)
	o := &oidcServer{testServer: s, p: p}
	// Discovery runs in the background from the start: wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		res := o.get(t, o.newBrowser(t), "/auth/oidc/acme/start?redirect_uri="+url.QueryEscape(oidcRedirect), false)
		if res.StatusCode == http.StatusFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the provider was not discovered within 10 s: %d", res.StatusCode)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return o
}

// browser is a cookie jar and a client that follows redirects, except to
// the application (app.test), where it stops.
type browser struct {
	c *http.Client
}

// publicOrigin is PUBLIC_URL of the tests' servers (the default for ADDR
// :8080): the browser reaches the test server under that name, so that the
// callback URL registered at the provider is the one it comes back to.
const publicOrigin = "http://localhost:8080"

// newBrowser is a browser whose connections to localhost:8080 go to s.
func (s *oidcServer) newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := strings.TrimPrefix(s.URL, "http://")
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		if a == "localhost:8080" {
			a = addr
		}
		return (&net.Dialer{}).DialContext(ctx, network, a)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &browser{c: &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == "app.test" {
			return http.ErrUseLastResponse
		}
		return nil
	}}}
}

// get fetches path of the server; follow false stops at the first answer.
func (s *oidcServer) get(t *testing.T, b *browser, path string, follow bool) *http.Response {
	t.Helper()
	c := *b.c
	if !follow {
		c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	res, err := c.Get(publicOrigin + path)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// signIn runs the whole redirect flow in b and returns where the browser
// was sent at its end.
func (s *oidcServer) signIn(t *testing.T, b *browser) *url.URL {
	t.Helper()
	res := s.get(t, b, "/auth/oidc/acme/start?redirect_uri="+url.QueryEscape(oidcRedirect), true)
	return landed(t, res)
}

func landed(t *testing.T, res *http.Response) *url.URL {
	t.Helper()
	if res.StatusCode != http.StatusFound {
		t.Fatalf("the flow ended with %d, not a redirect to the application", res.StatusCode)
	}
	u, err := url.Parse(res.Header.Get("Location"))
	if err != nil || u.Host != "app.test" {
		t.Fatalf("the flow ended at %q", res.Header.Get("Location"))
	}
	return u
}

// wantLanded asserts that the flow ended at the application with error
// code ("" for success).
func wantLanded(t *testing.T, u *url.URL, code string) {
	t.Helper()
	if got := u.Query().Get("error"); got != code {
		t.Fatalf("landed at %s: error %q, want %q", u, got, code)
	}
	if code == "" && u.String() != oidcRedirect {
		t.Fatalf("landed at %s, want exactly %s (no token in the URL)", u, oidcRedirect)
	}
}

// postAs sends a GraphQL operation from b (its cookies), with an optional
// bearer token.
func (s *oidcServer) postAs(t *testing.T, b *browser, token, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, publicOrigin+"/graphql", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := gqlResponse{Status: res.StatusCode, Header: res.Header, Raw: string(raw)}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return out
}

// refresh is the page's refreshToken without a token: the cookie's.
func (s *oidcServer) refresh(t *testing.T, b *browser) mfaPayload {
	t.Helper()
	var p mfaPayload
	s.postAs(t, b, "", `mutation { refreshToken { `+mfaPayloadFields+` } }`, nil).field(t, "refreshToken", &p)
	return p
}

// A first sign-in creates a user without a password, with the verified
// address the provider vouched for; the session is in the refresh cookie,
// AAL1, amr ["fed"], and its first refresh is fresh. A second sign-in opens
// a session for the same user. The user's password login fails as a wrong
// password does, and changePassword is refused.
func TestOIDC_SignInCreatesThenSignsIn(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b), "")
		first := s.refresh(t, b)
		wantClaims(t, first.AccessToken, "aal1", []string{"fed"}, false, true)
		if first.RefreshToken != nil {
			t.Fatal("the refresh token reached the payload: it belongs in the cookie")
		}
		if first.User.Username != "Fed.User" {
			t.Errorf("username %q, want the email's local part", first.User.Username)
		}
		var me struct {
			Email         string `json:"email"`
			EmailVerified bool   `json:"emailVerified"`
		}
		s.post(t, first.AccessToken, `{ me { email emailVerified } }`, nil).field(t, "me", &me)
		if me.Email != "Fed.User@Example.com" || !me.EmailVerified {
			t.Errorf("me: %+v; want the provider's verified address", me)
		}
		// Later refreshes are not fresh.
		wantClaims(t, s.refresh(t, b).AccessToken, "aal1", []string{"fed"}, false, false)

		b2 := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b2), "")
		second := s.refresh(t, b2)
		if second.User.ID != first.User.ID {
			t.Fatalf("the second sign-in is user %s, the first %s", second.User.ID, first.User.ID)
		}
		if n := s.count(t, `SELECT count(*) FROM users`); n != 1 {
			t.Fatalf("%d users after two sign-ins of one identity", n)
		}
		var ids []struct {
			Provider, Subject string
			LastUsedAt        *string
		}
		s.post(t, second.AccessToken, `{ identities { provider subject lastUsedAt } }`, nil).field(t, "identities", &ids)
		if len(ids) != 1 || ids[0].Provider != "acme" || ids[0].Subject != "sub-1" || ids[0].LastUsedAt == nil {
			t.Fatalf("identities: %+v", ids)
		}

		// No password: a password login fails like a wrong one, after the
		// same hash.
		runs := s.App.Hasher.Runs()
		s.login(t, "", "Fed.User", "").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		s.login(t, "", "Fed.User", "any password at all").wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")
		if got := s.App.Hasher.Runs() - runs; got != 2 {
			t.Fatalf("%d hashes for two logins of a user without a password; want 2 (the timing of a wrong password)", got)
		}
		s.post(t, first.AccessToken, `mutation { changePassword(currentPassword: "", newPassword: "a new password") }`, nil).
			wantError(t, "UNAUTHENTICATED", "INVALID_CREDENTIALS")

		var providers []string
		s.post(t, "", `{ oidcProviders }`, nil).field(t, "oidcProviders", &providers)
		if len(providers) != 1 || providers[0] != "acme" {
			t.Fatalf("oidcProviders: %v", providers)
		}
	})
}

// An address the provider does not call verified (absent, false, or the
// string "true") is stored unverified.
func TestOIDC_EmailVerifiedOnlyWhenTheProviderSaysSo(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		for i, v := range []any{nil, false, "true"} {
			s.p.set(func(p *testProvider) {
				p.sub, p.email, p.emailVerified = "sub-v"+string(rune('0'+i)), "v"+string(rune('0'+i))+"@example.com", v
			})
			b := s.newBrowser(t)
			wantLanded(t, s.signIn(t, b), "")
			var me struct {
				EmailVerified bool `json:"emailVerified"`
			}
			s.post(t, s.refresh(t, b).AccessToken, `{ me { emailVerified } }`, nil).field(t, "me", &me)
			if me.EmailVerified {
				t.Errorf("email_verified %v made the address verified", v)
			}
		}
	})
}

// An unknown identity whose email matches an existing account is never
// attached to it: a new user is created, without that address.
func TestOIDC_NeverAttachesByEmail(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		var victim authPayload
		s.post(t, "", `mutation { register(username: "victim", password: "correct horse", email: "fed.user@example.com") { `+payloadFields+` } }`, nil).
			field(t, "register", &victim)
		b := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b), "")
		got := s.refresh(t, b)
		if got.User.ID == victim.User.ID {
			t.Fatal("an identity was attached to an existing user because its email matched")
		}
		if n := s.count(t, `SELECT count(*) FROM oidc_identities WHERE user_id = ?`, victim.User.ID); n != 0 {
			t.Fatalf("the victim has %d identities", n)
		}
		if n := s.count(t, `SELECT count(*) FROM users WHERE id = ? AND email IS NULL`, got.User.ID); n != 1 {
			t.Fatal("the new user holds the victim's address")
		}
	})
}

// Under SIGNUP=closed an unknown identity is refused and nothing is created.
func TestOIDC_SignupClosed(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, map[string]string{"SIGNUP": "closed"})
		wantLanded(t, s.signIn(t, s.newBrowser(t)), "access_denied")
		if n := s.count(t, `SELECT count(*) FROM users`); n != 0 {
			t.Fatalf("%d users created with sign-up closed", n)
		}
	})
}

// A password user links an identity from a fresh session; it then signs
// that user in. The same identity cannot be linked to anyone else, a stale
// session cannot start a link, unlinking another user's identity is
// NOT_FOUND, and the last way to sign in cannot be unlinked.
func TestOIDC_LinkAndUnlink(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		alice := s.register(t, "alice", "correct horse")
		b := s.newBrowser(t)
		var link string
		s.postAs(t, b, alice.AccessToken, `mutation($p: String!, $r: String!) { linkIdentityStart(provider: $p, redirectUri: $r) }`,
			map[string]any{"p": "acme", "r": oidcRedirect}).field(t, "linkIdentityStart", &link)
		s.p.set(func(p *testProvider) { p.sub = "alice-at-acme" })
		res, err := b.c.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		wantLanded(t, landed(t, res), "")
		if n := s.count(t, `SELECT count(*) FROM oidc_identities WHERE user_id = ? AND subject = 'alice-at-acme'`, alice.User.ID); n != 1 {
			t.Fatal("the identity was not linked")
		}
		// It now signs alice in.
		b2 := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b2), "")
		if got := s.refresh(t, b2); got.User.ID != alice.User.ID {
			t.Fatalf("the linked identity signed in %s, not alice", got.User.Username)
		}

		// Bob cannot take it over with a link of his own.
		bob := s.register(t, "bob", "correct horse")
		b3 := s.newBrowser(t)
		s.postAs(t, b3, bob.AccessToken, `mutation { linkIdentityStart(provider: "acme", redirectUri: "`+oidcRedirect+`") }`, nil).
			field(t, "linkIdentityStart", &link)
		res, err = b3.c.Get(link)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		wantLanded(t, landed(t, res), "access_denied")

		// Bad arguments, and a stale session.
		s.post(t, bob.AccessToken, `mutation { linkIdentityStart(provider: "nope", redirectUri: "`+oidcRedirect+`") }`, nil).
			wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
		s.post(t, bob.AccessToken, `mutation { linkIdentityStart(provider: "acme", redirectUri: "https://evil.example/") }`, nil).
			wantError(t, "BAD_USER_INPUT", "INVALID_INPUT")
		var stale authPayload
		s.post(t, "", `mutation($t: String!) { refreshToken(token: $t) { `+payloadFields+` } }`, map[string]any{"t": *bob.RefreshToken}).
			field(t, "refreshToken", &stale)
		s.post(t, stale.AccessToken, `mutation { linkIdentityStart(provider: "acme", redirectUri: "`+oidcRedirect+`") }`, nil).
			wantError(t, "FORBIDDEN", "FRESH_TOKEN_REQUIRED")

		var ids []struct{ ID string }
		s.post(t, alice.AccessToken, `{ identities { id } }`, nil).field(t, "identities", &ids)
		if len(ids) != 1 {
			t.Fatalf("alice's identities: %+v", ids)
		}
		s.post(t, bob.AccessToken, `mutation($id: ID!) { unlinkIdentity(id: $id) }`, map[string]any{"id": ids[0].ID}).
			wantError(t, "NOT_FOUND", "")
		// Alice has a password: the identity may go.
		var ok bool
		s.post(t, alice.AccessToken, `mutation($id: ID!) { unlinkIdentity(id: $id) }`, map[string]any{"id": ids[0].ID}).field(t, "unlinkIdentity", &ok)

		// A user created by the provider has nothing else: refused.
		s.p.set(func(p *testProvider) { p.sub, p.email = "only-way", "only@example.com" })
		b4 := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b4), "")
		fed := s.refresh(t, b4)
		s.post(t, fed.AccessToken, `{ identities { id } }`, nil).field(t, "identities", &ids)
		s.post(t, fed.AccessToken, `mutation($id: ID!) { unlinkIdentity(id: $id) }`, map[string]any{"id": ids[0].ID}).
			wantError(t, "BAD_USER_INPUT", "LAST_SIGN_IN_METHOD")
	})
}

// A user with a verified second factor who signs in at the provider still
// has to pass it.
func TestOIDC_MFAStillRequired(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b), "")
		p := s.refresh(t, b)
		// The first refresh was fresh: enrol a factor with it.
		e := s.enroll(t, p.AccessToken)
		s.mustVerifyTotp(t, p.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now().Add(-30*time.Second)))
		b2 := s.newBrowser(t)
		wantLanded(t, s.signIn(t, b2), "")
		again := s.refresh(t, b2)
		if again.AAL != "AAL1" || !again.MFARequired {
			t.Fatalf("a provider sign-in of a user with a factor: aal %s, mfaRequired %v", again.AAL, again.MFARequired)
		}
		s.post(t, again.AccessToken, `{ sessions { id } }`, nil).wantError(t, "FORBIDDEN", "MFA_REQUIRED")
		up := s.mustVerifyTotp(t, again.AccessToken, e.Factor.ID, code(t, e.Secret, s.Clock.Now()))
		wantClaims(t, up.AccessToken, "aal2", []string{"otp", "fed"}, true, true)
	})
}

// The start route: an unknown provider is 404, a redirect_uri not listed
// (or listed only by prefix) is 400 with no Location, and a provider whose
// discovery has not succeeded answers 503.
func TestOIDC_StartRefusals(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		if res := s.get(t, b, "/auth/oidc/nope/start?redirect_uri="+url.QueryEscape(oidcRedirect), false); res.StatusCode != http.StatusNotFound {
			t.Errorf("unknown provider: %d, want 404", res.StatusCode)
		}
		for _, r := range []string{"", "https://evil.example/", oidcRedirect + "/../x", oidcRedirect + "?x=1", "HTTP://app.test/done", oidcRedirect + "x"} {
			res := s.get(t, b, "/auth/oidc/acme/start?redirect_uri="+url.QueryEscape(r), false)
			if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
				t.Errorf("redirect_uri %q: %d, Location %q; want 400 and no redirect", r, res.StatusCode, res.Header.Get("Location"))
			}
		}
		if n := s.count(t, `SELECT count(*) FROM oidc_flows`); n != 1 { // newOIDCServer's own
			t.Errorf("%d flows stored; the refused starts wrote some", n)
		}
	})
}

// A provider that is down at start does not stop the server; its start
// answers 503, and the rest of the server works.
func TestOIDC_ProviderDownAtStart(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newTestServer(t, dbURL, map[string]string{"OIDC_PROVIDERS": "down", "OIDC_DOWN_ISSUER": "http://127.0.0.1:1",
			"OIDC_DOWN_CLIENT_ID": "x", "OIDC_REDIRECT_URIS": oidcRedirect})
		o := &oidcServer{testServer: s}
		res := o.get(t, o.newBrowser(t), "/auth/oidc/down/start?redirect_uri="+url.QueryEscape(oidcRedirect), false)
		if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
			t.Fatalf("start of a provider that is down: %d, want 503 with Retry-After", res.StatusCode)
		}
		s.register(t, "alice", "correct horse")
		if r := o.get(t, o.newBrowser(t), "/readyz", false); r.StatusCode != http.StatusOK {
			t.Fatalf("/readyz: %d", r.StatusCode)
		}
	})
}

// startFlow runs start in b and returns the provider's authorization URL.
func (s *oidcServer) startFlow(t *testing.T, b *browser) *url.URL {
	t.Helper()
	res := s.get(t, b, "/auth/oidc/acme/start?redirect_uri="+url.QueryEscape(oidcRedirect), false)
	if res.StatusCode != http.StatusFound {
		t.Fatalf("start: %d", res.StatusCode)
	}
	u, _ := url.Parse(res.Header.Get("Location"))
	return u
}

// consent has the provider consent to the flow at auth and returns the
// callback URL it sends the browser to.
func (s *oidcServer) consent(t *testing.T, auth *url.URL) string {
	t.Helper()
	res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Get(auth.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.Header.Get("Location")
}

// callback sends the browser b to the callback URL cb and returns where it ends.
func (s *oidcServer) callback(t *testing.T, b *browser, cb string) *http.Response {
	t.Helper()
	c := *b.c
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := c.Get(cb)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res
}

// The state: missing or unknown is 400 without a redirect; replayed is
// unknown; expired, or presented without the cookie of the browser that
// began it, sends the browser back with invalid_state. No session is opened.
func TestOIDC_StateRefusals(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		for _, q := range []string{"", "?code=x", "?state=unknown&code=x"} {
			if res := s.get(t, b, "/auth/oidc/acme/callback"+q, false); res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
				t.Errorf("callback%s: %d, want 400 without a redirect", q, res.StatusCode)
			}
		}
		if res := s.get(t, b, "/auth/oidc/nope/callback?state=x&code=y", false); res.StatusCode != http.StatusBadRequest {
			t.Errorf("callback of an unknown provider: %d, want 400", res.StatusCode)
		}

		// Replayed: the first use succeeds, the second finds nothing.
		cb := s.consent(t, s.startFlow(t, b))
		wantLanded(t, landed(t, s.callback(t, b, cb)), "")
		if res := s.callback(t, b, cb); res.StatusCode != http.StatusBadRequest {
			t.Errorf("a replayed callback: %d, want 400", res.StatusCode)
		}

		// Another browser: no state cookie.
		cb = s.consent(t, s.startFlow(t, b))
		wantLanded(t, landed(t, s.callback(t, s.newBrowser(t), cb)), "invalid_state")
		// And the flow is spent: not even its own browser may finish it now.
		if res := s.callback(t, b, cb); res.StatusCode != http.StatusBadRequest {
			t.Errorf("a flow refused once, tried again: %d, want 400", res.StatusCode)
		}

		// Expired.
		cb = s.consent(t, s.startFlow(t, b))
		s.Clock.Advance(10*time.Minute + time.Second)
		wantLanded(t, landed(t, s.callback(t, b, cb)), "invalid_state")

		if n := s.count(t, `SELECT count(*) FROM sessions`); n != 1 {
			t.Fatalf("%d sessions; only the first callback may open one", n)
		}
	})
}

// The provider answering an error sends the browser back with access_denied.
func TestOIDC_ProviderError(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		s.p.set(func(p *testProvider) { p.deny = true })
		wantLanded(t, s.signIn(t, s.newBrowser(t)), "access_denied")
		if n := s.count(t, `SELECT count(*) FROM users`); n != 0 {
			t.Fatalf("%d users after a refusal", n)
		}
	})
}

// Every bad ID token is refused with invalid_token and opens no session:
// a wrong nonce, aud or iss, expired, signed by another key, alg none, and
// a sub that is too long or holds NUL.
func TestOIDC_BadIDTokens(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name   string
			mutate func(c map[string]any)
			sign   func(payload []byte) string
		}{
			{name: "wrong nonce", mutate: func(c map[string]any) { c["nonce"] = "not-the-nonce" }},
			{name: "no nonce", mutate: func(c map[string]any) { delete(c, "nonce") }},
			{name: "wrong aud", mutate: func(c map[string]any) { c["aud"] = "another-client" }},
			{name: "wrong iss", mutate: func(c map[string]any) { c["iss"] = "https://evil.example" }},
			{name: "expired", mutate: func(c map[string]any) {
				c["exp"] = s.Clock.Now().Add(-time.Minute).Unix()
				c["iat"] = s.Clock.Now().Add(-time.Hour).Unix()
			}},
			{name: "issued in the future", mutate: func(c map[string]any) {
				c["iat"] = s.Clock.Now().Add(time.Hour).Unix()
				c["exp"] = s.Clock.Now().Add(2 * time.Hour).Unix()
			}},
			{name: "sub too long", mutate: func(c map[string]any) { c["sub"] = strings.Repeat("a", 256) }},
			{name: "sub with NUL", mutate: func(c map[string]any) { c["sub"] = "a\x00b" }},
			{name: "empty sub", mutate: func(c map[string]any) { c["sub"] = "" }},
			{name: "another key", sign: func(payload []byte) string { return signRS256(t, other, "k1", payload) }},
			{name: "another key, unknown kid", sign: func(payload []byte) string { return signRS256(t, other, "k2", payload) }},
			{name: "alg none", sign: func(payload []byte) string {
				return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
			}},
			{name: "not a JWT", sign: func([]byte) string { return "garbage" }},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				s.p.set(func(p *testProvider) { p.mutate, p.sign = c.mutate, c.sign })
				wantLanded(t, s.signIn(t, s.newBrowser(t)), "invalid_token")
			})
		}
		if n := s.count(t, `SELECT count(*) FROM sessions`); n != 0 {
			t.Fatalf("%d sessions opened by bad ID tokens", n)
		}
		// The control: the same provider, unspoilt, signs in.
		s.p.set(func(p *testProvider) { p.mutate, p.sign = nil, nil })
		wantLanded(t, s.signIn(t, s.newBrowser(t)), "")
		// Logged without the token, nor the client secret.
		if strings.Contains(s.Log.String(), s.p.secret) || !strings.Contains(s.Log.String(), "nonce_mismatch") {
			t.Fatalf("the log names the secret, or not the check that failed")
		}
	})
}

// The token endpoint failing, or hanging, ends the callback cleanly with
// server_error, within OIDC_HTTP_TIMEOUT.
func TestOIDC_TokenEndpointDownOrSlow(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, map[string]string{"OIDC_HTTP_TIMEOUT": "500ms"})
		s.p.set(func(p *testProvider) { p.tokenStatus = http.StatusServiceUnavailable })
		wantLanded(t, s.signIn(t, s.newBrowser(t)), "server_error")

		s.p.set(func(p *testProvider) { p.tokenStatus, p.hang = 0, true })
		began := time.Now()
		wantLanded(t, s.signIn(t, s.newBrowser(t)), "server_error")
		took := time.Since(began)
		if took > 5*time.Second {
			t.Fatalf("a hanging token endpoint held the callback %v; the bound is OIDC_HTTP_TIMEOUT (500ms)", took)
		}
		t.Logf("the whole flow, the token endpoint hanging: %v", took)
		if n := s.count(t, `SELECT count(*) FROM sessions`); n != 0 {
			t.Fatalf("%d sessions", n)
		}
	})
}

// Two callbacks of one state at once open one session at most.
func TestOIDC_ConcurrentCallbacksOpenOneSession(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		cb := s.consent(t, s.startFlow(t, b))
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for range 4 {
			wg.Go(func() {
				res := s.callback(t, b, cb)
				if res.StatusCode == http.StatusFound && strings.HasPrefix(res.Header.Get("Location"), oidcRedirect) && !strings.Contains(res.Header.Get("Location"), "error") {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != 1 {
			t.Fatalf("%d callbacks of one state succeeded; want 1", ok)
		}
		if n := s.count(t, `SELECT count(*) FROM sessions`); n != 1 {
			t.Fatalf("%d sessions from one state", n)
		}
		s.p.set(func(p *testProvider) {
			if p.tokenCalls != 1 {
				t.Errorf("the code was exchanged %d times", p.tokenCalls)
			}
		})
	})
}

// The state cookie is HttpOnly and SameSite=Lax (the callback is a
// cross-site navigation), the refresh cookie the contract's.
func TestOIDC_Cookies(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		s := newOIDCServer(t, dbURL, nil)
		b := s.newBrowser(t)
		res := s.get(t, b, "/auth/oidc/acme/start?redirect_uri="+url.QueryEscape(oidcRedirect), false)
		sc := res.Header.Get("Set-Cookie")
		if !strings.Contains(sc, "tollgate_oidc_state=") || !strings.Contains(sc, "HttpOnly") || !strings.Contains(sc, "SameSite=Lax") {
			t.Fatalf("state cookie: %q", sc)
		}
		if res.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("start: Cache-Control %q", res.Header.Get("Cache-Control"))
		}
		auth, _ := url.Parse(res.Header.Get("Location"))
		q := auth.Query()
		if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("state") == "" ||
			q.Get("redirect_uri") != publicOrigin+"/auth/oidc/acme/callback" || !strings.Contains(q.Get("scope"), "openid") {
			t.Fatalf("authorization request: %v", q)
		}
		cb := s.consent(t, auth)
		res = s.callback(t, b, cb)
		var refresh string
		for _, c := range res.Header.Values("Set-Cookie") {
			if strings.HasPrefix(c, "tollgate_refresh=") {
				refresh = c
			}
		}
		if !strings.Contains(refresh, "HttpOnly") || !strings.Contains(refresh, "SameSite=Strict") {
			t.Fatalf("refresh cookie: %q", refresh)
		}
		if strings.Contains(res.Header.Get("Location"), "token") {
			t.Fatalf("a token in the redirect: %s", res.Header.Get("Location"))
		}
	})
}

// tollgate oidc check prints each provider's endpoints and the callback to
// register, never the secret, and exits 1 when one provider fails.
func TestOIDCCheckCommand(t *testing.T) {
	p := newTestProvider(t, time.Now)
	vars := map[string]string{"OIDC_PROVIDERS": "acme", "OIDC_ACME_ISSUER": p.srv.URL, "OIDC_ACME_CLIENT_ID": p.clientID,
		"OIDC_ACME_CLIENT_SECRET": p.secret, "OIDC_REDIRECT_URIS": oidcRedirect, "PUBLIC_URL": "https://auth.example.com"}
	out := command{vars: vars}.ok(t, "oidc", "check")
	for _, want := range []string{"acme: ok", p.srv.URL + "/token", p.srv.URL + "/jwks", "RS256", "https://auth.example.com/auth/oidc/acme/callback"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	vars["OIDC_PROVIDERS"] = "acme,down"
	vars["OIDC_DOWN_ISSUER"], vars["OIDC_DOWN_CLIENT_ID"] = "http://127.0.0.1:1", "x"
	out, code, err := command{vars: vars}.run(t, "oidc", "check")
	if code != 1 || err == nil || !strings.Contains(out, "down: FAILED") || !strings.Contains(out, "acme: ok") {
		t.Fatalf("one provider down: exit %d, %v\n%s", code, err, out)
	}
	if strings.Contains(out, p.secret) {
		t.Fatal("the client secret was printed")
	}
}

// A user created at a provider with a verified address sets a first
// password through the reset mail, and then signs in with it too. Each
// callback is counted by provider and outcome.
func TestOIDC_PasswordlessUserSetsAPasswordByReset(t *testing.T) {
	dbtest.ForEach(t, func(t *testing.T, dbURL string) {
		smtp := mailtest.NewServer(t)
		host, port := smtp.Host()
		o := newOIDCServer(t, dbURL, map[string]string{"SMTP_URL": fmt.Sprintf("smtp://%s:%d", host, port)})
		es := &emailServer{testServer: o.testServer, smtp: smtp}
		b := o.newBrowser(t)
		wantLanded(t, o.signIn(t, b), "")
		var ok bool
		o.post(t, "", `mutation { requestPasswordReset(email: "fed.user@example.com") }`, nil).field(t, "requestPasswordReset", &ok)
		es.delivered(t)
		token := es.lastToken(t, "password_reset", "Fed.User@Example.com")
		var p authPayload
		o.post(t, "", `mutation($t: String!) { resetPassword(token: $t, newPassword: "a first password") { `+payloadFields+` } }`,
			map[string]any{"t": token}).field(t, "resetPassword", &p)
		var in authPayload
		o.login(t, "", "Fed.User", "a first password").field(t, "login", &in)
		if in.User.ID != p.User.ID {
			t.Fatal("the password set by reset signs in another user")
		}

		wantLanded(t, o.signIn(t, o.newBrowser(t)), "")
		metrics := o.get(t, b, "/metrics", false)
		res, err := http.Get(o.URL + "/metrics")
		if err != nil || metrics.StatusCode != http.StatusOK {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range []string{`tollgate_oidc_signins_total{outcome="created",provider="acme"} 1`, `tollgate_oidc_signins_total{outcome="signed_in",provider="acme"} 1`} {
			if !strings.Contains(string(text), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}
