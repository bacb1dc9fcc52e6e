use std::fmt;

use sqlx::Row;

use crate::user::sql::pool::{Backend, Param, SqlPool};

use crate::password::HashedPassword;
use crate::scope::Scopes;

const SQLITE_SCHEMA: &str = include_str!("../../../migrations/sqlite/0001_users.sql");
const POSTGRES_SCHEMA: &str = include_str!("../../../migrations/postgres/0001_users.sql");

const SQLITE_EXISTS: &str =
    "SELECT count(*) AS found FROM sqlite_master WHERE type = 'table' AND name = 'users'";
const POSTGRES_EXISTS: &str =
    "SELECT count(*) AS found FROM pg_catalog.pg_tables WHERE tablename = 'users' \
     AND schemaname = current_schema()";

/// The crate's default `users` table: creates it, and adds and changes users the
/// way [`SqlUserStore`](super::SqlUserStore) expects (a new security stamp
/// whenever a change must end the user's sessions).
///
/// Every change takes effect on the user's next request, in every process that
/// reads the table. If you change the table with your own SQL, do as these
/// methods do: when the password hash or the scopes change, set `stamp` to a new
/// random 64-bit value, or the user's old tokens keep working.
///
/// Methods that name a user answer `Ok(false)` when there is no such user (or,
/// for [`add`](Self::add), when the name is taken).
#[derive(Clone)]
pub struct UsersTable {
    pool: SqlPool,
}

impl fmt::Debug for UsersTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsersTable").finish_non_exhaustive()
    }
}

impl UsersTable {
    /// The table in the database of `pool`: an [`AnyPool`](sqlx::AnyPool), a
    /// [`PgPool`](sqlx::PgPool) or a [`SqlitePool`](sqlx::SqlitePool).
    pub fn new(pool: impl Into<SqlPool>) -> Self {
        Self { pool: pool.into() }
    }

    /// Creates the table unless it exists; answers whether it created it (a
    /// fresh database, to seed). Safe to run on every start and from several
    /// processes at once. It does not touch sqlx's `_sqlx_migrations`.
    pub async fn migrate(&self) -> Result<bool, sqlx::Error> {
        let (exists, schema) = match self.pool.backend().await? {
            Backend::Sqlite => (SQLITE_EXISTS, SQLITE_SCHEMA),
            Backend::Postgres => (POSTGRES_EXISTS, POSTGRES_SCHEMA),
        };
        let found: i64 = match self.pool.fetch_optional(exists, &[]).await? {
            Some(row) => row.try_get("found")?,
            None => 0,
        };
        self.pool.execute_script(schema).await?;
        Ok(found == 0)
    }

    /// Adds a user; `Ok(false)` if the username is taken.
    pub async fn add(&self, user: &NewUser) -> Result<bool, sqlx::Error> {
        let scopes = user.scopes.to_string();
        let params = [
            user.username.as_str().into(),
            user.password_hash.as_str().into(),
            user.full_name.as_deref().into(),
            user.email.as_deref().into(),
            user.disabled.into(),
            scopes.as_str().into(),
            new_stamp()?.into(),
        ];
        let inserted = self
            .pool
            .execute(
                "INSERT INTO users (username, password_hash, full_name, email, disabled, scopes, stamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &params,
            )
            .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(sqlx::Error::Database(error)) if error.is_unique_violation() => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Sets a new password hash: the user's tokens stop working.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &HashedPassword,
    ) -> Result<bool, sqlx::Error> {
        self.set_and_restamp("password_hash", username, password_hash.as_str())
            .await
    }

    /// Sets the scopes the user may be granted: their tokens stop working (they
    /// log in again for tokens with the new scopes).
    pub async fn set_scopes(&self, username: &str, scopes: &Scopes) -> Result<bool, sqlx::Error> {
        self.set_and_restamp("scopes", username, &scopes.to_string())
            .await
    }

    /// Sets `column` (one of ours, never input) and a new stamp, which ends the
    /// user's tokens.
    async fn set_and_restamp(
        &self,
        column: &'static str,
        username: &str,
        value: &str,
    ) -> Result<bool, sqlx::Error> {
        let sql = format!(
            "UPDATE users SET {column} = $2, stamp = $3, updated_at = CURRENT_TIMESTAMP \
             WHERE username = $1"
        );
        let params = [username.into(), value.into(), new_stamp()?.into()];
        self.change(&sql, &params).await
    }

    /// Disables a user: their tokens answer "Inactive user" until
    /// [`enable`](Self::enable).
    pub async fn disable(&self, username: &str) -> Result<bool, sqlx::Error> {
        self.set_disabled(username, true).await
    }

    /// Enables a disabled user: their tokens work again.
    pub async fn enable(&self, username: &str) -> Result<bool, sqlx::Error> {
        self.set_disabled(username, false).await
    }

    async fn set_disabled(&self, username: &str, disabled: bool) -> Result<bool, sqlx::Error> {
        self.change(
            "UPDATE users SET disabled = $2, updated_at = CURRENT_TIMESTAMP WHERE username = $1",
            &[username.into(), disabled.into()],
        )
        .await
    }

    /// Removes a user: their tokens stop working, also if the name is added again
    /// (the new user gets a new stamp).
    pub async fn remove(&self, username: &str) -> Result<bool, sqlx::Error> {
        self.change("DELETE FROM users WHERE username = $1", &[username.into()])
            .await
    }

    /// Runs an `UPDATE` or `DELETE` of one user: whether there was one.
    async fn change(&self, sql: &str, params: &[Param<'_>]) -> Result<bool, sqlx::Error> {
        Ok(self.pool.execute(sql, params).await? > 0)
    }
}

/// A random stamp: a user removed and added again must not get back an earlier
/// stamp, which a counter per row would give.
fn new_stamp() -> Result<i64, sqlx::Error> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|error| sqlx::Error::Protocol(error.to_string()))?;
    Ok(i64::from_ne_bytes(bytes))
}

/// A user to [`add`](UsersTable::add): active, with no scopes, full name or email
/// unless set.
#[derive(Debug, Clone)]
pub struct NewUser {
    username: String,
    password_hash: HashedPassword,
    full_name: Option<String>,
    email: Option<String>,
    disabled: bool,
    scopes: Scopes,
}

impl NewUser {
    /// A user with this name and password hash.
    pub fn new(username: impl Into<String>, password_hash: HashedPassword) -> Self {
        Self {
            username: username.into(),
            password_hash,
            full_name: None,
            email: None,
            disabled: false,
            scopes: Scopes::empty(),
        }
    }

    /// Sets the full name.
    pub fn full_name(mut self, full_name: impl Into<String>) -> Self {
        self.full_name = Some(full_name.into());
        self
    }

    /// Sets the email address.
    pub fn email(mut self, email: impl Into<String>) -> Self {
        self.email = Some(email.into());
        self
    }

    /// Sets the scopes the user may be granted.
    pub fn scopes(mut self, scopes: Scopes) -> Self {
        self.scopes = scopes;
        self
    }

    /// Adds the user disabled.
    pub fn disabled(mut self) -> Self {
        self.disabled = true;
        self
    }
}
