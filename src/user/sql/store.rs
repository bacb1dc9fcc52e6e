use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{FromRow, Row};

use crate::user::sql::pool::SqlPool;

use crate::password::HashedPassword;
use crate::scope::Scopes;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

/// The default table's queries (see `migrations/`). `$1` is the subject or the
/// username; SQLite reads `$1` as PostgreSQL does.
const PRINCIPAL: &str =
    "SELECT username, full_name, email, disabled, stamp FROM users WHERE username = $1";
const CREDENTIALS: &str = "SELECT username AS subject, password_hash, scopes, disabled, stamp \
     FROM users WHERE username = $1";
const PASSWORD_UPDATE: &str =
    "UPDATE users SET password_hash = $3, updated_at = CURRENT_TIMESTAMP \
     WHERE username = $1 AND password_hash = $2";

/// Users in a SQL table, for the layer: SQLite or PostgreSQL through an
/// [`AnyPool`](sqlx::AnyPool), a [`PgPool`](sqlx::PgPool) or a
/// [`SqlitePool`](sqlx::SqlitePool) (see [`SqlPool`]).
///
/// [`new`](Self::new) reads the crate's default `users` table (see
/// [`UsersTable`](super::UsersTable)) into a [`SqlUser`];
/// [`builder`](Self::builder) reads your table into your row type.
///
/// Usernames match exactly (`username = $1`); for another rule, give your own
/// [credentials query](SqlUserStoreBuilder::credentials_query), and its
/// [canonical form](SqlUserStoreBuilder::canonical_username) for the login
/// throttle. Clones share the pool.
pub struct SqlUserStore<U = SqlUser> {
    pool: SqlPool,
    queries: Arc<Queries>,
    user: PhantomData<fn() -> U>,
}

struct Queries {
    principal: Box<str>,
    credentials: Box<str>,
    password_update: Option<Box<str>>,
    /// What the credentials query matches a typed name as; `None`: as typed.
    canonical: Option<fn(&str) -> String>,
}

impl SqlUserStore<SqlUser> {
    /// The crate's default `users` table, read into [`SqlUser`], through any of
    /// the three pools.
    pub fn new(pool: impl Into<SqlPool>) -> Self {
        Self::builder(pool).build()
    }
}

impl<U> SqlUserStore<U> {
    /// Your own table or row type: the default table's queries until you replace
    /// them.
    ///
    /// ```
    /// use serde::Serialize;
    /// use tower_oauth2_password::user::sql::sqlx::{self, FromRow, Row};
    /// use tower_oauth2_password::user::sql::sqlx::any::AnyRow;
    /// use tower_oauth2_password::user::sql::{AnyPool, SqlUserStore};
    ///
    /// /// The application's own model: what handlers see.
    /// #[derive(Serialize)]
    /// struct Account {
    ///     id: i64,
    ///     login: String,
    /// }
    ///
    /// impl FromRow<'_, AnyRow> for Account {
    ///     fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
    ///         Ok(Self { id: row.try_get("id")?, login: row.try_get("login")? })
    ///     }
    /// }
    ///
    /// fn store(pool: AnyPool) -> SqlUserStore<Account> {
    ///     SqlUserStore::builder(pool)
    ///         // The guard's lookup, by the token's subject: no password hash.
    ///         .principal_query(
    ///             "SELECT id, login, NOT active AS disabled, stamp FROM accounts WHERE login = $1",
    ///         )
    ///         // The login's: case-insensitive, answering the stored spelling.
    ///         .credentials_query(
    ///             "SELECT login AS subject, pw AS password_hash, NULL AS scopes, \
    ///              NOT active AS disabled, stamp FROM accounts WHERE lower(login) = lower($1)",
    ///         )
    ///         // The same rule in Rust, for the login throttle's counts.
    ///         .canonical_username(str::to_lowercase)
    ///         .password_update("UPDATE accounts SET pw = $3 WHERE login = $1 AND pw = $2")
    ///         .build()
    /// }
    /// ```
    pub fn builder(pool: impl Into<SqlPool>) -> SqlUserStoreBuilder<U> {
        SqlUserStoreBuilder {
            pool: pool.into(),
            principal: PRINCIPAL.into(),
            credentials: CREDENTIALS.into(),
            password_update: Some(PASSWORD_UPDATE.into()),
            canonical: None,
            user: PhantomData,
        }
    }

    /// The pool, for the application's own queries.
    pub fn pool(&self) -> &SqlPool {
        &self.pool
    }
}

impl<U> Clone for SqlUserStore<U> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            queries: Arc::clone(&self.queries),
            user: PhantomData,
        }
    }
}

impl<U> fmt::Debug for SqlUserStore<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUserStore")
            .field("principal_query", &self.queries.principal)
            .field("credentials_query", &self.queries.credentials)
            .field("password_update", &self.queries.password_update)
            .finish_non_exhaustive()
    }
}

/// Builds a [`SqlUserStore`] on your table and row type.
///
/// Each query takes one parameter, `$1`, and answers at most one row; flags may
/// be `BOOLEAN` or an integer 0/1, the stamp any 64-bit integer.
pub struct SqlUserStoreBuilder<U> {
    pool: SqlPool,
    principal: Box<str>,
    credentials: Box<str>,
    password_update: Option<Box<str>>,
    canonical: Option<fn(&str) -> String>,
    user: PhantomData<fn() -> U>,
}

impl<U> SqlUserStoreBuilder<U> {
    /// The guard's lookup, on every guarded request: `$1` is the token's subject
    /// (what the credentials query answered as `subject`). Columns: `disabled`,
    /// `stamp`, and whatever `U`'s [`FromRow`] reads. Leave the password hash
    /// out, and make `$1` hit a unique index.
    pub fn principal_query(mut self, sql: impl Into<Box<str>>) -> Self {
        self.principal = sql.into();
        self
    }

    /// The login's lookup: `$1` is the username as typed. Columns: `subject`
    /// (the canonical name tokens are issued to), `password_hash`, `scopes`
    /// (space-separated, or `NULL`), `disabled`, `stamp`. If it matches more
    /// than the exact name, say how with
    /// [`canonical_username`](Self::canonical_username).
    pub fn credentials_query(mut self, sql: impl Into<Box<str>>) -> Self {
        self.credentials = sql.into();
        self
    }

    /// How the credentials query matches a typed name, in Rust:
    /// `str::to_lowercase` for `lower(username) = lower($1)`, or your own
    /// function for trimming or Unicode normalisation. (Rust and SQL `lower`
    /// agree on ASCII; beyond it, SQLite leaves letters alone and PostgreSQL
    /// follows the database's locale, so a non-ASCII spelling the two fold
    /// differently would get a count of its own.) The login throttle counts failures under what it
    /// returns ([`UserStore::canonical_username`]), so that every spelling of one
    /// user shares one count. Without it, names count as typed, which fits the
    /// default exact match.
    pub fn canonical_username(mut self, canonical: fn(&str) -> String) -> Self {
        self.canonical = Some(canonical);
        self
    }

    /// Stores a renewed password hash: `$1` subject, `$2` the hash read at login,
    /// `$3` the new one. Make it a compare-and-set (`… AND password_hash = $2`),
    /// so that a password changed meanwhile is kept, and leave the stamp alone.
    pub fn password_update(mut self, sql: impl Into<Box<str>>) -> Self {
        self.password_update = Some(sql.into());
        self
    }

    /// Never renews hashes: users keep logging in with the hash they have.
    pub fn no_password_update(mut self) -> Self {
        self.password_update = None;
        self
    }

    /// The store.
    pub fn build(self) -> SqlUserStore<U> {
        SqlUserStore {
            pool: self.pool,
            queries: Arc::new(Queries {
                principal: self.principal,
                credentials: self.credentials,
                password_update: self.password_update,
                canonical: self.canonical,
            }),
            user: PhantomData,
        }
    }
}

impl<U> fmt::Debug for SqlUserStoreBuilder<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlUserStoreBuilder")
            .field("principal_query", &self.principal)
            .field("credentials_query", &self.credentials)
            .field("password_update", &self.password_update)
            .finish_non_exhaustive()
    }
}

/// A user of the default `users` table, as handlers see it: no password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SqlUser {
    /// The username, also the tokens' subject.
    pub username: String,
    /// The full name, if one was given.
    pub full_name: Option<String>,
    /// The email address, if one was given.
    pub email: Option<String>,
    /// Whether the user is disabled (the guard has already refused their
    /// requests if so; shown for the tutorial's `/users/me`).
    pub disabled: bool,
}

impl FromRow<'_, AnyRow> for SqlUser {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            username: row.try_get("username")?,
            full_name: row.try_get("full_name")?,
            email: row.try_get("email")?,
            disabled: flag(row, "disabled")?,
        })
    }
}

/// A flag column: PostgreSQL answers `BOOLEAN`, SQLite an integer.
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    row.try_get::<bool, _>(column)
        .or_else(|_| row.try_get::<i64, _>(column).map(|value| value != 0))
}

/// The stamp column: any 64-bit integer, read as its bits.
fn stamp(row: &AnyRow) -> Result<u64, sqlx::Error> {
    row.try_get::<i64, _>("stamp")
        .map(|stamp| u64::from_ne_bytes(stamp.to_ne_bytes()))
}

fn principal<U>(row: &AnyRow) -> Result<Principal<U>, sqlx::Error>
where
    U: for<'r> FromRow<'r, AnyRow>,
{
    Ok(Principal {
        user: Arc::new(U::from_row(row)?),
        active: !flag(row, "disabled")?,
        stamp: stamp(row)?,
    })
}

/// `None` for a stored hash that is no password hash at all: logged, and the
/// login answers as for an unknown user (same answer, same time), rather than a
/// 503 that would tell the user exists.
fn credentials(row: &AnyRow) -> Result<Option<Credentials>, sqlx::Error> {
    let subject: String = row.try_get("subject")?;
    let hash: String = row.try_get("password_hash")?;
    let Ok(password_hash) = HashedPassword::parse(&hash) else {
        tracing::error!(user = %subject, "stored password hash is not a known format");
        return Ok(None);
    };
    let scopes: Option<String> = row.try_get("scopes")?;
    let scopes: Scopes = scopes
        .as_deref()
        .unwrap_or_default()
        .split_ascii_whitespace()
        .collect();
    Ok(Some(Credentials {
        subject: Subject::from(subject),
        password_hash,
        scopes,
        active: !flag(row, "disabled")?,
        stamp: stamp(row)?,
    }))
}

impl<U> UserStore for SqlUserStore<U>
where
    U: for<'r> FromRow<'r, AnyRow> + Send + Sync + 'static,
{
    type User = U;

    /// One query, awaited (a boxed future per guarded request).
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<U>>> {
        let pool = self.pool.clone();
        let queries = Arc::clone(&self.queries);
        let subject = subject.as_str().to_owned();
        Lookup::pending(async move {
            let row = pool
                .fetch_optional(&queries.principal, &[subject.as_str().into()])
                .await
                .map_err(StoreError::new)?;
            row.as_ref()
                .map(principal)
                .transpose()
                .map_err(StoreError::new)
        })
    }

    fn credentials(
        &self,
        username: &str,
    ) -> impl Future<Output = Result<Option<Credentials>, StoreError>> + Send {
        let pool = self.pool.clone();
        let queries = Arc::clone(&self.queries);
        let username = username.to_owned();
        async move {
            let row = pool
                .fetch_optional(&queries.credentials, &[username.as_str().into()])
                .await
                .map_err(StoreError::new)?;
            match row {
                Some(row) => credentials(&row).map_err(StoreError::new),
                None => Ok(None),
            }
        }
    }

    /// As typed, or as [`SqlUserStoreBuilder::canonical_username`] says.
    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        match self.queries.canonical {
            Some(canonical) => Cow::Owned(canonical(username)),
            None => Cow::Borrowed(username),
        }
    }

    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        let pool = self.pool.clone();
        let queries = Arc::clone(&self.queries);
        let subject = subject.as_str().to_owned();
        let old = old.as_str().to_owned();
        async move {
            let Some(sql) = &queries.password_update else {
                return Ok(());
            };
            let params = [
                subject.as_str().into(),
                old.as_str().into(),
                new.as_str().into(),
            ];
            pool.execute(sql, &params).await.map_err(StoreError::new)?;
            Ok(())
        }
    }
}
