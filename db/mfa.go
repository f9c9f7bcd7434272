package db

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Factor is a row of the mfa_factors table: a second factor of a user.
type Factor struct {
	ID           string  `db:"id"`
	UserID       string  `db:"user_id"`
	Type         string  `db:"type"`
	FriendlyName *string `db:"friendly_name"`
	// Secret is sealed by the caller; the database never sees it in plaintext.
	Secret     string     `db:"secret"`
	CreatedAt  time.Time  `db:"created_at"`
	VerifiedAt *time.Time `db:"verified_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
	// LastStep is the last accepted TOTP time step.
	LastStep *int64 `db:"last_step"`
}

const factorColumns = `id, user_id, type, friendly_name, secret, created_at, verified_at, last_used_at, last_step`

// ErrNotEnrolled means that the user has no verified factor.
var ErrNotEnrolled = errors.New("no verified factor")

// CreateFactor inserts f unless its user already has max factors (then
// ErrLimitReached). The user's row is locked first, so concurrent
// enrollments cannot pass the limit together.
func (s *Store) CreateFactor(ctx context.Context, f Factor, max int) error {
	return s.inTx(ctx, func(tx querier) error {
		var id string
		if err := tx.GetContext(ctx, &id, tx.Rebind(`SELECT id FROM users WHERE id = ?`+s.forUpdate()), f.UserID); err != nil {
			return fmt.Errorf("lock user: %w", translate(err))
		}
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM mfa_factors WHERE user_id = ?`), f.UserID); err != nil {
			return fmt.Errorf("count factors: %w", translate(err))
		}
		if n >= max {
			return ErrLimitReached
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO mfa_factors (`+factorColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			f.ID, f.UserID, f.Type, f.FriendlyName, f.Secret, f.CreatedAt, f.VerifiedAt, f.LastUsedAt, f.LastStep); err != nil {
			return fmt.Errorf("insert factor: %w", translate(err))
		}
		return nil
	})
}

// Factors lists the factors of userID, oldest first.
func (s *Store) Factors(ctx context.Context, userID string) ([]Factor, error) {
	var out []Factor
	if err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+factorColumns+` FROM mfa_factors
		WHERE user_id = ? ORDER BY created_at, id`), userID); err != nil {
		return nil, fmt.Errorf("list factors: %w", translate(err))
	}
	for i := range out {
		out[i] = utcFactor(out[i])
	}
	return out, nil
}

// FactorOf returns the factor id of userID, or ErrNotFound (also when it
// belongs to someone else).
func (s *Store) FactorOf(ctx context.Context, userID, id string) (Factor, error) {
	var f Factor
	if err := s.q().GetContext(ctx, &f, s.rebind(`SELECT `+factorColumns+` FROM mfa_factors
		WHERE id = ? AND user_id = ?`), id, userID); err != nil {
		return Factor{}, fmt.Errorf("load factor: %w", translate(err))
	}
	return utcFactor(f), nil
}

// StepUp is what a verified second factor changes: the session it raises,
// and the refresh token that replaces the session's current one.
type StepUp struct {
	SessionID string
	AAL, AMR  string
	Next      RefreshToken
	Now       time.Time
}

// StepUpResult is the outcome of AcceptTOTP and UseRecoveryCode.
type StepUpResult struct {
	// Accepted is false when the code was refused (replayed, used, unknown).
	Accepted bool
	// FirstVerification is true when this code verified its factor.
	FirstVerification bool
	Session           Session
	User              User
}

// AcceptTOTP accepts the TOTP time step step for factor factorID of userID
// and steps the session up, in one transaction. The step is accepted only if
// it is later than every step accepted before, by one conditional UPDATE
// (never a read then a write): of concurrent presentations of one code, on
// any session or instance, exactly one changes the row and the others see
// zero rows affected. The first accepted code of a factor verifies it and
// revokes every other session of the user (they never proved the factor),
// announced on RevocationChannel.
func (s *Store) AcceptTOTP(ctx context.Context, userID, factorID string, step int64, up StepUp) (StepUpResult, error) {
	var r StepUpResult
	err := s.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_factors SET last_step = ?, last_used_at = ?
			WHERE id = ? AND user_id = ? AND (last_step IS NULL OR last_step < ?)`), step, up.Now, factorID, userID, step)
		if err != nil {
			return fmt.Errorf("accept step: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil // replayed (or an older step): refused
		}
		res, err = tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_factors SET verified_at = ? WHERE id = ? AND verified_at IS NULL`), up.Now, factorID)
		if err != nil {
			return fmt.Errorf("verify factor: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r.FirstVerification = true
			if err := cutOff(ctx, tx, s.driver, userID, up.SessionID, up.Now); err != nil {
				return err
			}
		}
		if err := s.stepUp(ctx, tx, userID, up, &r); err != nil {
			return err
		}
		r.Accepted = true
		return nil
	})
	if err != nil || !r.Accepted {
		return StepUpResult{}, err
	}
	return r, nil
}

// UseRecoveryCode marks the unused recovery code of userID whose hash is
// codeHash as used and steps the session up, in one transaction. A code is
// used once: the conditional UPDATE changes one row for exactly one caller.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, codeHash string, up StepUp) (StepUpResult, error) {
	var r StepUpResult
	err := s.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE recovery_codes SET used_at = ?
			WHERE user_id = ? AND code_hash = ? AND used_at IS NULL`), up.Now, userID, codeHash)
		if err != nil {
			return fmt.Errorf("use recovery code: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		if err := s.stepUp(ctx, tx, userID, up, &r); err != nil {
			return err
		}
		r.Accepted = true
		return nil
	})
	if err != nil || !r.Accepted {
		return StepUpResult{}, err
	}
	return r, nil
}

// stepUp raises the live session up.SessionID of userID to up.AAL and gives
// it up.Next as its only live refresh token: the tokens it had are retired
// without a successor, so that a refresh token issued before the second
// factor never yields one issued after it (presented again within the grace
// window it is refused; after it, it counts as reuse and revokes the session).
// A session revoked or expired meanwhile is ErrNotFound.
func (s *Store) stepUp(ctx context.Context, tx querier, userID string, up StepUp, r *StepUpResult) error {
	res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE sessions SET aal = ?, amr = ?, last_used_at = ?, expires_at = ?
		WHERE id = ? AND user_id = ? AND revoked_at IS NULL AND expires_at > ? AND `+notCutOff),
		up.AAL, up.AMR, up.Now, up.Next.ExpiresAt, up.SessionID, userID, up.Now)
	if err != nil {
		return fmt.Errorf("step up session: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return ErrNotFound
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE refresh_tokens SET rotated_at = ?, successor = NULL
		WHERE session_id = ? AND rotated_at IS NULL`), up.Now, up.SessionID); err != nil {
		return fmt.Errorf("retire refresh tokens: %w", translate(err))
	}
	next := up.Next
	next.SessionID = up.SessionID
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO refresh_tokens
		(token_hash, session_id, created_at, expires_at, rotated_at) VALUES (?, ?, ?, ?, ?)`),
		next.Hash, next.SessionID, next.CreatedAt, next.ExpiresAt, next.RotatedAt); err != nil {
		return fmt.Errorf("insert refresh token: %w", translate(err))
	}
	if err := tx.GetContext(ctx, &r.Session, tx.Rebind(`SELECT `+sessionColumns+` FROM sessions WHERE id = ?`), up.SessionID); err != nil {
		return fmt.Errorf("load session: %w", translate(err))
	}
	if err := tx.GetContext(ctx, &r.User, tx.Rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), userID); err != nil {
		return fmt.Errorf("load user: %w", translate(err))
	}
	r.Session, r.User = utcSession(r.Session), utcUser(r.User)
	return nil
}

// DeleteFactor deletes the factor id of userID (ErrNotFound if it is not
// theirs) and, when no verified factor remains, the user's recovery codes,
// in one transaction.
func (s *Store) DeleteFactor(ctx context.Context, userID, id string) error {
	return s.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_factors WHERE id = ? AND user_id = ?`), id, userID)
		if err != nil {
			return fmt.Errorf("delete factor: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM recovery_codes WHERE user_id = ? AND NOT EXISTS
			(SELECT 1 FROM mfa_factors WHERE user_id = ? AND verified_at IS NOT NULL)`), userID, userID); err != nil {
			return fmt.Errorf("delete recovery codes: %w", translate(err))
		}
		return nil
	})
}

// ReplaceRecoveryCodes deletes the recovery codes of userID and stores
// hashes instead, in one transaction; without a verified factor it changes
// nothing and returns ErrNotEnrolled.
func (s *Store) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	return s.inTx(ctx, func(tx querier) error {
		var n int
		if err := tx.GetContext(ctx, &n, tx.Rebind(`SELECT count(*) FROM mfa_factors WHERE user_id = ? AND verified_at IS NOT NULL`), userID); err != nil {
			return fmt.Errorf("count verified factors: %w", translate(err))
		}
		if n == 0 {
			return ErrNotEnrolled
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
			return fmt.Errorf("delete recovery codes: %w", translate(err))
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?, ?, ?)`),
				userID, h, now); err != nil {
				return fmt.Errorf("insert recovery code: %w", translate(err))
			}
		}
		return nil
	})
}

// ResetMFA deletes every factor and recovery code of the user named username
// and revokes all their sessions, in one transaction (an operator's remedy
// for a lost device). It returns the user's id and the sessions revoked, or
// ErrNotFound.
func (s *Store) ResetMFA(ctx context.Context, username string, now time.Time) (string, error) {
	var userID string
	err := s.inTx(ctx, func(tx querier) error {
		if err := tx.GetContext(ctx, &userID, tx.Rebind(`SELECT id FROM users WHERE lower(username) = lower(?)`+s.forUpdate()), username); err != nil {
			return fmt.Errorf("find user: %w", translate(err))
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM mfa_factors WHERE user_id = ?`), userID); err != nil {
			return fmt.Errorf("delete factors: %w", translate(err))
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM recovery_codes WHERE user_id = ?`), userID); err != nil {
			return fmt.Errorf("delete recovery codes: %w", translate(err))
		}
		return cutOff(ctx, tx, s.driver, userID, "", now)
	})
	return userID, err
}

func utcFactor(f Factor) Factor {
	f.CreatedAt = f.CreatedAt.UTC()
	for _, t := range []**time.Time{&f.VerifiedAt, &f.LastUsedAt} {
		if *t != nil {
			u := (*t).UTC()
			*t = &u
		}
	}
	return f
}
