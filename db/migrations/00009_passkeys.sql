-- Passkeys (WebAuthn). A passkey is a second factor among the others: a row
-- of mfa_factors of type WEBAUTHN (verified when it is registered: the
-- registration ceremony is its proof), with its credential in
-- webauthn_credentials. So mfaFactors lists it, removeFactor and the
-- operator's reset delete it (ON DELETE CASCADE), the limit of factors per
-- user counts it, and users.mfa_enabled (a verified factor exists) needs no
-- change. A WEBAUTHN factor has no secret: its secret column is empty, the
-- credential's public key is all the server keeps.
--
-- SQLite cannot alter a CHECK constraint, so mfa_factors is rebuilt, the
-- same statements on both databases (nothing references mfa_factors yet).
--
-- webauthn_challenges holds the challenge of each ceremony begun, by its
-- SHA-256, with the library's session data, for 5 minutes: any instance may
-- finish a ceremony another began, and a challenge is deleted as it is used
-- (DELETE … RETURNING), so it is used once.

-- +goose Up
CREATE TABLE mfa_factors_next (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type          TEXT NOT NULL CHECK (type IN ('TOTP', 'WEBAUTHN')),
    friendly_name TEXT,
    secret        TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    verified_at   TIMESTAMP,
    last_used_at  TIMESTAMP,
    last_step     BIGINT
);
INSERT INTO mfa_factors_next (id, user_id, type, friendly_name, secret, created_at, verified_at, last_used_at, last_step)
    SELECT id, user_id, type, friendly_name, secret, created_at, verified_at, last_used_at, last_step FROM mfa_factors;
DROP TABLE mfa_factors;
ALTER TABLE mfa_factors_next RENAME TO mfa_factors;
CREATE INDEX mfa_factors_user_id ON mfa_factors (user_id, created_at);

-- credential_id and public_key are base64url (no padding) of the raw bytes;
-- aaguid is the authenticator model's UUID; transports is comma-separated.
CREATE TABLE webauthn_credentials (
    factor_id          TEXT PRIMARY KEY REFERENCES mfa_factors (id) ON DELETE CASCADE,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    credential_id      TEXT NOT NULL UNIQUE,
    public_key         TEXT NOT NULL,
    attestation_type   TEXT NOT NULL,
    attestation_format TEXT NOT NULL,
    aaguid             TEXT NOT NULL,
    sign_count         BIGINT NOT NULL,
    transports         TEXT NOT NULL,
    user_present       BOOLEAN NOT NULL,
    user_verified      BOOLEAN NOT NULL,
    backup_eligible    BOOLEAN NOT NULL,
    backup_state       BOOLEAN NOT NULL
);
CREATE INDEX webauthn_credentials_user_id ON webauthn_credentials (user_id);

CREATE TABLE webauthn_challenges (
    challenge_hash TEXT PRIMARY KEY,
    ceremony       TEXT NOT NULL CHECK (ceremony IN ('registration', 'login')),
    user_id        TEXT REFERENCES users (id) ON DELETE CASCADE,
    session_id     TEXT,
    session_data   TEXT NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    expires_at     TIMESTAMP NOT NULL
);
CREATE INDEX webauthn_challenges_expires_at ON webauthn_challenges (expires_at);

-- +goose Down
DROP TABLE webauthn_challenges;
DROP TABLE webauthn_credentials;
DELETE FROM mfa_factors WHERE type = 'WEBAUTHN';
-- Recovery codes go with a user's last verified factor, as removeFactor does.
DELETE FROM recovery_codes WHERE NOT EXISTS
    (SELECT 1 FROM mfa_factors f WHERE f.user_id = recovery_codes.user_id AND f.verified_at IS NOT NULL);
CREATE TABLE mfa_factors_prev (
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
INSERT INTO mfa_factors_prev (id, user_id, type, friendly_name, secret, created_at, verified_at, last_used_at, last_step)
    SELECT id, user_id, type, friendly_name, secret, created_at, verified_at, last_used_at, last_step FROM mfa_factors;
DROP TABLE mfa_factors;
ALTER TABLE mfa_factors_prev RENAME TO mfa_factors;
CREATE INDEX mfa_factors_user_id ON mfa_factors (user_id, created_at);
