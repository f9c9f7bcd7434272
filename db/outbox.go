package db

import (
	"context"
	"fmt"
	"time"
)

// OutboxMail is a row of the mail outbox: one rendered message waiting for
// delivery. The flows that send mail (package auth) write it in the same
// transaction as the change that caused it, through insertOutbox; package
// mail renders it and delivers it.
type OutboxMail struct {
	ID        string    `db:"id"`
	Kind      string    `db:"kind"`
	Recipient string    `db:"recipient"`
	Subject   string    `db:"subject"`
	Text      string    `db:"body_text"`
	HTML      string    `db:"body_html"`
	CreatedAt time.Time `db:"created_at"`
}

// insertOutbox queues m on tx, due at once. Store methods that change state
// and mail about it call it inside their transaction.
func insertOutbox(ctx context.Context, tx querier, m OutboxMail) error {
	_, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO mail_outbox
		(id, kind, recipient, subject, body_text, body_html, created_at, next_attempt_at, attempts)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)`),
		m.ID, m.Kind, m.Recipient, m.Subject, m.Text, m.HTML, m.CreatedAt, m.CreatedAt)
	if err != nil {
		return fmt.Errorf("queue mail: %w", translate(err))
	}
	return nil
}

// EnqueueMail queues m on its own, due at once: for a mail that goes with no
// other change.
func (s *Store) EnqueueMail(ctx context.Context, m OutboxMail) error {
	return insertOutbox(ctx, s.q(), m)
}
