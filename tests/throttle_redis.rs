//! The login throttle's counts in the real Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), each test under a key prefix of its own that it
//! deletes at the end: replicas share the counts (and reserve attempts in one
//! script, so 64 concurrent wrong passwords across two replicas get 5 verdicts),
//! windows end on Redis's clock, Redis holds no username or address, with Redis
//! down the limits still hold, locally, and a Redis that may evict keys is
//! reported in the log.
//!
//! `cargo test --features redis --test throttle_redis`
#![cfg(feature = "redis")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::redis::{attempt, throttled_replica as replica, Prefix};
use common::{tutorial, Captured, Server};
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::redis::RedisConnection;

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
async fn a_success_clears_the_pairs_count_on_every_replica_and_windows_end() {
    let prefix = Prefix::new("clear");
    let throttle = LoginThrottle::new().per_username_and_address(2, Duration::from_secs(1));
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
    let throttle = LoginThrottle::new()
        .per_username(2, Duration::from_secs(60))
        .in_redis(unreachable());
    let server = Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await;
    for _ in 0..2 {
        assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
    }
    assert_eq!(attempt(&server, "johndoe", "secret").await.status, 429);
    server.stop().await;
}

#[tokio::test]
async fn sixty_four_concurrent_wrong_passwords_across_two_replicas_get_five_verdicts() {
    let prefix = Prefix::new("concurrent");
    common::redis::sixty_four_concurrent_wrong_passwords_get_five_verdicts(&prefix).await;
}

#[tokio::test]
async fn a_stranger_on_one_replica_does_not_lock_the_user_out_on_another() {
    let prefix = Prefix::new("stranger");
    let (a, b) = (
        replica(&prefix, LoginThrottle::new()).await,
        replica(&prefix, LoginThrottle::new()).await,
    );
    let stranger = a.connecting_from("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(attempt(&stranger, "johndoe", "wrong").await.status, 400);
    }
    // The stranger's address is refused on both replicas; the user's is not.
    let stranger_on_b = b.connecting_from("127.0.0.2");
    assert_eq!(
        attempt(&stranger_on_b, "johndoe", "secret").await.status,
        429
    );
    b.connecting_from("127.0.0.3")
        .login("johndoe", "secret")
        .await;
    // Someone reading Redis finds neither the name nor the addresses.
    let keys = prefix.keys();
    assert_eq!(keys.len(), 4, "pair, user and two addresses: {keys:?}");
    assert!(
        keys.iter().all(|key| ["johndoe", "127.0.0"]
            .iter()
            .all(|secret| !key.contains(secret))),
        "{keys:?}"
    );
}

/// A `redis-server` of the test's own, with `args`; killed when dropped.
struct PrivateRedis(Child, u16);

impl PrivateRedis {
    fn start(args: &[&str]) -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            eprintln!("skipped: no redis-server binary to start a private Redis");
            return None;
        };
        let redis = Self(child, port);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(redis);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the private redis-server did not start");
    }

    fn connection(&self) -> RedisConnection {
        RedisConnection::new(&format!("redis://127.0.0.1:{}", self.1)).unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_redis_that_may_evict_keys_is_a_warning_at_the_first_connection() {
    let captured = Captured::install();
    let Some(evicting) = PrivateRedis::start(&["--maxmemory-policy", "allkeys-lru"]) else {
        return;
    };
    let Some(keeping) = PrivateRedis::start(&["--maxmemory-policy", "noeviction"]) else {
        return;
    };
    let warning = "Redis may evict keys before they expire";
    for redis in [&keeping, &evicting] {
        redis.connection().ping().await.unwrap();
    }
    // The check runs beside the first call: wait for its line (bounded).
    for _ in 0..500 {
        if captured.text().contains(warning) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let logs = captured.text();
    let warnings: Vec<&str> = logs.lines().filter(|line| line.contains(warning)).collect();
    assert_eq!(warnings.len(), 1, "{logs}");
    assert!(warnings[0].contains(" WARN "), "{}", warnings[0]);
    assert!(warnings[0].contains("allkeys-lru"), "{}", warnings[0]);
}

/// A Redis nothing listens on (port 1): every call fails at once.
fn unreachable() -> RedisConnection {
    RedisConnection::new("redis://127.0.0.1:1")
        .unwrap()
        .with_timeout(Duration::from_millis(200))
}

/// `max_keys` before `in_redis` or after it: the counts are in Redis either way
/// (two replicas share them), and the key bound sizes the memory fallback.
#[tokio::test]
async fn the_throttle_builder_gives_the_same_limits_in_either_order() {
    type Order = fn(LoginThrottle, RedisConnection) -> LoginThrottle;
    let orders: [(&str, Order); 2] = [
        ("max_keys first", |throttle, redis| {
            throttle.max_keys(1).in_redis(redis)
        }),
        ("in_redis first", |throttle, redis| {
            throttle.in_redis(redis).max_keys(1)
        }),
    ];
    for (order, build) in orders {
        let limited = || LoginThrottle::new().per_username(2, Duration::from_secs(60));
        // Shared by two replicas through Redis.
        let prefix = Prefix::new("order");
        let start = || async {
            let throttle = build(limited(), prefix.connection());
            Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await
        };
        let (a, b) = (start().await, start().await);
        for _ in 0..2 {
            assert_eq!(attempt(&a, "johndoe", "wrong").await.status, 400, "{order}");
        }
        let reply = attempt(&b, "johndoe", "secret").await;
        assert_eq!(reply.status, 429, "{order}: b sees a's failures");
        a.stop().await;
        b.stop().await;

        // With Redis down, one key per table in memory: a second user's failure
        // pushes the first user's count out.
        let throttle = build(limited(), unreachable());
        let server =
            Server::start_with(tutorial::layer_builder().login_policy(throttle).build()).await;
        for _ in 0..2 {
            assert_eq!(attempt(&server, "johndoe", "wrong").await.status, 400);
        }
        assert_eq!(
            attempt(&server, "johndoe", "secret").await.status,
            429,
            "{order}"
        );
        assert_eq!(attempt(&server, "janedoe", "wrong").await.status, 400);
        server.login("johndoe", "secret").await;
        server.stop().await;
    }
}
