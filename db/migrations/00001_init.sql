-- The schema is written once for both PostgreSQL and SQLite: TEXT ids made in Go,
-- TIMESTAMP columns that always hold UTC (the application writes every time value),
-- and indexes on lower(username) so that names are unique without regard to case
-- (usernames are ASCII, so lower() is the same on both databases).

-- +goose Up
CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('USER', 'ADMIN')),
    created_at    TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_created_at_id ON users (created_at, id);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP NOT NULL,
    expires_at   TIMESTAMP NOT NULL,
    revoked_at   TIMESTAMP,
    user_agent   TEXT
);
CREATE INDEX sessions_user_id ON sessions (user_id);

-- Only a hash of each refresh token is kept: a copy of this table does not let anyone sign in.
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at  TIMESTAMP NOT NULL,
    expires_at  TIMESTAMP NOT NULL,
    rotated_at  TIMESTAMP
);
CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

-- Keys generated in development so that tokens survive a restart. One row per algorithm:
-- instances starting together agree on the first row written.
CREATE TABLE generated_keys (
    alg        TEXT PRIMARY KEY,
    key_data   TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- +goose Down
DROP TABLE generated_keys;
DROP TABLE refresh_tokens;
DROP TABLE sessions;
DROP TABLE users;
