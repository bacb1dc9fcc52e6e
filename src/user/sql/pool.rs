//! [`SqlPool`]: the pool a [`SqlUserStore`](super::SqlUserStore) runs its queries
//! on, whichever pool the application holds.

use sqlx::any::AnyRow;
use sqlx::query::Query;
use sqlx::{AnyPool, Database, Encode, PgPool, SqlitePool, Type};

/// A connection pool for a [`SqlUserStore`](super::SqlUserStore): sqlx's
/// [`AnyPool`] (the URL picks the database), or the [`PgPool`] or
/// [`SqlitePool`] the application already holds. Every pool converts into it
/// with `From`, so the store's constructors take any of the three.
///
/// The store writes its queries once: on a native pool they run natively and
/// their row is read as an [`AnyRow`], so one row type (`FromRow<AnyRow>`)
/// serves every database. Columns must therefore be of the types the `Any`
/// driver reads (text, integers, floats, booleans, bytes): cast others in the
/// query (`id::text` for a PostgreSQL `UUID`).
///
/// ```
/// use tower_oauth2_password::user::sql::{SqlPool, SqlUserStore, SqlitePool};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = SqlitePool::connect("sqlite::memory:").await?;
/// let store = SqlUserStore::new(pool.clone());
/// assert!(matches!(store.pool(), SqlPool::Sqlite(_)));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SqlPool {
    /// sqlx's `Any` driver: SQLite or PostgreSQL, as the URL says.
    Any(AnyPool),
    /// A PostgreSQL pool.
    Postgres(PgPool),
    /// A SQLite pool.
    Sqlite(SqlitePool),
}

impl From<AnyPool> for SqlPool {
    fn from(pool: AnyPool) -> Self {
        Self::Any(pool)
    }
}

impl From<PgPool> for SqlPool {
    fn from(pool: PgPool) -> Self {
        Self::Postgres(pool)
    }
}

impl From<SqlitePool> for SqlPool {
    fn from(pool: SqlitePool) -> Self {
        Self::Sqlite(pool)
    }
}

/// A query parameter of one of the types the crate's queries bind.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Text(&'a str),
    MaybeText(Option<&'a str>),
    Flag(bool),
    Int(i64),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(text: &'a str) -> Self {
        Self::Text(text)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(text: Option<&'a str>) -> Self {
        Self::MaybeText(text)
    }
}

impl From<bool> for Param<'_> {
    fn from(flag: bool) -> Self {
        Self::Flag(flag)
    }
}

impl From<i64> for Param<'_> {
    fn from(int: i64) -> Self {
        Self::Int(int)
    }
}

/// `sql` with `params` bound in order (`$1`, `$2`, …).
fn bind_all<'q, DB>(sql: &'q str, params: &[Param<'q>]) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    Option<&'q str>: Encode<'q, DB> + Type<DB>,
    bool: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| match *param {
            Param::Text(text) => query.bind(text),
            Param::MaybeText(text) => query.bind(text),
            Param::Flag(flag) => query.bind(flag),
            Param::Int(int) => query.bind(int),
        })
}

/// A native row as the `Any` driver would have read it.
fn as_any<R>(row: Option<R>) -> Result<Option<AnyRow>, sqlx::Error>
where
    for<'r> AnyRow: TryFrom<&'r R, Error = sqlx::Error>,
{
    row.as_ref().map(AnyRow::try_from).transpose()
}

/// The databases the crate's default table has a schema for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
}

impl SqlPool {
    /// At most one row of `sql` with `params`.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        match self {
            Self::Any(pool) => bind_all(sql, params).fetch_optional(pool).await,
            Self::Postgres(pool) => as_any(bind_all(sql, params).fetch_optional(pool).await?),
            Self::Sqlite(pool) => as_any(bind_all(sql, params).fetch_optional(pool).await?),
        }
    }

    /// Runs `sql` with `params`; the number of rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Self::Any(pool) => bind_all(sql, params).execute(pool).await?.rows_affected(),
            Self::Postgres(pool) => bind_all(sql, params).execute(pool).await?.rows_affected(),
            Self::Sqlite(pool) => bind_all(sql, params).execute(pool).await?.rows_affected(),
        })
    }

    /// Runs the statements of `sql`, unprepared and without parameters.
    pub(crate) async fn execute_script(&self, sql: &str) -> Result<(), sqlx::Error> {
        let raw = sqlx::raw_sql(sql);
        match self {
            Self::Any(pool) => raw.execute(pool).await.map(drop),
            Self::Postgres(pool) => raw.execute(pool).await.map(drop),
            Self::Sqlite(pool) => raw.execute(pool).await.map(drop),
        }
    }

    /// The database behind the pool (an `Any` pool asks a connection).
    pub(crate) async fn backend(&self) -> Result<Backend, sqlx::Error> {
        match self {
            Self::Postgres(_) => Ok(Backend::Postgres),
            Self::Sqlite(_) => Ok(Backend::Sqlite),
            Self::Any(pool) => match pool.acquire().await?.backend_name() {
                "SQLite" => Ok(Backend::Sqlite),
                "PostgreSQL" => Ok(Backend::Postgres),
                other => Err(sqlx::Error::Configuration(
                    format!("no users table for {other} (SQLite and PostgreSQL only)").into(),
                )),
            },
        }
    }
}
