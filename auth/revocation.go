package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"tollgate/db"
)

// Revocations is the in-memory list that every authenticated request is
// checked against, so that the check costs a map lookup instead of a database
// query. It holds the revoked sessions and the users whose role changed; an
// entry is kept until every access token it could refuse has expired anyway.
// The database keeps the same facts durably (sessions.revoked_at,
// users.role_changed_at), and Load rebuilds the list from it.
type Revocations struct {
	mu sync.RWMutex
	// sessions maps a revoked session id to when its last access token expires.
	sessions map[string]time.Time
	// roles maps a user whose role changed to that role.
	roles map[string]roleChange
	// keep is how long after a revocation an access token may still be unexpired.
	keep time.Duration
	now  func() time.Time
}

type roleChange struct {
	role     Role
	forgetAt time.Time
}

// NewRevocations returns an empty list whose entries are kept for keep (the
// access-token lifetime plus the leeway).
func NewRevocations(keep time.Duration, now func() time.Time) *Revocations {
	return &Revocations{sessions: make(map[string]time.Time), roles: make(map[string]roleChange), keep: keep, now: now}
}

// Check returns ErrTokenRevoked if the token of id belongs to a revoked
// session or carries a role that its user no longer has.
func (r *Revocations) Check(id Identity) error {
	r.mu.RLock()
	_, revoked := r.sessions[id.SessionID]
	rc, changed := r.roles[id.UserID]
	r.mu.RUnlock()
	if revoked || (changed && rc.role != id.Role) {
		return ErrTokenRevoked
	}
	return nil
}

// Add records that session sid was revoked at revokedAt.
func (r *Revocations) Add(sid string, revokedAt time.Time) {
	until := revokedAt.Add(r.keep)
	r.mu.Lock()
	if until.After(r.sessions[sid]) {
		r.sessions[sid] = until
	}
	r.mu.Unlock()
}

// SetRole records that userID has had role since changedAt: tokens carrying
// another role are refused. The latest call wins (changes reach each instance
// in commit order); the entry is kept for the longest of them.
func (r *Revocations) SetRole(userID string, role Role, changedAt time.Time) {
	until := changedAt.Add(r.keep)
	r.mu.Lock()
	if prev := r.roles[userID].forgetAt; prev.After(until) {
		until = prev
	}
	r.roles[userID] = roleChange{role: role, forgetAt: until}
	r.mu.Unlock()
}

// Prune forgets the entries whose tokens have all expired.
func (r *Revocations) Prune() {
	now := r.now()
	r.mu.Lock()
	for sid, until := range r.sessions {
		if now.After(until) {
			delete(r.sessions, sid)
		}
	}
	for uid, rc := range r.roles {
		if now.After(rc.forgetAt) {
			delete(r.roles, uid)
		}
	}
	r.mu.Unlock()
}

// Len is the number of entries in the list.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions) + len(r.roles)
}

// Load adds every revocation that may still matter from the store: the
// start-up load and the periodic resync that catches a missed notification.
func (r *Revocations) Load(ctx context.Context, store *db.Store) error {
	since := r.now().Add(-r.keep)
	revoked, err := store.RevokedSince(ctx, since)
	if err != nil {
		return err
	}
	changes, err := store.RoleChangesSince(ctx, since)
	if err != nil {
		return err
	}
	for _, rv := range revoked {
		r.Add(rv.ID, rv.RevokedAt)
	}
	for _, c := range changes {
		r.SetRole(c.UserID, Role(c.Role), c.ChangedAt)
	}
	return nil
}

// HandleNotice applies a notification of db.RevocationChannel from another
// instance (or this one). The entry is dated now, which keeps it at least as
// long as the writer's would be kept. The time the payload carries, if any,
// serves only to measure how long the notification took.
func (s *Service) HandleNotice(payload string) {
	n := parseNotice(payload)
	now := s.clock()
	switch {
	case !n.usable:
	case n.kind == NoticeSession:
		s.revocations.Add(n.id, now)
	case n.kind == NoticeRole:
		s.revocations.SetRole(n.id, Role(n.role), now)
	}
	var lag time.Duration
	if n.dated {
		lag = max(now.Sub(n.sent), 0) // clocks of two hosts may disagree a little
	}
	s.events.RevocationNotice(n.kind, lag, n.dated)
}

// SyncRevocations reloads the revocations that still matter from the
// database, catching any notification that was missed, and forgets those
// that no longer matter.
func (s *Service) SyncRevocations(ctx context.Context) error {
	s.revocations.Prune()
	return s.revocations.Load(ctx, s.store)
}

// Maintenance keeps the revocation list in step with the database and clears
// out what has expired. Run it in its own goroutine; it returns when ctx ends.
type Maintenance struct {
	Service *Service
	Logger  *slog.Logger
	// Resync is how often the list is reloaded in full, in case a
	// notification was missed, and the successor copies of closed grace
	// windows dropped; Cleanup how often expired rows are deleted.
	Resync, Cleanup time.Duration
}

// Run blocks until ctx ends.
func (m Maintenance) Run(ctx context.Context) {
	resync := time.NewTicker(m.Resync)
	defer resync.Stop()
	cleanup := time.NewTicker(m.Cleanup)
	defer cleanup.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			if err := m.Service.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("revocation resync failed", "error", err.Error())
			}
			if err := m.Service.ForgetSuccessors(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("forgetting refresh successors failed", "error", err.Error())
			}
		case <-cleanup.C:
			if _, err := m.Service.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("cleanup of expired sessions failed", "error", err.Error())
			}
		}
	}
}
