package db

import (
	"context"
	"fmt"
	"time"
)

// NoteChannel is the PostgreSQL NOTIFY channel on which every new note is
// announced ("<owner id> <note id>"), in the transaction that creates it.
const NoteChannel = "tollgate_notes"

// Note is a row of the notes table.
type Note struct {
	ID        string    `db:"id"`
	OwnerID   string    `db:"owner_id"`
	Title     string    `db:"title"`
	Body      string    `db:"body"`
	CreatedAt time.Time `db:"created_at"`
}

const noteColumns = `id, owner_id, title, body, created_at`

// CreateNote inserts n and, on PostgreSQL, announces it on NoteChannel. It
// returns ErrLimitReached instead when the owner already has max notes. The
// owner's row is locked first (SQLite's transactions hold the write lock
// from the start), so concurrent creations cannot pass the limit together.
func (s *Store) CreateNote(ctx context.Context, n Note, max int) error {
	return s.inTx(ctx, func(tx querier) error {
		var owner string
		if err := tx.GetContext(ctx, &owner, tx.Rebind(`SELECT id FROM users WHERE id = ?`+s.forUpdate()), n.OwnerID); err != nil {
			return fmt.Errorf("lock note owner: %w", translate(err))
		}
		// Counting stops at max: the index answers without reading the notes.
		var count int
		if err := tx.GetContext(ctx, &count, tx.Rebind(`SELECT count(*) FROM (SELECT 1 FROM notes WHERE owner_id = ? LIMIT ?) AS capped`),
			n.OwnerID, max); err != nil {
			return fmt.Errorf("count notes: %w", translate(err))
		}
		if count >= max {
			return ErrLimitReached
		}
		if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO notes (`+noteColumns+`) VALUES (?, ?, ?, ?, ?)`),
			n.ID, n.OwnerID, n.Title, n.Body, n.CreatedAt); err != nil {
			return fmt.Errorf("insert note: %w", translate(err))
		}
		return s.notify(ctx, tx, NoteChannel, n.OwnerID+" "+n.ID)
	})
}

// NoteByID finds a note by id.
func (s *Store) NoteByID(ctx context.Context, id string) (Note, error) {
	var n Note
	if err := s.q().GetContext(ctx, &n, s.rebind(`SELECT `+noteColumns+` FROM notes WHERE id = ?`), id); err != nil {
		return Note{}, fmt.Errorf("note by id: %w", translate(err))
	}
	n.CreatedAt = n.CreatedAt.UTC()
	return n, nil
}

// NotesByOwner lists at most limit notes of ownerID, newest first, those
// older than before if it is not nil. The row-value comparison seeks in the
// index (owner_id, created_at, id) instead of filtering.
func (s *Store) NotesByOwner(ctx context.Context, ownerID string, before *Note, limit int) ([]Note, error) {
	var out []Note
	var err error
	if before == nil {
		err = s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+noteColumns+` FROM notes
			WHERE owner_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`), ownerID, limit)
	} else {
		err = s.q().SelectContext(ctx, &out, s.rebind(`SELECT `+noteColumns+` FROM notes
			WHERE owner_id = ? AND (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?`),
			ownerID, before.CreatedAt, before.ID, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("notes by owner: %w", translate(err))
	}
	for i := range out {
		out[i].CreatedAt = out[i].CreatedAt.UTC()
	}
	return out, nil
}

// DeleteNote deletes the note id, returning ErrNotFound if there is none.
func (s *Store) DeleteNote(ctx context.Context, id string) error {
	res, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM notes WHERE id = ?`), id)
	if err != nil {
		return fmt.Errorf("delete note: %w", translate(err))
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}
