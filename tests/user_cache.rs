//! `CachedUserStore` on `SqlUserStore`, on SQLite and PostgreSQL, through the layer
//! on a real server (`cargo test --features sqlx --test user_cache`; PostgreSQL with
//! `TEST_POSTGRES=1`): the guard answers from the cache, a change in the database
//! is seen within `max_staleness`, the login never uses the cache, the entries stay
//! under their cap, and one user's concurrent misses ask the database once. With
//! `--features sqlx,redis` also: an invalidation published by one replica reaches
//! the others on the same Redis prefix (the real Redis at `REDIS_URL`).
#![cfg(feature = "sqlx")]

mod common;
mod sql_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{tutorial::User, Reply, Server};
use sql_support::{Kind, TestDb};
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::testing::{UserFixture, UserStoreSuite};
use tower_oauth2_password::user::sql::{NewUser, SqlUserStore, UsersTable};
use tower_oauth2_password::user::{CachedUserStore, Credentials, Principal, Subject, UserStore};
use tower_oauth2_password::{Argon2Hasher, OAuth2PasswordLayer, PasswordHasher};

on_each_database!(
    passes_the_user_store_suite,
    a_cached_guard_serves_while_the_database_is_down,
    a_disabled_user_is_refused_after_the_window,
    invalidate_ends_the_window_at_once,
    the_login_sees_a_new_password_at_once,
    the_entry_cap_holds_under_many_usernames,
    concurrent_misses_ask_the_database_once,
);

/// Long enough that no test run outlasts it: what the cache answers within it is
/// the cache's, not a timing accident.
const LONG: Duration = Duration::from_secs(600);

/// How long a test waits for a change to be seen, far past any window it sets.
const DEADLINE: Duration = Duration::from_secs(30);

fn hasher() -> Argon2Hasher {
    Argon2Hasher::with_params(64, 1, 1).unwrap()
}

/// A migrated database with johndoe (password `secret`).
async fn with_johndoe(kind: Kind) -> Option<(TestDb, UsersTable)> {
    let db = TestDb::new(kind).await?;
    let table = UsersTable::new(db.pool.clone());
    table.migrate().await.expect("migrate");
    let user = NewUser::new("johndoe", hasher().hash("secret").unwrap())
        .full_name("John Doe")
        .email("john@example.com");
    assert!(table.add(&user).await.expect("insert"));
    Some((db, table))
}

fn cached(db: &TestDb, max_staleness: Duration) -> CachedUserStore<SqlUserStore<User>> {
    CachedUserStore::builder(SqlUserStore::builder(db.pool.clone()).build())
        .max_staleness(max_staleness)
        .build()
}

async fn serve(users: &CachedUserStore<SqlUserStore<User>>) -> Server {
    Server::start_with(OAuth2PasswordLayer::builder(users.clone()).build()).await
}

#[track_caller]
fn assert_johndoe(reply: &Reply) {
    assert_eq!(reply.status, 200, "body: {:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        serde_json::json!({
            "username": "johndoe",
            "email": "john@example.com",
            "full_name": "John Doe",
            "disabled": false,
        })
    );
}

/// `GET /users/me` until it is refused, for at most [`DEADLINE`]: the refusal.
async fn until_refused(server: &Server, token: &str) -> Reply {
    let started = Instant::now();
    loop {
        let reply = server.me(token).await;
        if reply.status != 200 {
            return reply;
        }
        assert_johndoe(&reply);
        assert!(
            started.elapsed() < DEADLINE,
            "still served {DEADLINE:?} after the change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The suite's changes through `UsersTable`, each then invalidated in the cache
/// (or not, when the cache keeps nothing for long).
struct Invalidating {
    table: UsersTable,
    users: CachedUserStore<SqlUserStore>,
    invalidate: bool,
}

impl Invalidating {
    fn changed(&self, username: &str) {
        if self.invalidate {
            self.users.invalidate(username);
        }
    }
}

impl UserFixture for Invalidating {
    type Store = CachedUserStore<SqlUserStore>;

    fn store(&self) -> &Self::Store {
        &self.users
    }

    async fn add(&self, username: &str, password_hash: HashedPassword, scopes: Scopes) {
        let user = NewUser::new(username, password_hash).scopes(scopes);
        assert!(self.table.add(&user).await.expect("insert"));
        self.changed(username);
    }

    async fn disable(&self, username: &str) {
        assert!(self.table.disable(username).await.expect("update"));
        self.changed(username);
    }

    async fn remove(&self, username: &str) {
        assert!(self.table.remove(username).await.expect("delete"));
        self.changed(username);
    }

    async fn set_password(&self, username: &str, password_hash: HashedPassword) {
        let set = self.table.set_password(username, &password_hash).await;
        assert!(set.expect("update"));
        self.changed(username);
    }

    async fn set_scopes(&self, username: &str, scopes: Scopes) {
        let set = self.table.set_scopes(username, &scopes).await;
        assert!(set.expect("update"));
        self.changed(username);
    }
}

/// The cache answers as the store does: when each change is invalidated (a long
/// window), and when nothing is kept (`max_staleness` zero, no invalidation).
async fn passes_the_user_store_suite(kind: Kind) {
    let Some((db, table)) = with_johndoe(kind).await else {
        return;
    };
    for (max_staleness, invalidate) in [(LONG, true), (Duration::ZERO, false)] {
        let users = CachedUserStore::builder(SqlUserStore::new(db.pool.clone()))
            .max_staleness(max_staleness)
            .build();
        let fixture = Invalidating {
            table: table.clone(),
            users,
            invalidate,
        };
        UserStoreSuite::new().run(&fixture).await;
    }
}

/// The guard answers from the cache (the database is not asked: it is down), and
/// the login, which never uses the cache, answers 503.
async fn a_cached_guard_serves_while_the_database_is_down(kind: Kind) {
    let Some((db, _table)) = with_johndoe(kind).await else {
        return;
    };
    let users = cached(&db, LONG);
    let server = serve(&users).await;
    let token = server.login("johndoe", "secret").await;
    assert_johndoe(&server.me(&token).await);
    assert_eq!(users.len(), 1);

    db.set_down(true).await;
    assert_johndoe(&server.me(&token).await);
    let login = server.post_form("username=johndoe&password=secret").await;
    assert_eq!(login.status, 503, "body: {:?}", login.body);
    assert_eq!(
        login.json()["error"],
        "temporarily_unavailable",
        "{:?}",
        login.body
    );
    // A user the cache has not seen asks the database: 503, never a 2xx.
    users.clear();
    let unseen = server.me(&token).await;
    assert_eq!(unseen.status, 503, "body: {:?}", unseen.body);
    db.set_down(false).await;
    assert_johndoe(&server.me(&token).await);
    server.stop().await;
}

/// Disabled in the database, the user is refused once `max_staleness` has passed.
async fn a_disabled_user_is_refused_after_the_window(kind: Kind) {
    let Some((db, table)) = with_johndoe(kind).await else {
        return;
    };
    let users = cached(&db, Duration::from_millis(200));
    let server = serve(&users).await;
    let token = server.login("johndoe", "secret").await;
    assert_johndoe(&server.me(&token).await);
    assert!(table.disable("johndoe").await.unwrap());
    until_refused(&server, &token)
        .await
        .assert_error(400, "Inactive user", None);
    // And stays refused.
    server
        .me(&token)
        .await
        .assert_error(400, "Inactive user", None);
    server.stop().await;
}

/// Within a long window, the cached answer stands; `invalidate` ends it at once.
async fn invalidate_ends_the_window_at_once(kind: Kind) {
    let Some((db, table)) = with_johndoe(kind).await else {
        return;
    };
    let users = cached(&db, LONG);
    let server = serve(&users).await;
    let token = server.login("johndoe", "secret").await;
    assert_johndoe(&server.me(&token).await);
    assert!(table.disable("johndoe").await.unwrap());
    // The window the builder states: still served from the cache.
    assert_johndoe(&server.me(&token).await);
    users.invalidate("johndoe");
    server
        .me(&token)
        .await
        .assert_error(400, "Inactive user", None);
    assert!(table.enable("johndoe").await.unwrap());
    users.invalidate("johndoe");
    assert_johndoe(&server.me(&token).await);
    server.stop().await;
}

/// A changed password: the old one fails and the new one logs in at once, and the
/// new login's token is served (its stamp is not refused by a cached old one),
/// while the old password's token is refused.
async fn the_login_sees_a_new_password_at_once(kind: Kind) {
    let Some((db, table)) = with_johndoe(kind).await else {
        return;
    };
    let users = cached(&db, LONG);
    let server = serve(&users).await;
    let old_token = server.login("johndoe", "secret").await;
    assert_johndoe(&server.me(&old_token).await);

    let new_hash = hasher().hash("changed").unwrap();
    assert!(table.set_password("johndoe", &new_hash).await.unwrap());
    server
        .post_form("username=johndoe&password=secret")
        .await
        .assert_error(400, "Incorrect username or password", Some("invalid_grant"));
    let new_token = server.login("johndoe", "changed").await;
    assert_johndoe(&server.me(&new_token).await);
    server.me(&old_token).await.assert_invalid_token();
    server.stop().await;
}

/// Lookups of many names, known and unknown, never hold more than the cap.
async fn the_entry_cap_holds_under_many_usernames(kind: Kind) {
    let Some((db, _table)) = with_johndoe(kind).await else {
        return;
    };
    let cap = 16;
    let users = CachedUserStore::builder(SqlUserStore::builder(db.pool.clone()).build())
        .max_staleness(LONG)
        .max_entries(cap)
        .build();
    for n in 0..300 {
        let name = format!("nobody{n}");
        let unknown: Option<Principal<User>> = users.principal(&Subject::from(name)).await.unwrap();
        assert!(unknown.is_none());
        assert!(
            users.len() <= cap,
            "{} entries over a cap of {cap}",
            users.len()
        );
        if n % 50 == 0 {
            let known = users.principal(&Subject::from("johndoe")).await.unwrap();
            assert_eq!(known.expect("johndoe").user.username, "johndoe");
        }
    }
    assert_eq!(users.len(), cap);
    let none = CachedUserStore::builder(SqlUserStore::builder(db.pool.clone()).build())
        .max_entries(0)
        .build();
    let known: Option<Principal<User>> = none.principal(&"johndoe".into()).await.unwrap();
    assert!(known.is_some());
    assert!(none.is_empty());
    let zero = CachedUserStore::builder(SqlUserStore::builder(db.pool.clone()).build())
        .max_staleness(Duration::ZERO)
        .build();
    let known: Option<Principal<User>> = zero.principal(&"johndoe".into()).await.unwrap();
    assert!(known.is_some());
    assert!(zero.is_empty(), "nothing kept that would never be used");
}

/// The store under the cache, counting what is asked of it.
struct Counting<S> {
    store: S,
    principals: Arc<AtomicUsize>,
}

impl<S: UserStore> UserStore for Counting<S> {
    type User = S::User;

    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<S::User>>> {
        self.principals.fetch_add(1, Ordering::SeqCst);
        self.store.principal(subject)
    }

    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        self.store.credentials(username).await
    }
}

/// Many requests of one user missing at once make one query; the next ones none.
async fn concurrent_misses_ask_the_database_once(kind: Kind) {
    let Some((db, _table)) = with_johndoe(kind).await else {
        return;
    };
    let principals = Arc::new(AtomicUsize::new(0));
    let counting = Counting {
        store: SqlUserStore::<User>::builder(db.pool.clone()).build(),
        principals: Arc::clone(&principals),
    };
    let users = CachedUserStore::builder(counting)
        .max_staleness(LONG)
        .build();
    let subject = Subject::from("johndoe");
    let lookups: Vec<_> = (0..64).map(|_| users.principal(&subject)).collect();
    let mut tasks = Vec::new();
    for lookup in lookups {
        tasks.push(tokio::spawn(lookup));
    }
    for task in tasks {
        let principal = task.await.unwrap().unwrap().expect("johndoe");
        assert_eq!(principal.user.username, "johndoe");
    }
    assert_eq!(principals.load(Ordering::SeqCst), 1);
    let again = users.principal(&subject).into_ready();
    assert!(matches!(again, Ok(Ok(Some(_)))), "{again:?}");
    assert_eq!(principals.load(Ordering::SeqCst), 1);
}

/// Invalidations through Redis pub/sub, between replicas that share a database.
#[cfg(feature = "redis")]
mod across_replicas {
    use super::*;
    use common::redis::Prefix;

    on_each_database!(invalidate_everywhere_reaches_the_replicas_on_its_prefix);

    fn replica(db: &TestDb, prefix: &Prefix) -> CachedUserStore<SqlUserStore<User>> {
        CachedUserStore::builder(SqlUserStore::builder(db.pool.clone()).build())
            .max_staleness(LONG)
            .invalidations(prefix.connection())
            .build()
    }

    /// Waits until `count` replicas listen on `prefix`'s channel (`PUBSUB NUMSUB`).
    async fn until_listening(prefix: &Prefix, count: i64) {
        let channel = format!("{}user-cache:invalidate", prefix.as_str());
        let started = Instant::now();
        loop {
            let mut connection = prefix.sync();
            let (_, listening): (String, i64) = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(&channel)
                .query(&mut *connection)
                .unwrap();
            if listening == count {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{listening} of {count} listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replicas A and B share a prefix, C has its own: A's invalidation ends B's
    /// window (within its 600 s staleness), not C's.
    async fn invalidate_everywhere_reaches_the_replicas_on_its_prefix(kind: Kind) {
        let Some((db, table)) = with_johndoe(kind).await else {
            return;
        };
        let shared = Prefix::new("user_cache_invalidations");
        let other = Prefix::new("user_cache_other");
        let (a, b, c) = (
            replica(&db, &shared),
            replica(&db, &shared),
            replica(&db, &other),
        );
        // The replicas' tokens are shared, in Redis under the shared prefix.
        let serve = |users: &CachedUserStore<SqlUserStore<User>>| {
            let layer = OAuth2PasswordLayer::builder(users.clone())
                .token_store(shared.store())
                .build();
            Server::start_with(layer)
        };
        let servers = [serve(&a).await, serve(&b).await, serve(&c).await];
        let token = servers[0].login("johndoe", "secret").await;
        // The first lookups start the listeners; each forgets every user when
        // its subscription is made.
        for server in &servers {
            assert_johndoe(&server.me(&token).await);
        }
        until_listening(&shared, 2).await;
        until_listening(&other, 1).await;
        for server in &servers {
            assert_johndoe(&server.me(&token).await);
        }

        assert!(table.disable("johndoe").await.unwrap());
        // Within the window, each replica serves what it read.
        assert_johndoe(&servers[1].me(&token).await);
        a.invalidate_everywhere("johndoe").await.expect("published");
        servers[0]
            .me(&token)
            .await
            .assert_error(400, "Inactive user", None);
        until_refused(&servers[1], &token)
            .await
            .assert_error(400, "Inactive user", None);
        // Another prefix is another channel: C serves its entry until its window ends.
        assert_johndoe(&servers[2].me(&token).await);
        for server in servers {
            server.stop().await;
        }
    }
}
