//! The real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the
//! `redis` feature's tests: a key prefix per test and run, deleted afterwards.

use std::time::{SystemTime, UNIX_EPOCH};

use tower_oauth2_password::redis::RedisConnection;
use tower_oauth2_password::token::redis::RedisTokenStore;

/// The refresh secret of the tests' stores.
pub const REFRESH_SECRET: &[u8] = b"the tests' refresh secret, 32 bytes or more";

pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A key prefix no other test, or test run, uses; its keys are deleted on drop.
pub struct Prefix(String);

impl Prefix {
    pub fn new(test: &str) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        Self(format!(
            "tower-oauth2-password-test:{}:{nanos}:{test}:",
            std::process::id()
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A connection to the tests' Redis under this prefix.
    pub fn connection(&self) -> RedisConnection {
        RedisConnection::new(&redis_url())
            .unwrap()
            .with_prefix(&self.0)
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
        let client = redis::Client::open(redis_url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        let mut data = Vec::new();
        for key in self.keys() {
            let mut parts: Vec<Vec<u8>> = vec![key.clone().into_bytes()];
            let dump: Option<Vec<u8>> =
                redis::cmd("DUMP").arg(&key).query(&mut connection).unwrap();
            parts.extend(dump);
            let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
            let values: Vec<Vec<u8>> = match kind.as_str() {
                "string" => redis::cmd("GET")
                    .arg(&key)
                    .query(&mut connection)
                    .map(|v: Vec<u8>| vec![v]),
                "hash" => redis::cmd("HGETALL").arg(&key).query(&mut connection),
                "zset" => redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query(&mut connection),
                "set" => redis::cmd("SMEMBERS").arg(&key).query(&mut connection),
                "list" => redis::cmd("LRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query(&mut connection),
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
        let client = redis::Client::open(redis_url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        redis::cmd("KEYS")
            .arg(format!("{}*", self.0))
            .query(&mut connection)
            .unwrap()
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        let keys = self.keys();
        if !keys.is_empty() {
            let client = redis::Client::open(redis_url()).unwrap();
            let mut connection = client.get_connection().unwrap();
            let _: () = redis::cmd("DEL").arg(keys).query(&mut connection).unwrap();
        }
    }
}
