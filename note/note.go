// Package note is the example resource that a user owns: the pattern to copy
// when adding a guarded resource. Resolvers call this package; it asks
// package auth who the caller is and decides, in one place (authorize),
// whether the caller may see or change a note.
package note

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"tollgate/auth"
	"tollgate/db"
)

// Note is a note as clients see it.
type Note struct {
	ID        string
	OwnerID   string
	Title     string
	Body      string
	CreatedAt time.Time
}

// Limits on what a note may hold and on how many a user may keep (API.md,
// "Precise rules"): together they bound what one account can store, and what
// one page of notes can cost to read.
const (
	MaxTitleChars = 200
	MaxBodyChars  = 20_000
	MaxPerUser    = 10_000
)

// ErrLimitReached refuses a note beyond MaxPerUser.
var ErrLimitReached = &auth.Error{Code: auth.CodeBadUserInput, Reason: auth.ReasonLimitReached,
	Message: fmt.Sprintf("A user may keep at most %d notes: delete some first.", MaxPerUser)}

// Service creates, reads and deletes notes, and delivers new ones to their
// owner's subscriptions.
type Service struct {
	store  *db.Store
	broker *Broker
	now    func() time.Time
	// local publishes a new note to this instance's subscribers itself; when
	// false (PostgreSQL), every instance, this one included, learns of it
	// through NOTIFY and HandleNotice.
	local bool
}

// NewService returns a Service. local is true when this instance is the only
// one (SQLite), so that nothing arrives through NOTIFY.
func NewService(store *db.Store, now func() time.Time, local bool) *Service {
	return &Service{store: store, broker: NewBroker(), now: now, local: local}
}

// authorize is the one place that decides who may see or delete a note: its
// owner, or an ADMIN. Everyone else is told the note does not exist, so that
// its existence is not revealed.
func authorize(id auth.Identity, n db.Note) error {
	if n.OwnerID == id.UserID || id.Role.Satisfies(auth.RoleAdmin) {
		return nil
	}
	return auth.ErrNotFound
}

// Create stores a note owned by the caller.
func (s *Service) Create(ctx context.Context, title, body string) (*Note, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(title); n == 0 || n > MaxTitleChars {
		return nil, &auth.Error{Code: auth.CodeBadUserInput, Reason: auth.ReasonInvalidInput, Field: "title",
			Message: fmt.Sprintf("A title has 1 to %d characters.", MaxTitleChars)}
	}
	if utf8.RuneCountInString(body) > MaxBodyChars {
		return nil, &auth.Error{Code: auth.CodeBadUserInput, Reason: auth.ReasonInvalidInput, Field: "body",
			Message: fmt.Sprintf("A body has at most %d characters.", MaxBodyChars)}
	}
	n := db.Note{ID: uuid.NewString(), OwnerID: id.UserID, Title: title, Body: body, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	err = s.store.CreateNote(ctx, n, MaxPerUser)
	if errors.Is(err, db.ErrLimitReached) {
		return nil, ErrLimitReached
	}
	if err != nil {
		return nil, fmt.Errorf("create note: %w", err)
	}
	out := toNote(n)
	if s.local {
		s.broker.Publish(out)
	}
	return &out, nil
}

// Get returns the note id if the caller may see it, NOT_FOUND otherwise.
func (s *Service) Get(ctx context.Context, noteID string) (*Note, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.load(ctx, id, noteID)
	if err != nil {
		return nil, err
	}
	out := toNote(n)
	return &out, nil
}

// Mine lists the caller's own notes (an ADMIN's too: only their own), newest
// first: at most first of them, older than the note after ("" for the newest).
func (s *Service) Mine(ctx context.Context, first *int, after string) ([]Note, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	limit, err := auth.PageSize(first)
	if err != nil {
		return nil, err
	}
	var from *db.Note
	if after != "" {
		n, err := s.load(ctx, id, after)
		if err != nil {
			return nil, err
		}
		if n.OwnerID != id.UserID {
			return nil, auth.ErrNotFound // an ADMIN's list holds only their own notes
		}
		from = &n
	}
	rows, err := s.store.NotesByOwner(ctx, id.UserID, from, limit)
	if err != nil {
		return nil, err
	}
	out := make([]Note, len(rows))
	for i, r := range rows {
		out[i] = toNote(r)
	}
	return out, nil
}

// Delete deletes the note id if the caller may; otherwise NOT_FOUND, and
// nothing is deleted.
func (s *Service) Delete(ctx context.Context, noteID string) error {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return err
	}
	if _, err := s.load(ctx, id, noteID); err != nil {
		return err
	}
	err = s.store.DeleteNote(ctx, noteID)
	if errors.Is(err, db.ErrNotFound) {
		return auth.ErrNotFound // deleted meanwhile
	}
	return err
}

// Subscribe delivers the caller's new notes, from any instance, until ctx ends.
func (s *Service) Subscribe(ctx context.Context) (<-chan *Note, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	return s.broker.Subscribe(ctx, id.UserID), nil
}

// Subscribers is the number of open noteCreated subscriptions on this instance.
func (s *Service) Subscribers() int { return s.broker.Len() }

// HandleNotice delivers a note announced on db.NoteChannel ("<owner> <id>")
// to this instance's subscribers of its owner, loading it only if there are any.
func (s *Service) HandleNotice(ctx context.Context, payload string) error {
	var owner, noteID string
	if _, err := fmt.Sscan(payload, &owner, &noteID); err != nil {
		return fmt.Errorf("note notice %q: %w", payload, err)
	}
	if !s.broker.HasSubscribers(owner) {
		return nil
	}
	n, err := s.store.NoteByID(ctx, noteID)
	if errors.Is(err, db.ErrNotFound) {
		return nil // deleted before we got to it
	}
	if err != nil {
		return err
	}
	s.broker.Publish(toNote(n))
	return nil
}

func (s *Service) load(ctx context.Context, id auth.Identity, noteID string) (db.Note, error) {
	if !auth.ValidID(noteID) {
		return db.Note{}, auth.ErrNotFound
	}
	n, err := s.store.NoteByID(ctx, noteID)
	if errors.Is(err, db.ErrNotFound) {
		return db.Note{}, auth.ErrNotFound
	}
	if err != nil {
		return db.Note{}, err
	}
	if err := authorize(id, n); err != nil {
		return db.Note{}, err
	}
	return n, nil
}

func toNote(n db.Note) Note {
	return Note{ID: n.ID, OwnerID: n.OwnerID, Title: n.Title, Body: n.Body, CreatedAt: n.CreatedAt}
}
