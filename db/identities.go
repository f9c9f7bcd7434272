package db

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Identity is a row of oidc_identities: an account at an OpenID Connect
// provider, the pair (Provider, Subject), linked to a user.
type Identity struct {
	ID       string `db:"id"`
	Provider string `db:"provider"`
	Subject  string `db:"subject"`
	UserID   string `db:"user_id"`
	// Email is the address the provider gave at the last sign-in, shown to
	// the user; it never finds a user.
	Email      *string    `db:"email"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt *time.Time `db:"last_used_at"`
}

const identityColumns = `id, provider, subject, user_id, email, created_at, last_used_at`

// Flow is a row of oidc_flows: a sign-in (or a link) begun at a provider
// and not yet come back.
type Flow struct {
	// StateHash is the SHA-256 of the state, hex: the state itself is never stored.
	StateHash    string `db:"state_hash"`
	Provider     string `db:"provider"`
	Nonce        string `db:"nonce"`
	CodeVerifier string `db:"code_verifier"`
	RedirectURI  string `db:"redirect_uri"`
	// UserID and SessionID are set for a flow that links an identity to
	// that user, begun from that session.
	UserID    *string   `db:"user_id"`
	SessionID *string   `db:"session_id"`
	CreatedAt time.Time `db:"created_at"`
	ExpiresAt time.Time `db:"expires_at"`
}

const flowColumns = `state_hash, provider, nonce, code_verifier, redirect_uri, user_id, session_id, created_at, expires_at`

// ErrIdentityTaken means that the (provider, subject) pair is linked to a
// user already.
var ErrIdentityTaken = errors.New("identity linked already")

// ErrLastSignInMethod means that removing the identity would leave its user
// no way to sign in.
var ErrLastSignInMethod = errors.New("last sign-in method")

// CreateFlow stores a flow begun.
func (s *Store) CreateFlow(ctx context.Context, f Flow) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`INSERT INTO oidc_flows (`+flowColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`), f.StateHash, f.Provider, f.Nonce, f.CodeVerifier, f.RedirectURI,
		f.UserID, f.SessionID, f.CreatedAt, f.ExpiresAt); err != nil {
		return fmt.Errorf("insert flow: %w", translate(err))
	}
	return nil
}

// TakeFlow deletes the flow whose state hash is hash and returns it, or
// ErrNotFound. One DELETE … RETURNING does both, so of concurrent callbacks
// carrying the same state, on any instance, exactly one gets it. The caller
// checks its provider and expiry.
func (s *Store) TakeFlow(ctx context.Context, hash string) (Flow, error) {
	var f Flow
	if err := s.q().GetContext(ctx, &f, s.rebind(`DELETE FROM oidc_flows WHERE state_hash = ?
		RETURNING `+flowColumns), hash); err != nil {
		return Flow{}, fmt.Errorf("take flow: %w", translate(err))
	}
	f.CreatedAt, f.ExpiresAt = f.CreatedAt.UTC(), f.ExpiresAt.UTC()
	return f, nil
}

// FlowRedirectURI returns the redirect_uri of the flow whose state hash is
// hash, without taking it, or ErrNotFound: where to send a browser whose
// callback is refused before the flow is taken.
func (s *Store) FlowRedirectURI(ctx context.Context, hash string) (string, error) {
	var uri string
	if err := s.q().GetContext(ctx, &uri, s.rebind(`SELECT redirect_uri FROM oidc_flows WHERE state_hash = ?`), hash); err != nil {
		return "", fmt.Errorf("flow redirect: %w", translate(err))
	}
	return uri, nil
}

// IdentityBySubject returns the identity (provider, subject), or ErrNotFound.
func (s *Store) IdentityBySubject(ctx context.Context, provider, subject string) (Identity, error) {
	var i Identity
	if err := s.q().GetContext(ctx, &i, s.rebind(`SELECT `+identityColumns+` FROM oidc_identities
		WHERE provider = ? AND subject = ?`), provider, subject); err != nil {
		return Identity{}, fmt.Errorf("identity by subject: %w", translate(err))
	}
	return utcIdentity(i), nil
}

// Identities lists the identities of userID, oldest first.
func (s *Store) Identities(ctx context.Context, userID string) ([]Identity, error) {
	var out []Identity
	if err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+identityColumns+` FROM oidc_identities
		WHERE user_id = ? ORDER BY created_at, id`), userID); err != nil {
		return nil, fmt.Errorf("list identities: %w", translate(err))
	}
	for n := range out {
		out[n] = utcIdentity(out[n])
	}
	return out, nil
}

// UseIdentity records a sign-in with identity id at now, with the address
// the provider gave this time.
func (s *Store) UseIdentity(ctx context.Context, id string, email *string, now time.Time) error {
	if _, err := s.q().ExecContext(ctx, s.rebind(`UPDATE oidc_identities SET last_used_at = ?, email = ? WHERE id = ?`),
		now, email, id); err != nil {
		return fmt.Errorf("use identity: %w", translate(err))
	}
	return nil
}

// CreateUserWithIdentity inserts a new user, its identity and its first
// session and refresh token in one transaction, so that a failed sign-up
// leaves nothing behind. A username taken gives ErrConflict; the identity
// linked already (a concurrent first sign-in of the same account),
// ErrIdentityTaken. An address another user holds is not stored with the
// user (u.Email is dropped, never the other user's account attached).
func (s *Store) CreateUserWithIdentity(ctx context.Context, u User, i Identity, sess Session, rt RefreshToken) (User, error) {
	err := s.inTx(ctx, func(tx querier) error {
		var taken bool
		if err := tx.GetContext(ctx, &taken, tx.Rebind(`SELECT EXISTS (SELECT 1 FROM oidc_identities
			WHERE provider = ? AND subject = ?)`), i.Provider, i.Subject); err != nil {
			return fmt.Errorf("look for identity: %w", translate(err))
		}
		if taken {
			return ErrIdentityTaken
		}
		if u.EmailKey != nil {
			if err := emailFree(ctx, tx, *u.EmailKey, u.ID); errors.Is(err, ErrEmailTaken) {
				u.Email, u.EmailKey, u.EmailVerifiedAt = nil, nil, nil
			} else if err != nil {
				return err
			}
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		if err := insertIdentity(ctx, tx, i); err != nil {
			return err
		}
		return insertSession(ctx, tx, sess, rt)
	})
	return u, err
}

// LinkIdentity links i to its user, as asked from session sessionID: only
// while that session is live (not revoked, expired or cut off), so that a
// link begun by a session signed out meanwhile does nothing. An identity
// linked already, to anyone, is ErrIdentityTaken; a dead session ErrNotFound.
func (s *Store) LinkIdentity(ctx context.Context, i Identity, sessionID string, now time.Time) error {
	return s.inTx(ctx, func(tx querier) error {
		var live int
		if err := tx.GetContext(ctx, &live, tx.Rebind(`SELECT count(*) FROM sessions WHERE id = ? AND user_id = ?
			AND revoked_at IS NULL AND expires_at > ? AND `+notCutOff), sessionID, i.UserID, now); err != nil {
			return fmt.Errorf("check session: %w", translate(err))
		}
		if live == 0 {
			return ErrNotFound
		}
		var taken bool
		if err := tx.GetContext(ctx, &taken, tx.Rebind(`SELECT EXISTS (SELECT 1 FROM oidc_identities
			WHERE provider = ? AND subject = ?)`), i.Provider, i.Subject); err != nil {
			return fmt.Errorf("look for identity: %w", translate(err))
		}
		if taken {
			return ErrIdentityTaken
		}
		return insertIdentity(ctx, tx, i)
	})
}

// UnlinkIdentity deletes the identity id of userID: ErrNotFound when userID
// has no such identity (it may be someone else's), ErrLastSignInMethod when
// the user would be left without a password, a passkey or another
// identity. The user's row is locked first, so that two unlinks of a user's
// last two identities cannot both pass the check.
func (s *Store) UnlinkIdentity(ctx context.Context, userID, id string) error {
	return s.inTx(ctx, func(tx querier) error {
		var hash string
		if err := tx.GetContext(ctx, &hash, tx.Rebind(`SELECT password_hash FROM users WHERE id = ?`+s.forUpdate()), userID); err != nil {
			return fmt.Errorf("lock user: %w", translate(err))
		}
		var mine bool
		if err := tx.GetContext(ctx, &mine, tx.Rebind(`SELECT EXISTS (SELECT 1 FROM oidc_identities
			WHERE id = ? AND user_id = ?)`), id, userID); err != nil {
			return fmt.Errorf("look for identity: %w", translate(err))
		}
		if !mine {
			return ErrNotFound
		}
		var others bool
		if err := tx.GetContext(ctx, &others, tx.Rebind(`SELECT EXISTS (SELECT 1 FROM oidc_identities WHERE user_id = ? AND id <> ?)
			OR EXISTS (SELECT 1 FROM webauthn_credentials WHERE user_id = ?)`), userID, id, userID); err != nil {
			return fmt.Errorf("count sign-in methods: %w", translate(err))
		}
		if hash == "" && !others {
			return ErrLastSignInMethod
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM oidc_identities WHERE id = ? AND user_id = ?`), id, userID); err != nil {
			return fmt.Errorf("delete identity: %w", translate(err))
		}
		return nil
	})
}

func insertIdentity(ctx context.Context, tx querier, i Identity) error {
	if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO oidc_identities (`+identityColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?)`), i.ID, i.Provider, i.Subject, i.UserID, i.Email, i.CreatedAt, i.LastUsedAt); err != nil {
		if err = translate(err); errors.Is(err, ErrConflict) {
			return ErrIdentityTaken
		}
		return fmt.Errorf("insert identity: %w", err)
	}
	return nil
}

// deleteExpiredFlows deletes the flows never finished, once they can no
// longer be used.
func deleteExpiredFlows(ctx context.Context, tx querier, now time.Time) (int64, error) {
	res, err := tx.ExecContext(ctx, tx.Rebind(`DELETE FROM oidc_flows WHERE expires_at < ?`), now)
	if err != nil {
		return 0, fmt.Errorf("delete flows: %w", translate(err))
	}
	n, _ := res.RowsAffected()
	return n, nil
}

func utcIdentity(i Identity) Identity {
	i.CreatedAt = i.CreatedAt.UTC()
	if i.LastUsedAt != nil {
		t := i.LastUsedAt.UTC()
		i.LastUsedAt = &t
	}
	return i
}
