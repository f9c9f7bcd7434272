-- The mail outbox. A mail is a row written in the same transaction as the
-- change that caused it (a verification token, a reset token), so that a mail
-- is never lost and never sent for a change that was rolled back. A sender on
-- any instance claims due rows (locked_until), delivers them over SMTP and
-- marks them sent or failed; a transient failure moves next_attempt_at.
-- The bodies hold a mailed token until delivery: they are erased once the row
-- is sent or failed, so that the table keeps no usable link.

-- +goose Up
CREATE TABLE mail_outbox (
    id              TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body_text       TEXT NOT NULL,
    body_html       TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    next_attempt_at TIMESTAMP NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    locked_until    TIMESTAMP,
    sent_at         TIMESTAMP,
    failed_at       TIMESTAMP,
    last_error      TEXT
);
-- The sender's scan: undelivered rows by when they are due.
CREATE INDEX mail_outbox_due ON mail_outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- +goose Down
DROP TABLE mail_outbox;
