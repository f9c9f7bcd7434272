package db

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The refresh of a live token is what every client does every few minutes,
// so it has a path of its own, as cheap as the database allows
// (bench/README.md, "refreshToken and its floor"): RotateLive. Everything
// else a presented token can be (retired within the grace window, reused,
// unknown, of a revoked session, of the earlier unnamed form) takes the
// general path of RotateRefreshToken, which decides it.
//
// Both paths make the same change and lock the same rows: the token's row
// and its session's (FOR UPDATE on PostgreSQL; SQLite's immediate
// transactions hold the write lock from BEGIN), so concurrent presentations
// of one token are decided one after the other. The first finds the token
// live and rotates it; the others no longer find it live, rotate nothing,
// and go on to the general path, which sees it retired.

// rotatedRow is a session and its user, as the live path reads them back in
// its one statement: the columns are aliased "s.…" and "u.…" (sqlx fills
// the nested structs by those names).
type rotatedRow struct {
	Session       Session    `db:"s"`
	User          User       `db:"u"`
	WasFreshUntil *time.Time `db:"was_fresh_until"`
}

// aliased lists the comma-separated columns of table as `table.c AS "p.c"`,
// or as table.c when prefix is "".
func aliased(table, prefix, columns string) string {
	var b strings.Builder
	for i, c := range strings.Split(columns, ",") {
		c = strings.TrimSpace(c)
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, `%s.%s`, table, c)
		if prefix != "" {
			fmt.Fprintf(&b, ` AS "%s.%s"`, prefix, c)
		}
	}
	return b.String()
}

// rotatedColumns reads a session (of table sessions, named so in the
// query) and its user (of users) into a rotatedRow.
func rotatedColumns(sessions string) string {
	return aliased(sessions, "s", sessionColumns) + ", " + aliased("users", "u", userTableColumns) +
		`, ` + userMFAEnabled + ` AS "u.mfa_enabled"`
}

// liveToken is the condition for a token (refresh_tokens) to be rotated by
// the live path, with its session (sessions) joined: the token names the
// session its MAC showed ($2), is not retired and not expired, and its
// session is neither revoked, nor expired, nor cut off with every session
// of its user.
const liveToken = `refresh_tokens.token_hash = $1 AND refresh_tokens.session_id = $2
	AND refresh_tokens.rotated_at IS NULL AND refresh_tokens.expires_at > $3
	AND sessions.revoked_at IS NULL AND sessions.expires_at > $3 AND ` + notCutOff

// Throttle is an attempt to count, at most Max in the window
// [WindowStart, WindowEnd) of Bucket, as Hit counts it.
type Throttle struct {
	Bucket                 string
	WindowStart, WindowEnd time.Time
	Max                    int
}

// countAttempt counts one attempt in a throttle's bucket unless that would
// pass its limit; it returns the count, and no row when the limit is reached
// (nothing is counted then).
const countAttempt = `INSERT INTO rate_limits (bucket, window_start, expires_at, hits, in_flight)
	VALUES (?, ?, ?, 1, 0)
	ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_limits.hits + 1 WHERE rate_limits.hits < ?
	RETURNING hits`

// rotateLivePostgres is the whole rotation of a live token in one statement,
// so one round trip and one commit: lock the token and its session if the
// token is live (cur; a concurrent rotation of the same token makes the row
// fail the recheck once its lock is released, and cur is empty), retire the
// token keeping its sealed successor, insert the successor, forget the
// session's tokens retired before the grace window, extend the session and
// clear its fresh grant, and read the session and its user back. When cur
// is empty every other part does nothing and no row is returned.
//
// The throttle is counted before, in a statement of its own: its row is
// shared by every refresh from one address, and a row lock is held until
// commit, so in this statement it would make all of them wait for each
// other's whole rotation and commit, not just for the count.
//
// $1 presented hash, $2 session, $3 now, $4 sealed successor, $5 successor
// hash, $6 its expiry (and the session's), $7 the grace window's start.
var rotateLivePostgres = `WITH cur AS (
	SELECT refresh_tokens.session_id, sessions.fresh_until
	FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id
	WHERE ` + liveToken + `
	FOR UPDATE OF refresh_tokens, sessions
), retired AS (
	UPDATE refresh_tokens SET rotated_at = $3, successor = $4
	FROM cur WHERE refresh_tokens.token_hash = $1
	RETURNING cur.session_id, cur.fresh_until
), added AS (
	INSERT INTO refresh_tokens (token_hash, session_id, created_at, expires_at)
	SELECT $5::text, session_id, $3::timestamp, $6::timestamp FROM retired
), forgotten AS (
	DELETE FROM refresh_tokens WHERE session_id = (SELECT session_id FROM retired) AND rotated_at < $7
), touched AS (
	UPDATE sessions SET last_used_at = $3, expires_at = $6, fresh_until = NULL
	FROM retired WHERE sessions.id = retired.session_id
	RETURNING ` + aliased("sessions", "", sessionColumns) + `, retired.fresh_until AS was_fresh_until
)
SELECT ` + rotatedColumns("touched") + `, touched.was_fresh_until FROM touched JOIN users ON users.id = touched.user_id`

// rotateLiveSQLite reads the live token's session and its user (the write
// lock is held from BEGIN, so nothing changes them before the writes that
// follow in the same transaction). Its parameters are numbered as SQLite
// spells them (?1, not $1).
var rotateLiveSQLite = strings.ReplaceAll(`SELECT `+rotatedColumns("sessions")+`, sessions.fresh_until AS was_fresh_until
	FROM refresh_tokens JOIN sessions ON sessions.id = refresh_tokens.session_id
	JOIN users ON users.id = sessions.user_id
	WHERE `+liveToken, "$", "?")

// forgetEndedWindows deletes a bucket's rows of windows before the current
// one, as Hit does when it opens a window.
const forgetEndedWindows = `DELETE FROM rate_limits WHERE bucket = ? AND window_start < ?`

// RotateLive counts one attempt in throttle and, if the token presented is a
// live token of presented.SessionID, rotates it: the refresh every client
// makes every few minutes, at the least cost the database allows (on
// PostgreSQL two statements, the count and the rotation, without a
// transaction around them; on SQLite one transaction, which on its one
// writer is one turn instead of two).
//
// limited is true, with nothing counted or written, when the throttle's
// limit is reached. Otherwise the attempt is counted, and ok is false, with
// nothing else written, when the token is not live (retired, reused,
// unknown, of a session that is revoked, expired or cut off, or of the
// earlier unnamed form): RotateRefreshToken then decides the case.
func (s *Store) RotateLive(ctx context.Context, presented Presented, throttle Throttle,
	mint func(sessionID string) (RefreshToken, string), now time.Time, grace time.Duration) (r Rotation, ok, limited bool, err error) {
	end, err := s.turn(ctx)
	if err != nil {
		return Rotation{}, false, false, err
	}
	defer end()
	var row rotatedRow
	var hits int
	count, forget := s.rebind(countAttempt), s.rebind(forgetEndedWindows)
	countArgs := []any{throttle.Bucket, throttle.WindowStart, throttle.WindowEnd, throttle.Max}
	if s.driver == Postgres {
		err = s.q().GetPrepared(ctx, &hits, count, countArgs...)
		if errors.Is(err, errNoRows) {
			return Rotation{}, false, true, nil
		}
		if err != nil {
			return Rotation{}, false, false, fmt.Errorf("count attempt: %w", translate(err))
		}
		if hits == 1 {
			if _, err := s.q().ExecContext(ctx, forget, throttle.Bucket, throttle.WindowStart); err != nil {
				return Rotation{}, false, false, fmt.Errorf("forget ended window: %w", translate(err))
			}
		}
		if presented.SessionID == "" {
			return Rotation{}, false, false, nil
		}
		next, sealed := mint(presented.SessionID)
		err = s.q().GetPrepared(ctx, &row, rotateLivePostgres, presented.Hash, presented.SessionID, now, sealed,
			next.Hash, next.ExpiresAt, now.Add(-grace))
		if errors.Is(err, errNoRows) {
			return Rotation{}, false, false, nil
		}
		if err != nil {
			return Rotation{}, false, false, fmt.Errorf("rotate refresh token: %w", translate(err))
		}
		return liveRotation(row, next, now), true, false, nil
	}

	if err := s.warm(ctx, count, rotateLiveSQLite, s.rebind(retireToken), s.rebind(forgetRetired),
		s.rebind(insertToken), s.rebind(touchSession)); err != nil {
		return Rotation{}, false, false, err
	}
	// The successor is made (and sealed) before the write lock is taken, not
	// under it; it is thrown away if the token is not live.
	var next RefreshToken
	var sealed string
	if presented.SessionID != "" {
		next, sealed = mint(presented.SessionID)
	}
	err = s.inTx(ctx, func(tx querier) error {
		err := tx.GetPrepared(ctx, &hits, count, countArgs...)
		if errors.Is(err, errNoRows) {
			limited = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("count attempt: %w", translate(err))
		}
		if hits == 1 {
			if _, err := tx.ExecContext(ctx, forget, throttle.Bucket, throttle.WindowStart); err != nil {
				return fmt.Errorf("forget ended window: %w", translate(err))
			}
		}
		if presented.SessionID == "" {
			return nil
		}
		err = tx.GetPrepared(ctx, &row, rotateLiveSQLite, presented.Hash, presented.SessionID, now)
		if errors.Is(err, errNoRows) {
			return nil // counted, and decided by RotateRefreshToken
		}
		if err != nil {
			return fmt.Errorf("load live refresh token: %w", translate(err))
		}
		if err := s.rotate(ctx, tx, presented.Hash, next, sealed, presented.SessionID, now, grace); err != nil {
			return err
		}
		ok = true
		return nil
	})
	if err != nil || !ok {
		return Rotation{}, false, limited, err
	}
	return liveRotation(row, next, now), true, false, nil
}

// liveRotation is the Rotation of a live token rotated to next.
func liveRotation(row rotatedRow, next RefreshToken, now time.Time) Rotation {
	r := Rotation{Outcome: Rotated, Session: utcSession(row.Session), User: utcUser(row.User)}
	r.Session.LastUsedAt, r.Session.ExpiresAt = now.UTC(), next.ExpiresAt.UTC()
	r.Fresh = row.WasFreshUntil != nil && !row.WasFreshUntil.Before(now)
	return r
}
