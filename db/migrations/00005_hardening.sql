-- Notes are listed newest first and paged by (created_at, id): the index
-- serves that order and the row-value seek of the next page.
-- A rotated refresh token is kept for the grace window only, with its
-- successor (encrypted with a key derived from the signing key), so that a
-- concurrent or repeated presentation gets the same successor: a session has
-- one live refresh token. Retired tokens are then deleted (by rotated_at).

-- The last-ADMIN check of setRole reads the ADMINs through a partial index
-- instead of scanning users.

-- A rate-limit counter says when its window ends, so that each is deleted
-- then, and how many of its attempts are still in flight, so that a correct
-- login waiting behind others is not taken for a failure (the counters of the windows under way are dropped with the old
-- column-less rows: at worst, one window of leniency at the upgrade).

-- The revocation resync reads only what was revoked since its last run,
-- from a partial index that holds the revoked sessions alone and covers the
-- query (revoked_at, id): its cost follows what changed, not the table.

-- Revoking every session of a user (logout of all sessions, a password
-- change) is one write of the user's row, a cutoff, whatever the number of
-- sessions: those created no later than it, but the one it excepts, are revoked.

-- +goose Up
ALTER TABLE users ADD COLUMN sessions_revoked_at TIMESTAMP;
ALTER TABLE users ADD COLUMN sessions_revoked_except TEXT;
CREATE INDEX users_sessions_revoked_at ON users (sessions_revoked_at) WHERE sessions_revoked_at IS NOT NULL;
DROP INDEX sessions_revoked_at;
CREATE INDEX sessions_revoked ON sessions (revoked_at, id) WHERE revoked_at IS NOT NULL;
DELETE FROM rate_limits;
ALTER TABLE rate_limits ADD COLUMN expires_at TIMESTAMP;
ALTER TABLE rate_limits ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
CREATE INDEX users_admins ON users (id) WHERE role = 'ADMIN';
DROP INDEX notes_owner_id_created_at;
CREATE INDEX notes_owner_id_created_at_id ON notes (owner_id, created_at, id);
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;
CREATE INDEX refresh_tokens_rotated_at ON refresh_tokens (rotated_at) WHERE rotated_at IS NOT NULL;

-- +goose Down
DROP INDEX users_sessions_revoked_at;
ALTER TABLE users DROP COLUMN sessions_revoked_except;
ALTER TABLE users DROP COLUMN sessions_revoked_at;
DROP INDEX sessions_revoked;
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
DROP INDEX rate_limits_expires_at;
ALTER TABLE rate_limits DROP COLUMN in_flight;
ALTER TABLE rate_limits DROP COLUMN expires_at;
DROP INDEX users_admins;
DROP INDEX refresh_tokens_rotated_at;
ALTER TABLE refresh_tokens DROP COLUMN successor;
DROP INDEX notes_owner_id_created_at_id;
CREATE INDEX notes_owner_id_created_at ON notes (owner_id, created_at);
