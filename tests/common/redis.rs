//! The real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the
//! `redis` feature's tests, or the Redis Cluster at `REDIS_CLUSTER_URLS`
//! (`scripts/redis-cluster.sh start`): a key prefix per test and run, deleted
//! afterwards.

use std::time::{SystemTime, UNIX_EPOCH};

use tower_oauth2_password::redis::RedisConnection;
use tower_oauth2_password::token::redis::RedisTokenStore;

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
