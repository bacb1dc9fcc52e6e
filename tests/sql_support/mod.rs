//! Databases for the SQL tests: a SQLite file in a fresh temporary directory, or
//! (with `TEST_POSTGRES=1`) a fresh PostgreSQL database on the server at
//! `DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`). Each test
//! gets its own, and it is dropped when the test ends, failed or not.
#![allow(dead_code)]

use std::path::PathBuf;

use tower_oauth2_password::user::sql::{self, AnyPool};

const DEFAULT_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A database of one test's own.
pub struct TestDb {
    pub kind: Kind,
    /// The URL the server, the admin tool and the store connect with.
    pub url: String,
    /// The test's own connection pool, to look and to break things.
    pub pool: AnyPool,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(PathBuf),
    Database { server: String, name: String },
}

/// A name no other test or run uses.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 6];
    random_bytes(&mut bytes);
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}_{}_{suffix}", std::process::id())
}

fn random_bytes(bytes: &mut [u8]) {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    let random = hasher.finish().to_ne_bytes();
    for (byte, random) in bytes.iter_mut().zip(random.iter().cycle()) {
        *byte = *random;
    }
}

impl TestDb {
    /// A database of `kind`, or `None` for PostgreSQL unless `TEST_POSTGRES=1`.
    pub async fn new(kind: Kind) -> Option<Self> {
        match kind {
            Kind::Sqlite => Some(Self::sqlite().await),
            Kind::Postgres => Self::postgres().await,
        }
    }

    /// An empty SQLite file in a fresh temporary directory.
    pub async fn sqlite() -> Self {
        let dir = std::env::temp_dir().join(unique("oauth2_sql"));
        std::fs::create_dir_all(&dir).expect("temporary directory");
        let url = format!("sqlite://{}", dir.join("users.db").display());
        let pool = sql::connect(&format!("{url}?mode=rwc"))
            .await
            .expect("SQLite file");
        Self {
            kind: Kind::Sqlite,
            url,
            pool,
            cleanup: Cleanup::Directory(dir),
        }
    }

    /// A fresh database on the PostgreSQL server, if `TEST_POSTGRES=1`.
    pub async fn postgres() -> Option<Self> {
        if std::env::var("TEST_POSTGRES").as_deref() != Ok("1") {
            eprintln!("skipped: set TEST_POSTGRES=1 to run the PostgreSQL tests");
            return None;
        }
        let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_POSTGRES.to_owned());
        let name = unique("oauth2_test");
        let admin = sql::connect(&server)
            .await
            .expect("PostgreSQL at DATABASE_URL");
        sqlx_execute(&admin, &format!("CREATE DATABASE {name}")).await;
        admin.close().await;
        let url = with_database(&server, &name);
        let pool = sql::connect(&url).await.expect("the test's database");
        Some(Self {
            kind: Kind::Postgres,
            url,
            pool,
            cleanup: Cleanup::Database { server, name },
        })
    }

    /// PostgreSQL: refuses every new connection and ends the open ones (the
    /// database is "down"); `false` lets them in again. SQLite: hides the users
    /// table, so every query fails, and brings it back.
    pub async fn set_down(&self, down: bool) {
        match &self.cleanup {
            Cleanup::Database { server, name } => {
                let admin = sql::connect(server).await.expect("PostgreSQL admin");
                let allow = if down { "false" } else { "true" };
                sqlx_execute(
                    &admin,
                    &format!("ALTER DATABASE {name} ALLOW_CONNECTIONS {allow}"),
                )
                .await;
                if down {
                    sqlx_execute(
                        &admin,
                        &format!(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                             WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                        ),
                    )
                    .await;
                }
                admin.close().await;
            }
            Cleanup::Directory(_) => {
                let (from, to) = if down {
                    ("users", "users_away")
                } else {
                    ("users_away", "users")
                };
                sqlx_execute(&self.pool, &format!("ALTER TABLE {from} RENAME TO {to}")).await;
            }
        }
    }

    /// The stored password hash of `username`.
    pub async fn stored_hash(&self, username: &str) -> Option<String> {
        // After `set_down(true)` on PostgreSQL this pool is gone: a fresh one.
        let pool = sql::connect(&self.url).await.expect("the test's database");
        let hash = sql::sqlx::query_scalar("SELECT password_hash FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&pool)
            .await
            .expect("query");
        pool.close().await;
        hash
    }

    /// Runs one statement.
    pub async fn execute(&self, statement: &str) {
        sqlx_execute(&self.pool, statement).await;
    }
}

async fn sqlx_execute(pool: &AnyPool, statement: &str) {
    sql::sqlx::raw_sql(statement)
        .execute(pool)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

/// `server` (a PostgreSQL URL) with its database replaced by `name`.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let Some((host, _database)) = base.rsplit_once('/') else {
        panic!("DATABASE_URL has no database: {server}")
    };
    format!("{host}/{name}{query}")
}

/// Drops the database or the directory, also when the test failed: on a thread of
/// its own, since the test's runtime may be gone.
impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::Directory(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database { server, name } => {
                let (server, database) = (server.clone(), name.clone());
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("runtime");
                    runtime.block_on(async {
                        let admin = sql::connect(&server).await.expect("PostgreSQL admin");
                        sqlx_execute(
                            &admin,
                            &format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                        )
                        .await;
                        admin.close().await;
                    });
                })
                .join();
                if dropped.is_err() && !std::thread::panicking() {
                    panic!("could not drop the test database {name}");
                }
            }
        }
    }
}

/// Each `async fn name(Kind)` named, as `#[tokio::test]`s `sqlite::name` and
/// `postgres::name` (the latter passes without running unless `TEST_POSTGRES=1`).
#[macro_export]
macro_rules! on_each_database {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::sql_support::Kind::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::sql_support::Kind::Postgres).await
                }
            )*
        }
    };
}
