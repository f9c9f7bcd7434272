// Package auth is Tollgate's domain: accounts, passwords, sessions and the
// access tokens that speak for them. It stores through package db and knows
// nothing of GraphQL; the HTTP middleware here only authenticates, and every
// authorization decision is made by the caller of Identity (the @auth directive).
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"tollgate/db"
	"tollgate/mail"
)

// Config holds the settings of the Service.
type Config struct {
	RefreshTTL time.Duration
	// RefreshReuseGrace is how long a rotated refresh token still yields a pair.
	RefreshReuseGrace time.Duration
	// SignupOpen lets anyone register; when false, register is FORBIDDEN.
	SignupOpen bool
	// SessionsPerUser bounds a user's live sessions: a new session beyond it
	// revokes the least recently used, so that one account cannot open
	// sessions without end.
	SessionsPerUser int
	Limits          Limits
	// Events is told of every attempt and verification (metrics); nil counts nothing.
	Events Events
	// MFAKey, when set (MFA_ENCRYPTION_KEY, 32 bytes or more), is the key
	// material the TOTP secrets are sealed under; otherwise a key derived from
	// the signing key is used.
	MFAKey []byte
	// TOTPIssuer is the name authenticator apps show for a TOTP factor
	// (TOTP_ISSUER); empty means DefaultTOTPIssuer.
	TOTPIssuer string

	// EmailRequired makes register's email argument required.
	EmailRequired bool
	// VerificationTTL and ResetTTL are the lifetimes of mailed tokens.
	VerificationTTL time.Duration
	ResetTTL        time.Duration
	// Mail renders the mails the flows queue; nil in a Service that mails
	// nothing (a flow that would mail then fails).
	Mail *mail.Composer
	// MailQueued, when set, is called after a transaction that queued a
	// mail has committed: the sender's Notify, so that the mail goes out at
	// once instead of at its next poll.
	MailQueued func()
	// Passkeys is the WebAuthn relying party.
	Passkeys PasskeyConfig
}

// Service signs users up, in and out, and keeps their sessions. Create it
// with NewService.
type Service struct {
	cfg         Config
	store       *db.Store
	tokens      *TokenIssuer
	hasher      *Hasher
	revocations *Revocations
	// successors seals the successor a rotated refresh token keeps for the
	// grace window; refreshKey signs the session a refresh token names.
	successors *sealer
	refreshKey []byte
	// mfaSecrets seals the TOTP secrets at rest.
	mfaSecrets *sealer
	// webauthn runs the passkey ceremonies (auth/webauthn.go); decoyKey
	// derives the credential ids listed for a name without a passkey.
	webauthn *webauthn.WebAuthn
	decoyKey []byte
	logger   *slog.Logger
	events   Events
	// resyncRequests asks Maintenance for a resync.
	resyncRequests chan struct{}
	now            func() time.Time
	// mailWork holds the reset mails being queued after their request was
	// answered, at most cap(mailSlots) at once.
	mailWork  sync.WaitGroup
	mailSlots chan struct{}
}

// NewService returns a Service and loads the revocations that still matter.
// now is the clock of every time it writes or checks.
func NewService(ctx context.Context, cfg Config, store *db.Store, tokens *TokenIssuer, hasher *Hasher, logger *slog.Logger, now func() time.Time) (*Service, error) {
	s := &Service{cfg: cfg, store: store, tokens: tokens, hasher: hasher, logger: logger, events: cfg.Events, now: now,
		resyncRequests: make(chan struct{}, 1), mailSlots: make(chan struct{}, mailWorkSlots)}
	if s.events == nil {
		s.events = NoEvents{}
	}
	var err error
	if s.successors, err = newSealer(tokens.signingKey(), "refresh successor v1"); err != nil {
		return nil, err
	}
	if s.refreshKey, err = deriveKey(tokens.signingKey(), "refresh token mac v1"); err != nil {
		return nil, err
	}
	// The TOTP secrets must stay readable for as long as the factor exists,
	// across signing-key rotations: MFA_ENCRYPTION_KEY gives them a key of
	// their own. Without it they are sealed under the signing key's, and a
	// new signing key makes every factor unusable (README, "Second factor").
	if len(cfg.MFAKey) > 0 {
		s.mfaSecrets, err = newSealerFromKey(cfg.MFAKey, "totp secret v1")
	} else {
		s.mfaSecrets, err = newSealer(tokens.signingKey(), "totp secret v1")
	}
	if err != nil {
		return nil, err
	}
	if s.cfg.TOTPIssuer == "" {
		s.cfg.TOTPIssuer = DefaultTOTPIssuer
	}
	if s.cfg.Passkeys.Name == "" {
		s.cfg.Passkeys.Name = s.cfg.TOTPIssuer
	}
	if s.webauthn, err = newWebAuthn(s.cfg.Passkeys); err != nil {
		return nil, err
	}
	if s.decoyKey, err = deriveKey(tokens.signingKey(), "passkey decoy v1"); err != nil {
		return nil, err
	}
	if s.cfg.Limits.MFAPerUser == (Limit{}) {
		s.cfg.Limits.MFAPerUser = DefaultMFALimit
	}
	// An access token may outlive its session's revocation by its lifetime
	// plus the leeway the verifier allows: that long an entry must be kept.
	s.revocations = NewRevocations(tokens.TTL()+tokens.cfg.Leeway, s.clock)
	if err := s.revocations.Load(ctx, store); err != nil {
		return nil, fmt.Errorf("load revocations: %w", err)
	}
	return s, nil
}

// register creates a USER and signs it in (Register counts it). With an
// email, the address is stored unverified and a verification is mailed to it
// in the same transaction.
func (s *Service) register(ctx context.Context, username, password string, email *string) (*Tokens, error) {
	if !s.cfg.SignupOpen {
		return nil, ErrSignupClosed
	}
	if _, err := s.reserve(ctx, bucket{key: "register-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.RegisterPerIP}); err != nil {
		return nil, err
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	var addr string
	switch {
	case email != nil:
		if addr, err = ParseEmail("email", *email); err != nil {
			return nil, err
		}
	case s.cfg.EmailRequired:
		return nil, invalidInput(ReasonInvalidInput, "email", "An email address is required to sign up.")
	}
	if addr != "" {
		// Counted before the hash, like the sign-up itself.
		if _, err := s.reserve(ctx, s.mailBuckets(ctx, db.EmailKey(addr))...); err != nil {
			return nil, err
		}
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	u := db.User{ID: newID(), Username: name, PasswordHash: hash, Role: string(RoleUser), CreatedAt: s.clock()}
	sess, rt, refresh := s.newSession(ctx, u.ID)
	if addr == "" {
		err = s.store.CreateUserWithSession(ctx, u, sess, rt)
	} else {
		key := db.EmailKey(addr)
		u.Email, u.EmailKey = &addr, &key
		tok, m, merr := s.verificationMail(u, addr, u.CreatedAt)
		if merr != nil {
			return nil, fmt.Errorf("register: %w", merr)
		}
		err = s.store.CreateUserWithEmail(ctx, u, sess, rt, tok, m)
	}
	switch {
	case errors.Is(err, db.ErrEmailTaken):
		return nil, ErrEmailTaken
	case errors.Is(err, db.ErrConflict):
		return nil, ErrUsernameTaken
	case err != nil:
		return nil, fmt.Errorf("register: %w", err)
	}
	if addr != "" {
		s.mailQueued()
	}
	return s.issue(toUser(u), sess.ID, refresh, rt.ExpiresAt, true, AAL1, MethodPassword)
}

// login checks a username and password and opens a new session (Login
// counts it). A wrong username and a wrong password give the same error
// after the same work.
func (s *Service) login(ctx context.Context, username, password string) (*Tokens, error) {
	// Counted and throttled before any hashing: past the limit even the right
	// password is refused, so that guessing gains nothing and costs us
	// nothing. The attempt counts as a failure until it succeeds.
	userIP, ip := s.loginBuckets(ctx, username)
	attempts := bucket{key: "login-attempts-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.LoginAttemptsPerIP}
	// Broadest first: a request refused for its address never touches the
	// per-username bucket.
	at, err := s.reserve(ctx, attempts, ip, userIP)
	if err != nil {
		return nil, err
	}
	succeeded := false
	defer func() {
		if !succeeded {
			s.settle(context.WithoutCancel(ctx), at, ip, userIP) // a failure: it stays counted
		}
	}()
	if len(password) > maxPasswordBytes {
		// No such password can have been set; refusing before hashing keeps a
		// megabyte "password" from buying a megabyte of hashing. Whether the
		// user exists plays no part in this branch.
		return nil, ErrInvalidCredentials
	}
	var u db.User
	if strings.ContainsRune(username, '@') {
		// No username holds '@': this is an address, and only a verified
		// one signs in (an unverified address was never proven to be the
		// user's). One query either way, and the same hash check after it.
		u, err = s.store.UserByVerifiedEmail(ctx, db.EmailKey(username))
	} else {
		u, err = s.store.UserByUsername(ctx, normalizeLookup(username))
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return nil, fmt.Errorf("login: %w", err)
	}
	ok, err := s.hasher.Check(ctx, password, u.PasswordHash) // "" for an unknown user
	if errors.Is(err, ErrHasherBusy) {
		// No password was checked: not a failure. The attempt stays counted.
		succeeded = true
		s.release(context.WithoutCancel(ctx), at, ip, userIP)
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if !ok {
		return nil, ErrInvalidCredentials
	}
	// Success: this (username, address) starts afresh, and the address's
	// count of failures takes this attempt back.
	succeeded = true
	if err := s.store.ResetHits(ctx, userIP.key); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	s.release(ctx, at, ip)
	sess, rt, refresh := s.newSession(ctx, u.ID)
	revoked, err := s.store.CreateSession(ctx, sess, rt, s.cfg.SessionsPerUser)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	s.addRevoked(revoked, sess.CreatedAt)
	// A user with a verified factor gets an AAL1 session: mfaRequired tells
	// the client to ask for a code, and @auth refuses every field that does
	// not say aal: AAL1 until verifyTotp or useRecoveryCode.
	return s.issue(toUser(u), sess.ID, refresh, rt.ExpiresAt, true, AAL1, MethodPassword)
}

// normalizeLookup trims a username typed at login.
func normalizeLookup(username string) string {
	n, err := NormalizeUsername(username)
	if err != nil {
		return "" // matches nobody; the password is still checked, against the dummy hash
	}
	return n
}

// User returns the user with id, or ErrNotFound.
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	user := toUser(u)
	return &user, nil
}

// EnsureAdmin creates an ADMIN named username unless that ADMIN exists. It
// reports whether it created one. A USER of that name is an error.
func (s *Service) EnsureAdmin(ctx context.Context, username, password string) (bool, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return false, err
	}
	if err := CheckPassword(password); err != nil {
		return false, err
	}
	if u, err := s.store.UserByUsername(ctx, name); err == nil {
		if Role(u.Role) != RoleAdmin {
			// Never promote: whoever registered that name first must not
			// become ADMIN through the operator's configuration.
			return false, &Error{Code: CodeBadUserInput, Reason: ReasonUsernameTaken, Field: "username",
				Message: "names an existing USER account; choose another name"}
		}
		return false, nil
	} else if !errors.Is(err, db.ErrNotFound) {
		return false, err
	}
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return false, err
	}
	err = s.store.CreateUser(ctx, db.User{ID: newID(), Username: name, PasswordHash: hash, Role: string(RoleAdmin), CreatedAt: s.clock()})
	if errors.Is(err, db.ErrConflict) {
		return false, nil // another instance created it at the same moment
	}
	if err != nil {
		return false, fmt.Errorf("create admin: %w", err)
	}
	return true, nil
}

// newSession prepares a session for userID and its first refresh token.
func (s *Service) newSession(ctx context.Context, userID string) (db.Session, db.RefreshToken, string) {
	return s.newSessionAt(ctx, userID, s.revocations.pastCutoff(userID, s.clock()))
}

// newSessionAt is newSession created at now.
func (s *Service) newSessionAt(ctx context.Context, userID string, now time.Time) (db.Session, db.RefreshToken, string) {
	sid := newSessionID(now)
	rt, refresh := s.newRefreshToken(now, sid)
	sess := db.Session{ID: sid, UserID: userID, CreatedAt: now, LastUsedAt: now, ExpiresAt: rt.ExpiresAt,
		AAL: AAL1.claim(), AMR: MethodPassword.String()}
	if ua := ClientFromContext(ctx).UserAgent; ua != "" {
		sess.UserAgent = &ua
	}
	return sess, rt, refresh
}

// issue signs an access token for u in session sid, whose level is aal
// after methods. fresh is true only straight after a credential was checked
// (login, register, a second factor).
func (s *Service) issue(u User, sid, refresh string, refreshExpires time.Time, fresh bool, aal AAL, methods Methods) (*Tokens, error) {
	id := Identity{UserID: u.ID, Role: u.Role, SessionID: sid, Fresh: fresh, AAL: aal, Methods: methods, MFA: u.MFAEnabled}
	access, err := s.tokens.Issue(&id)
	if err != nil {
		return nil, err
	}
	return &Tokens{
		AccessToken:      access,
		RefreshToken:     &refresh,
		TokenType:        "Bearer",
		ExpiresIn:        int(s.tokens.TTL() / time.Second),
		User:             u,
		RefreshExpiresIn: int(refreshExpires.Sub(s.clock()) / time.Second),
		AAL:              aal,
		MFARequired:      u.MFAEnabled && aal != AAL2,
	}, nil
}

// clock returns the current time in UTC, to the microsecond that both databases keep.
func (s *Service) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

func toUser(u db.User) User {
	return User{ID: u.ID, Username: u.Username, Role: Role(u.Role), CreatedAt: u.CreatedAt, MFAEnabled: u.MFAEnabled,
		Email: u.Email, EmailVerified: u.EmailVerifiedAt != nil}
}

func newID() string { return uuid.NewString() }
