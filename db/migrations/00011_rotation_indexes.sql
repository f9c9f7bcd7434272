-- Two indexes that every refresh paid for.
--
-- A session's expiry moves forward at every refresh. With an index on it,
-- each refresh wrote a new version of the session's row and an entry in
-- every one of its indexes (PostgreSQL can update a row in place, "HOT",
-- only when no indexed column changes), and the index bloated with dead
-- entries. Without it, the cleanup finds the expired sessions through their
-- refresh tokens, whose expiry is indexed: a session that has not ended has
-- a live refresh token that expires with it (the two expiries are written
-- together), and the cleanup now keeps an expired token until its session's
-- end can be acted on, so that no ended session is left without a token to
-- find it by.
--
-- The earlier cleanup deleted a token at its expiry and its session up to a
-- quarter of an hour later: the sessions that expired in that quarter of an
-- hour before this migration stay, expired (never listed, never refreshed),
-- until their user is deleted.
--
-- A rotation also deletes its session's tokens retired before the grace
-- window. Found through an index on session_id alone, that read every token
-- of the session still in its window (a client refreshing in a tight loop
-- keeps hundreds there) to delete the one or two past it; an index on
-- (session_id, rotated_at) reads only those. Every query by session_id
-- alone uses it as it used the old one.

-- +goose Up
DROP INDEX sessions_expires_at;
CREATE INDEX refresh_tokens_session_id_rotated_at ON refresh_tokens (session_id, rotated_at);
DROP INDEX refresh_tokens_session_id;

-- +goose Down
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);
DROP INDEX refresh_tokens_session_id_rotated_at;
CREATE INDEX sessions_expires_at ON sessions (expires_at);
