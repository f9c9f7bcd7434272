-- Second factors. A session keeps the assurance level it has reached (aal1:
-- the password; aal2: a second factor too) and the methods it used (RFC 8176
-- names, space-separated), so that refreshToken issues tokens at the same level.
-- mfa_factors.secret holds the TOTP secret sealed with AES-256-GCM (bound to
-- the factor's id), never in plaintext; last_step is the last accepted TOTP
-- time step, advanced only by a conditional UPDATE, so that a code is accepted
-- once across sessions and instances. recovery_codes keeps SHA-256 hashes only.

-- +goose Up
ALTER TABLE sessions ADD COLUMN aal TEXT NOT NULL DEFAULT 'aal1';
ALTER TABLE sessions ADD COLUMN amr TEXT NOT NULL DEFAULT 'pwd';

CREATE TABLE mfa_factors (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type          TEXT NOT NULL CHECK (type IN ('TOTP')),
    friendly_name TEXT,
    secret        TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    verified_at   TIMESTAMP,
    last_used_at  TIMESTAMP,
    last_step     BIGINT
);
CREATE INDEX mfa_factors_user_id ON mfa_factors (user_id, created_at);

CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    used_at    TIMESTAMP,
    PRIMARY KEY (user_id, code_hash)
);

-- +goose Down
DROP TABLE recovery_codes;
DROP TABLE mfa_factors;
ALTER TABLE sessions DROP COLUMN amr;
ALTER TABLE sessions DROP COLUMN aal;
