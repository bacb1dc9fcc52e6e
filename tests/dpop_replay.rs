//! DPoP proof replay stores (`dpop` feature): the `ReplayStoreSuite` on the
//! memory store and, with `redis`, on Redis at `REDIS_URL` (default
//! `redis://127.0.0.1:6379`) under a key prefix of its own that each test
//! deletes at the end, where two connections stand for two replicas.
//!
//! `cargo test --features dpop --test dpop_replay`, and
//! `cargo test --features dpop,redis --test dpop_replay` for Redis too.

mod memory_replay_store {
    use tower_oauth2_password::dpop::MemoryReplayStore;

    tower_oauth2_password::replay_store_tests!(MemoryReplayStore::new());
}

/// The same rules on a store shared through an `Arc`, as an application hands
/// one store to several layers.
mod shared_memory_replay_store {
    use std::sync::Arc;
    use tower_oauth2_password::dpop::MemoryReplayStore;

    tower_oauth2_password::replay_store_tests!(Arc::new(MemoryReplayStore::new()));
}

#[cfg(feature = "redis")]
mod common;

#[cfg(feature = "redis")]
mod redis {
    use std::time::{Duration, SystemTime};

    use crate::common::redis::{redis_url, Prefix};
    use tower_oauth2_password::dpop::{
        JwkThumbprint, ProofId, RedisReplayStore, ReplayStore, Sighting,
    };
    use tower_oauth2_password::redis::RedisConnection;
    use tower_oauth2_password::testing::ReplayStoreSuite;

    const KEY: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

    fn proof(jti: &str) -> ProofId {
        ProofId::new(&JwkThumbprint::from_encoded(KEY).unwrap(), jti)
    }

    fn in_a_minute() -> SystemTime {
        SystemTime::now() + Duration::from_secs(60)
    }

    #[tokio::test]
    async fn redis_replay_store_conformance() {
        let prefix = Prefix::new("dpop-replay-conformance");
        ReplayStoreSuite::new()
            .run(&RedisReplayStore::on(&prefix.connection()))
            .await;
    }

    /// Two connections are two replicas: a proof used on one is refused on the
    /// other, and each proof is one key under the prefix, expiring, that shows
    /// neither the key's thumbprint nor the `jti`.
    #[tokio::test]
    async fn a_proof_used_on_one_replica_is_refused_on_another() {
        let prefix = Prefix::new("dpop-replay-replicas");
        let (one, two) = (
            RedisReplayStore::on(&prefix.connection()),
            RedisReplayStore::on(&prefix.connection()),
        );
        let jti = "a-jti-the-client-chose-0123456789";
        let until = in_a_minute();
        assert_eq!(
            one.remember(&proof(jti), until).await.unwrap(),
            Sighting::First
        );
        assert_eq!(
            two.remember(&proof(jti), until).await.unwrap(),
            Sighting::Replay
        );
        assert_eq!(
            one.remember(&proof(jti), until).await.unwrap(),
            Sighting::Replay
        );
        assert_eq!(
            two.remember(&proof("another"), until).await.unwrap(),
            Sighting::First
        );

        let keys = prefix.keys();
        assert_eq!(keys.len(), 2, "one key per proof: {keys:?}");
        let client = redis::Client::open(redis_url()).unwrap();
        let mut connection = client.get_connection().unwrap();
        for key in &keys {
            let name = key.strip_prefix(prefix.as_str()).unwrap();
            assert!(name.starts_with("dpop:"), "{name}");
            assert_eq!(
                name.len(),
                "dpop:".len() + 43,
                "a hash, not what the client sent: {name}"
            );
            assert!(!key.contains(jti) && !key.contains("another") && !key.contains(KEY));
            let left: i64 = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
            assert!(
                left > 0 && left <= 60_000,
                "the entry expires with the proof: {left} ms left"
            );
        }
        let wanted = format!("{}dpop:{}", prefix.as_str(), proof(jti));
        assert!(keys.contains(&wanted), "{wanted} in {keys:?}");
    }

    /// A store on the Redis at `port` of this machine, with a 300 ms deadline.
    fn store_at(port: u16) -> RedisReplayStore {
        let connection = RedisConnection::new(&format!("redis://127.0.0.1:{port}"))
            .unwrap()
            .with_timeout(Duration::from_millis(300));
        RedisReplayStore::on(&connection)
    }

    /// `remember` fails: the request is refused, never let through.
    async fn assert_fails_closed(store: &RedisReplayStore) {
        let error = store
            .remember(&proof("unanswered"), in_a_minute())
            .await
            .unwrap_err();
        assert!(
            error.to_string().starts_with("store unavailable: "),
            "{error}"
        );
    }

    /// Redis unreachable is an error, also while the connection backs off.
    #[tokio::test]
    async fn an_unreachable_redis_fails_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener); // nothing listens there now
        let store = store_at(port);
        assert_fails_closed(&store).await;
        assert_fails_closed(&store).await;
    }

    /// A silent Redis (accepts, never answers) is an error at the deadline.
    #[tokio::test]
    async fn a_silent_redis_fails_closed_at_the_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let _silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        assert_fails_closed(&store_at(port)).await;
    }
}
