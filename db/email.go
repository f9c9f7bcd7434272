package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lib/pq"
)

// ErrEmailTaken means that another user holds the address, verified or not.
var ErrEmailTaken = errors.New("email taken")

// The purposes of a mailed token.
const (
	PurposeVerify = "verify"
	PurposeReset  = "reset"
)

// EmailToken is a row of email_tokens: a token mailed to Email, of which only
// the SHA-256 (Hash) is kept.
type EmailToken struct {
	Hash      string    `db:"token_hash"`
	UserID    string    `db:"user_id"`
	Purpose   string    `db:"purpose"`
	Email     string    `db:"email"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

// EmailKey is the form of an address that is unique: lowercased by Go
// (Unicode-aware, the same whichever database), so that two spellings that
// differ only in case are one address.
func EmailKey(addr string) string { return strings.ToLower(addr) }

// insertUser inserts u. Inside the transaction the address is looked for
// first, so that a conflict on it is told apart from one on the username on
// both databases (SQLite's transactions hold the write lock, so the look is
// exact there; on PostgreSQL a concurrent insert is caught by the unique
// index, whose name the driver reports).
func insertUser(ctx context.Context, tx querier, u User) error {
	if u.EmailKey != nil {
		if err := emailFree(ctx, tx, *u.EmailKey, u.ID); err != nil {
			return err
		}
	}
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO users
		(id, username, password_hash, role, created_at, email, email_key, email_verified_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.Username, u.PasswordHash, u.Role, u.CreatedAt, u.Email, u.EmailKey, u.EmailVerifiedAt)
	if err != nil {
		return fmt.Errorf("insert user: %w", emailConflict(err))
	}
	return nil
}

// emailFree returns ErrEmailTaken when a user other than userID holds key.
func emailFree(ctx context.Context, tx querier, key, userID string) error {
	var taken bool
	if err := tx.GetContext(ctx, &taken, tx.Rebind(`SELECT EXISTS (SELECT 1 FROM users WHERE email_key = ? AND id <> ?)`), key, userID); err != nil {
		return fmt.Errorf("look for address: %w", translate(err))
	}
	if taken {
		return ErrEmailTaken
	}
	return nil
}

// emailConflict is translate, with a unique violation of users_email_key
// reported as ErrEmailTaken.
func emailConflict(err error) error {
	var pqErr *pq.Error
	if errors.As(err, &pqErr) && pqErr.Code == "23505" && pqErr.Constraint == "users_email_key" {
		return ErrEmailTaken
	}
	return translate(err)
}

// CreateUserWithEmail inserts a new user, its first session and refresh
// token, the verification token of its address and the mail that carries
// it, in one transaction: a sign-up that fails leaves nothing behind, and a
// mail is queued only for a user that exists.
func (s *Store) CreateUserWithEmail(ctx context.Context, u User, sess Session, rt RefreshToken, tok EmailToken, mail OutboxMail) error {
	return s.inTx(ctx, func(tx querier) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		if err := insertSession(ctx, tx, sess, rt); err != nil {
			return err
		}
		if err := insertEmailToken(ctx, tx, tok); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, mail)
	})
}

// CreateUserWithVerification inserts a user (no session) with the
// verification token of its address and its mail, in one transaction: the
// operator's user create --email.
func (s *Store) CreateUserWithVerification(ctx context.Context, u User, tok EmailToken, mail OutboxMail) error {
	return s.inTx(ctx, func(tx querier) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		if err := insertEmailToken(ctx, tx, tok); err != nil {
			return err
		}
		return insertOutbox(ctx, tx, mail)
	})
}

// IssueEmailToken ends every earlier token of tok's user and purpose, stores
// tok and queues mails (the token's mail, and any notice that goes with it),
// in one transaction: a mail is never queued for a token that was not
// stored, nor a token stored without its mail. When checkKey is set, the
// address must not be held by another user (changeEmail): ErrEmailTaken.
func (s *Store) IssueEmailToken(ctx context.Context, tok EmailToken, checkKey string, mails ...OutboxMail) error {
	return s.inTx(ctx, func(tx querier) error {
		if checkKey != "" {
			if err := emailFree(ctx, tx, checkKey, tok.UserID); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM email_tokens WHERE user_id = ? AND purpose = ?`), tok.UserID, tok.Purpose); err != nil {
			return fmt.Errorf("end earlier tokens: %w", translate(err))
		}
		if err := insertEmailToken(ctx, tx, tok); err != nil {
			return err
		}
		for _, m := range mails {
			if err := insertOutbox(ctx, tx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertEmailToken(ctx context.Context, tx querier, tok EmailToken) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO email_tokens (token_hash, user_id, purpose, email, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`), tok.Hash, tok.UserID, tok.Purpose, tok.Email, tok.CreatedAt, tok.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert email token: %w", translate(err))
	}
	return nil
}

// EmailToken returns the live token of purpose whose hash is hash, without
// using it: ErrNotFound for an unknown, used or expired one.
func (s *Store) EmailToken(ctx context.Context, hash, purpose string, now time.Time) (EmailToken, error) {
	var t EmailToken
	err := s.q().GetContext(ctx, &t, s.rebind(`SELECT token_hash, user_id, purpose, email, created_at, expires_at
		FROM email_tokens WHERE token_hash = ? AND purpose = ? AND expires_at > ?`), hash, purpose, now)
	if err != nil {
		return EmailToken{}, fmt.Errorf("email token: %w", translate(err))
	}
	t.CreatedAt, t.ExpiresAt = t.CreatedAt.UTC(), t.ExpiresAt.UTC()
	return t, nil
}

// useToken deletes the live token of purpose whose hash is hash and returns
// it: of two concurrent uses, exactly one deletes the row (ErrNotFound for
// the other).
func useToken(ctx context.Context, tx querier, hash, purpose string, now time.Time) (EmailToken, error) {
	var t EmailToken
	err := tx.GetContext(ctx, &t, tx.Rebind(`DELETE FROM email_tokens WHERE token_hash = ? AND purpose = ? AND expires_at > ?
		RETURNING token_hash, user_id, purpose, email, created_at, expires_at`), hash, purpose, now)
	if err != nil {
		return EmailToken{}, fmt.Errorf("use email token: %w", translate(err))
	}
	return t, nil
}

// VerifyEmail uses the verification token whose hash is hash and makes the
// address it was mailed to the user's verified address (for a changed
// address, replacing the old one only now), in one transaction. It returns
// the user's id; ErrNotFound for an unknown, used or expired token, and
// ErrEmailTaken when another user took the address in the meantime (the
// token then stays unused).
func (s *Store) VerifyEmail(ctx context.Context, hash string, now time.Time) (string, error) {
	var userID string
	err := s.inTx(ctx, func(tx querier) error {
		t, err := useToken(ctx, tx, hash, PurposeVerify, now)
		if err != nil {
			return err
		}
		userID = t.UserID
		key := EmailKey(t.Email)
		if err := emailFree(ctx, tx, key, t.UserID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET email = ?, email_key = ?, email_verified_at = ? WHERE id = ?`),
			t.Email, key, now, t.UserID)
		if err != nil {
			return fmt.Errorf("verify address: %w", emailConflict(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		// A verification ends the user's other verification tokens: they
		// would prove an address that is no longer the one asked for.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM email_tokens WHERE user_id = ? AND purpose = ?`), t.UserID, PurposeVerify); err != nil {
			return fmt.Errorf("end verification tokens: %w", translate(err))
		}
		return nil
	})
	return userID, err
}

// PasswordReset is what ResetPassword does besides setting the hash: the
// cutoff of every session, and the new session it opens after it.
type PasswordReset struct {
	TokenHash    string
	UserID       string
	PasswordHash string
	// CutoffAt revokes every session created no later than it; Session
	// (created after it) and Refresh are the new sign-in.
	CutoffAt time.Time
	Session  Session
	Refresh  RefreshToken
}

// ResetPassword uses the reset token of r.UserID whose hash is r.TokenHash,
// sets the password, ends every reset token of the user, revokes every
// session (a cutoff, announced on PostgreSQL) and opens r.Session, in one
// transaction. It returns the user. ErrNotFound means the token was unknown,
// used (also by a concurrent call) or expired, and nothing changed.
func (s *Store) ResetPassword(ctx context.Context, r PasswordReset, now time.Time) (User, error) {
	var u User
	err := s.inTx(ctx, func(tx querier) error {
		t, err := useToken(ctx, tx, r.TokenHash, PurposeReset, now)
		if err != nil {
			return err
		}
		if t.UserID != r.UserID {
			return ErrNotFound
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET password_hash = ? WHERE id = ?`), r.PasswordHash, r.UserID)
		if err != nil {
			return fmt.Errorf("update password: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM email_tokens WHERE user_id = ? AND purpose = ?`), r.UserID, PurposeReset); err != nil {
			return fmt.Errorf("end reset tokens: %w", translate(err))
		}
		if err := cutOff(ctx, tx, s.driver, r.UserID, "", r.CutoffAt); err != nil {
			return err
		}
		if err := insertSession(ctx, tx, r.Session, r.Refresh); err != nil {
			return err
		}
		if err := tx.GetContext(ctx, &u, tx.Rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), r.UserID); err != nil {
			return fmt.Errorf("load user: %w", translate(err))
		}
		return nil
	})
	return utcUser(u), err
}

// UserByVerifiedEmail finds the user whose verified address is key (an
// address lowercased as EmailKey is).
func (s *Store) UserByVerifiedEmail(ctx context.Context, key string) (User, error) {
	var u User
	err := s.q().GetContext(ctx, &u, s.rebind(`SELECT `+userColumns+` FROM users WHERE email_key = ? AND email_verified_at IS NOT NULL`), key)
	if err != nil {
		return User{}, fmt.Errorf("user by email: %w", translate(err))
	}
	return utcUser(u), nil
}

// DeleteExpiredEmailTokens deletes the tokens that expired by now.
func (s *Store) DeleteExpiredEmailTokens(ctx context.Context, now time.Time) (int64, error) {
	res, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM email_tokens WHERE expires_at <= ?`), now)
	if err != nil {
		return 0, fmt.Errorf("delete expired email tokens: %w", translate(err))
	}
	return res.RowsAffected()
}
