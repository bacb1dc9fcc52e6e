//! The deployable shape of the tutorial (`examples/tutorial.rs`): the same routes and
//! answers, with the users in a database.
//!
//! ```text
//! cargo run --release --features sqlx --example server      # users in ./users.db
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo run --release --features sqlx --example server
//!
//! curl -s -X POST localhost:8000/token -d 'username=johndoe&password=secret'
//! curl -s localhost:8000/users/me -H "Authorization: Bearer $TOKEN"
//! ```
//!
//! - `DATABASE_URL`: `sqlite://PATH` (default `sqlite://users.db`, the file created
//!   if missing) or `postgres://…`. On a fresh database the `users` table is created
//!   and seeded with the tutorial's users, `johndoe` / `secret` and `alice` /
//!   `secret2` (disabled); later starts leave the users alone. Manage them with
//!   `examples/useradd.rs`: changes take effect on the next request.
//! - `TOKEN_STORE`, `REDIS_URL` (or `REDIS_CLUSTER_URLS`), `REDIS_PREFIX`, `JWT_SECRET`, `JWT_KID`,
//!   `REFRESH_TOKENS`, `REFRESH_SECRET`: the token store, as for the tutorial (`examples/common/stores.rs`;
//!   `memory` by default, tokens ending with the process; `redis` and `jwt` need
//!   their features).
//! - `INTROSPECT_CLIENTS=id:secret,…`: token introspection at `/introspect` for
//!   those resource servers, as in the tutorial (`examples/common/introspect.rs`).
//! - `METRICS_ADDR`, `AUDIT_LOG`, `ISSUER`, `JWT_ALG=EdDSA` / `JWT_ED25519_SEED`: metrics,
//!   audit events, the metadata's issuer and Ed25519 tokens with a JWKS, as in the
//!   tutorial.
//! - `DPOP=allowed|required` (and `DPOP_PUBLIC_URL`): DPoP-bound tokens, as in the
//!   tutorial (`--features dpop`; proofs remembered in Redis when the tokens are).
//! - `ADDR` (default `127.0.0.1:8000`), `LOG=off` as in the tutorial.
//!
//! A `DATABASE_URL` that cannot be used stops it before it listens, with one line
//! on stderr. A database that goes away while it runs answers 503, and it serves
//! again once the database is back.

// `examples/common` is loaded twice: by the tutorial, privately, and here.
#![allow(clippy::duplicate_mod)]

use std::process::exit;

use tower_oauth2_password::user::sql::{self, AnyPool, NewUser, SqlUserStore, UsersTable};
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::OAuth2PasswordLayer;

mod common;
// Its routes, its users and its `serve`: the same HTTP behaviour by construction.
#[path = "tutorial.rs"]
#[allow(dead_code)]
pub mod tutorial;

use tutorial::User;

const DEFAULT_DATABASE_URL: &str = "sqlite://users.db";

/// The users table, read into the tutorial's model.
pub fn user_store(pool: AnyPool) -> SqlUserStore<User> {
    SqlUserStore::builder(pool).build()
}

/// Connects to `url`, creates the users table if it is missing, and seeds a table
/// it created with the tutorial's users. An error says what failed, in one line.
pub async fn open_database(url: &str) -> Result<AnyPool, String> {
    let pool = sql::connect(&creating_sqlite_file(url))
        .await
        .map_err(|error| format!("cannot open DATABASE_URL: {error}"))?;
    let table = UsersTable::new(pool.clone());
    let created = table
        .migrate()
        .await
        .map_err(|error| format!("cannot create the users table: {error}"))?;
    if created {
        for user in tutorial_users().await {
            // Another process seeding at the same time has added it: fine.
            table
                .add(&user)
                .await
                .map_err(|error| format!("cannot seed the users table: {error}"))?;
        }
    }
    Ok(pool)
}

/// SQLite opens only existing files unless told `mode=rwc`; a first start creates
/// the file. A mode given in the URL wins.
fn creating_sqlite_file(url: &str) -> String {
    if !url.starts_with("sqlite:") || url.contains("mode=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}mode=rwc")
}

/// The tutorial's users (`examples/common`), as rows to insert.
async fn tutorial_users() -> Vec<NewUser> {
    let users = tutorial::users();
    let mut rows = Vec::new();
    for username in ["johndoe", "alice"] {
        let (Ok(Some(credentials)), Ok(Some(principal))) = (
            users.credentials(username).await,
            users.principal(&username.into()).await,
        ) else {
            unreachable!("the tutorial's users are in its memory store")
        };
        let user = &principal.user;
        let row = NewUser::new(username, credentials.password_hash)
            .full_name(&user.full_name)
            .email(&user.email)
            .scopes(credentials.scopes);
        rows.push(if user.disabled { row.disabled() } else { row });
    }
    rows
}

#[tokio::main]
async fn main() {
    common::init_logging();
    // Tokens as in the tutorial: TOKEN_STORE, REDIS_URL (or REDIS_CLUSTER_URLS), JWT_SECRET,
    // REFRESH_TOKENS.
    let stores = common::stores::from_env_or_exit().await;
    let introspection = common::introspect::from_env_or_exit();
    let dpop = common::dpop::from_env_or_exit(&stores);
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.to_owned());
    let pool = match open_database(&url).await {
        Ok(pool) => pool,
        Err(error) => {
            eprintln!("{error}");
            exit(1);
        }
    };
    // Before the layer is built: the guard registers its counters then.
    common::metrics_from_env();
    let (listener, socket) = common::listen("127.0.0.1:8000").await;
    let addr = listener.local_addr().map(|addr| addr.to_string());
    let addr = addr.unwrap_or_default();
    tracing::info!("listening on http://{addr} (POST /token, GET /users/me; Ctrl-C to stop)");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut builder = stores.apply(OAuth2PasswordLayer::builder(user_store(pool)));
    #[cfg(feature = "dpop")]
    if let Some(dpop) = dpop {
        builder = builder.dpop(dpop);
    }
    #[cfg(not(feature = "dpop"))]
    let () = dpop;
    if let Some(clients) = introspection {
        builder = builder.introspection(clients);
    }
    if let Some(audit) = common::audit_log_from_env() {
        builder = builder.audit_sink(audit);
    }
    let layer = builder.issuer(&tutorial::issuer(socket)).build();
    tutorial::serve(listener, layer, shutdown).await;
}
