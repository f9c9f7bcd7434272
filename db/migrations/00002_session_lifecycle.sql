-- Indexes for the token lifecycle: loading recent revocations at start and on
-- resync, and the background cleanup of expired sessions and refresh tokens.

-- +goose Up
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at);

-- +goose Down
DROP INDEX refresh_tokens_expires_at;
DROP INDEX sessions_expires_at;
DROP INDEX sessions_revoked_at;
