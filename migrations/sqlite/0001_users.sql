-- tower-oauth2-password: the default `users` table, SQLite.
-- Idempotent: `UsersTable::migrate` runs it on every start. To manage it with your
-- own migration tool instead, copy this file into your migrations.
-- Flags are INTEGER 0/1: sqlx's `Any` driver reads no SQLite BOOLEAN or DATETIME.
CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    -- A PHC string ($argon2id$…), or a legacy bcrypt hash ($2b$…) renewed at login.
    password_hash TEXT    NOT NULL,
    full_name     TEXT,
    email         TEXT,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    -- The scopes the user may be granted, space-separated.
    scopes        TEXT    NOT NULL DEFAULT '',
    -- Security stamp: a new random value ends the user's sessions.
    stamp         INTEGER NOT NULL,
    created_at    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at    TEXT    NOT NULL DEFAULT CURRENT_TIMESTAMP
);
