//! `SqlUserStore` on SQLite and PostgreSQL: the user-store conformance suite, and
//! the login through the layer on a real server (`cargo test --features sqlx`;
//! PostgreSQL with `TEST_POSTGRES=1`).
#![cfg(feature = "sqlx")]

mod common;
mod sql_support;

use common::{tutorial::User, Server};
use sql_support::{Kind, TestDb};
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::testing::{UserFixture, UserStoreSuite};
use tower_oauth2_password::user::sql::{
    NewUser, PgPool, SqlPool, SqlUser, SqlUserStore, SqlitePool, UsersTable,
};
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::{Argon2Hasher, OAuth2PasswordLayer, PasswordHasher};

on_each_database!(
    passes_the_user_store_suite,
    migrate_creates_the_table_once,
    case_insensitive_login_issues_the_stored_name,
    wrong_password_changes_no_hash,
    malformed_stored_hash_answers_as_a_wrong_password,
    a_native_pool_passes_the_user_store_suite,
    case_insensitive_login_on_a_native_pool,
);

/// The suite adds and changes users through `UsersTable`, as the admin tool does.
struct Table {
    table: UsersTable,
    store: SqlUserStore,
}

impl UserFixture for Table {
    type Store = SqlUserStore;

    fn store(&self) -> &SqlUserStore {
        &self.store
    }

    async fn add(&self, username: &str, password_hash: HashedPassword, scopes: Scopes) {
        let user = NewUser::new(username, password_hash).scopes(scopes);
        assert!(self.table.add(&user).await.expect("insert"));
    }

    async fn disable(&self, username: &str) {
        assert!(self.table.disable(username).await.expect("update"));
    }

    async fn remove(&self, username: &str) {
        assert!(self.table.remove(username).await.expect("delete"));
    }

    async fn set_password(&self, username: &str, password_hash: HashedPassword) {
        let changed = self.table.set_password(username, &password_hash).await;
        assert!(changed.expect("update"));
    }

    async fn set_scopes(&self, username: &str, scopes: Scopes) {
        assert!(self
            .table
            .set_scopes(username, &scopes)
            .await
            .expect("update"));
    }
}

async fn migrated(kind: Kind) -> Option<(TestDb, UsersTable)> {
    let db = TestDb::new(kind).await?;
    let table = UsersTable::new(db.pool.clone());
    table.migrate().await.expect("migrate");
    Some((db, table))
}

async fn passes_the_user_store_suite(kind: Kind) {
    let Some((db, table)) = migrated(kind).await else {
        return;
    };
    let store = SqlUserStore::new(db.pool.clone());
    UserStoreSuite::new().run(&Table { table, store }).await;
}

/// The pool an application holds: sqlx's own for the test's database, not `Any`.
async fn native_pool(db: &TestDb) -> SqlPool {
    match db.kind {
        Kind::Sqlite => SqlitePool::connect(&db.url).await.expect("SQLite").into(),
        Kind::Postgres => PgPool::connect(&db.url).await.expect("PostgreSQL").into(),
    }
}

/// The table made and changed, and the store reading it, all on the native pool.
async fn a_native_pool_passes_the_user_store_suite(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let pool = native_pool(&db).await;
    let table = UsersTable::new(pool.clone());
    assert!(table.migrate().await.expect("migrate"), "a fresh database");
    assert!(
        !table.migrate().await.expect("migrate again"),
        "already there"
    );
    let store = SqlUserStore::new(pool.clone());
    assert!(
        matches!(
            (kind, store.pool()),
            (Kind::Sqlite, SqlPool::Sqlite(_)) | (Kind::Postgres, SqlPool::Postgres(_))
        ),
        "{:?}",
        store.pool()
    );
    UserStoreSuite::new().run(&Table { table, store }).await;
}

async fn migrate_creates_the_table_once(kind: Kind) {
    let Some(db) = TestDb::new(kind).await else {
        return;
    };
    let table = UsersTable::new(db.pool.clone());
    assert!(
        table.migrate().await.expect("first migrate"),
        "a fresh database"
    );
    let hash = Argon2Hasher::with_params(64, 1, 1)
        .unwrap()
        .hash("pw")
        .unwrap();
    assert!(table
        .add(&NewUser::new("kept", hash.clone()))
        .await
        .unwrap());
    assert!(
        !table.migrate().await.expect("second migrate"),
        "already there"
    );
    assert!(
        !table.add(&NewUser::new("kept", hash)).await.unwrap(),
        "a taken name"
    );
    // The application's own sqlx migrations table is left alone.
    let untouched = tower_oauth2_password::user::sql::sqlx::query("SELECT 1 FROM _sqlx_migrations")
        .fetch_optional(&db.pool)
        .await;
    assert!(untouched.is_err(), "no _sqlx_migrations table was created");
    let user = SqlUserStore::new(db.pool.clone())
        .principal(&"kept".into())
        .await
        .unwrap()
        .expect("the user survived the second migrate");
    let SqlUser {
        username,
        full_name,
        email,
        disabled,
        ..
    } = &*user.user;
    assert_eq!(
        (username.as_str(), full_name, email, disabled),
        ("kept", &None, &None, &false)
    );
}

fn hasher() -> Argon2Hasher {
    Argon2Hasher::new()
}

/// The tutorial's model, read from a table the test fills.
async fn server_on(db: &TestDb, store: SqlUserStore<User>) -> Server {
    let _ = db;
    Server::start_with(OAuth2PasswordLayer::builder(store).build()).await
}

async fn case_insensitive_login_issues_the_stored_name(kind: Kind) {
    let Some((db, table)) = migrated(kind).await else {
        return;
    };
    let pool = SqlPool::from(db.pool.clone());
    case_insensitive_login(&db, &table, pool).await;
}

async fn case_insensitive_login_on_a_native_pool(kind: Kind) {
    let Some((db, table)) = migrated(kind).await else {
        return;
    };
    let pool = native_pool(&db).await;
    case_insensitive_login(&db, &table, pool).await;
}

/// A login over a socket through a store on `pool`: the default exact match
/// refuses another spelling, a case-insensitive query issues the stored name, and
/// the guard's lookup reads the tutorial's model.
async fn case_insensitive_login(db: &TestDb, table: &UsersTable, pool: SqlPool) {
    let user = NewUser::new("JohnDoe", hasher().hash("secret").unwrap())
        .full_name("John Doe")
        .email("john@example.com");
    table.add(&user).await.unwrap();
    let exact = server_on(db, SqlUserStore::builder(pool.clone()).build()).await;
    exact
        .post_form("username=johndoe&password=secret")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    exact.stop().await;

    let store = SqlUserStore::builder(pool)
        .credentials_query(
            "SELECT username AS subject, password_hash, scopes, disabled, stamp \
             FROM users WHERE lower(username) = lower($1)",
        )
        .build();
    let server = server_on(db, store).await;
    let token = server.login("johndoe", "secret").await;
    let me = server.me(&token).await;
    assert_eq!(me.status, 200);
    assert_eq!(
        me.json(),
        serde_json::json!({
            "username": "JohnDoe",
            "email": "john@example.com",
            "full_name": "John Doe",
            "disabled": false,
        })
    );
    server.stop().await;
}

async fn wrong_password_changes_no_hash(kind: Kind) {
    let Some((db, table)) = migrated(kind).await else {
        return;
    };
    // Outdated parameters: a right password would renew it.
    let old = Argon2Hasher::with_params(64, 1, 1)
        .unwrap()
        .hash("secret")
        .unwrap();
    table
        .add(&NewUser::new("johndoe", old.clone()))
        .await
        .unwrap();
    let server = server_on(&db, SqlUserStore::builder(db.pool.clone()).build()).await;
    for _ in 0..3 {
        server
            .post_form("username=johndoe&password=wrong")
            .await
            .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    }
    server.stop().await;
    assert_eq!(
        db.stored_hash("johndoe").await.as_deref(),
        Some(old.as_str())
    );
}

async fn malformed_stored_hash_answers_as_a_wrong_password(kind: Kind) {
    let Some((db, table)) = migrated(kind).await else {
        return;
    };
    table
        .add(&NewUser::new("broken", hasher().hash("x").unwrap()))
        .await
        .unwrap();
    db.execute("UPDATE users SET password_hash = 'plaintext' WHERE username = 'broken'")
        .await;
    let server = server_on(&db, SqlUserStore::builder(db.pool.clone()).build()).await;
    let broken = server.post_form("username=broken&password=plaintext").await;
    let unknown = server.post_form("username=nobody&password=plaintext").await;
    broken.assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    assert_eq!(broken.body, unknown.body);
    server.stop().await;
}
