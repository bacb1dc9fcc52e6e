-- tower-oauth2-password: the default `users` table, PostgreSQL.
-- Idempotent: `UsersTable::migrate` runs it on every start. To manage it with your
-- own migration tool instead, copy this file into your migrations.
CREATE TABLE IF NOT EXISTS users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL UNIQUE,
    -- A PHC string ($argon2id$…), or a legacy bcrypt hash ($2b$…) renewed at login.
    password_hash TEXT        NOT NULL,
    full_name     TEXT,
    email         TEXT,
    disabled      BOOLEAN     NOT NULL DEFAULT FALSE,
    -- The scopes the user may be granted, space-separated.
    scopes        TEXT        NOT NULL DEFAULT '',
    -- Security stamp: a new random value ends the user's sessions.
    stamp         BIGINT      NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
