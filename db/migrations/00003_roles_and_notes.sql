-- role_changed_at lets every instance refuse access tokens that carry a role
-- the user no longer has, until they would have expired anyway.
-- notes is the example resource owned by a user.

-- +goose Up
ALTER TABLE users ADD COLUMN role_changed_at TIMESTAMP;
CREATE INDEX users_role_changed_at ON users (role_changed_at);

CREATE TABLE notes (
    id         TEXT PRIMARY KEY,
    owner_id   TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX notes_owner_id_created_at ON notes (owner_id, created_at);

-- +goose Down
DROP TABLE notes;
DROP INDEX users_role_changed_at;
ALTER TABLE users DROP COLUMN role_changed_at;
