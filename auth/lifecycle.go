package auth

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"tollgate/db"
)

// ErrRefreshTokenInvalid is the one answer to every refresh token that cannot
// be used: unknown, expired, revoked or reused. Telling them apart would help
// only someone holding a token that is not theirs.
var ErrRefreshTokenInvalid = &Error{Code: CodeUnauthenticated, Reason: ReasonRefreshTokenInvalid, Message: "The refresh token is invalid."}

// Session is a signed-in device as the caller sees it.
type Session struct {
	ID         string
	CreatedAt  time.Time
	LastUsedAt time.Time
	UserAgent  *string
	Current    bool
}

// Authenticate verifies an Authorization value ("Bearer <token>") and returns
// ctx carrying the identity, or the reason there is none. A token of a
// revoked session, or carrying a role its user no longer has, is
// TOKEN_REVOKED; the check is an in-memory lookup.
func (s *Service) Authenticate(ctx context.Context, authorization string) context.Context {
	id, err := s.Verify(authorization)
	if req := RequestFromContext(ctx); req != nil && req.setIdentity(id, err) {
		return ctx // recorded in the request's own record
	}
	if err != nil {
		return NewContextWithoutIdentity(ctx, err)
	}
	return NewContext(ctx, id)
}

// Verify checks an Authorization value and returns its identity.
func (s *Service) Verify(authorization string) (Identity, error) {
	id, err := s.verify(authorization)
	s.events.TokenVerified(verificationOf(err))
	return id, err
}

func (s *Service) verify(authorization string) (Identity, error) {
	token, err := bearer(authorization)
	if err != nil {
		return Identity{}, err
	}
	id, err := s.tokens.Verify(token)
	if err != nil {
		return Identity{}, err
	}
	if err := s.revocations.Check(id); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// StillValid reports whether a token verified earlier (a WebSocket's) is
// still good: not expired (beyond the leeway) and not revoked.
func (s *Service) StillValid(id Identity) error {
	if s.now().After(id.ExpiresAt.Add(s.tokens.cfg.Leeway)) {
		return ErrTokenExpired
	}
	return s.revocations.Check(id)
}

// refresh trades a refresh token for a new pair in the same session and
// retires it (rotation); Refresh counts it. The new access token is not fresh.
//
// A retired token presented again within the grace window gets a pair too,
// whose refresh token is the successor the rotation issued: two tabs that
// refresh at the same moment both succeed, and the session keeps exactly one
// live refresh token. Presented after the window,
// the token was copied: the legitimate client has moved on, so whoever holds
// it may be a thief, and the whole session is revoked.
func (s *Service) refresh(ctx context.Context, token string) (*Tokens, error) {
	limit := bucket{key: "refresh-ip:" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.RefreshPerIP}
	if token == "" || len(token) > 256 || !canonicalRefreshToken(token) {
		// Any spelling but the one issued is refused before any lookup: it
		// changes nothing and is never taken for reuse. It still counts
		// toward the limit.
		if _, err := s.reserve(ctx, limit); err != nil {
			return nil, err
		}
		return nil, ErrRefreshTokenInvalid
	}
	now := s.clock()
	oldHash := hashRefreshToken(token)
	presented := db.Presented{Hash: oldHash, SessionID: s.refreshSession(token)} // no session for a token of the earlier form
	var refresh string
	mint := func(sessionID string) (db.RefreshToken, string) {
		var next db.RefreshToken
		next, refresh = s.newRefreshToken(now, sessionID)
		return next, s.successors.seal([]byte(refresh), []byte(oldHash))
	}
	// The attempt is counted and, if the token is live (nearly every
	// refresh), rotated at once; any other token is decided in full after.
	start := limit.limit.windowStart(now)
	throttle := db.Throttle{Bucket: limit.key, WindowStart: start, WindowEnd: start.Add(limit.limit.Window), Max: limit.limit.Max}
	if throttle.Max <= 0 {
		throttle.Max = math.MaxInt32 // no limit, as reserve reads it
	}
	r, ok, limited, err := s.store.RotateLive(ctx, presented, throttle, mint, now, s.cfg.RefreshReuseGrace)
	if err != nil {
		return nil, fmt.Errorf("refresh: %w", err)
	}
	if limited {
		return nil, rateLimited(start.Add(limit.limit.Window).Sub(now))
	}
	if !ok {
		r, err = s.store.RotateRefreshToken(ctx, presented, mint, now, s.cfg.RefreshReuseGrace)
		if err != nil {
			return nil, fmt.Errorf("refresh: %w", err)
		}
	}
	switch r.Outcome {
	case db.Rotated:
	case db.RotatedInGrace:
		// The same successor as the rotation issued: concurrent tabs converge
		// on one chain, and whoever replays a stolen token inside the window
		// gets nothing the owner does not hold too.
		b, err := s.successors.open(r.Successor, []byte(oldHash))
		if err != nil {
			// Sealed under a signing key that has since been replaced.
			return nil, ErrRefreshTokenInvalid
		}
		refresh = string(b)
	case db.ReuseDetected:
		s.revocations.Add(r.Session.ID, now)
		s.logger.Warn("refresh token reused after rotation: session revoked",
			"session_id", r.Session.ID, "user_id", r.Session.UserID, "request_id", ClientFromContext(ctx).RequestID)
		return nil, errReuseDetected
	default:
		return nil, ErrRefreshTokenInvalid
	}
	// The session keeps the level it reached: a refresh never raises it (the
	// refresh token is a single factor) and never lowers it.
	// A session opened at a provider's callback reaches the client only
	// through its refresh cookie: its first refresh, within
	// FreshAfterFederation, is the fresh sign-in the provider just
	// performed (r.Fresh, a grant the rotation used up; never a replay in
	// the grace window).
	return s.issue(toUser(r.User), r.Session.ID, refresh, r.Session.ExpiresAt, r.Fresh,
		aalFromClaim(r.Session.AAL), methodsFromString(r.Session.AMR))
}

// logout revokes the caller's session, or every session of the caller (Logout counts it);
// every session of a user with a verified factor needs AAL2.
func (s *Service) logout(ctx context.Context, allSessions bool) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	if allSessions {
		// Signing out every device is an attack of its own when a phished
		// password alone can do it: the thief, stuck at AAL1, would sign
		// the owner's two-factor sessions out over and over. Signing out
		// this one session stays open to AAL1 (a half-signed-in client
		// must be able to give up).
		if err := s.requireAAL2IfEnrolled(ctx, id); err != nil {
			return err
		}
	}
	now := s.clock()
	if allSessions {
		now = s.revocations.pastCutoff(id.UserID, now)
	}
	var revoked []string
	if allSessions {
		// One write however many sessions the user has (a cutoff).
		err = s.store.RevokeUserSessions(ctx, id.UserID, "", now)
	} else {
		revoked, err = s.store.RevokeSession(ctx, id.UserID, id.SessionID, now)
	}
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	// The session of this very token is refused from now on even if its row
	// was already gone (expired and cleaned up).
	s.revocations.Add(id.SessionID, now)
	s.addRevoked(revoked, now)
	if allSessions {
		s.revocations.CutOff(id.UserID, now, "")
	}
	return nil
}

// RevokeSession signs out one of the caller's own sessions. Any other id,
// including another user's session, is NOT_FOUND, so that session ids cannot
// be probed. Another session of a user with a verified factor needs AAL2.
func (s *Service) RevokeSession(ctx context.Context, sessionID string) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	if !ValidID(sessionID) {
		return ErrNotFound
	}
	if sessionID != id.SessionID {
		// As logout(allSessions): another device's session is the owner's
		// to end only with the second factor. @auth asks for it already
		// from the token's mfa claim; this reads the database, so that a
		// token whose claim predates the factor cannot do it either.
		if err := s.requireAAL2IfEnrolled(ctx, id); err != nil {
			return err
		}
	}
	now := s.clock()
	revoked, err := s.store.RevokeSession(ctx, id.UserID, sessionID, now)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if len(revoked) == 0 {
		return ErrNotFound
	}
	s.addRevoked(revoked, now)
	return nil
}

// Sessions lists the caller's live sessions, marking the one of this token.
func (s *Service) Sessions(ctx context.Context) ([]Session, error) {
	id, err := FromContext(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.LiveSessions(ctx, id.UserID, s.clock())
	if err != nil {
		return nil, err
	}
	out := make([]Session, len(rows))
	for i, r := range rows {
		out[i] = Session{ID: r.ID, CreatedAt: r.CreatedAt, LastUsedAt: r.LastUsedAt, UserAgent: r.UserAgent, Current: r.ID == id.SessionID}
	}
	return out, nil
}

// ChangePassword checks the caller's current password, stores the new one and
// signs out every other session: whoever may have learned the old password
// loses what they opened with it. The calling session stays signed in.
func (s *Service) ChangePassword(ctx context.Context, current, next string) error {
	id, err := FromContext(ctx)
	if err != nil {
		return err
	}
	if err := CheckPassword(next); err != nil {
		e := *err.(*Error)
		e.Field = "newPassword"
		return &e
	}
	u, err := s.store.UserByID(ctx, id.UserID)
	if errors.Is(err, db.ErrNotFound) {
		return ErrTokenRevoked
	}
	if err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	// A stolen fresh token must not become a password oracle: wrong current
	// passwords count against the same limit as failed logins.
	attempts := bucket{key: "change-password:" + id.UserID + "|" + addressKey(ClientFromContext(ctx).IP), limit: s.cfg.Limits.LoginPerUserIP}
	if _, err := s.reserve(ctx, attempts); err != nil {
		return err
	}
	ok := false
	if len(current) <= maxPasswordBytes {
		if ok, err = s.hasher.Check(ctx, current, u.PasswordHash); err != nil {
			return fmt.Errorf("change password: %w", err)
		}
	}
	if !ok && u.PasswordHash == "" {
		// A user created at a provider has no password to change: refused
		// as a failed login is, after the same hash (the dummy's), so the
		// answer does not tell an attacker with a stolen token much more
		// than a wrong password would. Such a user sets a first password
		// with resetPassword, from a verified address.
		return ErrInvalidCredentials
	}
	if !ok {
		return ErrWrongCurrentPassword
	}
	if err := s.store.ResetHits(ctx, attempts.key); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	hash, err := s.hasher.Hash(ctx, next)
	if err != nil {
		return err
	}
	now := s.revocations.pastCutoff(id.UserID, s.clock())
	if err := s.store.ChangePassword(ctx, id.UserID, hash, id.SessionID, now); err != nil {
		return fmt.Errorf("change password: %w", err)
	}
	s.revocations.CutOff(id.UserID, now, id.SessionID)
	return nil
}

// ErrWrongCurrentPassword answers changePassword with a wrong current
// password. It is BAD_USER_INPUT rather than UNAUTHENTICATED: the caller is
// authenticated, and clients treat UNAUTHENTICATED as "signed out".
var ErrWrongCurrentPassword = &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "currentPassword", Message: "The current password is not correct."}

// DeleteExpired removes the refresh tokens and sessions that can no longer be
// used and whose revocation no longer matters.
func (s *Service) DeleteExpired(ctx context.Context) (int64, error) {
	now := s.clock()
	n, err := s.store.DeleteExpired(ctx, now, now.Add(-s.revocations.keep))
	if err != nil {
		return n, err
	}

	hits, err := s.store.DeleteOldHits(ctx, now)
	if err != nil {
		return n + hits, err
	}
	tokens, err := s.store.DeleteExpiredEmailTokens(ctx, now)
	return n + hits + tokens, err
}

// DeleteRetired deletes the refresh tokens whose grace window has closed,
// with the successor copies they kept (a rotation deletes those of its own
// session already; this catches sessions that were not refreshed again).
// Reuse of such a token is still detected: it names its session.
func (s *Service) DeleteRetired(ctx context.Context) error {
	_, err := s.store.DeleteRetired(ctx, s.clock().Add(-s.cfg.RefreshReuseGrace))
	return err
}

// Revocations returns the in-memory revocation list.
func (s *Service) Revocations() *Revocations { return s.revocations }

func (s *Service) addRevoked(ids []string, at time.Time) {
	s.revocations.AddAll(ids, at)
}
