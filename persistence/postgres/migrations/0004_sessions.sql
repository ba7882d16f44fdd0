-- Accounts can be disabled; sessions are chains of refresh tokens, stored only as hashes.
ALTER TABLE users ADD COLUMN IF NOT EXISTS disabled boolean NOT NULL DEFAULT false;

CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash        bytea       NOT NULL PRIMARY KEY, -- SHA-256 of the token
    family      text        NOT NULL,             -- one login and its rotations
    username    text        NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    replaced_by bytea,                            -- set once rotated: presenting it again is reuse
    revoked     boolean     NOT NULL DEFAULT false
);

CREATE INDEX IF NOT EXISTS refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX IF NOT EXISTS refresh_tokens_username ON refresh_tokens (username);
CREATE INDEX IF NOT EXISTS refresh_tokens_expires ON refresh_tokens (expires_at);
