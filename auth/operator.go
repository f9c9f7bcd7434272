package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"tollgate/db"
	"tollgate/mail"
)

// Operator does what the command line may do to accounts without an HTTP
// request. Whoever runs the binary with the server's DATABASE_URL can already
// write to the database, so no identity is checked: the operator stands where
// an ADMIN behind the @auth directive would.
//
// It signs no token, so it needs no signing key: it wraps a Service without
// a token issuer and uses only the methods that never issue one. Its own
// revocation list is filled but never read; the running instances hear of
// every change through the store's NOTIFY (PostgreSQL) or their periodic
// resync (SQLite and any missed notice).
type Operator struct {
	svc *Service
}

// NewOperator returns an Operator on store. now is the clock of every write.
func NewOperator(store *db.Store, hasher *Hasher, logger *slog.Logger, now func() time.Time) *Operator {
	s := &Service{store: store, hasher: hasher, logger: logger, events: NoEvents{}, now: now}
	s.revocations = NewRevocations(0, s.clock)
	return &Operator{svc: s}
}

// WithMail lets CreateUser mail a verification: links from composer,
// tokens that live verificationTTL. It returns o.
func (o *Operator) WithMail(composer *mail.Composer, verificationTTL time.Duration) *Operator {
	o.svc.cfg.Mail, o.svc.cfg.VerificationTTL = composer, verificationTTL
	return o
}

// CreateUser creates a user with role under the rules of register (username
// and password). A name taken in any letter case is ErrUsernameTaken. With
// an email (not ""), the address is stored unverified, as register stores
// it, and its verification is queued in the same transaction for a running
// server's sender to deliver: the operator's word is not the mailbox's.
func (o *Operator) CreateUser(ctx context.Context, username, password string, role Role, email string) (*User, error) {
	if !role.Valid() {
		return nil, &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "role", Message: "Unknown role."}
	}
	name, err := NormalizeUsername(username)
	if err != nil {
		return nil, err
	}
	if err := CheckPassword(password); err != nil {
		return nil, err
	}
	if email != "" {
		if _, err := ParseEmail("email", email); err != nil {
			return nil, err
		}
	}
	hash, err := o.svc.hasher.Hash(ctx, password)
	if err != nil {
		return nil, err
	}
	u := db.User{ID: newID(), Username: name, PasswordHash: hash, Role: string(role), CreatedAt: o.svc.clock()}
	if email == "" {
		err = o.svc.store.CreateUser(ctx, u)
	} else {
		key := db.EmailKey(email)
		u.Email, u.EmailKey = &email, &key
		tok, m, merr := o.svc.verificationMail(u, email, u.CreatedAt)
		if merr != nil {
			return nil, fmt.Errorf("create user: %w", merr)
		}
		err = o.svc.store.CreateUserWithVerification(ctx, u, tok, m)
	}
	switch {
	case errors.Is(err, db.ErrEmailTaken):
		return nil, ErrEmailTaken
	case errors.Is(err, db.ErrConflict):
		return nil, ErrUsernameTaken
	case err != nil:
		return nil, fmt.Errorf("create user: %w", err)
	}
	user := toUser(u)
	return &user, nil
}

// SetRole gives the user named username role, exactly as the setRole
// mutation does (Service.SetRole): tokens carrying the old role are refused at
// once on every instance, and the last ADMIN cannot be demoted.
func (o *Operator) SetRole(ctx context.Context, username string, role Role) (*User, error) {
	u, err := o.userByName(ctx, username)
	if err != nil {
		return nil, err
	}
	return o.svc.SetRole(ctx, u.ID, role)
}

// RevokeSessions signs out every live session of the user named username, as
// logout(allSessions: true) would, and returns how many it revoked. Their
// access tokens are refused on every instance.
func (o *Operator) RevokeSessions(ctx context.Context, username string) (int, error) {
	u, err := o.userByName(ctx, username)
	if err != nil {
		return 0, err
	}
	now := o.svc.revocations.pastCutoff(u.ID, o.svc.clock())
	n, err := o.svc.store.CountLiveSessions(ctx, u.ID, now)
	if err != nil {
		return 0, err
	}
	if err := o.svc.store.RevokeUserSessions(ctx, u.ID, "", now); err != nil {
		return 0, fmt.Errorf("revoke sessions: %w", err)
	}
	o.svc.revocations.CutOff(u.ID, now, "")
	return n, nil
}

// ResetMFA deletes every second factor and recovery code of the user named
// username and revokes their sessions (a user who lost their device and
// their codes): they sign in with the password alone again, and may enroll anew.
func (o *Operator) ResetMFA(ctx context.Context, username string) error {
	if _, err := o.userByName(ctx, username); err != nil {
		return err
	}
	return o.svc.ResetMFA(ctx, username)
}

// userByName finds a user by name (any letter case), or ErrNotFound.
func (o *Operator) userByName(ctx context.Context, username string) (db.User, error) {
	name, err := NormalizeUsername(username)
	if err != nil {
		return db.User{}, err
	}
	u, err := o.svc.store.UserByUsername(ctx, name)
	if errors.Is(err, db.ErrNotFound) {
		return db.User{}, ErrNotFound
	}
	if err != nil {
		return db.User{}, fmt.Errorf("find user: %w", err)
	}
	return u, nil
}

// UserDetails is what the operator's `user show` prints of a user.
type UserDetails struct {
	User    User
	Factors []FactorDetails
}

// FactorDetails is a factor, with its credential's record for a passkey.
type FactorDetails struct {
	Factor
	// Passkey is set for a WEBAUTHN factor.
	Passkey *PasskeyDetails
}

// PasskeyDetails is what is stored of a passkey's credential but its keys:
// the authenticator model (AAGUID), how it is reached, its signature
// counter, and whether it may be and is synced (backup eligibility and state).
type PasskeyDetails struct {
	AAGUID         string
	Transports     []string
	SignCount      int64
	BackupEligible bool
	BackupState    bool
}

// ShowUser returns the user named username with their factors, oldest
// first, or ErrNotFound.
func (o *Operator) ShowUser(ctx context.Context, username string) (*UserDetails, error) {
	u, err := o.userByName(ctx, username)
	if err != nil {
		return nil, err
	}
	factors, err := o.svc.store.Factors(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	passkeys, err := o.svc.store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	byFactor := make(map[string]db.Passkey, len(passkeys))
	for _, p := range passkeys {
		byFactor[p.FactorID] = p
	}
	out := &UserDetails{User: toUser(u)}
	for _, f := range factors {
		d := FactorDetails{Factor: toFactor(f)}
		if p, ok := byFactor[f.ID]; ok {
			d.Passkey = &PasskeyDetails{AAGUID: p.AAGUID, SignCount: p.SignCount, BackupEligible: p.BackupEligible, BackupState: p.BackupState}
			if p.Transports != "" {
				d.Passkey.Transports = strings.Split(p.Transports, ",")
			}
		}
		out.Factors = append(out.Factors, d)
	}
	return out, nil
}
