//! Every Redis-backed part on a Redis Cluster: the conformance suites (token
//! store, refresh families, JWT denylist, login throttle), the two-replica
//! tests, and a failover (a master stopped: 503 for its slots, never a 2xx for
//! what it held, and service back once its replica is promoted, with no
//! restart).
//!
//! Needs `REDIS_CLUSTER_URLS` (seed nodes, comma-separated); each test prints a
//! note and passes without it:
//!
//! ```text
//! scripts/redis-cluster.sh start   # 3 masters + 3 replicas on 7101-7106
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7101,redis://127.0.0.1:7102,redis://127.0.0.1:7103 \
//!     cargo test --features redis,jwt --test redis_cluster
//! scripts/redis-cluster.sh stop
//! ```
//!
//! The failover test starts a cluster of its own (ports 7201-7206, the same
//! script), so that stopping a master does not disturb the other tests.
#![cfg(feature = "redis")]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::redis::{
    assert_unavailable, attempt, replica, throttled_replica, Prefix, REFRESH_SECRET,
};
use common::Reply;
use http::StatusCode;
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::redis::RedisConnection;
use tower_oauth2_password::testing::LoginPolicySuite;
use tower_oauth2_password::token::redis::RedisTokenStore;

#[tokio::test]
async fn cluster_token_store_conformance() {
    let Some(prefix) = Prefix::in_cluster("conformance") else {
        return;
    };
    assert!(prefix.connection().is_cluster());
    let small = Prefix::in_cluster("conformance-cap").unwrap();
    common::redis::token_store_conformance(&prefix, &small).await;
}

#[cfg(feature = "jwt")]
#[tokio::test]
async fn cluster_jti_denylist_conformance() {
    use tower_oauth2_password::testing::JtiDenylistSuite;
    use tower_oauth2_password::token::redis::RedisJtiDenylist;

    let Some(prefix) = Prefix::in_cluster("denylist") else {
        return;
    };
    JtiDenylistSuite::new()
        .run(&RedisJtiDenylist::on(&prefix.connection()))
        .await;
    JtiDenylistSuite::new().run(&prefix.store()).await;
}

/// The throttle's contract (reserve before the hash, count, give back) with a
/// username's counts and the address's in different slots.
#[tokio::test]
async fn cluster_login_throttle_conformance() {
    let Some(prefix) = Prefix::in_cluster("policy") else {
        return;
    };
    LoginPolicySuite::new(5)
        .run(&LoginThrottle::new().in_redis(prefix.connection()))
        .await;
}

#[tokio::test]
async fn cluster_replicas_share_tokens_revocations_and_refresh_families() {
    let Some(prefix) = Prefix::in_cluster("replicas") else {
        return;
    };
    common::redis::replicas_share_tokens_revocations_and_refresh_families(&prefix).await;
    // A family and its access tokens share a slot: both keys carry its id as
    // the hash tag.
    let keys = prefix.keys();
    let tags: Vec<&str> = keys
        .iter()
        .map(|key| &key[prefix.as_str().len()..])
        .filter(|key| key.starts_with("rf:{") || key.starts_with("af:{"))
        .collect();
    assert!(!tags.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn cluster_two_replicas_presenting_one_token_at_once() {
    let Some(prefix) = Prefix::in_cluster("race") else {
        return;
    };
    common::redis::two_replicas_presenting_one_token_at_once(&prefix).await;
    let prefix = Prefix::in_cluster("race-grace").unwrap();
    common::redis::one_token_presented_64_times_rotates_once_and_retries_once(&prefix).await;
}

/// The user's list and the families are in different slots: the cap still
/// holds across replicas (a fourth login ends the first).
#[tokio::test]
async fn cluster_a_fourth_login_ends_the_first_when_the_cap_is_three() {
    let Some(prefix) = Prefix::in_cluster("cap") else {
        return;
    };
    common::redis::a_fourth_login_ends_the_first_when_the_cap_is_three(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ending_a_family_ends_its_access_tokens_on_every_replica() {
    let Some(prefix) = Prefix::in_cluster("family-end") else {
        return;
    };
    let a = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    let b = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    common::ending_a_family_ends_its_access_tokens(&a, &b).await;
    common::a_family_holds_at_most(&a, 10, 24).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    for _ in 0..8 {
        common::no_access_token_outlives_a_reuse_it_raced(&a, &b).await;
    }
}

#[tokio::test]
async fn cluster_throttle_replicas_share_the_counts() {
    let Some(prefix) = Prefix::in_cluster("throttle") else {
        return;
    };
    // Never more than the pair's 5 guesses, with the username's and the
    // address's counts reserved in two steps.
    common::redis::sixty_four_concurrent_wrong_passwords_get_five_verdicts(&prefix).await;
    let replicas = [
        throttled_replica(&prefix, LoginThrottle::new()).await,
        throttled_replica(&prefix, LoginThrottle::new()).await,
    ];
    // A stranger's address, throttled on both replicas; the user from
    // elsewhere is not.
    let stranger = replicas[0].connecting_from("127.0.0.2");
    for _ in 0..5 {
        assert_eq!(attempt(&stranger, "alice", "wrong").await.status, 400);
    }
    let stranger_on_b = replicas[1].connecting_from("127.0.0.2");
    assert_eq!(
        attempt(&stranger_on_b, "alice", "wonderland").await.status,
        429
    );
    let keys = prefix.keys();
    assert!(
        keys.iter()
            .all(|key| !key.contains("johndoe") && !key.contains("127.0.0")),
        "{keys:?}"
    );
}

/// A private cluster on 7201-7206 (scripts/redis-cluster.sh), stopped and
/// deleted on drop.
struct PrivateCluster;

const FAILOVER_BASE: u16 = 7200;

impl PrivateCluster {
    fn script(action: &str) -> std::process::Output {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/redis-cluster.sh");
        Command::new("bash")
            .arg(script)
            .arg(action)
            .env("REDIS_CLUSTER_PORT_BASE", FAILOVER_BASE.to_string())
            .output()
            .unwrap()
    }

    fn start() -> Self {
        let _ = Self::script("stop");
        let started = Self::script("start");
        assert!(
            started.status.success(),
            "{}",
            String::from_utf8_lossy(&started.stderr)
        );
        Self
    }

    fn urls() -> Vec<String> {
        (1..=6)
            .map(|i| format!("redis://127.0.0.1:{}", FAILOVER_BASE + i))
            .collect()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = Self::script("stop");
    }
}

/// Whether the node on `port` (a master) holds `key`.
fn held_by(port: u16, key: &str) -> bool {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut connection = client.get_connection().unwrap();
    // Another master's key is a MOVED error.
    matches!(
        redis::cmd("EXISTS").arg(key).query::<u8>(&mut connection),
        Ok(1)
    )
}

/// One request, bounded: a call for a failed master's slot must end in 503
/// after the store's deadline (300 ms), not hang.
async fn bounded<F: std::future::Future<Output = Reply>>(request: F) -> Reply {
    tokio::time::timeout(Duration::from_secs(10), request)
        .await
        .expect("the service answered (no hang behind a failed master)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_master_is_503_for_its_slots_until_its_replica_takes_over() {
    if common::redis::cluster_urls().is_none() {
        eprintln!("skipped: REDIS_CLUSTER_URLS is not set (scripts/redis-cluster.sh start)");
        return;
    }
    let cluster = PrivateCluster::start();
    let redis = RedisConnection::cluster(&PrivateCluster::urls())
        .unwrap()
        .with_prefix("failover:")
        .with_timeout(Duration::from_millis(300));
    let store = RedisTokenStore::on(&redis)
        .with_refresh_secret("test", REFRESH_SECRET)
        .unwrap();
    let server = replica(store).await;
    let master = FAILOVER_BASE + 1;
    // Logins until some families live on the master to fail and some elsewhere.
    let (mut doomed, mut spared) = (Vec::new(), Vec::new());
    for _ in 0..200 {
        let (access, refresh) = server.login_with_refresh().await;
        let family_key = find_family_key(&redis, &access);
        if held_by(master, &family_key) {
            doomed.push((access, refresh));
        } else {
            spared.push((access, refresh));
        }
        if doomed.len() >= 3 && spared.len() >= 3 {
            break;
        }
    }
    assert!(doomed.len() >= 3 && spared.len() >= 3);
    // Let the replicas copy the writes (asynchronous replication).
    for port in 1..=3 {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", FAILOVER_BASE + port)).unwrap();
        let mut connection = client.get_connection().unwrap();
        let _: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(2000)
            .query(&mut connection)
            .unwrap();
    }

    // Its replica waits for the word (no automatic failover), so that the
    // outage lasts until the test ends it.
    let replica_port = replica_of(master);
    redis_cli(
        replica_port,
        &["config", "set", "cluster-replica-no-failover", "yes"],
    );
    redis_cli(master, &["shutdown", "nosave"]);
    // Its slots: 503 for guarded requests, refreshes and revocations (never a
    // 2xx nor a 401 for a token Redis cannot be asked about); the others serve.
    let outage = std::time::Instant::now();
    for (access, refresh) in &doomed {
        assert_unavailable(&bounded(server.me(access)).await);
        assert_unavailable(&bounded(server.refresh(refresh)).await);
        assert_unavailable(&bounded(server.revoke(&format!("token={access}"))).await);
    }
    eprintln!(
        "{} requests for the failed master's slots: 503 in {:?} each on average (deadline 300 ms)",
        3 * doomed.len(),
        outage.elapsed() / (3 * doomed.len() as u32)
    );
    for (access, _) in &spared {
        assert_eq!(bounded(server.me(access)).await.status, StatusCode::OK);
    }

    // The replica takes over; the same service, not restarted, serves the
    // failed master's tokens again once it has reread the slot map.
    redis_cli(replica_port, &["cluster", "failover", "takeover"]);
    let promoted = std::time::Instant::now();
    let mut recovered = false;
    for _ in 0..60 {
        if bounded(server.me(&doomed[0].0)).await.status == StatusCode::OK {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the promoted replica serves the slots");
    eprintln!("served again {:?} after the takeover", promoted.elapsed());
    for (access, refresh) in &doomed {
        assert_eq!(bounded(server.me(access)).await.status, StatusCode::OK);
        bounded(server.refresh(refresh)).await.tokens();
    }
    for (access, refresh) in &spared {
        assert_eq!(bounded(server.me(access)).await.status, StatusCode::OK);
        bounded(server.refresh(refresh)).await.tokens();
    }
    server.login_with_refresh().await;
    drop(cluster);
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The port of the replica of the master on `port`.
fn replica_of(port: u16) -> u16 {
    let id = redis_cli(port, &["cluster", "myid"]).trim().to_owned();
    let nodes = redis_cli(port, &["cluster", "nodes"]);
    nodes
        .lines()
        .find(|line| line.split(' ').nth(3) == Some(id.as_str()))
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|addr| addr.split(['@', ':']).nth(1))
        .and_then(|port| port.parse().ok())
        .expect("the master has a replica")
}

/// The key of the hash holding `access` (a token of a refresh family): the
/// one `af:` key whose hash tag starts the token.
fn find_family_key(redis: &RedisConnection, access: &str) -> String {
    let mut connection = redis::cluster::ClusterClient::new(PrivateCluster::urls())
        .unwrap()
        .get_connection()
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}af:*", redis.prefix()))
        .query(&mut connection)
        .unwrap();
    keys.into_iter()
        .find(|key| {
            let tag = key
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'))
                .map(|(tag, _)| tag);
            tag.is_some_and(|tag| access.starts_with(tag))
        })
        .expect("the token's family hash")
}
