//! `RedisTokenStore` against the real Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), each test under a key prefix of its own that it
//! deletes at the end: the conformance suites, two replicas sharing tokens, and
//! Redis down, slow and back.
//!
//! `cargo test --features redis --test redis`
#![cfg(feature = "redis")]

mod common;

use std::net::TcpListener as StdListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::redis::{redis_url, Prefix};
use common::{tutorial, Reply, Server};
use http::StatusCode;
use tower_oauth2_password::testing::{RefreshTokenStoreSuite, TokenStoreSuite};
use tower_oauth2_password::{OAuth2PasswordLayer, RedisTokenStore};

/// The tutorial app with its tokens (access and refresh) in `store`.
async fn replica(store: RedisTokenStore) -> Server {
    let layer = OAuth2PasswordLayer::builder(tutorial::users())
        .refresh_tokens(store.clone())
        .token_store(store)
        .build();
    Server::start_with(layer).await
}

#[track_caller]
fn assert_unavailable(reply: &Reply) {
    reply.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
}

#[tokio::test]
async fn redis_token_store_conformance() {
    let prefix = Prefix::new("conformance");
    let store = prefix.store();
    TokenStoreSuite::new().run(&store).await;
    let grace = Duration::from_secs(1);
    RefreshTokenStoreSuite::new(grace)
        .run(&store.clone().with_retry_grace(grace))
        .await;
}

/// JWTs with their denylist in Redis: what one replica revokes, all refuse.
#[cfg(feature = "jwt")]
#[tokio::test]
async fn jwt_with_a_redis_denylist_conformance() {
    use tower_oauth2_password::{JwtKey, JwtTokenStore};

    let prefix = Prefix::new("jwt");
    let store = |prefix: &Prefix| {
        let key = JwtKey::hs256("k1", b"a test secret of at least thirty-two bytes").unwrap();
        JwtTokenStore::signing_with(key)
            .issuer("https://auth.example.com")
            .leeway(Duration::from_secs(1))
            .with_denylist(prefix.store())
            .build()
            .unwrap()
    };
    TokenStoreSuite::new()
        .expiry_leeway(Duration::from_secs(1))
        .run(&store(&prefix))
        .await;
    let a = Server::start_with(
        OAuth2PasswordLayer::builder(tutorial::users())
            .token_store(store(&prefix))
            .build(),
    )
    .await;
    let b = Server::start_with(
        OAuth2PasswordLayer::builder(tutorial::users())
            .token_store(store(&prefix))
            .build(),
    )
    .await;
    let access = a.login("johndoe", "secret").await;
    assert_eq!(b.me(&access).await.status, StatusCode::OK);
    assert_eq!(
        a.revoke(&format!("token={access}")).await.status,
        StatusCode::OK
    );
    b.me(&access).await.assert_invalid_token();
}

#[tokio::test]
async fn redis_holds_hashes_not_tokens() {
    let prefix = Prefix::new("hashes");
    let server = replica(prefix.store()).await;
    let (access, refresh_token) = server.login_with_refresh().await;
    let keys = prefix.keys();
    assert_eq!(keys.len(), 2, "one access token, one family: {keys:?}");
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    for key in keys {
        assert!(!key.contains(&access) && !key.contains(&refresh_token));
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut connection).unwrap();
        let dump = String::from_utf8_lossy(&dump);
        assert!(!dump.contains(&access) && !dump.contains(&refresh_token));
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut connection).unwrap();
        assert!(ttl > 0, "every key expires with its token ({key}: {ttl})");
    }
}

/// Two replicas of the tutorial app sharing Redis: what one issues or revokes,
/// the other sees on its next request.
#[tokio::test]
async fn replicas_share_tokens_revocations_and_refresh_families() {
    let prefix = Prefix::new("replicas");
    // No retry grace: any second use of a refresh token is reuse.
    let a = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    let b = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;

    let (access, first) = a.login_with_refresh().await;
    let me = b.me(&access).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["username"], "johndoe");

    assert_eq!(
        a.revoke(&format!("token={access}")).await.status,
        StatusCode::OK
    );
    b.me(&access).await.assert_invalid_token();

    // A refresh on B rotates the family A started...
    let (access, second) = b.refresh(&first).await.tokens();
    assert_eq!(a.me(&access).await.status, StatusCode::OK);
    // ...and presenting the used token again, on A, is reuse: the family ends.
    a.refresh(&first)
        .await
        .assert_error(400, "Invalid refresh token", Some("invalid_grant"));
    b.refresh(&second)
        .await
        .assert_error(400, "Invalid refresh token", Some("invalid_grant"));
}

#[tokio::test]
async fn a_retry_on_another_replica_within_the_grace_is_not_reuse() {
    let prefix = Prefix::new("grace");
    let a = replica(prefix.store()).await;
    let b = replica(prefix.store()).await;
    let (_, first) = a.login_with_refresh().await;
    let (_, lost) = a.refresh(&first).await.tokens();
    let (_, retried) = b.refresh(&first).await.tokens();
    assert_ne!(lost, retried);
    a.refresh(&retried).await.tokens();
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_unreachable_is_503_on_the_token_url_and_the_guard() {
    let url = format!("redis://127.0.0.1:{}", closed_port());
    let store = RedisTokenStore::new(&url)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    assert!(store.ping().await.is_err());
    let server = replica(store).await;
    for _ in 0..3 {
        assert_unavailable(&server.post_form("username=johndoe&password=secret").await);
        assert_unavailable(&server.me(&"A".repeat(43)).await);
        assert_unavailable(&server.refresh(&"A".repeat(48)).await);
    }
    // What cannot be a token never reaches Redis: the usual 401.
    server.me("not-a-token").await.assert_invalid_token();
}

/// A `redis-server` of the test's own, on a port of its own, that it can stop and
/// start again.
struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateRedis {
    /// `None` (and a message) where no `redis-server` is installed.
    fn start() -> Option<Self> {
        let port = closed_port();
        let dir = std::env::temp_dir().join(format!("toauth2-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Self {
            port,
            dir,
            child: None,
        };
        if !redis.spawn() {
            eprintln!("skipped: no redis-server binary to start a private Redis");
            return None;
        }
        Some(redis)
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        // Wait until it accepts connections.
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private redis-server did not start");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn service_resumes_without_a_restart_when_redis_is_back() {
    let Some(mut redis) = PrivateRedis::start() else {
        return;
    };
    let store = RedisTokenStore::new(&redis.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let server = replica(store).await;
    let (access, _) = server.login_with_refresh().await;
    assert_eq!(server.me(&access).await.status, StatusCode::OK);

    redis.stop();
    assert_unavailable(&server.me(&access).await);
    assert_unavailable(&server.post_form("username=johndoe&password=secret").await);

    assert!(redis.spawn());
    // The server keeps nothing on disk: the old token is gone, a new login works.
    let mut reply = server.me(&access).await;
    for _ in 0..20 {
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        // Reconnection is attempted at most every 200 ms.
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply = server.me(&access).await;
    }
    reply.assert_invalid_token();
    let (access, _) = server.login_with_refresh().await;
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_redis_that_stops_answering_is_503_not_a_hang() {
    let Some(redis) = PrivateRedis::start() else {
        return;
    };
    let store = RedisTokenStore::new(&redis.url())
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let server = replica(store).await;
    let (access, _) = server.login_with_refresh().await;
    // Redis takes commands but answers none for two seconds.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_connection().unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg("2000")
        .arg("ALL")
        .query(&mut admin)
        .unwrap();
    assert_unavailable(&server.me(&access).await);
    assert_unavailable(&server.post_form("username=johndoe&password=secret").await);
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut admin)
        .unwrap();
    let mut reply = server.me(&access).await;
    for _ in 0..20 {
        if reply.status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        reply = server.me(&access).await;
    }
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
}
