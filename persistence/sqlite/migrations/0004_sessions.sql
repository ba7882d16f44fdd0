-- Accounts can be disabled; sessions are chains of refresh tokens, stored only as hashes.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

CREATE TABLE refresh_tokens (
    hash        BLOB    NOT NULL PRIMARY KEY, -- SHA-256 of the token
    family      TEXT    NOT NULL,             -- one login and its rotations
    username    TEXT    NOT NULL,
    issued_at   INTEGER NOT NULL,             -- Unix microseconds, UTC
    expires_at  INTEGER NOT NULL,
    replaced_by BLOB,                         -- set once rotated: presenting it again is reuse
    revoked     INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE INDEX refresh_tokens_family ON refresh_tokens (family);
CREATE INDEX refresh_tokens_username ON refresh_tokens (username);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);
