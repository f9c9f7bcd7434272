package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"tollgate/db"
)

// ErrLastAdmin refuses to demote the only ADMIN: nobody could promote anyone again.
var ErrLastAdmin = &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "role", Message: "The last ADMIN cannot be demoted."}

// MaxPageSize bounds users(first:) and notes(first:).
const MaxPageSize = 100

// PageSize checks the first argument of a list: present (an explicit null
// is not a size) and between 1 and MaxPageSize.
func PageSize(first *int) (int, error) {
	if first == nil || *first < 1 || *first > MaxPageSize {
		return 0, &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "first",
			Message: fmt.Sprintf("first must be between 1 and %d.", MaxPageSize)}
	}
	return *first, nil
}

// UserPage is one page of users, in order of creation.
type UserPage struct {
	Users []User
	// Cursors[i] is the opaque position of Users[i], for "after".
	Cursors     []string
	HasNextPage bool
}

// Users returns up to first users after the cursor after ("" for the start),
// ordered by creation time, then id, so that a page boundary never moves when
// users are added.
func (s *Service) Users(ctx context.Context, first *int, after string) (*UserPage, error) {
	n, err := PageSize(first)
	if err != nil {
		return nil, err
	}
	var (
		afterTime time.Time
		afterID   string
	)
	if after != "" {
		var ok bool
		if afterTime, afterID, ok = decodeCursor(after); !ok {
			return nil, &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "after", Message: "after is not a cursor of this list."}
		}
	}
	rows, err := s.store.ListUsers(ctx, afterTime, afterID, n+1)
	if err != nil {
		return nil, err
	}
	page := &UserPage{HasNextPage: len(rows) > n}
	if page.HasNextPage {
		rows = rows[:n]
	}
	for _, r := range rows {
		page.Users = append(page.Users, toUser(r))
		page.Cursors = append(page.Cursors, encodeCursor(r.CreatedAt, r.ID))
	}
	return page, nil
}

// UsersByIDs returns the users with ids, in the order of ids; a missing user is nil.
func (s *Service) UsersByIDs(ctx context.Context, ids []string) ([]*User, error) {
	rows, err := s.store.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, err
	}
	byID := make(map[string]*User, len(rows))
	for _, r := range rows {
		u := toUser(r)
		byID[u.ID] = &u
	}
	out := make([]*User, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

// SetRole gives a user a role. It takes effect at once: the user's access
// tokens that carry the old role are refused (TOKEN_REVOKED) on every
// instance, and a refresh issues a token with the new one. The caller's right
// to do this is the @auth directive's business.
func (s *Service) SetRole(ctx context.Context, userID string, role Role) (*User, error) {
	if !role.Valid() {
		return nil, &Error{Code: CodeBadUserInput, Reason: ReasonInvalidInput, Field: "role", Message: "Unknown role."}
	}
	if !ValidID(userID) {
		return nil, ErrNotFound
	}
	now := s.clock()
	u, changed, err := s.store.SetRole(ctx, userID, string(role), now)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return nil, ErrNotFound
	case errors.Is(err, db.ErrLastAdmin):
		return nil, ErrLastAdmin
	case err != nil:
		return nil, fmt.Errorf("set role: %w", err)
	}
	if changed {
		s.revocations.SetRole(userID, role, now)
		s.logger.Info("role changed", "user_id", userID, "role", string(role),
			"request_id", ClientFromContext(ctx).RequestID)
	}
	user := toUser(u)
	return &user, nil
}

// A cursor is the (created_at, id) of a row, base64url-encoded: opaque to
// clients, and stable however many users are added before or after it.
func encodeCursor(createdAt time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(createdAt.UTC().Format(time.RFC3339Nano) + "|" + id))
}

func decodeCursor(cursor string) (time.Time, string, bool) {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil {
		return time.Time{}, "", false
	}
	ts, id, ok := strings.Cut(string(raw), "|")
	if !ok || !ValidID(id) {
		return time.Time{}, "", false
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return time.Time{}, "", false
	}
	return t.UTC(), id, true
}
