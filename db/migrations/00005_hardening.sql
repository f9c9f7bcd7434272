-- Notes are listed newest first and paged by (created_at, id): the index
-- serves that order and the row-value seek of the next page.
-- A rotated refresh token keeps, for the grace window only, its successor
-- (encrypted with a key derived from the signing key), so that a concurrent
-- or repeated presentation gets the same successor: a session has one live
-- refresh token.

-- The last-ADMIN check of setRole reads the ADMINs through a partial index
-- instead of scanning users.

-- A rate-limit counter says when its window ends, so that each is deleted
-- then (the counters of the windows under way are dropped with the old
-- column-less rows: at worst, one window of leniency at the upgrade).

-- +goose Up
DELETE FROM rate_limits;
ALTER TABLE rate_limits ADD COLUMN expires_at TIMESTAMP;
CREATE INDEX rate_limits_expires_at ON rate_limits (expires_at);
CREATE INDEX users_admins ON users (id) WHERE role = 'ADMIN';
DROP INDEX notes_owner_id_created_at;
CREATE INDEX notes_owner_id_created_at_id ON notes (owner_id, created_at, id);
ALTER TABLE refresh_tokens ADD COLUMN successor TEXT;
CREATE INDEX refresh_tokens_successor ON refresh_tokens (rotated_at) WHERE successor IS NOT NULL;

-- +goose Down
DROP INDEX rate_limits_expires_at;
ALTER TABLE rate_limits DROP COLUMN expires_at;
DROP INDEX users_admins;
DROP INDEX refresh_tokens_successor;
ALTER TABLE refresh_tokens DROP COLUMN successor;
DROP INDEX notes_owner_id_created_at_id;
CREATE INDEX notes_owner_id_created_at ON notes (owner_id, created_at);
