//! The real Redis at `REDIS_URL` (default `redis://127.0.0.1:6379`) for the
//! `redis` feature's tests: a key prefix per test and run, deleted afterwards.

use std::time::{SystemTime, UNIX_EPOCH};

use tower_oauth2_password::RedisTokenStore;

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

    /// A store under this prefix.
    pub fn store(&self) -> RedisTokenStore {
        RedisTokenStore::new(&redis_url())
            .unwrap()
            .with_prefix(&self.0)
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
