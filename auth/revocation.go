package auth

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
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
	// expiring lists the entries of sessions in the order they were added,
	// which is nearly the order they expire in, so that Prune forgets the
	// expired ones from the front, a few at a time, instead of walking the map
	// under the write lock.
	expiring []expiry
	// roles maps a user whose role changed to that role.
	roles map[string]roleChange
	// cutoffs maps a user whose sessions were all revoked at once (a
	// db.Cutoff) to that cutoff.
	cutoffs map[string]cutoff
	// keep is how long after a revocation an access token may still be unexpired.
	keep time.Duration
	now  func() time.Time
	// synced is when the last Load began: the next one reads only what was
	// revoked since then (less resyncMargin), not the whole list again.
	synced time.Time
	// rowsRead counts the rows every Load has read: what a resync costs.
	rowsRead atomic.Int64
}

type expiry struct {
	sid   string
	until time.Time
}

type roleChange struct {
	role     Role
	forgetAt time.Time
}

// cutoff revokes the sessions of a user created no later than at, but except.
type cutoff struct {
	at       time.Time
	except   string
	forgetAt time.Time
}

// resyncMargin is how far before the previous load an incremental load
// reaches back: a revocation is dated by the clock of the instance that
// wrote it, before its transaction commits, so one that committed just
// after the previous load may carry an earlier time. A minute covers any
// transaction that the database deadline (10 s) lets finish, and clocks that
// disagree by tens of seconds.
const resyncMargin = time.Minute

// pruneBatch bounds the entries Prune forgets per hold of the write lock.
const pruneBatch = 1024

// NewRevocations returns an empty list whose entries are kept for keep (the
// access-token lifetime plus the leeway).
func NewRevocations(keep time.Duration, now func() time.Time) *Revocations {
	return &Revocations{sessions: make(map[string]time.Time), roles: make(map[string]roleChange),
		cutoffs: make(map[string]cutoff), keep: keep, now: now}
}

// Check returns ErrTokenRevoked if the token of id belongs to a revoked
// session or carries a role that its user no longer has.
func (r *Revocations) Check(id Identity) error {
	r.mu.RLock()
	_, revoked := r.sessions[id.SessionID]
	rc, changed := r.roles[id.UserID]
	c, cut := r.cutoffs[id.UserID]
	r.mu.RUnlock()
	if revoked || (changed && rc.role != id.Role) || (cut && c.covers(id.SessionID)) {
		return ErrTokenRevoked
	}
	return nil
}

// covers reports whether the cutoff revokes session sid: created no later
// than it (the session id says when; one that does not, from an earlier
// build, is older than any cutoff) and not the one it excepts.
func (c cutoff) covers(sid string) bool {
	if sid == c.except {
		return false
	}
	created, ok := sessionCreatedAt(sid)
	return !ok || !created.After(c.at)
}

// pastCutoff returns t, or the first microsecond after the cutoff of userID
// if t is not later than it. A session opened after a cutoff must not fall
// under it for sharing its microsecond (or, with a clock that stands still,
// its every instant); a new cutoff must be later than the one before, so
// that the sessions put past that one fall under the new one.
func (r *Revocations) pastCutoff(userID string, t time.Time) time.Time {
	r.mu.RLock()
	c, ok := r.cutoffs[userID]
	r.mu.RUnlock()
	if ok && !t.After(c.at) {
		return c.at.Add(time.Microsecond)
	}
	return t
}

// CutOff records that every session of userID created no later than at, but
// except ("" for none), was revoked. The latest cutoff of a user replaces an
// earlier one, which it covers.
func (r *Revocations) CutOff(userID string, at time.Time, except string) {
	r.mu.Lock()
	if prev, ok := r.cutoffs[userID]; !ok || !at.Before(prev.at) {
		r.cutoffs[userID] = cutoff{at: at, except: except, forgetAt: at.Add(r.keep)}
	}
	r.mu.Unlock()
}

// Add records that session sid was revoked at revokedAt.
func (r *Revocations) Add(sid string, revokedAt time.Time) {
	r.mu.Lock()
	r.add(sid, revokedAt)
	r.mu.Unlock()
}

// AddAll records that every session of sids was revoked at revokedAt.
func (r *Revocations) AddAll(sids []string, revokedAt time.Time) {
	r.mu.Lock()
	for _, sid := range sids {
		r.add(sid, revokedAt)
	}
	r.mu.Unlock()
}

func (r *Revocations) add(sid string, revokedAt time.Time) {
	until := revokedAt.Add(r.keep)
	if until.After(r.sessions[sid]) {
		r.sessions[sid] = until
		r.expiring = append(r.expiring, expiry{sid, until})
	}
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

// Prune forgets the entries whose tokens have all expired, pruneBatch at a
// time, so that no check waits behind it for long. An entry whose expiry was
// pushed back by a later revocation is forgotten only when that one expires
// (its later place in expiring).
func (r *Revocations) Prune() {
	now := r.now()
	for {
		r.mu.Lock()
		n := 0
		for n < pruneBatch && n < len(r.expiring) && now.After(r.expiring[n].until) {
			e := r.expiring[n]
			if until, ok := r.sessions[e.sid]; ok && !until.After(e.until) {
				delete(r.sessions, e.sid)
			}
			n++
		}
		r.expiring = r.expiring[n:]
		if len(r.expiring) == 0 {
			r.expiring = nil // let the emptied backing array go
		}
		more := n == pruneBatch
		if !more {
			for uid, rc := range r.roles {
				if now.After(rc.forgetAt) {
					delete(r.roles, uid)
				}
			}
			for uid, c := range r.cutoffs {
				if now.After(c.forgetAt) {
					delete(r.cutoffs, uid)
				}
			}
		}
		r.mu.Unlock()
		if !more {
			return
		}
	}
}

// RowsRead is the number of rows every Load so far has read: a resync with
// nothing new reads none, however many revocations the table holds.
func (r *Revocations) RowsRead() int64 { return r.rowsRead.Load() }

// Len is the number of entries in the list.
func (r *Revocations) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sessions) + len(r.roles) + len(r.cutoffs)
}

// Load adds the revocations that may still matter from the store: all of
// them at the start, and afterwards those written since the previous load
// (less resyncMargin), so that the periodic resync that catches a missed
// notification costs what changed, not what the table holds.
func (r *Revocations) Load(ctx context.Context, store *db.Store) error {
	started := r.now()
	since := started.Add(-r.keep)
	r.mu.RLock()
	if from := r.synced.Add(-resyncMargin); !r.synced.IsZero() && from.After(since) {
		since = from
	}
	r.mu.RUnlock()
	revoked, err := store.RevokedSince(ctx, since)
	if err != nil {
		return err
	}
	changes, err := store.RoleChangesSince(ctx, since)
	if err != nil {
		return err
	}
	cutoffs, err := store.CutoffsSince(ctx, since)
	if err != nil {
		return err
	}
	r.rowsRead.Add(int64(len(revoked) + len(changes) + len(cutoffs)))
	for _, c := range cutoffs {
		except := ""
		if c.Except != nil {
			except = *c.Except
		}
		r.CutOff(c.UserID, c.At, except)
	}
	r.mu.Lock()
	for _, rv := range revoked {
		r.add(rv.ID, rv.RevokedAt)
	}
	// Loads may overlap (the periodic resync, one after a reconnect, a
	// caller's own): the mark only moves forward. One that started earlier
	// and finished later would move it back, and every resync after it
	// would read again what the later one had already read.
	if started.After(r.synced) {
		r.synced = started
	}
	r.mu.Unlock()
	for _, c := range changes {
		r.SetRole(c.UserID, Role(c.Role), c.ChangedAt)
	}
	return nil
}

// HandleNotice applies a notification of db.RevocationChannel from another
// instance (or this one). The entry is dated now, which keeps it at least as
// long as the writer's would be kept. The time the payload carries, if any,
// serves only to measure how long the notification took, except for a
// cutoff, which it dates.
func (s *Service) HandleNotice(payload string) {
	n := parseNotice(payload)
	now := s.clock()
	switch {
	case !n.usable:
	case n.kind == NoticeSession:
		s.revocations.Add(n.id, now)
	case n.kind == NoticeUserSessions:
		// Dated by the cutoff itself: that time decides which sessions it covers.
		s.revocations.CutOff(n.id, n.sent, n.except)
	case n.kind == NoticeRole:
		s.revocations.SetRole(n.id, Role(n.role), now)
	}
	var lag time.Duration
	if n.dated {
		lag = max(now.Sub(n.sent), 0) // clocks of two hosts may disagree a little
	}
	s.events.RevocationNotice(n.kind, lag, n.dated)
}

// RequestResync asks Maintenance for a resync as soon as it can (the
// listener, after it reconnects: notices sent meanwhile are lost), without
// waiting for it.
func (s *Service) RequestResync() {
	select {
	case s.resyncRequests <- struct{}{}:
	default: // one is pending already
	}
}

// SyncRevocations loads the revocations written since the last load,
// catching any notification that was missed, and forgets those that no
// longer matter.
func (s *Service) SyncRevocations(ctx context.Context) error {
	s.revocations.Prune()
	return s.revocations.Load(ctx, s.store)
}

// Maintenance keeps the revocation list in step with the database and clears
// out what has expired. Run it in its own goroutine; it returns when ctx ends.
type Maintenance struct {
	Service *Service
	Logger  *slog.Logger
	// Resync is how often the revocations written since the last load are
	// read, in case a notification was missed, and the refresh tokens whose
	// grace window closed deleted; Cleanup how often expired rows are deleted.
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
		case <-m.Service.resyncRequests:
			if err := m.Service.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("revocation resync failed", "error", err.Error())
			}
		case <-resync.C:
			if err := m.Service.SyncRevocations(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("revocation resync failed", "error", err.Error())
			}
			if err := m.Service.DeleteRetired(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("deleting retired refresh tokens failed", "error", err.Error())
			}
		case <-cleanup.C:
			if _, err := m.Service.DeleteExpired(ctx); err != nil && ctx.Err() == nil {
				m.Logger.Warn("cleanup of expired sessions failed", "error", err.Error())
			}
		}
	}
}
