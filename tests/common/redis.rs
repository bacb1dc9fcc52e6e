//! The real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the
//! `redis` feature's tests, or the Redis Cluster at `REDIS_CLUSTER_URLS`
//! (`scripts/redis-cluster.sh start`): a key prefix per test and run, deleted
//! afterwards.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::layer::Builder;
use tower_oauth2_password::testing::{RefreshTokenStoreSuite, TokenStoreSuite};
use tower_oauth2_password::token::redis::RedisTokenStore;
use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};

use super::refresh::{assert_invalid_refresh_token, present_at_once};
use super::{tutorial, Reply, Server};
use tower_oauth2_password::redis::RedisConnection;

/// The refresh secret of the tests' stores.
pub const REFRESH_SECRET: &[u8] = b"the tests' refresh secret, 32 bytes or more";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The seed nodes of the tests' Redis Cluster (`REDIS_CLUSTER_URLS`,
/// comma-separated), if there is one.
#[allow(dead_code)]
pub fn cluster_urls() -> Option<Vec<String>> {
    let urls = std::env::var("REDIS_CLUSTER_URLS").ok()?;
    let urls: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_owned)
        .collect();
    (!urls.is_empty()).then_some(urls)
}

/// A key prefix no other test, or test run, uses; its keys are deleted on drop.
pub struct Prefix(String, Option<Vec<String>>);

impl Prefix {
    pub fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(
            format!(
                "tower-oauth2-password-test:{}:{nanos}:{test}:",
                std::process::id()
            ),
            None,
        )
    }

    /// A prefix on the tests' Redis Cluster; `None`, with a note, without
    /// `REDIS_CLUSTER_URLS`.
    #[allow(dead_code)]
    pub fn in_cluster(test: &str) -> Option<Self> {
        let Some(urls) = cluster_urls() else {
            eprintln!(
                "skipped {test}: REDIS_CLUSTER_URLS is not set (scripts/redis-cluster.sh start)"
            );
            return None;
        };
        Some(Self(Self::new(test).0.clone(), Some(urls)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A connection to the tests' Redis (or cluster) under this prefix.
    pub fn connection(&self) -> RedisConnection {
        match &self.1 {
            None => RedisConnection::new(&redis_url()),
            Some(urls) => RedisConnection::cluster(urls),
        }
        .unwrap()
        .with_prefix(&self.0)
    }

    /// A blocking connection to the tests' Redis (or cluster), for reading
    /// what the stores wrote.
    pub fn sync(&self) -> Box<dyn redis::ConnectionLike> {
        match &self.1 {
            None => Box::new(
                redis::Client::open(redis_url())
                    .unwrap()
                    .get_connection()
                    .unwrap(),
            ),
            Some(urls) => Box::new(
                redis::cluster::ClusterClient::new(urls.clone())
                    .unwrap()
                    .get_connection()
                    .unwrap(),
            ),
        }
    }

    /// A store under this prefix, with a refresh secret (every replica of a test
    /// gets the same one).
    pub fn store(&self) -> RedisTokenStore {
        RedisTokenStore::on(&self.connection())
            .with_refresh_secret("test", REFRESH_SECRET)
            .unwrap()
    }

    /// Everything Redis holds under this prefix, as someone who reads Redis (a
    /// backup, a replica) sees it: each key's name, its `DUMP`, and its values.
    pub fn dump(&self) -> Vec<u8> {
        let mut connection = self.sync();
        let connection = &mut *connection;
        let mut data = Vec::new();
        for key in self.keys() {
            let mut parts: Vec<Vec<u8>> = vec![key.clone().into_bytes()];
            let dump: Option<Vec<u8>> = redis::cmd("DUMP").arg(&key).query(connection).unwrap();
            parts.extend(dump);
            let kind: String = redis::cmd("TYPE").arg(&key).query(connection).unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query(connection)
                    .map(|v: Vec<u8>| vec![v]),
                "hash" => redis::cmd("HGETALL").arg(&key).query(connection),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(connection),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(connection),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(connection),
                _ => Ok(Vec::new()),
            }
            .unwrap_or_default();
            parts.extend(values);
            for part in parts {
                data.extend_from_slice(&part);
                data.push(b'\n');
            }
        }
        data
    }

    /// Every key under this prefix.
    pub fn keys(&self) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut *self.sync())
            .unwrap()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(keys)
                .query(&mut *self.sync())
                .unwrap();
        }
    }
}

/// The tutorial's layer with its tokens (access and refresh) in `store`.
/// No login policy: these tests present many used and unknown refresh tokens
/// from one address, which the throttle would answer with 429
/// (tests/throttle_redis.rs tests the throttle in Redis).
pub fn replica_builder(
    store: RedisTokenStore,
) -> Builder<MemoryUserStore<tutorial::User>, RedisTokenStore> {
    OAuth2PasswordLayer::builder(tutorial::users())
        .refresh_tokens(store.clone())
        .token_store(store)
        .no_login_policy()
}

/// The tutorial app with its tokens (access and refresh) in `store`.
pub async fn replica(store: RedisTokenStore) -> Server {
    Server::start_with(replica_builder(store).build()).await
}

/// A replica: the tutorial with its throttle counting in Redis under `prefix`.
pub async fn throttled_replica(prefix: &Prefix, throttle: LoginThrottle) -> Server {
    let layer = tutorial::layer_builder()
        .login_policy(throttle.in_redis(prefix.connection()))
        .build();
    Server::start_with(layer).await
}

pub async fn attempt(server: &Server, username: &str, password: &str) -> Reply {
    server
        .post_form(&format!("username={username}&password={password}"))
        .await
}

/// The token-store and refresh-store suites on `prefix`'s store, and the
/// refresh suite with a cap of 2 families per user on `small`'s.
pub async fn token_store_conformance(prefix: &Prefix, small: &Prefix) {
    let store = prefix.store();
    TokenStoreSuite::new().run(&store).await;
    let grace = Duration::from_secs(1);
    RefreshTokenStoreSuite::new(grace)
        .run_with_persisted(&store.clone().with_retry_grace(grace), || async {
            prefix.dump()
        })
        .await;
    RefreshTokenStoreSuite::new(Duration::ZERO)
        .max_families_per_user(2)
        .run_with_persisted(
            &small
                .store()
                .with_retry_grace(Duration::ZERO)
                .with_max_families_per_user(2),
            || async { small.dump() },
        )
        .await;
}

/// Two replicas of the tutorial app sharing Redis: what one issues or revokes,
/// the other sees on its next request.
pub async fn replicas_share_tokens_revocations_and_refresh_families(prefix: &Prefix) {
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
    // That logout ended the login: its refresh token too (RFC 7009 §2.1).
    assert_invalid_refresh_token(&b.refresh(&first).await);

    // A refresh on B rotates the family A started...
    let (_, first) = a.login_with_refresh().await;
    let (access, second) = b.refresh(&first).await.tokens();
    assert_eq!(a.me(&access).await.status, StatusCode::OK);
    // ...and presenting the used token again, on A, is reuse: the family ends.
    assert_invalid_refresh_token(&a.refresh(&first).await);
    assert_invalid_refresh_token(&b.refresh(&second).await);
}

/// Two replicas presented one refresh token at the same moment, with no retry
/// grace: one rotates it, and the other's use is reuse (not merely invalid): it
/// ends the family, so the winner's new token is refused too. Ten rounds.
pub async fn two_replicas_presenting_one_token_at_once(prefix: &Prefix) {
    let a = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    let b = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    for _ in 0..10 {
        let (_, token) = a.login_with_refresh().await;
        let rotated = present_at_once(&[&a, &b], &token, 2).await;
        assert_eq!(rotated.len(), 1, "exactly one replica rotates");
        assert_invalid_refresh_token(&b.refresh(&rotated[0]).await);
    }
}

/// 64 requests presenting one token at once, half on each replica, within the
/// retry grace: one rotation and one retry; the third use is reuse, which ends
/// the family.
pub async fn one_token_presented_64_times_rotates_once_and_retries_once(prefix: &Prefix) {
    let a = replica(prefix.store()).await;
    let b = replica(prefix.store()).await;
    let (_, token) = a.login_with_refresh().await;
    let rotated = present_at_once(&[&a, &b], &token, 64).await;
    assert_eq!(rotated.len(), 2, "a rotation and its one retry");
    for token in &rotated {
        assert_invalid_refresh_token(&a.refresh(token).await);
    }
}

/// With at most 3 live families per user, a fourth login (on another replica)
/// ends the first.
pub async fn a_fourth_login_ends_the_first_when_the_cap_is_three(prefix: &Prefix) {
    let a = replica(prefix.store().with_max_families_per_user(3)).await;
    let b = replica(prefix.store().with_max_families_per_user(3)).await;
    let mut logins = Vec::new();
    for server in [&a, &a, &a, &b] {
        logins.push(server.login_with_refresh().await.1);
    }
    assert_invalid_refresh_token(&b.refresh(&logins[0]).await);
    for token in &logins[1..] {
        a.refresh(token).await.tokens();
    }
}

/// 64 concurrent wrong passwords for one user across two replicas: 5
/// verdicts (the pair's limit), 59 refusals, and both refuse the user then.
pub async fn sixty_four_concurrent_wrong_passwords_get_five_verdicts(prefix: &Prefix) {
    let replicas = Arc::new([
        throttled_replica(prefix, LoginThrottle::new()).await,
        throttled_replica(prefix, LoginThrottle::new()).await,
    ]);
    let logins: Vec<_> = (0..64)
        .map(|i| {
            let replicas = Arc::clone(&replicas);
            tokio::spawn(async move { attempt(&replicas[i % 2], "johndoe", "wrong").await })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for login in logins {
        let reply = login.await.unwrap();
        if reply.status == 429 {
            reply.assert_error(
                429,
                "Too many login attempts, try again later",
                Some("temporarily_unavailable"),
            );
        }
        *statuses.entry(reply.status.as_u16()).or_default() += 1;
    }
    assert_eq!(statuses, [(400, 5), (429, 59)].into());
    for replica in replicas.iter() {
        assert_eq!(attempt(replica, "johndoe", "secret").await.status, 429);
    }
}

/// A 503 `temporarily_unavailable` with `Retry-After: 1`: what Redis down,
/// slow or failed over gets.
#[track_caller]
pub fn assert_unavailable(reply: &Reply) {
    reply.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
    assert_eq!(reply.header("retry-after"), Some("1"));
}
