package db

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// RevocationChannel is the PostgreSQL NOTIFY channel on which every
// revocation is announced, in the same transaction that writes it: a revoked
// session ("session <id> <unix µs>", SessionNotice), every session of a user
// but one ("sessions <user id> <unix µs> [<except>]", UserSessionsNotice) or a changed role
// ("role <user id> <role> <unix µs>", RoleNotice). The time is the revocation's, so
// that a listener can measure how long the notification took; listeners
// also accept the payloads without it that earlier builds sent.
const RevocationChannel = "tollgate_revocations"

// SessionNotice is the payload announcing that session id was revoked at at.
func SessionNotice(id string, at time.Time) string { return "session " + id + " " + unixMicro(at) }

// UserSessionsNotice is the payload announcing that every session of userID
// created no later than at but except ("" for none) was revoked (a Cutoff).
func UserSessionsNotice(userID string, at time.Time, except string) string {
	n := "sessions " + userID + " " + unixMicro(at)
	if except != "" {
		n += " " + except
	}
	return n
}

// RoleNotice is the payload announcing that userID has had role since at.
func RoleNotice(userID, role string, at time.Time) string {
	return "role " + userID + " " + role + " " + unixMicro(at)
}

func unixMicro(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// notify sends payload on channel when the transaction commits (PostgreSQL
// only: SQLite has a single instance, which learns of its own writes directly).
func notify(ctx context.Context, tx querier, driver, channel, payload string) error {
	if driver != Postgres {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify %s: %w", channel, translate(err))
	}
	return nil
}

func (s *Store) notify(ctx context.Context, tx querier, channel, payload string) error {
	return notify(ctx, tx, s.driver, channel, payload)
}

const sessionColumns = `id, user_id, created_at, last_used_at, expires_at, revoked_at, user_agent, aal, amr`

// RotateOutcome says what RotateRefreshToken did.
type RotateOutcome int

// The outcomes of RotateRefreshToken.
const (
	// Rotated: the token was live; it is now retired and next replaces it.
	Rotated RotateOutcome = iota + 1
	// RotatedInGrace: the token was retired within the grace window;
	// Rotation.Successor is the successor it was given then.
	RotatedInGrace
	// ReuseDetected: the token was retired before the grace window; the
	// session has been revoked.
	ReuseDetected
	// Refused: the token is unknown or expired, or its session is revoked or expired.
	Refused
)

// Rotation is the result of RotateRefreshToken.
type Rotation struct {
	Outcome RotateOutcome
	Session Session
	User    User
	// Successor is the sealed successor kept by a token retired within the
	// grace window (RotatedInGrace).
	Successor string
	// Fresh is true when the rotation used up the session's fresh grant
	// (Session.FreshUntil, not yet passed): this refresh counts as a fresh
	// sign-in.
	Fresh bool
}

// Presented is a refresh token as presented: the hash of its text, and the
// session it names if the caller could verify that ("" for a token that
// names none).
type Presented struct {
	Hash      string
	SessionID string
}

// RotateRefreshToken retires the presented refresh token and stores its
// successor, which mint makes for the token's session (returning the row to
// insert and the successor sealed, which the retired row keeps for the grace
// window), in one transaction. The rows of the token and its session are
// locked (FOR UPDATE on PostgreSQL; SQLite's immediate transactions take the
// write lock at BEGIN), so concurrent presentations of one token are decided
// one after the other: the first rotates, the others see it retired and,
// within the grace window, get the same successor. A session thus has one
// live refresh token.
//
// Retired tokens are kept only for the grace window; after it, a token that
// names a live session but is no longer stored can only be one of its
// retired tokens, and presenting it is reuse, as presenting a stored retired
// one is. So a session holds a bounded number of rows however often it is
// refreshed.
func (s *Store) RotateRefreshToken(ctx context.Context, presented Presented, mint func(sessionID string) (RefreshToken, string),
	now time.Time, grace time.Duration) (Rotation, error) {
	end, err := s.turn(ctx)
	if err != nil {
		return Rotation{}, err
	}
	defer end()
	var r Rotation
	err = s.inTx(ctx, func(tx querier) error {
		var old RefreshToken
		err := tx.GetContext(ctx, &old, tx.Rebind(`SELECT `+refreshColumns+`
			FROM refresh_tokens WHERE token_hash = ?`+s.forUpdate()), presented.Hash)
		known := err == nil
		switch {
		case errors.Is(err, errNoRows) && presented.SessionID == "":
			r.Outcome = Refused
			return nil
		case errors.Is(err, errNoRows):
			old.SessionID = presented.SessionID
		case err != nil:
			return fmt.Errorf("load refresh token: %w", translate(err))
		}
		err = tx.GetContext(ctx, &r.Session, tx.Rebind(`SELECT `+sessionColumns+` FROM sessions WHERE id = ?`+s.forUpdate()), old.SessionID)
		if errors.Is(err, errNoRows) {
			r.Outcome = Refused
			return nil
		}
		if err != nil {
			return fmt.Errorf("load session: %w", translate(err))
		}
		if r.Session.RevokedAt != nil || !now.Before(r.Session.ExpiresAt) || (known && !now.Before(old.ExpiresAt)) {
			r.Outcome = Refused
			return nil
		}
		var live int
		if err := tx.GetContext(ctx, &live, tx.Rebind(`SELECT count(*) FROM sessions WHERE id = ? AND `+notCutOff), r.Session.ID); err != nil {
			return fmt.Errorf("check session: %w", translate(err))
		}
		if live == 0 {
			r.Outcome = Refused // revoked with every session of its user
			return nil
		}
		switch {
		case known && old.RotatedAt == nil:
			// RotateLive has rotated any live token that names its
			// session: only one of the earlier, unnamed form is live here.
			res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE sessions SET fresh_until = NULL
				WHERE id = ? AND fresh_until IS NOT NULL AND fresh_until >= ?`), r.Session.ID, now)
			if err != nil {
				return fmt.Errorf("use fresh grant: %w", translate(err))
			}
			n, _ := res.RowsAffected()
			r.Fresh = n == 1
			next, sealed := mint(r.Session.ID)
			if err := s.rotate(ctx, tx, presented.Hash, next, sealed, r.Session.ID, now, grace); err != nil {
				return err
			}
			r.Outcome = Rotated
			r.Session.LastUsedAt, r.Session.ExpiresAt = now, next.ExpiresAt
		case known && grace > 0 && now.Sub(*old.RotatedAt) <= grace:
			if old.Successor == nil {
				r.Outcome = Refused // its copy is gone: nothing to hand out again
				return nil
			}
			r.Outcome, r.Successor = RotatedInGrace, *old.Successor
		default:
			// Retired before the window, whether its row is still kept or not.
			if _, err := revokeSessionsReturning(ctx, tx, s.driver, now, `id = ?`, r.Session.ID); err != nil {
				return err
			}
			r.Outcome = ReuseDetected
			return nil
		}
		if err := tx.GetContext(ctx, &r.User, tx.Rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), r.Session.UserID); err != nil {
			return fmt.Errorf("load user: %w", translate(err))
		}
		return nil
	})
	if err != nil {
		return Rotation{}, err
	}
	r.User = utcUser(r.User)
	r.Session = utcSession(r.Session)
	return r, nil
}

const refreshColumns = `token_hash, session_id, created_at, expires_at, rotated_at, successor`

// The statements of rotate, prepared (they run on every refresh).
const (
	retireToken = `UPDATE refresh_tokens SET rotated_at = ?, successor = ?
		WHERE token_hash = ? AND rotated_at IS NULL`
	forgetRetired = `DELETE FROM refresh_tokens WHERE session_id = ? AND rotated_at < ?`
	insertToken   = `INSERT INTO refresh_tokens
		(token_hash, session_id, created_at, expires_at, rotated_at) VALUES (?, ?, ?, ?, ?)`
	touchSession = `UPDATE sessions SET last_used_at = ?, expires_at = ?, fresh_until = NULL WHERE id = ?`
)

// rotate retires oldHash (keeping sealedNext), inserts next, extends the
// session and clears its fresh grant (used, or now moot). It also deletes
// the session's tokens retired before the grace window: reuse detection no
// longer needs their rows.
func (s *Store) rotate(ctx context.Context, tx querier, oldHash string, next RefreshToken, sealedNext, sessionID string, now time.Time, grace time.Duration) error {
	res, err := tx.ExecPrepared(ctx, s.rebind(retireToken), now, sealedNext, oldHash)
	if err != nil {
		return fmt.Errorf("retire refresh token: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errors.New("retire refresh token: lost a race the row lock should have prevented")
	}
	if _, err := tx.ExecPrepared(ctx, s.rebind(forgetRetired), sessionID, now.Add(-grace)); err != nil {
		return fmt.Errorf("forget retired refresh tokens: %w", translate(err))
	}
	next.SessionID = sessionID
	if _, err := tx.ExecPrepared(ctx, s.rebind(insertToken),
		next.Hash, next.SessionID, next.CreatedAt, next.ExpiresAt, next.RotatedAt); err != nil {
		return fmt.Errorf("insert refresh token: %w", translate(err))
	}
	if _, err := tx.ExecPrepared(ctx, s.rebind(touchSession), now, next.ExpiresAt, sessionID); err != nil {
		return fmt.Errorf("touch session: %w", translate(err))
	}
	return nil
}

// DeleteRetired deletes the refresh tokens retired before before (their
// grace window has closed), with the successor copies they kept, and
// returns how many it deleted.
//
// It deletes them retiredBatch at a time, each batch a statement of its own
// in a turn of its own (turn), queued with the refreshes: the rows left
// since the last run are as many as clients made them (a client refreshing
// in a loop leaves one a refresh until the window closes), and deleted in
// one statement they held SQLite's one writer, and so every refresh, for as
// long as that took (the p99 of refreshToken on SQLite was 254-326 ms
// after 66 such clients had left about 26,000 in 10 s: bench/README.md).
func (s *Store) DeleteRetired(ctx context.Context, before time.Time) (int64, error) {
	query := s.rebind(`DELETE FROM refresh_tokens WHERE token_hash IN
		(SELECT token_hash FROM refresh_tokens WHERE rotated_at < ? LIMIT ?)`)
	var total int64
	for {
		end, err := s.turn(ctx)
		if err != nil {
			return total, err
		}
		res, err := s.q().ExecContext(ctx, query, before, s.retiredBatch)
		end()
		if err != nil {
			return total, fmt.Errorf("delete retired refresh tokens: %w", translate(err))
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += n
		if n < int64(s.retiredBatch) {
			return total, nil
		}
	}
}

// retiredBatch is how many retired refresh tokens one statement of
// DeleteRetired deletes: on SQLite a few milliseconds of the writer's time.
const retiredBatch = 500

// RevokeSession revokes the live session id of userID. It returns the ids
// revoked: none when id is not a live session of that user.
func (s *Store) RevokeSession(ctx context.Context, userID, id string, now time.Time) ([]string, error) {
	return s.revoke(ctx, now, `id = ? AND user_id = ? AND expires_at > ? AND `+notCutOff, id, userID, now)
}

// Cutoff revokes, in one write whatever their number, every session of
// UserID created no later than At, but Except (nil for none): what
// logout(allSessions), a password change and the first verification of a
// second factor do. It is kept on the user's row; a later cutoff replaces an
// earlier one, which it covers.
type Cutoff struct {
	UserID string    `db:"id"`
	At     time.Time `db:"sessions_revoked_at"`
	Except *string   `db:"sessions_revoked_except"`
}

// notCutOff holds for a row of sessions that no cutoff of its user covers.
const notCutOff = `NOT EXISTS (SELECT 1 FROM users cu WHERE cu.id = sessions.user_id
	AND cu.sessions_revoked_at IS NOT NULL AND sessions.created_at <= cu.sessions_revoked_at
	AND (cu.sessions_revoked_except IS NULL OR sessions.id <> cu.sessions_revoked_except))`

// RevokeUserSessions revokes every session of userID but except ("" for
// none) as of now: one UPDATE of the user's row and one notice, however many
// sessions there are.
func (s *Store) RevokeUserSessions(ctx context.Context, userID, except string, now time.Time) error {
	return s.inTx(ctx, func(tx querier) error {
		return cutOff(ctx, tx, s.driver, userID, except, now)
	})
}

// CountLiveSessions is the number of live sessions of userID.
func (s *Store) CountLiveSessions(ctx context.Context, userID string, now time.Time) (int, error) {
	var n int
	if err := s.q().GetContext(ctx, &n, s.rebind(`SELECT count(*) FROM sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND `+notCutOff), userID, now); err != nil {
		return 0, fmt.Errorf("count sessions: %w", translate(err))
	}
	return n, nil
}

// cutOff records the cutoff of userID at now and, on PostgreSQL, announces
// it ("sessions <user id> <unix µs> [<except>]", UserSessionsNotice) in the
// same transaction.
//
// A cutoff never moves back in time: an instance whose clock is behind may
// write its cutoff after a later one, and overwriting that one would bring
// back to life the sessions created between the two, in the database, for
// every instance that starts afterwards. So the later of the two times is
// kept (GREATEST; SQLite's two-argument MAX, which returns NULL if either is
// NULL, hence the COALESCE). The exception is kept only where both cutoffs
// agree on it: the later cutoff alone if it is the new one, the kept one if
// they spare the same session, and none otherwise, since the earlier cutoff
// did not spare the later one's exception (revoking one session too many is
// the safe side). The notice announces what was stored.
func cutOff(ctx context.Context, tx querier, driver, userID, except string, now time.Time) error {
	var keep *string
	if except != "" {
		keep = &except
	}
	greatest := "GREATEST"
	if driver != Postgres {
		greatest = "MAX"
	}
	var stored Cutoff
	err := tx.GetContext(ctx, &stored, tx.Rebind(`UPDATE users SET
		sessions_revoked_except = CASE
			WHEN sessions_revoked_at IS NULL OR sessions_revoked_at <= ? THEN ?
			WHEN sessions_revoked_except = ? THEN sessions_revoked_except
			ELSE NULL END,
		sessions_revoked_at = `+greatest+`(COALESCE(sessions_revoked_at, ?), ?)
		WHERE id = ? RETURNING id, sessions_revoked_at, sessions_revoked_except`),
		now, keep, keep, now, now, userID)
	if errors.Is(err, errNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("revoke sessions: %w", translate(err))
	}
	stored.At = stored.At.UTC()
	kept := ""
	if stored.Except != nil {
		kept = *stored.Except
	}
	return notify(ctx, tx, driver, RevocationChannel, UserSessionsNotice(userID, stored.At, kept))
}

// CutoffsSince lists the cutoffs written after since.
func (s *Store) CutoffsSince(ctx context.Context, since time.Time) ([]Cutoff, error) {
	var out []Cutoff
	if err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT id, sessions_revoked_at, sessions_revoked_except FROM users
		WHERE sessions_revoked_at > ? ORDER BY sessions_revoked_at`), since); err != nil {
		return nil, fmt.Errorf("list cutoffs: %w", translate(err))
	}
	for i := range out {
		out[i].At = out[i].At.UTC()
	}
	return out, nil
}

func (s *Store) revoke(ctx context.Context, now time.Time, where string, args ...any) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(tx querier) error {
		var err error
		ids, err = revokeSessionsReturning(ctx, tx, s.driver, now, where, args...)
		return err
	})
	return ids, err
}

// ChangePassword stores a new password hash for userID, ends every reset
// token of the user and revokes every other session of the user (a cutoff),
// in one transaction.
func (s *Store) ChangePassword(ctx context.Context, userID, hash, keepSession string, now time.Time) error {
	return s.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET password_hash = ? WHERE id = ?`), hash, userID)
		if err != nil {
			return fmt.Errorf("update password: %w", translate(err))
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrNotFound
		}
		// A reset mailed for the old password must not undo the new one.
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM email_tokens WHERE user_id = ? AND purpose = ?`), userID, PurposeReset); err != nil {
			return fmt.Errorf("end reset tokens: %w", translate(err))
		}
		return cutOff(ctx, tx, s.driver, userID, keepSession, now)
	})
}

// revokeSessionsReturning marks the matching live sessions revoked and, on
// PostgreSQL, announces each on RevocationChannel. It serves the revocations
// of a few sessions (one, or those beyond SESSIONS_PER_USER); every session
// of a user is revoked by a cutoff instead. NOTIFY is transactional: other
// instances hear of a revocation exactly when it commits.
func revokeSessionsReturning(ctx context.Context, tx querier, driver string, now time.Time, where string, args ...any) ([]string, error) {
	var ids []string
	if err := tx.SelectContext(ctx, &ids, tx.Rebind(`UPDATE sessions SET revoked_at = ?
		WHERE revoked_at IS NULL AND `+where+` RETURNING id`), append([]any{now}, args...)...); err != nil {
		return nil, fmt.Errorf("revoke sessions: %w", translate(err))
	}
	for _, id := range ids {
		if err := notify(ctx, tx, driver, RevocationChannel, SessionNotice(id, now)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// LiveSessions lists the sessions of userID that are neither revoked nor
// expired, newest first.
func (s *Store) LiveSessions(ctx context.Context, userID string, now time.Time) ([]Session, error) {
	var out []Session
	err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND `+notCutOff+` ORDER BY created_at DESC, id`), userID, now)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", translate(err))
	}
	for i := range out {
		out[i] = utcSession(out[i])
	}
	return out, nil
}

// Revoked is a revoked session.
type Revoked struct {
	ID        string    `db:"id"`
	RevokedAt time.Time `db:"revoked_at"`
}

// RevokedSince lists the sessions revoked after since: the ones whose access
// tokens may still be unexpired.
func (s *Store) RevokedSince(ctx context.Context, since time.Time) ([]Revoked, error) {
	var out []Revoked
	err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT id, revoked_at FROM sessions WHERE revoked_at > ? ORDER BY revoked_at`), since)
	if err != nil {
		return nil, fmt.Errorf("list revoked sessions: %w", translate(err))
	}
	for i := range out {
		out[i].RevokedAt = out[i].RevokedAt.UTC()
	}
	return out, nil
}

// DeleteExpired deletes the sessions that ended (expired or revoked) before
// before, with their refresh tokens: sessions whose access tokens have all
// expired too, so that their revocation no longer matters; the other refresh
// tokens that expired before before; and the WebAuthn challenges and
// sign-in flows that expired before now.
//
// An expired session is found through its live refresh token, which
// expires with it (sessions.expires_at has no index: see migration 00011).
// So a refresh token is kept until before, not only until its own expiry:
// deleted sooner, it would leave its session with nothing to find it by.
// An expired token is refused either way.
func (s *Store) DeleteExpired(ctx context.Context, now, before time.Time) (int64, error) {
	var n int64
	err := s.inTx(ctx, func(tx querier) error {
		const expired = `expires_at < ? AND id IN (SELECT session_id FROM refresh_tokens WHERE expires_at < ?)`
		// Deleting a session deletes its refresh tokens (ON DELETE CASCADE)
		// without counting them: they are counted first.
		var cascaded int64
		if err := tx.GetContext(ctx, &cascaded, tx.Rebind(`SELECT count(*) FROM refresh_tokens
			WHERE session_id IN (SELECT id FROM sessions WHERE `+expired+`)`), before, before); err != nil {
			return fmt.Errorf("count refresh tokens of expired sessions: %w", translate(err))
		}
		res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM sessions WHERE `+expired), before, before)
		if err != nil {
			return fmt.Errorf("delete expired sessions: %w", translate(err))
		}
		sessions, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM sessions WHERE revoked_at < ?`), before)
		if err != nil {
			return fmt.Errorf("delete revoked sessions: %w", translate(err))
		}
		revoked, _ := res.RowsAffected()
		res, err = tx.ExecContext(ctx, tx.Rebind(`DELETE FROM refresh_tokens WHERE expires_at < ?`), before)
		if err != nil {
			return fmt.Errorf("delete refresh tokens: %w", translate(err))
		}
		tokens, _ := res.RowsAffected()
		challenges, err := deleteExpiredChallenges(ctx, tx, now)
		if err != nil {
			return err
		}
		flows, err := deleteExpiredFlows(ctx, tx, now)
		if err != nil {
			return err
		}
		n = cascaded + sessions + revoked + tokens + challenges + flows
		return nil
	})
	return n, err
}

// forUpdate locks the selected rows on PostgreSQL; SQLite has no row locks
// and needs none, its transactions holding the write lock from BEGIN.
func (s *Store) forUpdate() string {
	if s.driver == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

func utcSession(sess Session) Session {
	sess.CreatedAt = sess.CreatedAt.UTC()
	sess.LastUsedAt = sess.LastUsedAt.UTC()
	sess.ExpiresAt = sess.ExpiresAt.UTC()
	if sess.RevokedAt != nil {
		t := sess.RevokedAt.UTC()
		sess.RevokedAt = &t
	}
	return sess
}
