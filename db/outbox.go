package db

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jmoiron/sqlx"
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

// ClaimedMail is an outbox row taken for delivery: the mail, how many
// attempts were made before this one, and until when this claim holds.
type ClaimedMail struct {
	OutboxMail
	Attempts    int       `db:"attempts"`
	LockedUntil time.Time `db:"locked_until"`
}

// undelivered selects the rows still waiting: neither sent nor given up.
const undelivered = `sent_at IS NULL AND failed_at IS NULL`

// ClaimMail takes up to limit undelivered rows due at now and not claimed by
// another sender, oldest due first, and holds them until now+lease: no other
// sender takes them before that, and if this one dies they are taken again
// once the lease has run out (so a crash between the SMTP server's 250 and
// MarkMailSent is the one case in which a mail goes out twice).
//
// It is one statement, so its own short transaction. On PostgreSQL the
// subquery locks the rows it picks with FOR UPDATE SKIP LOCKED: two instances
// claiming at once take disjoint rows, neither waiting for the other, and a
// row that another claim has just leased is re-checked against the new
// locked_until and skipped. SQLite runs every write under one lock, so the
// same UPDATE there is atomic without row locks.
func (s *Store) ClaimMail(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]ClaimedMail, error) {
	lock := ""
	if s.driver == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	until := now.Add(lease)
	var out []ClaimedMail
	err := s.q().SelectContext(ctx, &out, s.rebind(`UPDATE mail_outbox SET locked_until = ?
		WHERE id IN (SELECT id FROM mail_outbox
			WHERE `+undelivered+` AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until <= ?)
			ORDER BY next_attempt_at, id LIMIT ?`+lock+`)
		RETURNING id, kind, recipient, subject, body_text, body_html, created_at, attempts, locked_until`),
		until, now, now, limit)
	if err != nil {
		return nil, fmt.Errorf("claim mail: %w", translate(err))
	}
	// RETURNING gives no order: deliver oldest first all the same.
	slices.SortFunc(out, func(a, b ClaimedMail) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	for i := range out {
		out[i].CreatedAt = out[i].CreatedAt.UTC()
		out[i].LockedUntil = out[i].LockedUntil.UTC()
	}
	return out, nil
}

// MarkMailSent records the delivery of mail id at now and erases its bodies:
// they carry a mailed token, which the table must not keep once it has gone.
func (s *Store) MarkMailSent(ctx context.Context, id string, now time.Time) error {
	return s.finishMail(ctx, `sent_at = ?, last_error = NULL`, id, now)
}

// MarkMailFailed gives mail id up at now, keeping why (the SMTP server's
// answer, never the body) and erasing its bodies as MarkMailSent does.
func (s *Store) MarkMailFailed(ctx context.Context, id string, now time.Time, reason string) error {
	return s.finishMail(ctx, `failed_at = ?, last_error = ?`, id, now, reason)
}

func (s *Store) finishMail(ctx context.Context, set, id string, args ...any) error {
	args = append(args, id)
	_, err := s.q().ExecContext(ctx, s.rebind(`UPDATE mail_outbox SET `+set+`,
		attempts = attempts + 1, body_text = '', body_html = '', locked_until = NULL
		WHERE id = ? AND `+undelivered), args...)
	if err != nil {
		return fmt.Errorf("mark mail: %w", translate(err))
	}
	return nil
}

// MarkMailRetry counts a failed attempt at mail id, keeps why (the SMTP
// server's answer or the connection error, never the body), releases the
// claim and makes the row due again at next.
func (s *Store) MarkMailRetry(ctx context.Context, id string, next time.Time, reason string) error {
	_, err := s.q().ExecContext(ctx, s.rebind(`UPDATE mail_outbox SET
		attempts = attempts + 1, next_attempt_at = ?, last_error = ?, locked_until = NULL
		WHERE id = ? AND `+undelivered), next, reason, id)
	if err != nil {
		return fmt.Errorf("mark mail for retry: %w", translate(err))
	}
	return nil
}

// OutboxStats is what the metrics show of the outbox.
type OutboxStats struct {
	// Depth is the number of mails neither sent nor given up.
	Depth int64
	// Oldest is the creation time of the oldest of them; zero when Depth is 0.
	Oldest time.Time
}

// OutboxStats counts the undelivered mails and finds the oldest.
func (s *Store) OutboxStats(ctx context.Context) (OutboxStats, error) {
	var st OutboxStats
	if err := s.q().GetContext(ctx, &st.Depth, `SELECT COUNT(*) FROM mail_outbox WHERE `+undelivered); err != nil {
		return OutboxStats{}, fmt.Errorf("count outbox: %w", translate(err))
	}
	if st.Depth == 0 {
		return st, nil
	}
	// ORDER BY … LIMIT 1 rather than MIN(): SQLite returns an aggregate as
	// text, a column as the TIMESTAMP it is declared.
	err := s.q().GetContext(ctx, &st.Oldest, `SELECT created_at FROM mail_outbox WHERE `+undelivered+` ORDER BY created_at LIMIT 1`)
	if err != nil && !errors.Is(err, errNoRows) {
		return OutboxStats{}, fmt.Errorf("oldest outbox mail: %w", translate(err))
	}
	st.Oldest = st.Oldest.UTC()
	return st, nil
}

// DeleteOldMail deletes the rows sent or given up before before: they are
// kept that long for "why did this mail not arrive" (when, how many
// attempts, the last answer), with their bodies already erased.
func (s *Store) DeleteOldMail(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.q().ExecContext(ctx, s.rebind(`DELETE FROM mail_outbox WHERE sent_at < ? OR failed_at < ?`), before, before)
	if err != nil {
		return 0, fmt.Errorf("delete old mail: %w", translate(err))
	}
	return res.RowsAffected()
}

// OutboxEntry is the delivery state of one outbox row, for tests and for an
// operator asking what became of a mail.
type OutboxEntry struct {
	ClaimedMail
	NextAttemptAt time.Time  `db:"next_attempt_at"`
	SentAt        *time.Time `db:"sent_at"`
	FailedAt      *time.Time `db:"failed_at"`
	LastError     *string    `db:"last_error"`
	Locked        *time.Time `db:"locked"`
}

// OutboxEntry reads the row of mail id.
func (s *Store) OutboxEntry(ctx context.Context, id string) (OutboxEntry, error) {
	var e OutboxEntry
	err := s.q().GetContext(ctx, &e, s.rebind(`SELECT id, kind, recipient, subject, body_text, body_html, created_at,
		attempts, next_attempt_at, sent_at, failed_at, last_error, locked_until AS locked
		FROM mail_outbox WHERE id = ?`), id)
	if err != nil {
		return OutboxEntry{}, fmt.Errorf("outbox entry: %w", translate(err))
	}
	return e, nil
}

// ReleaseMail ends the claim on rows taken but not attempted (a sender
// stopping), so that the next start or another instance takes them at once
// rather than after the lease.
func (s *Store) ReleaseMail(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	query, args, err := sqlx.In(`UPDATE mail_outbox SET locked_until = NULL WHERE id IN (?) AND `+undelivered, ids)
	if err != nil {
		return fmt.Errorf("release mail: %w", err)
	}
	if _, err := s.q().ExecContext(ctx, s.rebind(query), args...); err != nil {
		return fmt.Errorf("release mail: %w", translate(err))
	}
	return nil
}
