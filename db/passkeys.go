package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Passkey is a row of webauthn_credentials: the credential of a WEBAUTHN
// factor. Binary values are base64url (no padding), so that both databases
// keep them as text.
type Passkey struct {
	FactorID          string `db:"factor_id"`
	UserID            string `db:"user_id"`
	CredentialID      string `db:"credential_id"`
	PublicKey         string `db:"public_key"`
	AttestationType   string `db:"attestation_type"`
	AttestationFormat string `db:"attestation_format"`
	AAGUID            string `db:"aaguid"`
	SignCount         int64  `db:"sign_count"`
	// Transports is comma-separated ("internal,hybrid").
	Transports     string `db:"transports"`
	UserPresent    bool   `db:"user_present"`
	UserVerified   bool   `db:"user_verified"`
	BackupEligible bool   `db:"backup_eligible"`
	BackupState    bool   `db:"backup_state"`
}

var passkeyColumnList = []string{"factor_id", "user_id", "credential_id", "public_key", "attestation_type",
	"attestation_format", "aaguid", "sign_count", "transports", "user_present", "user_verified", "backup_eligible",
	"backup_state"}

// passkeyColumns are the columns of webauthn_credentials; qualifiedPasskeyColumns
// the same, of the table aliased c.
var (
	passkeyColumns          = strings.Join(passkeyColumnList, ", ")
	qualifiedPasskeyColumns = "c." + strings.Join(passkeyColumnList, ", c.")
)

// Challenge is a row of webauthn_challenges: a ceremony begun and not yet
// finished.
type Challenge struct {
	// Hash is the SHA-256 of the challenge, hex: the challenge itself is
	// never stored.
	Hash string `db:"challenge_hash"`
	// Ceremony is "registration" or "login".
	Ceremony string `db:"ceremony"`
	// UserID is the user a registration is for, or whose credentials a login
	// allows; nil for a discoverable login.
	UserID *string `db:"user_id"`
	// SessionID is the session that began a registration.
	SessionID *string `db:"session_id"`
	// SessionData is the library's record of the ceremony, JSON.
	SessionData string    `db:"session_data"`
	CreatedAt   time.Time `db:"created_at"`
	ExpiresAt   time.Time `db:"expires_at"`
}

const challengeColumns = `challenge_hash, ceremony, user_id, session_id, session_data, created_at, expires_at`

// The ceremonies a challenge may belong to.
const (
	CeremonyRegistration = "registration"
	CeremonyLogin        = "login"
)

// CreateChallenge stores a ceremony's challenge.
func (s *Store) CreateChallenge(ctx context.Context, c Challenge) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`INSERT INTO webauthn_challenges (`+challengeColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), c.Hash, c.Ceremony, c.UserID, c.SessionID, c.SessionData, c.CreatedAt, c.ExpiresAt); err != nil {
		return fmt.Errorf("insert challenge: %w", translate(err))
	}
	return nil
}

// TakeChallenge deletes the challenge whose hash is hash and returns it, or
// ErrNotFound. One DELETE … RETURNING does both, so of concurrent callers
// presenting the same challenge, on any instance, exactly one gets it: a
// challenge is used once, whatever the ceremony's outcome. The caller checks
// its ceremony and expiry.
func (s *Store) TakeChallenge(ctx context.Context, hash string) (Challenge, error) {
	var c Challenge
	if err := s.q().GetContext(ctx, &c, s.rebind(`DELETE FROM webauthn_challenges WHERE challenge_hash = ?
		RETURNING `+challengeColumns), hash); err != nil {
		return Challenge{}, fmt.Errorf("take challenge: %w", translate(err))
	}
	c.CreatedAt, c.ExpiresAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC()
	return c, nil
}

// Passkeys lists the credentials of userID, oldest first.
func (s *Store) Passkeys(ctx context.Context, userID string) ([]Passkey, error) {
	var out []Passkey
	if err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+qualifiedPasskeyColumns+`
		FROM webauthn_credentials c JOIN mfa_factors f ON f.id = c.factor_id
		WHERE c.user_id = ? ORDER BY f.created_at, f.id`), userID); err != nil {
		return nil, fmt.Errorf("list passkeys: %w", translate(err))
	}
	return out, nil
}

// PasskeyByCredentialID returns the credential whose id is credentialID
// (base64url), whoever owns it, or ErrNotFound.
func (s *Store) PasskeyByCredentialID(ctx context.Context, credentialID string) (Passkey, error) {
	var p Passkey
	if err := s.q().GetContext(ctx, &p, s.rebind(`SELECT `+passkeyColumns+` FROM webauthn_credentials
		WHERE credential_id = ?`), credentialID); err != nil {
		return Passkey{}, fmt.Errorf("load passkey: %w", translate(err))
	}
	return p, nil
}

// CreatePasskey inserts the verified WEBAUTHN factor f and its credential p,
// in one transaction, unless the user already has max factors
// (ErrLimitReached) or the credential id is registered already, to anyone
// (ErrConflict). When f is the user's first verified factor, every other
// session than exceptSession is revoked, as the first TOTP code does: they
// never proved the new factor. It reports whether f was the first.
func (s *Store) CreatePasskey(ctx context.Context, f Factor, p Passkey, max int, exceptSession string) (first bool, err error) {
	err = s.inTx(ctx, func(tx querier) error {
		var id string
		if err := tx.GetContext(ctx, &id, tx.Rebind(`SELECT id FROM users WHERE id = ?`+s.forUpdate()), f.UserID); err != nil {
			return fmt.Errorf("lock user: %w", translate(err))
		}
		var counts struct {
			All      int `db:"all_factors"`
			Verified int `db:"verified"`
		}
		if err := tx.GetContext(ctx, &counts, tx.Rebind(`SELECT count(*) AS all_factors,
			count(verified_at) AS verified FROM mfa_factors WHERE user_id = ?`), f.UserID); err != nil {
			return fmt.Errorf("count factors: %w", translate(err))
		}
		if counts.All >= max {
			return ErrLimitReached
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO mfa_factors (`+factorColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			f.ID, f.UserID, f.Type, f.FriendlyName, f.Secret, f.CreatedAt, f.VerifiedAt, f.LastUsedAt, f.LastStep); err != nil {
			return fmt.Errorf("insert factor: %w", translate(err))
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO webauthn_credentials (`+passkeyColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			p.FactorID, p.UserID, p.CredentialID, p.PublicKey, p.AttestationType, p.AttestationFormat, p.AAGUID,
			p.SignCount, p.Transports, p.UserPresent, p.UserVerified, p.BackupEligible, p.BackupState); err != nil {
			return fmt.Errorf("insert passkey: %w", translate(err))
		}
		if counts.Verified == 0 {
			first = true
			return cutOff(ctx, tx, s.driver, f.UserID, exceptSession, f.CreatedAt)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return first, nil
}

// PasskeyUse is what an accepted assertion changes in its credential.
type PasskeyUse struct {
	FactorID string
	// SignCount is the assertion's counter. It is stored only if it is above
	// the stored one, or if both are zero (a key that does not count).
	SignCount   int64
	BackupState bool
	Now         time.Time
}

// usePasskey advances the counter of u's credential by one conditional
// UPDATE (never a read then a write): of two assertions carrying the same
// counter, on any instance, one changes the row and the other is refused,
// as is a counter that went backwards. It reports whether the row changed.
func usePasskey(ctx context.Context, tx querier, u PasskeyUse) (bool, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE webauthn_credentials SET sign_count = ?, backup_state = ?
		WHERE factor_id = ? AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`),
		u.SignCount, u.BackupState, u.FactorID, u.SignCount, u.SignCount)
	if err != nil {
		return false, fmt.Errorf("advance sign count: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE mfa_factors SET last_used_at = ? WHERE id = ?`), u.Now, u.FactorID); err != nil {
		return false, fmt.Errorf("mark factor used: %w", translate(err))
	}
	return true, nil
}

// ErrCounterNotAdvanced means that an assertion's signature counter was not
// above the stored one (a cloned key, or an assertion replayed at once).
var ErrCounterNotAdvanced = errors.New("signature counter did not advance")

// UsePasskey records the use u of a credential (ErrCounterNotAdvanced when
// its counter did not advance).
func (s *Store) UsePasskey(ctx context.Context, u PasskeyUse) error {
	return s.inTx(ctx, func(tx querier) error {
		ok, err := usePasskey(ctx, tx, u)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCounterNotAdvanced
		}
		return nil
	})
}

// AcceptPasskey records the use u of a credential of userID and steps the
// session up, in one transaction, as AcceptTOTP does for a code. A counter
// that did not advance is ErrCounterNotAdvanced and changes nothing.
func (s *Store) AcceptPasskey(ctx context.Context, userID string, u PasskeyUse, up StepUp) (StepUpResult, error) {
	var r StepUpResult
	err := s.inTx(ctx, func(tx querier) error {
		ok, err := usePasskey(ctx, tx, u)
		if err != nil {
			return err
		}
		if !ok {
			return ErrCounterNotAdvanced
		}
		if err := s.stepUp(ctx, tx, userID, up, &r); err != nil {
			return err
		}
		r.Accepted = true
		return nil
	})
	if err != nil {
		return StepUpResult{}, err
	}
	return r, nil
}

// deleteExpiredChallenges deletes the challenges of ceremonies never
// finished, once they can no longer be used.
func deleteExpiredChallenges(ctx context.Context, tx querier, now time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM webauthn_challenges WHERE expires_at < ?`), now)
	if err != nil {
		return 0, fmt.Errorf("delete challenges: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}
