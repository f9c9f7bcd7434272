package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	netmail "net/mail"
	"time"

	"tollgate/db"
	"tollgate/mail"
)

// Email rules (API.md, "Email addresses and account recovery").
const (
	// MaxEmailBytes is the longest address SMTP can carry (RFC 5321's path
	// limit less the angle brackets).
	MaxEmailBytes = 254
	// emailTokenBytes is the randomness of a mailed token: 256 bits, twice
	// the contract's minimum, so that a token cannot be guessed in any
	// number of tries and a fast hash is all its storage needs.
	emailTokenBytes = 32
	// mailWorkSlots bounds the reset mails being queued after their request
	// was answered (RequestPasswordReset); beyond it a request queues its
	// own, and takes a transaction's time longer. The mail throttles keep
	// real traffic far below it (MAILS_PER_IP_PER_HOUR, 20 by default); the
	// room is there so that a burst of matches, which would each wait for
	// a connection of the pool anyway, still answers in the same time as
	// the others (bench/README.md, requestPasswordReset).
	mailWorkSlots = 256
)

// The errors of the email flows.
var (
	ErrEmailTaken   = &Error{Code: CodeBadUserInput, Reason: ReasonEmailTaken, Field: "email", Message: "That email address is taken."}
	ErrInvalidToken = &Error{Code: CodeBadUserInput, Reason: ReasonInvalidToken, Field: "token", Message: "The link or code is unknown, used or expired: ask for a new one."}
)

// ParseEmail checks an address typed into field: at most MaxEmailBytes, one
// local@domain address as RFC 5322 allows it without a display name, exactly
// as net/mail.ParseAddress reads and returns it. Requiring the parse to give
// the input back unchanged refuses "Name <a@b>", surrounding spaces,
// comments and every other form that a mail header would rewrite, so that
// what is stored is what is mailed to.
func ParseEmail(field, addr string) (string, error) {
	bad := invalidInput(ReasonInvalidInput, field, fmt.Sprintf("%s is not one email address such as alice@example.com (at most %d bytes, no display name).", field, MaxEmailBytes))
	if addr == "" || len(addr) > MaxEmailBytes {
		return "", bad
	}
	a, err := netmail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr {
		return "", bad
	}
	return addr, nil
}

// withField returns e naming field instead.
func withField(e *Error, field string) *Error {
	c := *e
	c.Field = field
	return &c
}

// mailBuckets count the mails sent to the address whose key is key and from
// the caller's address, in the database (every instance shares them):
// broadest first, as for logins.
func (s *Service) mailBuckets(ctx context.Context, key string) []bucket {
	// The address is hashed: the key stays short and no address sits in
	// the table of counters.
	sum := sha256.Sum256([]byte(key))
	return []bucket{
		{key: "mail-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.MailPerIP},
		{key: "mail-address:" + hex.EncodeToString(sum[:16]), limit: s.cfg.Limits.MailPerAddress},
	}
}

// newEmailToken returns a token of purpose for userID, mailed to addr, and
// the row that stores its hash.
func (s *Service) newEmailToken(userID, purpose, addr string, now time.Time) (db.EmailToken, string) {
	raw := make([]byte, emailTokenBytes)
	rand.Read(raw) // never fails (crypto/rand documents that it panics instead)
	token := base64.RawURLEncoding.EncodeToString(raw)
	ttl := s.cfg.VerificationTTL
	if purpose == db.PurposeReset {
		ttl = s.cfg.ResetTTL
	}
	return db.EmailToken{Hash: hashEmailToken(token), UserID: userID, Purpose: purpose, Email: addr,
		CreatedAt: now, ExpiresAt: now.Add(ttl)}, token
}

// hashEmailToken is what the database keeps of a mailed token: a fast hash
// suffices for 256 random bits, and a copy of the table opens nothing.
func hashEmailToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// emailTokenHash returns the hash of a token as typed, or false when it
// cannot be one of ours (its canonical form only: 43 base64url characters),
// so that a made-up token costs no query.
func emailTokenHash(token string) (string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(raw) != emailTokenBytes || base64.RawURLEncoding.EncodeToString(raw) != token {
		return "", false
	}
	return hashEmailToken(token), true
}

// compose renders a mail and gives it its id and time.
func (s *Service) compose(kind mail.Kind, to string, d mail.Data, now time.Time) (db.OutboxMail, error) {
	if s.cfg.Mail == nil {
		return db.OutboxMail{}, errors.New("no mail composer configured")
	}
	m, err := s.cfg.Mail.Compose(kind, to, d)
	if err != nil {
		return db.OutboxMail{}, err
	}
	m.ID, m.CreatedAt = newID(), now
	return m, nil
}

// mailQueued tells the sender that a committed transaction queued a mail,
// so that it goes out at once rather than at the sender's next poll.
func (s *Service) mailQueued() {
	if s.cfg.MailQueued != nil {
		s.cfg.MailQueued()
	}
}

// verificationMail prepares the verification of addr for u: the token row
// and its mail.
func (s *Service) verificationMail(u db.User, addr string, now time.Time) (db.EmailToken, db.OutboxMail, error) {
	tok, token := s.newEmailToken(u.ID, db.PurposeVerify, addr, now)
	m, err := s.compose(mail.KindVerifyEmail, addr, mail.Data{Username: u.Username, Token: token, TTL: s.cfg.VerificationTTL}, now)
	return tok, m, err
}

// RequestEmailVerification mails a new verification to the caller's
// address, ending the earlier ones. An account without an address, or whose
// address is verified already, is INVALID_INPUT (field email).
func (s *Service) RequestEmailVerification(ctx context.Context) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return ErrTokenRevoked
	}
	if err != nil {
		return fmt.Errorf("request verification: %w", err)
	}
	switch {
	case u.Email == nil:
		return invalidInput(ReasonInvalidInput, "email", "Your account has no email address: set one with changeEmail.")
	case u.EmailVerifiedAt != nil:
		return invalidInput(ReasonInvalidInput, "email", "Your email address is verified already.")
	}
	if _, err := s.reserve(ctx, s.mailBuckets(ctx, db.EmailKey(*u.Email))...); err != nil {
		return err
	}
	now := s.clock()
	tok, m, err := s.verificationMail(u, *u.Email, now)
	if err != nil {
		return fmt.Errorf("request verification: %w", err)
	}
	if err := s.store.IssueEmailToken(ctx, tok, "", m); err != nil {
		return fmt.Errorf("request verification: %w", err)
	}
	s.mailQueued()
	return nil
}

// VerifyEmail uses a verification token: the address it was mailed to
// becomes the user's verified address (for changeEmail, replacing the old
// one only now). No session is needed: the mailbox is the proof.
func (s *Service) VerifyEmail(ctx context.Context, token string) error {
	hash, ok := emailTokenHash(token)
	if !ok {
		return ErrInvalidToken
	}
	userID, err := s.store.VerifyEmail(ctx, hash, s.clock())
	switch {
	case errors.Is(err, db.ErrNotFound):
		return ErrInvalidToken
	case errors.Is(err, db.ErrEmailTaken):
		// Another user took the address since the mail was sent.
		return withField(ErrEmailTaken, "token")
	case err != nil:
		return fmt.Errorf("verify email: %w", err)
	}
	s.logger.Info("email address verified", "user_id", userID, "request_id", ClientFromContext(ctx).RequestID)
	return nil
}

// ChangeEmail mails a verification to newEmail and, when the account has a
// verified address, a notice to that one. The account's address changes
// only when the new one is verified, so that a stolen session cannot move
// the account's recovery to an address its owner never proved, and the
// owner hears of the attempt at the address they did prove.
func (s *Service) ChangeEmail(ctx context.Context, newEmail string) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	addr, err := ParseEmail("newEmail", newEmail)
	if err != nil {
		return err
	}
	key := db.EmailKey(addr)
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return ErrTokenRevoked
	}
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	if u.EmailKey != nil && *u.EmailKey == key && u.EmailVerifiedAt != nil {
		return invalidInput(ReasonInvalidInput, "newEmail", "That is your verified address already.")
	}
	if _, err := s.reserve(ctx, s.mailBuckets(ctx, key)...); err != nil {
		return err
	}
	now := s.clock()
	tok, verification, err := s.verificationMail(u, addr, now)
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	mails := []db.OutboxMail{verification}
	// Only a verified old address hears of it: an unverified one was never
	// shown to be the user's, and mailing it would mail a stranger.
	if u.Email != nil && u.EmailVerifiedAt != nil && *u.EmailKey != key {
		notice, err := s.compose(mail.KindEmailChanged, *u.Email, mail.Data{Username: u.Username, NewEmail: addr}, now)
		if err != nil {
			return fmt.Errorf("change email: %w", err)
		}
		mails = append(mails, notice)
	}
	err = s.store.IssueEmailToken(ctx, tok, key, mails...)
	if errors.Is(err, db.ErrEmailTaken) {
		return withField(ErrEmailTaken, "newEmail")
	}
	if err != nil {
		return fmt.Errorf("change email: %w", err)
	}
	s.mailQueued()
	return nil
}

// RequestPasswordReset mails a reset to email when it is a user's verified
// address. It answers the same, nil, in the same time whatever the address:
// the request always does the same database work (the two throttle counts
// and one lookup), and the reset token and its mail, which only a match
// needs, are written after the answer (queueReset). Past a throttle it sends
// nothing and still answers nil, so that the limit tells nothing either.
func (s *Service) RequestPasswordReset(ctx context.Context, email string) error {
	addr, err := ParseEmail("email", email)
	if err != nil {
		return err // the form of what was typed, not whether anyone has it
	}
	key := db.EmailKey(addr)
	_, err = s.reserve(ctx, s.mailBuckets(ctx, key)...)
	limited := false
	var authErr *Error
	if errors.As(err, &authErr) && authErr.Code == CodeRateLimited {
		limited = true
	} else if err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	// Looked up even when limited: the throttle must not be a way to tell
	// a known address by its speed.
	u, err := s.store.UserByVerifiedEmail(ctx, key)
	if errors.Is(err, db.ErrNotFound) || limited {
		return nil
	}
	if err != nil {
		return fmt.Errorf("request password reset: %w", err)
	}
	select {
	case s.mailSlots <- struct{}{}:
		bg := context.WithoutCancel(ctx)
		s.mailWork.Go(func() {
			defer func() { <-s.mailSlots }()
			ctx, cancel := context.WithTimeout(bg, 10*time.Second)
			defer cancel()
			s.queueReset(ctx, u)
		})
	default:
		// Every slot is busy: this request queues its own (slower, and only
		// under a load that already hides one transaction's time).
		s.queueReset(ctx, u)
	}
	return nil
}

// queueReset writes a reset token of u and its mail to u's verified address
// as it is stored (ending u's earlier reset tokens). It runs after the
// request was answered: a failure is logged, and the user may ask again.
func (s *Service) queueReset(ctx context.Context, u db.User) {
	addr := *u.Email
	now := s.clock()
	tok, token := s.newEmailToken(u.ID, db.PurposeReset, addr, now)
	m, err := s.compose(mail.KindPasswordReset, addr, mail.Data{Username: u.Username, Token: token, TTL: s.cfg.ResetTTL}, now)
	if err == nil {
		err = s.store.IssueEmailToken(ctx, tok, "", m)
	}
	if err != nil {
		s.logger.Error("could not queue a password reset", "user_id", u.ID, "error", err.Error(),
			"request_id", ClientFromContext(ctx).RequestID)
		return
	}
	s.mailQueued()
}

// WaitMail waits for the reset mails that RequestPasswordReset queues after
// answering: for shutdown and for tests, which then find their outbox rows.
func (s *Service) WaitMail() { s.mailWork.Wait() }

// ResetPassword uses a reset token: it sets newPassword (the usual rules),
// ends every reset token of the user, revokes every session, and signs in
// exactly as login does: a user with a verified second factor gets an AAL1
// session with mfaRequired, since a mailbox is never a second factor.
//
// The token is looked up before the password is hashed, so that made-up
// tokens cost no hashing; it is used (its row deleted) in the transaction
// that sets the password, so that of two concurrent uses exactly one wins.
func (s *Service) ResetPassword(ctx context.Context, token, newPassword string) (*Tokens, error) {
	if err := CheckPassword(newPassword); err != nil {
		return nil, withField(err.(*Error), "newPassword")
	}
	hash, ok := emailTokenHash(token)
	if !ok {
		return nil, ErrInvalidToken
	}
	t, err := s.store.EmailToken(ctx, hash, db.PurposeReset, s.clock())
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("reset password: %w", err)
	}
	passwordHash, err := s.hasher.Hash(ctx, newPassword)
	if err != nil {
		return nil, err
	}
	cut := s.revocations.pastCutoff(t.UserID, s.clock())
	// The new session is created after the cutoff, which must not cover it.
	sess, rt, refresh := s.newSessionAt(ctx, t.UserID, cut.Add(time.Microsecond))
	u, err := s.store.ResetPassword(ctx, db.PasswordReset{TokenHash: hash, UserID: t.UserID, PasswordHash: passwordHash,
		CutoffAt: cut, Session: sess, Refresh: rt}, s.clock())
	if errors.Is(err, db.ErrNotFound) {
		return nil, ErrInvalidToken
	}
	if err != nil {
		return nil, fmt.Errorf("reset password: %w", err)
	}
	s.revocations.CutOff(t.UserID, cut, "")
	s.logger.Info("password reset: every session revoked", "user_id", t.UserID, "request_id", ClientFromContext(ctx).RequestID)
	return s.issue(toUser(u), sess.ID, refresh, rt.ExpiresAt, true, AAL1, MethodPassword)
}
