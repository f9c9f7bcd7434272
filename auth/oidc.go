package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"tollgate/db"
)

// OIDCProvider is an OpenID Connect provider users may sign in with.
type OIDCProvider struct {
	// Name is the provider's name in the routes and in oidcProviders.
	Name     string
	Issuer   string
	ClientID string
	// ClientSecret is sent to the token endpoint only; never logged.
	ClientSecret string
	Scopes       []string
}

// FederationConfig configures sign-in with OpenID Connect providers.
type FederationConfig struct {
	Providers []OIDCProvider
	// RedirectURIs are the exact redirect_uri values a flow may end at
	// (OIDC_REDIRECT_URIS).
	RedirectURIs []string
	// PublicURL is the server's origin: the callback registered at a
	// provider is PublicURL + /auth/oidc/<name>/callback.
	PublicURL string
	// HTTPClient makes every request to the providers (discovery, keys,
	// token exchange); nil means NewProviderClient(Timeout).
	HTTPClient *http.Client
	// Timeout bounds each request to a provider (zero: 10 s).
	Timeout time.Duration
	// Retry is the first wait before discovery of an unreachable provider
	// is tried again (doubled up to 5 minutes); zero means 5 seconds.
	Retry time.Duration
	// Events counts sign-ins by provider and outcome; nil counts nothing.
	Events FederationEvents
}

// FederationEvents is told how each callback ended. provider is one of the
// configured names and outcome one of the Federation outcomes: both bounded.
type FederationEvents interface {
	FederatedSignIn(provider, outcome string)
}

// The outcomes FederationEvents reports: a session for a known identity, a
// session for a user created, an identity linked, or a refusal by its error code.
const (
	FedSignedIn = "signed_in"
	FedCreated  = "created"
	FedLinked   = "linked"
	// FedRateLimited: the address made too many callbacks.
	FedRateLimited = "rate_limited"
)

// The rules of a flow (API.md, "Sign-in with an OpenID Connect provider").
const (
	// FlowTTL is how long a flow begun may come back.
	FlowTTL = 10 * time.Minute
	// FreshAfterFederation is how long after a callback the first refresh of
	// its session still counts as a fresh sign-in.
	FreshAfterFederation = 5 * time.Minute
	// maxSubjectBytes bounds a provider's sub (OpenID Connect Core says 255
	// ASCII characters at most).
	maxSubjectBytes = 255
	// providerTimeout bounds each request to a provider; providerBodyBytes
	// the answer it may send. A discovery document, a key set or a token
	// response are a few kilobytes.
	providerTimeout   = 10 * time.Second
	providerBodyBytes = 1 << 20
)

// The error codes a refused callback sends the browser back with.
const (
	FedAccessDenied = "access_denied"
	FedInvalidState = "invalid_state"
	FedInvalidToken = "invalid_token"
	FedServerError  = "server_error"
)

// The errors of starting a flow.
var (
	ErrUnknownProvider = invalidInput(ReasonInvalidInput, "provider", "No such sign-in provider.")
	// ErrRedirectURINotAllowed refuses a redirect_uri not listed in
	// OIDC_REDIRECT_URIS: never an open redirect.
	ErrRedirectURINotAllowed = invalidInput(ReasonInvalidInput, "redirectUri", "This redirect URI is not allowed.")
	// ErrProviderUnavailable: the provider's discovery has not succeeded yet.
	ErrProviderUnavailable = &Error{Code: CodeRateLimited, Reason: ReasonServerBusy, RetryAfter: 5,
		Message: "The sign-in provider cannot be reached right now: try again in a moment."}
	// ErrLastSignInMethod refuses to unlink a user's last way to sign in.
	ErrLastSignInMethod = invalidInput(ReasonLastSignInMethod, "id",
		"This is your last way to sign in: set a password, add a passkey or link another account first.")
)

// fedLog is the one message of every refused callback; "check" says which
// check refused it. The browser learns only the error code.
const fedLog = "federated sign-in refused"

// NewProviderClient is an http.Client for the providers: timeout on each
// request (zero: 10 s) and a bound on each answer's size, so that a slow or
// hostile provider costs a bounded time and memory.
func NewProviderClient(timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = providerTimeout
	}
	return &http.Client{Timeout: timeout, Transport: limitedTransport{http.DefaultTransport}}
}

// limitedTransport cuts every response body at providerBodyBytes: a longer
// one reads as an error.
type limitedTransport struct{ next http.RoundTripper }

func (t limitedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{r: resp.Body, left: providerBodyBytes}
	return resp, nil
}

type limitedBody struct {
	r    io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errors.New("provider response too large")
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.r.Close() }

// provider is one configured provider and, once discovered, its client.
type provider struct {
	cfg OIDCProvider
	mu  sync.RWMutex
	// verifier and oauth are nil until discovery succeeded.
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
}

func (p *provider) ready() (*oidc.IDTokenVerifier, *oauth2.Config) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.verifier, p.oauth
}

// Federation signs users in with OpenID Connect providers: it knows the
// providers (discovery, keys, the code exchange, all through go-oidc and
// x/oauth2) and the account rules (never attach by email, link only from a
// fresh session, create users only when sign-up is open). Create it with
// NewFederation and start its discovery with Run.
type Federation struct {
	svc       *Service
	cfg       FederationConfig
	client    *http.Client
	providers map[string]*provider
	names     []string
	events    FederationEvents
}

// NewFederation returns the Federation of cfg over svc. Nothing is fetched
// until Run.
func NewFederation(svc *Service, cfg FederationConfig) *Federation {
	f := &Federation{svc: svc, cfg: cfg, client: cfg.HTTPClient, providers: map[string]*provider{}, events: cfg.Events}
	if f.client == nil {
		f.client = NewProviderClient(cfg.Timeout)
	}
	if f.cfg.Retry <= 0 {
		f.cfg.Retry = 5 * time.Second
	}
	for _, p := range cfg.Providers {
		f.providers[p.Name] = &provider{cfg: p}
		f.names = append(f.names, p.Name)
	}
	return f
}

// Providers lists the configured provider names, in configuration order.
func (f *Federation) Providers() []string { return slices.Clone(f.names) }

// CallbackURL is the redirect URL to register at provider name.
func (f *Federation) CallbackURL(name string) string {
	return f.cfg.PublicURL + "/auth/oidc/" + name + "/callback"
}

// Run discovers every provider, retrying those that fail in the background
// with a growing wait, until each succeeded or ctx is done. A provider that
// is down never stops the server: its flows answer ErrProviderUnavailable
// until it is back. go-oidc refreshes the keys afterwards by itself, when a
// token names a key it does not hold.
func (f *Federation) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, name := range f.names {
		p := f.providers[name]
		wg.Go(func() {
			wait := f.cfg.Retry
			for {
				err := f.discover(ctx, p)
				if err == nil {
					return
				}
				f.svc.logger.Warn("oidc discovery failed: retrying", "provider", p.cfg.Name, "retry_in", wait.String(), "error", err.Error())
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				wait = min(2*wait, 5*time.Minute)
			}
		})
	}
	wg.Wait()
}

// discover fetches p's discovery document and builds its clients. The
// context given to go-oidc carries our client and lives as long as ctx: the
// key set it builds fetches keys with it later.
func (f *Federation) discover(ctx context.Context, p *provider) error {
	op, err := oidc.NewProvider(oidc.ClientContext(ctx, f.client), p.cfg.Issuer)
	if err != nil {
		return fmt.Errorf("discover %s: %w", p.cfg.Name, err)
	}
	// The verifier checks the signature (with the algorithms the provider
	// announces; never "none"), iss, aud = our client id, and exp, against
	// the Service's clock. nonce is ours to compare (callback).
	v := op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: f.svc.clock})
	oc := &oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: op.Endpoint(),
		RedirectURL: f.CallbackURL(p.cfg.Name), Scopes: p.cfg.Scopes}
	p.mu.Lock()
	p.verifier, p.oauth = v, oc
	p.mu.Unlock()
	f.svc.logger.Info("oidc provider discovered", "provider", p.cfg.Name, "issuer", p.cfg.Issuer)
	return nil
}

// ProviderCheck is what Check found of one provider.
type ProviderCheck struct {
	Name, Issuer        string
	AuthURL, TokenURL   string
	JWKSURL             string
	SigningAlgs, Scopes []string
	Err                 error
}

// CheckProviders fetches every provider's discovery document once, now,
// through client (nil: NewProviderClient(0)), and reports what it found
// (tollgate oidc check).
func CheckProviders(ctx context.Context, client *http.Client, providers []OIDCProvider) []ProviderCheck {
	if client == nil {
		client = NewProviderClient(0)
	}
	var out []ProviderCheck
	for _, p := range providers {
		c := ProviderCheck{Name: p.Name, Issuer: p.Issuer}
		op, err := oidc.NewProvider(oidc.ClientContext(ctx, client), p.Issuer)
		if err != nil {
			c.Err = err
		} else {
			var claims struct {
				JWKS   string   `json:"jwks_uri"`
				Algs   []string `json:"id_token_signing_alg_values_supported"`
				Scopes []string `json:"scopes_supported"`
			}
			c.Err = op.Claims(&claims)
			c.AuthURL, c.TokenURL, c.JWKSURL, c.SigningAlgs, c.Scopes = op.Endpoint().AuthURL, op.Endpoint().TokenURL, claims.JWKS, claims.Algs, claims.Scopes
		}
		out = append(out, c)
	}
	return out
}

// Begun is a flow begun: the URL to send the browser to, and the state to
// bind to the browser in the state cookie.
type Begun struct {
	URL   string
	State string
}

// Start begins a sign-in at provider name that ends at redirectURI.
func (f *Federation) Start(ctx context.Context, name, redirectURI string) (*Begun, error) {
	return f.begin(ctx, name, redirectURI, nil)
}

// LinkStart begins the linking of an identity at provider name to the
// caller, from the caller's session (the directive demands a fresh one): the
// identity the provider returns is linked to this user only if this session
// is still live at the callback.
func (f *Federation) LinkStart(ctx context.Context, name, redirectURI string) (*Begun, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	return f.begin(ctx, name, redirectURI, &id)
}

func (f *Federation) begin(ctx context.Context, name, redirectURI string, link *Identity) (*Begun, error) {
	p, ok := f.providers[name]
	if !ok {
		return nil, ErrUnknownProvider
	}
	// Exact comparison: no prefix, no normalisation, so that no URL an
	// attacker can shape ever receives the browser.
	if !slices.Contains(f.cfg.RedirectURIs, redirectURI) {
		return nil, ErrRedirectURINotAllowed
	}
	_, oc := p.ready()
	if oc == nil {
		return nil, ErrProviderUnavailable
	}
	// Each start writes a row: counted per address, like login attempts,
	// so that one address cannot fill the table.
	if _, err := f.svc.reserve(ctx, bucket{key: "oidc-start-ip:" + addressKey(ClientFromContext(ctx).IP), limit: f.svc.cfg.Limits.LoginAttemptsPerIP}); err != nil {
		return nil, err
	}
	state, nonce := randomToken(), randomToken()
	verifier := oauth2.GenerateVerifier()
	now := f.svc.clock()
	flow := db.Flow{StateHash: stateHash(state), Provider: name, Nonce: nonce, CodeVerifier: verifier, RedirectURI: redirectURI,
		CreatedAt: now, ExpiresAt: now.Add(FlowTTL)}
	if link != nil {
		flow.UserID, flow.SessionID = &link.UserID, &link.SessionID
	}
	if err := f.svc.store.CreateFlow(ctx, flow); err != nil {
		return nil, fmt.Errorf("begin oidc flow: %w", err)
	}
	u := oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))
	return &Begun{URL: u, State: state}, nil
}

// randomToken is 32 random bytes, base64url: a state or a nonce.
func randomToken() string {
	var b [32]byte
	rand.Read(b[:]) // never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// stateHash is what the database keeps of a state.
func stateHash(state string) string {
	sum := sha256.Sum256([]byte(state))
	return hex.EncodeToString(sum[:])
}

// CallbackRequest is what the provider's redirect brought: the query's
// state, code and error, and the state cookie of the browser.
type CallbackRequest struct {
	Provider    string
	State       string
	StateCookie string
	Code        string
	// Error is the provider's error parameter (access_denied…).
	Error string
}

// CallbackResult is a callback that succeeded: the browser goes to
// RedirectURI, with the session's refresh token in its cookie (Tokens is nil
// after a link, which opens no session).
type CallbackResult struct {
	RedirectURI string
	Tokens      *Tokens
}

// FederationError is a refused callback: the browser goes to RedirectURI
// with ?error=Code when it is known, else gets a 400.
type FederationError struct {
	Code        string
	RedirectURI string
	check       string
	err         error
}

func (e *FederationError) Error() string {
	if e.err != nil {
		return e.Code + ": " + e.check + ": " + e.err.Error()
	}
	return e.Code + ": " + e.check
}

// Callback finishes a flow: the state is taken once (whoever presents it
// first, on any instance), it must match the browser's state cookie, the
// code is exchanged with the PKCE verifier, the ID token is verified, and
// the account rules decide. Every refusal is a *FederationError, logged
// with the check that refused it and counted.
func (f *Federation) Callback(ctx context.Context, r CallbackRequest) (*CallbackResult, error) {
	res, outcome, err := f.callback(ctx, r)
	var fe *FederationError
	if errors.As(err, &fe) {
		outcome = fe.Code
		attrs := []any{"provider", r.Provider, "check", fe.check, "request_id", ClientFromContext(ctx).RequestID}
		if fe.err != nil {
			attrs = append(attrs, "detail", fe.err.Error())
		}
		f.svc.logger.Info(fedLog, attrs...)
	} else if ae := (*Error)(nil); errors.As(err, &ae) && ae.Code == CodeRateLimited {
		outcome = FedRateLimited
	} else if err != nil {
		outcome = FedServerError
	}
	if _, known := f.providers[r.Provider]; known && f.events != nil {
		f.events.FederatedSignIn(r.Provider, outcome)
	}
	return res, err
}

func (f *Federation) callback(ctx context.Context, r CallbackRequest) (*CallbackResult, string, error) {
	p, ok := f.providers[r.Provider]
	if !ok {
		return nil, "", &FederationError{Code: FedInvalidState, check: "provider_unknown"}
	}
	if r.State == "" || len(r.State) > 256 {
		return nil, "", &FederationError{Code: FedInvalidState, check: "state_missing"}
	}
	if _, err := f.svc.reserve(ctx, bucket{key: "oidc-callback-ip:" + addressKey(ClientFromContext(ctx).IP), limit: f.svc.cfg.Limits.LoginAttemptsPerIP}); err != nil {
		return nil, "", err
	}
	// Taken before any other check: a state is used once, whatever the
	// outcome, so a replayed callback URL finds nothing.
	flow, err := f.svc.store.TakeFlow(ctx, stateHash(r.State))
	if errors.Is(err, db.ErrNotFound) {
		return nil, "", &FederationError{Code: FedInvalidState, check: "state_unknown_or_used"}
	}
	if err != nil {
		return nil, "", fmt.Errorf("oidc callback: %w", err)
	}
	fail := func(code, check string, err error) (*CallbackResult, string, error) {
		return nil, "", &FederationError{Code: code, RedirectURI: flow.RedirectURI, check: check, err: err}
	}
	// The state cookie binds the flow to the browser that began it: a
	// callback URL carried to another browser (login CSRF, or a link
	// flow used to attach the victim's account to the attacker's user)
	// has no cookie, or another.
	if r.StateCookie == "" || subtle.ConstantTimeCompare([]byte(r.StateCookie), []byte(r.State)) != 1 {
		return fail(FedInvalidState, "state_cookie_mismatch", nil)
	}
	if flow.Provider != r.Provider {
		return fail(FedInvalidState, "state_of_another_provider", nil)
	}
	if !f.svc.clock().Before(flow.ExpiresAt) {
		return fail(FedInvalidState, "state_expired", nil)
	}
	if r.Error != "" {
		code := FedServerError
		if r.Error == "access_denied" {
			code = FedAccessDenied
		}
		return fail(code, "provider_error", errors.New(truncateLog(r.Error)))
	}
	if r.Code == "" {
		return fail(FedInvalidState, "code_missing", nil)
	}
	verifier, oc := p.ready()
	if oc == nil {
		return fail(FedServerError, "provider_unavailable", nil)
	}
	timeout := f.client.Timeout
	if timeout <= 0 {
		timeout = providerTimeout
	}
	xctx, cancel := context.WithTimeout(context.WithValue(ctx, oauth2.HTTPClient, f.client), timeout)
	defer cancel()
	tok, err := oc.Exchange(xctx, r.Code, oauth2.VerifierOption(flow.CodeVerifier))
	if err != nil {
		return fail(FedServerError, "code_exchange_failed", exchangeError(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return fail(FedInvalidToken, "id_token_missing", nil)
	}
	idt, err := verifier.Verify(xctx, raw)
	if err != nil {
		return fail(FedInvalidToken, "id_token_invalid", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(flow.Nonce)) != 1 {
		return fail(FedInvalidToken, "nonce_mismatch", nil)
	}
	// go-oidc checks iat's presence only as a date; a token issued in the
	// future beyond the leeway is refused here.
	if idt.IssuedAt.After(f.svc.clock().Add(time.Minute)) {
		return fail(FedInvalidToken, "issued_in_the_future", nil)
	}
	if !validSubject(idt.Subject) {
		return fail(FedInvalidToken, "subject_invalid", nil)
	}
	var claims struct {
		Email             string `json:"email"`
		EmailVerified     any    `json:"email_verified"`
		PreferredUsername string `json:"preferred_username"`
	}
	if err := idt.Claims(&claims); err != nil {
		return fail(FedInvalidToken, "claims_invalid", err)
	}
	var email *string
	if addr, err := ParseEmail("email", claims.Email); err == nil {
		email = &addr
	}
	// Only a boolean true is a verified address: a string "true" or an
	// absent claim proves nothing.
	verified := email != nil && claims.EmailVerified == true
	in := federated{provider: r.Provider, subject: idt.Subject, email: email, emailVerified: verified, username: claims.PreferredUsername}
	if flow.UserID != nil {
		return f.link(ctx, flow, in, fail)
	}
	return f.signIn(ctx, flow, in, fail)
}

// exchangeError is the detail of a failed exchange for the log: the
// provider's error code and description, never the response body (it could
// hold tokens).
func exchangeError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return fmt.Errorf("token endpoint answered %d: %s %s", re.Response.StatusCode, truncateLog(re.ErrorCode), truncateLog(re.ErrorDescription))
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("token endpoint timed out")
	}
	return errors.New("token endpoint unreachable")
}

func truncateLog(s string) string {
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.ToValidUTF8(s, "?")
}

// validSubject is a sub Tollgate stores: 1 to 255 bytes of UTF-8 without
// NUL or other control characters.
func validSubject(sub string) bool {
	if sub == "" || len(sub) > maxSubjectBytes || !utf8.ValidString(sub) {
		return false
	}
	for _, c := range sub {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// federated is what a verified ID token says of its account.
type federated struct {
	provider, subject string
	email             *string
	emailVerified     bool
	username          string
}

type failFunc func(code, check string, err error) (*CallbackResult, string, error)

// link attaches the identity to the user who began the flow, from the
// session that began it, still live. An identity linked to anyone already
// is refused (never moved).
func (f *Federation) link(ctx context.Context, flow db.Flow, in federated, fail failFunc) (*CallbackResult, string, error) {
	now := f.svc.clock()
	err := f.svc.store.LinkIdentity(ctx, db.Identity{ID: newID(), Provider: in.provider, Subject: in.subject, UserID: *flow.UserID,
		Email: in.email, CreatedAt: now, LastUsedAt: &now}, *flow.SessionID, now)
	switch {
	case errors.Is(err, db.ErrIdentityTaken):
		return fail(FedAccessDenied, "identity_linked_already", nil)
	case errors.Is(err, db.ErrNotFound):
		return fail(FedAccessDenied, "linking_session_ended", nil)
	case err != nil:
		return nil, "", fmt.Errorf("link identity: %w", err)
	}
	f.svc.logger.Info("identity linked", "provider", in.provider, "user_id", *flow.UserID, "request_id", ClientFromContext(ctx).RequestID)
	return &CallbackResult{RedirectURI: flow.RedirectURI}, FedLinked, nil
}

// signIn opens a session for the identity's user, creating the user when
// the identity is unknown and sign-up is open. An unknown identity is never
// attached to an existing user, whatever its email says: an address at a
// provider proves nothing about who owns an account here (and a provider
// may hand out addresses it never verified).
func (f *Federation) signIn(ctx context.Context, flow db.Flow, in federated, fail failFunc) (*CallbackResult, string, error) {
	for range 2 {
		ident, err := f.svc.store.IdentityBySubject(ctx, in.provider, in.subject)
		if err == nil {
			t, err := f.openSession(ctx, ident, in)
			if err != nil {
				return nil, "", err
			}
			return &CallbackResult{RedirectURI: flow.RedirectURI, Tokens: t}, FedSignedIn, nil
		}
		if !errors.Is(err, db.ErrNotFound) {
			return nil, "", fmt.Errorf("oidc sign-in: %w", err)
		}
		if !f.svc.cfg.SignupOpen {
			return fail(FedAccessDenied, "signup_closed", nil)
		}
		t, err := f.createUser(ctx, in)
		if errors.Is(err, db.ErrIdentityTaken) {
			continue // a concurrent first sign-in of the same account created it: sign in to it
		}
		if err != nil {
			return nil, "", err
		}
		return &CallbackResult{RedirectURI: flow.RedirectURI, Tokens: t}, FedCreated, nil
	}
	return nil, "", errors.New("oidc sign-in: identity neither found nor created")
}

// fedSession prepares an AAL1 session opened at a provider: amr ["fed"].
func (f *Federation) fedSession(ctx context.Context, userID string) (db.Session, db.RefreshToken, string) {
	sess, rt, refresh := f.svc.newSession(ctx, userID)
	fresh := sess.CreatedAt.Add(FreshAfterFederation)
	sess.AAL, sess.AMR, sess.FreshUntil = AAL1.claim(), MethodFederated.String(), &fresh
	return sess, rt, refresh
}

func (f *Federation) openSession(ctx context.Context, ident db.Identity, in federated) (*Tokens, error) {
	u, err := f.svc.store.UserByID(ctx, ident.UserID)
	if err != nil {
		return nil, fmt.Errorf("oidc sign-in: %w", err)
	}
	sess, rt, refresh := f.fedSession(ctx, u.ID)
	revoked, err := f.svc.store.CreateSession(ctx, sess, rt, f.svc.cfg.SessionsPerUser)
	if err != nil {
		return nil, fmt.Errorf("oidc sign-in: %w", err)
	}
	f.svc.addRevoked(revoked, sess.CreatedAt)
	if err := f.svc.store.UseIdentity(ctx, ident.ID, in.email, sess.CreatedAt); err != nil {
		f.svc.logger.Warn("could not record an identity's use", "error", err.Error())
	}
	// A user with a verified factor still has to pass it: AAL1, mfaRequired.
	return f.svc.issue(toUser(u), sess.ID, refresh, rt.ExpiresAt, true, AAL1, MethodFederated)
}

// createUser creates a user without a password for the identity, with its
// first session. The username comes from preferred_username or the email's
// local part, made unique with a random suffix when taken.
func (f *Federation) createUser(ctx context.Context, in federated) (*Tokens, error) {
	if _, err := f.svc.reserve(ctx, bucket{key: "register-ip:" + addressKey(ClientFromContext(ctx).IP), limit: f.svc.cfg.Limits.RegisterPerIP}); err != nil {
		return nil, err
	}
	base := in.username
	if base == "" && in.email != nil {
		base, _, _ = strings.Cut(*in.email, "@")
	}
	base = usernameFrom(base)
	now := f.svc.clock()
	for attempt := range 5 {
		name := base
		if attempt > 0 {
			name = fmt.Sprintf("%s-%s", truncateName(base, 64-7), randomToken()[:6])
			name = usernameFrom(name)
		}
		// No password: the empty hash, which no password verifies (a login
		// checks the dummy hash instead, the work of a wrong password).
		u := db.User{ID: newID(), Username: name, PasswordHash: "", Role: string(RoleUser), CreatedAt: now}
		if in.email != nil {
			key := db.EmailKey(*in.email)
			u.Email, u.EmailKey = in.email, &key
			if in.emailVerified {
				u.EmailVerifiedAt = &now
			}
		}
		sess, rt, refresh := f.fedSession(ctx, u.ID)
		ident := db.Identity{ID: newID(), Provider: in.provider, Subject: in.subject, UserID: u.ID, Email: in.email, CreatedAt: now, LastUsedAt: &now}
		u, err := f.svc.store.CreateUserWithIdentity(ctx, u, ident, sess, rt)
		switch {
		case errors.Is(err, db.ErrConflict):
			continue // the username is taken: another suffix
		case err != nil:
			return nil, err
		}
		f.svc.logger.Info("user created at a provider sign-in", "provider", in.provider, "user_id", u.ID,
			"request_id", ClientFromContext(ctx).RequestID)
		return f.svc.issue(toUser(u), sess.ID, refresh, rt.ExpiresAt, true, AAL1, MethodFederated)
	}
	return nil, errors.New("oidc sign-in: no free username")
}

// usernameFrom makes name a valid username: the allowed characters kept,
// 3 to 64 of them, "user" when nothing is left.
func usernameFrom(name string) string {
	var b strings.Builder
	for _, c := range name {
		if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b.WriteRune(c)
		}
	}
	n := truncateName(b.String(), 64)
	if len(n) < 3 {
		n = "user"
	}
	if v, err := NormalizeUsername(n); err == nil {
		return v
	}
	return "user"
}

func truncateName(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// LinkedIdentity is an account at a provider linked to a user (the
// GraphQL Identity).
type LinkedIdentity struct {
	ID         string
	Provider   string
	Subject    string
	Email      *string
	CreatedAt  time.Time
	LastUsedAt *time.Time
}

// Identities lists the caller's linked provider accounts, oldest first.
func (f *Federation) Identities(ctx context.Context) ([]LinkedIdentity, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := f.svc.store.Identities(ctx, id.UserID)
	if err != nil {
		return nil, fmt.Errorf("identities: %w", err)
	}
	out := make([]LinkedIdentity, 0, len(rows))
	for _, r := range rows {
		out = append(out, LinkedIdentity{ID: r.ID, Provider: r.Provider, Subject: r.Subject, Email: r.Email, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt})
	}
	return out, nil
}

// Unlink removes one of the caller's identities: NOT_FOUND for one that is
// not the caller's, LAST_SIGN_IN_METHOD when nothing else would sign them in.
func (f *Federation) Unlink(ctx context.Context, identityID string) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	err = f.svc.store.UnlinkIdentity(ctx, id.UserID, identityID)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, db.ErrLastSignInMethod):
		return ErrLastSignInMethod
	case err != nil:
		return fmt.Errorf("unlink identity: %w", err)
	}
	return nil
}

// StateCookieName is the cookie that binds a flow's state to the browser
// that began it; secure (production) gives it the __Host- prefix.
func StateCookieName(secure bool) string {
	if secure {
		return "__Host-tollgate_oidc_state"
	}
	return "tollgate_oidc_state"
}

// StateCookie is the cookie set when a flow begins. SameSite=Lax, not
// Strict: the callback is a top-level navigation from the provider's site,
// which Strict would send without it.
func StateCookie(state string, secure bool) *http.Cookie {
	return &http.Cookie{Name: StateCookieName(secure), Value: state, Path: "/", MaxAge: int(FlowTTL / time.Second),
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteLaxMode}
}

// ErrorRedirect is redirectURI with ?error=code added to its query.
func ErrorRedirect(redirectURI, code string) string {
	u, err := url.Parse(redirectURI)
	if err != nil {
		return redirectURI
	}
	q := u.Query()
	q.Set("error", code)
	u.RawQuery = q.Encode()
	return u.String()
}
