//! The login throttle's counts in the real Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), each test under a key prefix of its own that it
//! deletes at the end: replicas share the counts, windows end on Redis's clock,
//! and with Redis down the limits still hold, locally.
//!
//! `cargo test --features redis --test throttle_redis`
#![cfg(feature = "redis")]

mod common;

use std::time::Duration;

use common::redis::Prefix;
use common::{tutorial, Reply, Server};
use tower_oauth2_password::{LoginThrottle, RedisTokenStore};

/// A replica: the tutorial with its throttle counting in Redis under `prefix`.
async fn replica(prefix: &Prefix, throttle: LoginThrottle) -> Server {
    let layer = tutorial::layer_builder()
        .login_policy(throttle.in_redis(prefix.store()))
        .build();
    Server::start_with(layer).await
}

async fn attempt(server: &Server, username: &str, password: &str) -> Reply {
    server
        .post_form(&format!("username={username}&password={password}"))
        .await
}

#[tokio::test]
async fn replicas_share_the_counts_and_redis_holds_no_username() {
    let prefix = Prefix::new("shared");
    let throttle = LoginThrottle::new().per_username(2, Duration::from_secs(60));
    let (a, b) = (
        replica(&prefix, throttle.clone()).await,
        replica(&prefix, throttle).await,
    );
    assert_eq!(attempt(&a, "johndoe", "wrong").await.status, 400);
    assert_eq!(attempt(&b, "johndoe", "wrong").await.status, 400);
    // Each replica saw one failure; together, two: both refuse now.
    for replica in [&a, &b] {
        let reply = attempt(replica, "johndoe", "secret").await;
        reply.assert_error(
            429,
            "Too many login attempts, try again later",
            Some("temporarily_unavailable"),
        );
        let retry_after: u64 = reply.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry_after), "{retry_after}");
    }
    let keys = prefix.keys();
    assert!(!keys.is_empty(), "the counts are in Redis");
    assert!(
        keys.iter()
            .all(|key| !key.contains("johndoe") && !key.contains("127.0.0.1")),
        "{keys:?}"
    );
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_success_clears_the_username_on_every_replica_and_windows_end() {
    let prefix = Prefix::new("clear");
    let throttle = LoginThrottle::new().per_username(2, Duration::from_secs(1));
    let (a, b) = (
        replica(&prefix, throttle.clone()).await,
        replica(&prefix, throttle).await,
    );
    assert_eq!(attempt(&a, "johndoe", "wrong").await.status, 400);
    b.login("johndoe", "secret").await;
    assert_eq!(attempt(&a, "johndoe", "wrong").await.status, 400);
    assert_eq!(attempt(&b, "johndoe", "wrong").await.status, 400);
    assert_eq!(attempt(&a, "johndoe", "secret").await.status, 429);
    // The key expires with its window, on Redis's clock.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    a.login("johndoe", "secret").await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn with_redis_down_the_limits_hold_locally() {
    // Nothing listens on port 1: every call fails at once.
    let store = RedisTokenStore::new("redis://127.0.0.1:1")
        .unwrap()
        .with_timeout(Duration::from_millis(200));
    let throttle = LoginThrottle::new()
        .per_username(2, Duration::from_secs(60))
        .in_redis(store);
    let server = Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await;
    for _ in 0..2 {
        assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
    }
    assert_eq!(attempt(&server, "johndoe", "secret").await.status, 429);
    server.stop().await;
}
