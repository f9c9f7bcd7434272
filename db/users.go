package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// ErrLastAdmin refuses a role change that would leave no ADMIN.
var ErrLastAdmin = errors.New("last admin")

// ListUsers returns up to limit users ordered by created_at, then id,
// starting after the user (afterCreatedAt, afterID) when afterID is set.
func (s *Store) ListUsers(ctx context.Context, afterCreatedAt time.Time, afterID string, limit int) ([]User, error) {
	var out []User
	var err error
	if afterID == "" {
		err = s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+userColumns+` FROM users
			ORDER BY created_at, id LIMIT ?`), limit)
	} else {
		// The row-value comparison seeks in the index (created_at, id); the
		// OR of two comparisons it replaces made PostgreSQL filter every row
		// before the cursor, so paging through all users was quadratic.
		err = s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+userColumns+` FROM users
			WHERE (created_at, id) > (?, ?) ORDER BY created_at, id LIMIT ?`),
			afterCreatedAt, afterID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list users: %w", translate(err))
	}
	for i := range out {
		out[i] = utcUser(out[i])
	}
	return out, nil
}

// UsersByIDs returns the users with the given ids, in one query, in no particular order.
func (s *Store) UsersByIDs(ctx context.Context, ids []string) ([]User, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	query, args, err := sqlx.In(`SELECT `+userColumns+` FROM users WHERE id IN (?)`, ids)
	if err != nil {
		return nil, fmt.Errorf("users by ids: %w", err)
	}
	var out []User
	if err := s.q().SelectContext(ctx, &out, s.rebind(query), args...); err != nil {
		return nil, fmt.Errorf("users by ids: %w", translate(err))
	}
	for i := range out {
		out[i] = utcUser(out[i])
	}
	return out, nil
}

// SetRole gives userID role. It refuses with ErrLastAdmin to demote the last
// ADMIN: the ADMIN rows are locked first (FOR UPDATE on PostgreSQL; SQLite
// transactions hold the write lock), so two admins demoting each other at
// once cannot both succeed. On PostgreSQL the change is announced on
// RevocationChannel in the same transaction. changed is false when the user
// already had role.
func (s *Store) SetRole(ctx context.Context, userID, role string, now time.Time) (u User, changed bool, err error) {
	err = s.inTx(ctx, func(tx querier) error {
		// The ADMIN rows are found through the partial index users_admins,
		// not by reading every user.
		var admins []string
		if err := tx.SelectContext(ctx, &admins, tx.Rebind(`SELECT id FROM users WHERE role = 'ADMIN' ORDER BY id`+s.forUpdate())); err != nil {
			return fmt.Errorf("lock admins: %w", translate(err))
		}
		if err := tx.GetContext(ctx, &u, tx.Rebind(`SELECT `+userColumns+` FROM users WHERE id = ?`+s.forUpdate()), userID); err != nil {
			return fmt.Errorf("load user: %w", translate(err))
		}
		if u.Role == role {
			return nil
		}
		if u.Role == "ADMIN" && len(admins) <= 1 {
			return ErrLastAdmin
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE users SET role = ?, role_changed_at = ? WHERE id = ?`), role, now, userID); err != nil {
			return fmt.Errorf("update role: %w", translate(err))
		}
		u.Role, changed = role, true
		return s.notify(ctx, tx, RevocationChannel, RoleNotice(userID, role, now))
	})
	return utcUser(u), changed, err
}

// RoleChange is a user whose role changed recently.
type RoleChange struct {
	UserID    string    `db:"id"`
	Role      string    `db:"role"`
	ChangedAt time.Time `db:"role_changed_at"`
}

// RoleChangesSince lists the users whose role changed after since.
func (s *Store) RoleChangesSince(ctx context.Context, since time.Time) ([]RoleChange, error) {
	var out []RoleChange
	if err := s.q().SelectContext(ctx, &out, s.rebind(`SELECT id, role, role_changed_at FROM users WHERE role_changed_at > ?`), since); err != nil {
		return nil, fmt.Errorf("list role changes: %w", translate(err))
	}
	for i := range out {
		out[i].ChangedAt = out[i].ChangedAt.UTC()
	}
	return out, nil
}
