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

// Limits on what a note may hold.
const (
	MaxTitleChars = 200
	MaxBodyBytes  = 64 << 10
)

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
	if len(body) > MaxBodyBytes {
		return nil, &auth.Error{Code: auth.CodeBadUserInput, Reason: auth.ReasonInvalidInput, Field: "body",
			Message: fmt.Sprintf("A body has at most %d bytes.", MaxBodyBytes)}
	}
	n := db.Note{ID: uuid.NewString(), OwnerID: id.UserID, Title: title, Body: body, CreatedAt: s.now().UTC().Truncate(time.Microsecond)}
	if err := s.store.CreateNote(ctx, n); err != nil {
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

// Mine lists the caller's own notes (an ADMIN's too: only their own).
func (s *Service) Mine(ctx context.Context) ([]Note, error) {
	id, err := auth.FromContext(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.NotesByOwner(ctx, id.UserID)
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
