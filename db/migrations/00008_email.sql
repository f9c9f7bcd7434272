-- Email addresses and the tokens mailed to them.
--
-- users.email is the address as the user typed it (shown back, mailed to);
-- email_key is the same address lowercased by the application (Go's
-- strings.ToLower, Unicode-aware), so that "unique without regard to case"
-- means the same on PostgreSQL and SQLite: SQLite's lower() folds ASCII only,
-- and PostgreSQL's depends on the database's collation. An address is held
-- by at most one user, verified or not; email_verified_at says it was proven.
--
-- email_tokens keeps only the SHA-256 of each mailed token (128 random bits
-- or more: nothing to brute-force), what it is for, and the address it was
-- mailed to: a verification proves that address (for changeEmail, the new
-- one, which replaces users.email only then); a reset was mailed to the
-- verified address. A token is used by deleting its row, so that of two
-- concurrent uses exactly one finds it.

-- +goose Up
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_key TEXT;
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMP;
CREATE UNIQUE INDEX users_email_key ON users (email_key);

CREATE TABLE email_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('verify', 'reset')),
    email      TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL
);
-- A newer request ends the user's earlier tokens of its kind; cleanup by age.
CREATE INDEX email_tokens_user_purpose ON email_tokens (user_id, purpose);
CREATE INDEX email_tokens_expires_at ON email_tokens (expires_at);

-- +goose Down
DROP TABLE email_tokens;
DROP INDEX users_email_key;
ALTER TABLE users DROP COLUMN email_verified_at;
ALTER TABLE users DROP COLUMN email_key;
ALTER TABLE users DROP COLUMN email;
