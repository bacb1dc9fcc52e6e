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

/// Binds each parameter as text, in order (`$1`, `$2`, …).
fn bind_all<'q, DB>(sql: &'q str, params: &[&'q str]) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
{
    params
        .iter()
        .fold(sqlx::query(sql), |query, param| query.bind(*param))
}

/// A native row as the `Any` driver would have read it.
fn as_any<R>(row: Option<R>) -> Result<Option<AnyRow>, sqlx::Error>
where
    for<'r> AnyRow: TryFrom<&'r R, Error = sqlx::Error>,
{
    row.as_ref().map(AnyRow::try_from).transpose()
}

impl SqlPool {
    /// At most one row of `sql` with the text parameters `params`.
    pub(crate) async fn fetch_optional(
        &self,
        sql: &str,
        params: &[&str],
    ) -> Result<Option<AnyRow>, sqlx::Error> {
        match self {
            Self::Any(pool) => bind_all(sql, params).fetch_optional(pool).await,
            Self::Postgres(pool) => as_any(bind_all(sql, params).fetch_optional(pool).await?),
            Self::Sqlite(pool) => as_any(bind_all(sql, params).fetch_optional(pool).await?),
        }
    }

    /// Runs `sql` with the text parameters `params`.
    pub(crate) async fn execute(&self, sql: &str, params: &[&str]) -> Result<(), sqlx::Error> {
        match self {
            Self::Any(pool) => bind_all(sql, params).execute(pool).await.map(drop),
            Self::Postgres(pool) => bind_all(sql, params).execute(pool).await.map(drop),
            Self::Sqlite(pool) => bind_all(sql, params).execute(pool).await.map(drop),
        }
    }
}
