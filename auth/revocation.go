package auth

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"tollgate/db"
)

// Revocations is the in-memory list of revoked sessions that every
// authenticated request is checked against, so that the check costs a map
// lookup instead of a database query. An entry is kept until every access
// token of its session has expired anyway; the sessions table keeps the same
// facts durably, and Load rebuilds the list from it at start.
type Revocations struct {
	mu sync.RWMutex
	// forgetAt is, per revoked session id, when its last access token expires.
	forgetAt map[string]time.Time
	// keep is how long after a revocation an access token of the session may still be unexpired.
	keep time.Duration
	now  func() time.Time
}

// NewRevocations returns an empty list whose entries are kept for keep (the
// access-token lifetime plus the leeway).
func NewRevocations(keep time.Duration, now func() time.Time) *Revocations {
	return &Revocations{forgetAt: make(map[string]time.Time), keep: keep, now: now}
}

// Revoked reports whether session sid was revoked.
func (r *Revocations) Revoked(sid string) bool {
	r.mu.RLock()
	_, ok := r.forgetAt[sid]
	r.mu.RUnlock()
	return ok
}

// Add records that session sid was revoked at revokedAt.
func (r *Revocations) Add(sid string, revokedAt time.Time) {
	until := revokedAt.Add(r.keep)
	r.mu.Lock()
	if until.After(r.forgetAt[sid]) {
		r.forgetAt[sid] = until
	}
	r.mu.Unlock()
}

// Prune forgets the sessions whose access tokens have all expired.
func (r *Revocations) Prune() {
	now := r.now()
	r.mu.Lock()
	for sid, until := range r.forgetAt {
		if now.After(until) {
			delete(r.forgetAt, sid)
		}
	}
	r.mu.Unlock()
}

// Len is the number of sessions in the list.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.forgetAt)
}

// Load adds every revocation that may still matter from the store: the
// start-up load and the periodic resync that catches a missed notification.
func (r *Revocations) Load(ctx context.Context, store *db.Store) error {
	revoked, err := store.RevokedSince(ctx, r.now().Add(-r.keep))
	if err != nil {
		return err
	}
	for _, rv := range revoked {
		r.Add(rv.ID, rv.RevokedAt)
	}
	return nil
}

// Maintenance keeps the revocation list in step with the database and clears
// out what has expired. Run it in its own goroutine; it returns when ctx ends.
type Maintenance struct {
	Service *Service
	Logger  *slog.Logger
	// ListenURL, when set (PostgreSQL), receives revocations from other
	// instances through LISTEN/NOTIFY.
	ListenURL string
	// Resync is how often the list is reloaded in full, in case a
	// notification was missed; Cleanup how often expired rows are deleted.
	Resync, Cleanup time.Duration
}

// Run blocks until ctx ends.
func (m Maintenance) Run(ctx context.Context) {
	s := m.Service
	if m.ListenURL != "" {
		go db.Listen(ctx, m.ListenURL, db.RevocationChannel, func(sid string) {
			s.revocations.Add(sid, s.clock())
		}, func() {
			// Reconnected: notifications sent while we were away are lost.
			m.resync(ctx)
		}, m.Logger)
	}
	resync := time.NewTicker(m.Resync)
	defer resync.Stop()
	cleanup := time.NewTicker(m.Cleanup)
	defer cleanup.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-resync.C:
			m.resync(ctx)
		case <-cleanup.C:
			if _, err := s.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("cleanup of expired sessions failed", "error", err.Error())
			}
		}
	}
}

func (m Maintenance) resync(ctx context.Context) {
	if err := m.Service.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
		m.Logger.Warn("revocation resync failed", "error", err.Error())
	}
}

// SyncRevocations reloads the revocations that still matter from the
// database, catching any notification that was missed, and forgets those
// that no longer matter.
func (s *Service) SyncRevocations(ctx context.Context) error {
	s.revocations.Prune()
	return s.revocations.Load(ctx, s.store)
}
