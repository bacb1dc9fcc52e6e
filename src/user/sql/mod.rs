//! Users in SQLite or PostgreSQL (feature `sqlx`): [`SqlUserStore`] looks them up,
//! [`UsersTable`] creates and manages the crate's default `users` table.
//!
//! One store type for both databases: on sqlx's [`Any`](sqlx::Any) driver the
//! `DATABASE_URL` alone picks SQLite (`sqlite://users.db`, built in, no system
//! library) or PostgreSQL (`postgres://…`), and an application that already holds
//! a [`PgPool`] or a [`SqlitePool`] hands it over as it is
//! (`SqlUserStore::new(pg_pool)`; see [`SqlPool`]). Queries are checked at run
//! time, not by sqlx's `query!` macros: building needs no database and no
//! `DATABASE_URL`.
//!
//! ```
//! use tower_oauth2_password::user::sql::{self, NewUser, SqlUserStore, UsersTable};
//! use tower_oauth2_password::{Argon2Hasher, OAuth2PasswordLayer, PasswordHasher};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("oauth2-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let url = format!("sqlite://{}?mode=rwc", dir.join("users.db").display());
//! let pool = sql::connect(&url).await?; // e.g. "sqlite://users.db?mode=rwc"
//! let table = UsersTable::new(pool.clone());
//! if table.migrate().await? {
//!     // A fresh database: add the first user.
//!     let hash = Argon2Hasher::new().hash("secret")?;
//!     table.add(&NewUser::new("johndoe", hash).full_name("John Doe")).await?;
//! }
//! let layer = OAuth2PasswordLayer::new(SqlUserStore::new(pool));
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! **What a request costs.** A guarded request makes one query: the user by the
//! token's subject, through the unique index on `username`, selecting no password
//! hash. A login makes one query (the user with their hash), plus one `UPDATE` in
//! the background when the hash is renewed. Statements are prepared once per
//! connection and cached.
//!
//! **Errors.** A database error (down, unreachable, a query that does not fit the
//! table) is a [`StoreError`](crate::store::StoreError): the layer answers 503 and lets
//! nothing through, and the pool reconnects when the database is back.
//!
//! **Your own table.** [`SqlUserStore::builder`] takes your queries and your row
//! type; the [`UsersTable`] admin methods are for the default table only.
//!
//! **Migrations.** [`UsersTable::migrate`] runs `CREATE TABLE IF NOT EXISTS`
//! (the files under `migrations/` in this crate), on every start if you like. It
//! does not use sqlx's `_sqlx_migrations` table, so your application's own sqlx
//! migrations never see an unknown version; if you would rather manage the table
//! with your own tool, copy the file for your database into your migrations and
//! do not call `migrate`.

pub(crate) mod pool;
pub(crate) mod store;
pub(crate) mod table;

pub use sqlx;
pub use sqlx::{AnyPool, PgPool, SqlitePool};

pub use pool::SqlPool;
pub use store::{SqlUser, SqlUserStore, SqlUserStoreBuilder};
pub use table::{NewUser, UsersTable};

/// Connects a pool to `url` (`sqlite://…` or `postgres://…`), with sqlx's
/// default pool settings, after installing the drivers the [`Any`](sqlx::Any)
/// pool needs.
///
/// SQLite opens an existing file unless the URL says `?mode=rwc` (read, write,
/// create). For other pool settings, build the pool yourself with
/// [`sqlx::any::AnyPoolOptions`], after [`sqlx::any::install_default_drivers`].
///
/// A database that cannot be reached fails at once with the reason (refused,
/// unknown host, authentication), not after the pool's 30 s acquire timeout.
pub async fn connect(url: &str) -> Result<AnyPool, sqlx::Error> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    // One connection first: its error says what is wrong, where the pool's would
    // only say that it timed out.
    sqlx::AnyConnection::connect(url).await?.close().await?;
    AnyPool::connect(url).await
}
