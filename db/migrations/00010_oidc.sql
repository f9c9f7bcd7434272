-- Sign-in with an OpenID Connect provider.
--
-- oidc_identities links an account at a provider, the pair (provider, sub),
-- to a user: unique per pair, so that one account at a provider signs in
-- one user only. email is what the provider said at the last sign-in, for
-- the user to recognise the account; it is never used to find a user.
--
-- oidc_flows holds a sign-in begun at /auth/oidc/<provider>/start: the
-- SHA-256 of its state (the state itself is only in the browser's cookie
-- and the provider's redirect), the nonce and the PKCE verifier, for 10
-- minutes. Any instance may receive the callback, and a flow is deleted as
-- it is used (DELETE … RETURNING), so it is used once. user_id and
-- session_id are set for a flow begun by linkIdentityStart: the identity is
-- then linked to that user, if that session is still live.
--
-- sessions.fresh_until is the fresh grant of a session opened at a
-- provider's callback: its first refresh before that time issues a fresh
-- token, and uses the grant up (API.md). NULL for every other session.
--
-- A user created by a provider has no password: users.password_hash is
-- the empty string, which no password verifies (auth.Hasher checks the
-- password against a dummy hash instead, so the work is that of a wrong
-- password). The column stays NOT NULL, no table is rebuilt.

-- +goose Up
CREATE TABLE oidc_identities (
    id           TEXT PRIMARY KEY,
    provider     TEXT NOT NULL,
    subject      TEXT NOT NULL,
    user_id      TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email        TEXT,
    created_at   TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    UNIQUE (provider, subject)
);
CREATE INDEX oidc_identities_user_id ON oidc_identities (user_id, created_at);

CREATE TABLE oidc_flows (
    state_hash    TEXT PRIMARY KEY,
    provider      TEXT NOT NULL,
    nonce         TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    redirect_uri  TEXT NOT NULL,
    user_id       TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_id    TEXT,
    created_at    TIMESTAMP NOT NULL,
    expires_at    TIMESTAMP NOT NULL
);
CREATE INDEX oidc_flows_expires_at ON oidc_flows (expires_at);

ALTER TABLE sessions ADD COLUMN fresh_until TIMESTAMP;

-- +goose Down
ALTER TABLE sessions DROP COLUMN fresh_until;
DROP TABLE oidc_flows;
DROP TABLE oidc_identities;
