package db

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// User is a row of the users table.
type User struct {
	ID           string    `db:"id"`
	Username     string    `db:"username"`
	PasswordHash string    `db:"password_hash"`
	Role         string    `db:"role"`
	CreatedAt    time.Time `db:"created_at"`
	// MFAEnabled is true when the user has a verified second factor (read
	// with the user, never written).
	MFAEnabled bool `db:"mfa_enabled"`
	// Email is the user's address as typed, nil when none is set; EmailKey
	// its lowercased form, which is what is unique (db/migrations/00008).
	Email    *string `db:"email"`
	EmailKey *string `db:"email_key"`
	// EmailVerifiedAt is when the address was proven, nil until then.
	EmailVerifiedAt *time.Time `db:"email_verified_at"`
}

// Session is a row of the sessions table: one signed-in device.
type Session struct {
	ID         string     `db:"id"`
	UserID     string     `db:"user_id"`
	CreatedAt  time.Time  `db:"created_at"`
	LastUsedAt time.Time  `db:"last_used_at"`
	ExpiresAt  time.Time  `db:"expires_at"`
	RevokedAt  *time.Time `db:"revoked_at"`
	UserAgent  *string    `db:"user_agent"`
	// AAL is the assurance level reached ("aal1", "aal2"); AMR the methods
	// used (RFC 8176 names, space-separated).
	AAL string `db:"aal"`
	AMR string `db:"amr"`
	// FreshUntil, when set, makes the session's first refresh before it a
	// fresh sign-in (a session opened at an OpenID Connect provider, whose
	// client gets its first access token by refreshing). Written at
	// creation, never read back with the session.
	FreshUntil *time.Time `db:"-"`
}

// RefreshToken is a row of the refresh_tokens table; Hash is the SHA-256 of the token.
type RefreshToken struct {
	Hash      string     `db:"token_hash"`
	SessionID string     `db:"session_id"`
	CreatedAt time.Time  `db:"created_at"`
	ExpiresAt time.Time  `db:"expires_at"`
	RotatedAt *time.Time `db:"rotated_at"`
	// Successor is the sealed successor a retired token keeps for the grace window.
	Successor *string `db:"successor"`
}

// Store runs Tollgate's queries. Its methods take ctx first, and each unit of
// work that must be atomic runs in one transaction.
type Store struct {
	db     *sqlx.DB
	driver string
	// queries counts the statements sent, so that tests and metrics can see
	// N+1 patterns and prove that a path sends none.
	queries atomic.Int64
	// stmts holds the prepared statements of the hot paths (refreshToken
	// and the throttles), by their text: see prepared.
	stmts sync.Map
	// turns has a slot for each connection of the pool: see turn.
	turns chan struct{}
	// retiredBatch is DeleteRetired's (the const; tests set a smaller one).
	retiredBatch int
}

// NewStore returns a Store on an open, migrated database.
func NewStore(dbx *sqlx.DB) *Store {
	s := &Store{db: dbx, driver: dbx.DriverName(), retiredBatch: retiredBatch}
	if n := dbx.Stats().MaxOpenConnections; n > 0 {
		s.turns = make(chan struct{}, n)
	}
	return s
}

// turn waits until fewer refreshes than the pool has connections use the
// database, and returns the function that ends this one's turn. When every
// connection is busy, database/sql hands a freed one to a waiter chosen at
// random, and under a burst of refreshes (every client coming back online
// at once) the unlucky ones waited many times the mean: at 64 connections
// the p99 of refreshToken was 2.7 times its median on PostgreSQL and 13
// times on SQLite. A channel's blocked senders are served in the order they
// came, so refreshes queue here first come, first served, and find a
// connection free when their turn comes; the p99 fell to under twice the
// median on both databases (bench/README.md).
// A refresh takes one turn at a time (RotateLive, then RotateRefreshToken
// if it must), and so does each batch of DeleteRetired, so turns never wait
// for each other.
func (s *Store) turn(ctx context.Context) (end func(), err error) {
	if s.turns == nil {
		return func() {}, nil
	}
	select {
	case s.turns <- struct{}{}:
		return func() { <-s.turns }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Queries is the number of SQL statements the store has sent.
func (s *Store) Queries() int64 { return s.queries.Load() }

// querier is what queries run on: the database or a transaction, counted.
type querier interface {
	GetContext(ctx context.Context, dest any, query string, args ...any) error
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	Rebind(query string) string
	// GetPrepared and ExecPrepared run query, which is written for the
	// store's driver (no Rebind), as a prepared statement: see prepared.
	GetPrepared(ctx context.Context, dest any, query string, args ...any) error
	ExecPrepared(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type counted struct {
	sqlx.ExtContext
	s *Store
}

func (c counted) GetContext(ctx context.Context, dest any, query string, args ...any) error {
	c.s.queries.Add(1)
	return sqlx.GetContext(ctx, c.ExtContext, dest, query, args...)
}

func (c counted) SelectContext(ctx context.Context, dest any, query string, args ...any) error {
	c.s.queries.Add(1)
	return sqlx.SelectContext(ctx, c.ExtContext, dest, query, args...)
}

func (c counted) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.s.queries.Add(1)
	return c.ExtContext.ExecContext(ctx, query, args...)
}

func (c counted) GetPrepared(ctx context.Context, dest any, query string, args ...any) error {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return err
	}
	c.s.queries.Add(1)
	return st.GetContext(ctx, dest, args...)
}

func (c counted) ExecPrepared(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := c.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	c.s.queries.Add(1)
	return st.ExecContext(ctx, args...)
}

// stmt returns the prepared statement of query, in the transaction c runs
// in if it runs in one.
func (c counted) stmt(ctx context.Context, query string) (*sqlx.Stmt, error) {
	tx, inTx := c.ExtContext.(*sqlx.Tx)
	if !inTx {
		return c.s.prepared(ctx, query)
	}
	st, ok := c.s.stmts.Load(query)
	if !ok {
		// Preparing on the database here would wait for a second
		// connection while this transaction holds one; on SQLite the
		// other connections may be waiting for this one's write lock, and
		// that is a deadlock until the busy timeout. The statement is
		// prepared in the transaction instead, for this once; warm
		// prepares it for good before a transaction starts.
		return tx.PreparexContext(ctx, query)
	}
	// The statement already prepared on the transaction's connection, or
	// prepared there once.
	return tx.StmtxContext(ctx, st.(*sqlx.Stmt)), nil
}

// warm prepares queries, outside any transaction, so that a transaction
// that runs them finds them prepared (see counted.stmt).
func (s *Store) warm(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		if _, err := s.prepared(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// prepared returns the statement of query prepared on the database (and,
// by database/sql, on each connection once as it is used there). A hot
// statement then costs one round trip on PostgreSQL instead of two (lib/pq
// otherwise parses, then binds and executes, each with a reply) and is
// neither parsed nor planned again; on SQLite it is not compiled again,
// which for the refresh path's statements was most of their cost. Only a
// fixed set of statement texts is ever prepared (the hot paths'), so the
// cache is bounded by the code, not by the requests. The statements name
// the columns they read, never "*": PostgreSQL refuses to run a prepared
// statement whose result columns a migration has changed, and a newer
// instance migrating during a rolling upgrade must not break this one.
func (s *Store) prepared(ctx context.Context, query string) (*sqlx.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sqlx.Stmt), nil
	}
	st, err := s.db.PreparexContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", translate(err))
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sqlx.Stmt), nil
	}
	return st, nil
}

// q returns the database, counted.
func (s *Store) q() querier { return counted{s.db, s} }

func (s *Store) rebind(query string) string { return s.db.Rebind(query) }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.db.PingContext(ctx)
}

// inTx runs fn in one transaction, committed only if fn returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx querier) error) error {
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	if err := fn(counted{tx, s}); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", translate(err))
	}
	return nil
}

// CreateUser inserts u. A username taken in any letter case gives
// ErrConflict; an address another user holds, ErrEmailTaken.
func (s *Store) CreateUser(ctx context.Context, u User) error {
	return s.inTx(ctx, func(tx querier) error { return insertUser(ctx, tx, u) })
}

// CreateUserWithSession inserts a new user together with its first session and
// refresh token, so that a failed sign-up leaves nothing behind.
func (s *Store) CreateUserWithSession(ctx context.Context, u User, sess Session, rt RefreshToken) error {
	return s.inTx(ctx, func(tx querier) error {
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		return insertSession(ctx, tx, sess, rt)
	})
}

// CreateSession inserts a session and its first refresh token and, if that
// leaves the user more than max live sessions, revokes the least recently
// used of them, all in one transaction. It returns the ids it revoked. The
// user's row is locked first (SQLite's transactions hold the write lock from
// the start), so concurrent sign-ins of one user cannot pass the limit together.
func (s *Store) CreateSession(ctx context.Context, sess Session, rt RefreshToken, max int) ([]string, error) {
	var revoked []string
	err := s.inTx(ctx, func(tx querier) error {
		var id string
		if err := tx.GetContext(ctx, &id, tx.Rebind(`SELECT id FROM users WHERE id = ?`+s.forUpdate()), sess.UserID); err != nil {
			return fmt.Errorf("lock user: %w", translate(err))
		}
		if err := insertSession(ctx, tx, sess, rt); err != nil {
			return err
		}
		var err error
		revoked, err = revokeSessionsReturning(ctx, tx, s.driver, sess.CreatedAt, `id IN (SELECT id FROM sessions
			WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND `+notCutOff+`
			ORDER BY last_used_at DESC, id DESC LIMIT 2147483647 OFFSET ?)`, sess.UserID, sess.CreatedAt, max)
		return err
	})
	return revoked, err
}

func insertSession(ctx context.Context, tx querier, sess Session, rt RefreshToken) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO sessions
		(id, user_id, created_at, last_used_at, expires_at, revoked_at, user_agent, aal, amr, fresh_until)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		sess.ID, sess.UserID, sess.CreatedAt, sess.LastUsedAt, sess.ExpiresAt, sess.RevokedAt, sess.UserAgent, sess.AAL, sess.AMR, sess.FreshUntil)
	if err != nil {
		return fmt.Errorf("insert session: %w", translate(err))
	}
	_, err = tx.ExecContext(ctx, tx.Rebind(`INSERT INTO refresh_tokens
		(token_hash, session_id, created_at, expires_at, rotated_at) VALUES (?, ?, ?, ?, ?)`),
		rt.Hash, rt.SessionID, rt.CreatedAt, rt.ExpiresAt, rt.RotatedAt)
	if err != nil {
		return fmt.Errorf("insert refresh token: %w", translate(err))
	}
	return nil
}

// userColumns are read from users; mfa_enabled is computed, so that every
// query that loads a user (login, refresh, me, the owner dataloader) knows
// whether a second factor is verified without a query of its own.
const userColumns = userTableColumns + `,
	` + userMFAEnabled + ` AS mfa_enabled`

// userTableColumns are the columns of users that User holds; userMFAEnabled
// computes User.MFAEnabled for the row of users.
const (
	userTableColumns = `id, username, password_hash, role, created_at, email, email_key, email_verified_at`
	userMFAEnabled   = `EXISTS (SELECT 1 FROM mfa_factors f WHERE f.user_id = users.id AND f.verified_at IS NOT NULL)`
)

// UserByUsername finds a user by name without regard to letter case.
func (s *Store) UserByUsername(ctx context.Context, username string) (User, error) {
	var u User
	err := s.q().GetContext(ctx, &u, s.rebind(`SELECT `+userColumns+` FROM users WHERE lower(username) = lower(?)`), username)
	if err != nil {
		return User{}, fmt.Errorf("user by username: %w", translate(err))
	}
	return utcUser(u), nil
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id string) (User, error) {
	var u User
	err := s.q().GetContext(ctx, &u, s.rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`), id)
	if err != nil {
		return User{}, fmt.Errorf("user by id: %w", translate(err))
	}
	return utcUser(u), nil
}

// GeneratedKey returns the key kept for alg, storing candidate first if there is
// none. When several instances start at once, all of them get the first key written.
func (s *Store) GeneratedKey(ctx context.Context, alg, candidate string, now time.Time) (string, error) {
	_, err := s.q().ExecContext(ctx, s.rebind(`INSERT INTO generated_keys (alg, key_data, created_at)
		VALUES (?, ?, ?) ON CONFLICT (alg) DO NOTHING`), alg, candidate, now)
	if err != nil {
		return "", fmt.Errorf("store generated key: %w", translate(err))
	}
	var key string
	if err := s.q().GetContext(ctx, &key, s.rebind(`SELECT key_data FROM generated_keys WHERE alg = ?`), alg); err != nil {
		return "", fmt.Errorf("load generated key: %w", translate(err))
	}
	return key, nil
}

// utcUser gives times in UTC whatever location the driver chose.
func utcUser(u User) User {
	u.CreatedAt = u.CreatedAt.UTC()
	if u.EmailVerifiedAt != nil {
		t := u.EmailVerifiedAt.UTC()
		u.EmailVerifiedAt = &t
	}
	return u
}
