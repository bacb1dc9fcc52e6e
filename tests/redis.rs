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

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use blake2::digest::consts::U16;
use blake2::digest::{KeyInit, Mac};
use blake2::Blake2bMac;
use common::redis::{
    assert_unavailable, redis_url, replica, replica_builder, Prefix, REFRESH_SECRET,
};
use common::refresh::{assert_invalid_refresh_token, refresh_lifetimes_hold, short_lifetimes};
use common::{tutorial, Server};
use http::StatusCode;
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::redis::RedisConnection;
use tower_oauth2_password::token::redis::RedisTokenStore;
use tower_oauth2_password::OAuth2PasswordLayer;

/// A store on `url` (a private Redis), with the tests' refresh secret.
fn store_on(url: &str) -> RedisTokenStore {
    let redis = RedisConnection::new(url)
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    RedisTokenStore::on(&redis)
        .with_refresh_secret("test", REFRESH_SECRET)
        .unwrap()
}

#[tokio::test]
async fn redis_token_store_conformance() {
    let (prefix, small) = (Prefix::new("conformance"), Prefix::new("conformance-cap"));
    common::redis::token_store_conformance(&prefix, &small).await;
}

/// JWTs with their denylist in Redis: what one replica revokes, all refuse.
#[cfg(feature = "jwt")]
#[tokio::test]
async fn jwt_with_a_redis_denylist_conformance() {
    use tower_oauth2_password::testing::TokenStoreSuite;
    use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
    use tower_oauth2_password::token::redis::RedisJtiDenylist;

    let prefix = Prefix::new("jwt");
    let store = |prefix: &Prefix| {
        let key = JwtKey::hs256("k1", b"a test secret of at least thirty-two bytes").unwrap();
        JwtTokenStore::signing_with(key)
            .issuer("https://auth.example.com")
            .leeway(Duration::from_secs(1))
            .with_denylist(RedisJtiDenylist::on(&prefix.connection()))
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

/// An app's own `redis::Client`, configured once: the token store, the refresh
/// families and the login throttle all under its prefix.
#[tokio::test]
async fn one_connection_from_the_apps_own_client_serves_tokens_and_the_throttle() {
    let prefix = Prefix::new("own-client");
    let client = redis::Client::open(redis_url()).unwrap();
    let redis = RedisConnection::from_client(client).with_prefix(prefix.as_str());
    let tokens = RedisTokenStore::on(&redis)
        .with_refresh_secret("test", REFRESH_SECRET)
        .unwrap();
    let throttle = LoginThrottle::new().per_username(1, Duration::from_secs(60));
    let server = Server::start_with(
        OAuth2PasswordLayer::builder(tutorial::users())
            .refresh_tokens(tokens.clone())
            .token_store(tokens)
            .login_policy(throttle.in_redis(&redis))
            .build(),
    )
    .await;
    let (access, refresh_token) = server.login_with_refresh().await;
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
    server.refresh(&refresh_token).await.tokens();
    assert_eq!(
        server
            .post_form("username=janedoe&password=wrong")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        server.post_form("username=janedoe&password=x").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let kinds: std::collections::BTreeSet<String> = prefix
        .keys()
        .iter()
        .map(|key| {
            let name = &key[prefix.as_str().len()..];
            name.split(':').next().unwrap().to_owned()
        })
        .collect();
    assert!(
        ["af", "rf", "rfu", "throttle"]
            .iter()
            .all(|kind| kinds.contains(*kind)),
        "{kinds:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn redis_holds_hashes_not_tokens() {
    let prefix = Prefix::new("hashes");
    let server = replica(prefix.store()).await;
    let (access, refresh_token) = server.login_with_refresh().await;
    let keys = prefix.keys();
    assert_eq!(
        keys.len(),
        3,
        "one access token, one family, the user's list of families: {keys:?}"
    );
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

/// Two replicas of the tutorial app sharing Redis (see the helper).
#[tokio::test]
async fn replicas_share_tokens_revocations_and_refresh_families() {
    let prefix = Prefix::new("replicas");
    common::redis::replicas_share_tokens_revocations_and_refresh_families(&prefix).await;
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
    let server = replica(store_on(&redis.url())).await;
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
    let server = replica(store_on(&redis.url())).await;
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

/// Someone who reads Redis (a backup, a replica, `MONITOR`) builds every refresh
/// token the crate's format allows from what they read: each family's id (the
/// key name) and current generation, with each 32-byte run of what they read (raw
/// or base64url) as the MAC key; and every access token: each 43-character run,
/// and each 32-byte run in base64url. None works.
#[tokio::test]
async fn nothing_read_from_redis_mints_a_working_token() {
    let prefix = Prefix::new("minting");
    let server = Server::start_with(replica_builder(prefix.store()).build()).await;
    let (first_access, first) = server.login_with_refresh().await;
    let (access, current) = server.refresh(&first).await.tokens();
    let working = [&first_access, &access, &first, &current];
    let data = prefix.dump();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();

    let runs: Vec<[u8; 32]> = data
        .windows(32)
        .filter_map(|run| run.try_into().ok())
        .chain(data.windows(43).filter_map(|run| {
            let mut key = [0u8; 32];
            (URL_SAFE_NO_PAD.decode_slice(run, &mut key).ok() == Some(32)).then_some(key)
        }))
        .collect();
    let mut refresh_candidates = Vec::new();
    for key in prefix.keys() {
        let Some(id) = key.rsplit_once(":rf:").map(|(_, id)| id) else {
            continue;
        };
        let id = URL_SAFE_NO_PAD.decode(id).unwrap();
        let generation: u32 = redis::cmd("HGET")
            .arg(&key)
            .arg("cur")
            .query(&mut connection)
            .unwrap();
        for mac_key in &runs {
            let mut mac = <Blake2bMac<U16> as KeyInit>::new_from_slice(mac_key).unwrap();
            mac.update(&id);
            mac.update(&generation.to_be_bytes());
            let token = [
                &id[..],
                &generation.to_be_bytes(),
                &mac.finalize().into_bytes(),
            ]
            .concat();
            refresh_candidates.push(URL_SAFE_NO_PAD.encode(token));
        }
    }
    assert!(
        !refresh_candidates.is_empty(),
        "a family in {:?}",
        prefix.keys()
    );
    let access_candidates: Vec<String> = data
        .windows(43)
        .filter(|run| {
            run.iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|run| String::from_utf8(run.to_vec()).unwrap())
        .chain(runs.iter().map(|run| URL_SAFE_NO_PAD.encode(run)))
        .collect();
    for candidate in &refresh_candidates {
        let reply = server.refresh(candidate).await;
        assert_ne!(
            reply.status,
            StatusCode::OK,
            "a refresh token rebuilt from what Redis holds works"
        );
        assert_invalid_refresh_token(&reply);
    }
    for candidate in &access_candidates {
        let reply = server.me(candidate).await;
        assert_ne!(
            reply.status,
            StatusCode::OK,
            "an access token rebuilt from what Redis holds works"
        );
        reply.assert_invalid_token();
    }
    for candidate in refresh_candidates.iter().chain(&access_candidates) {
        assert!(
            !working.contains(&candidate),
            "a working token was rebuilt from what Redis holds"
        );
    }
    // The real ones still work: the forgeries were refused as strangers, not reuse.
    assert_eq!(server.me(&access).await.status, StatusCode::OK);
    server.refresh(&current).await.tokens();
}

/// Without a refresh secret the Redis store starts no family: a login with
/// refresh tokens on is a 503, rather than a key kept in Redis or a secret of
/// one process. A short secret is refused without being shown.
#[tokio::test]
async fn without_a_refresh_secret_redis_starts_no_family() {
    let prefix = Prefix::new("no-secret");
    let store = RedisTokenStore::new(&redis_url())
        .unwrap()
        .with_prefix(prefix.as_str());
    let server = replica(store.clone()).await;
    server
        .post_form("username=johndoe&password=secret")
        .await
        .assert_error(
            503,
            "Service temporarily unavailable, try again later",
            Some("temporarily_unavailable"),
        );
    let short = "only-twenty-bytes-ok";
    let error = store
        .with_refresh_secret("1", short.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(error.contains("at least 32"), "{error}");
    assert!(!error.contains(short), "{error}");
}

/// One rotation when two replicas race, and one retry in the grace (see the
/// helpers).
#[tokio::test]
async fn two_replicas_presenting_one_token_at_once() {
    common::redis::two_replicas_presenting_one_token_at_once(&Prefix::new("race")).await;
}

#[tokio::test]
async fn one_token_presented_64_times_across_replicas_rotates_once_and_retries_once() {
    let prefix = Prefix::new("race-grace");
    common::redis::one_token_presented_64_times_rotates_once_and_retries_once(&prefix).await;
}

/// Idle 2 s, absolute 2.8 s, by Redis's clock: refreshes slide the idle lifetime
/// (the record's expiry moves), the absolute one ends the login.
#[tokio::test]
async fn redis_refresh_families_end_after_their_idle_and_absolute_lifetimes() {
    let prefix = Prefix::new("lifetimes");
    let server = Server::start_with(short_lifetimes(replica_builder(prefix.store())).build()).await;
    refresh_lifetimes_hold(&server).await;
}

/// With at most 3 live families per user, a fourth login (on another replica)
/// ends the first.
#[tokio::test]
async fn a_fourth_login_ends_the_first_in_redis_when_the_cap_is_three() {
    let prefix = Prefix::new("cap");
    common::redis::a_fourth_login_ends_the_first_when_the_cap_is_three(&prefix).await;
}

/// Two replicas with their tokens in `prefix`, no refresh retry grace.
async fn replicas_without_grace(prefix: &Prefix) -> (Server, Server) {
    let a = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    let b = replica(prefix.store().with_retry_grace(Duration::ZERO)).await;
    (a, b)
}

/// Issue 17 row 4: what ends a family on one replica ends its access tokens on
/// the other.
#[tokio::test]
async fn ending_a_family_on_one_replica_ends_its_access_tokens_on_the_other() {
    let prefix = Prefix::new("family-end");
    let (a, b) = replicas_without_grace(&prefix).await;
    common::ending_a_family_ends_its_access_tokens(&a, &b).await;
}

/// A family's access tokens live in one hash, tagged with the family id (one
/// Cluster slot), holding hashes of the tokens, never the tokens; ending the
/// family leaves only a short-lived marker.
#[tokio::test]
async fn a_familys_access_tokens_share_one_hash_tagged_key() {
    let prefix = Prefix::new("family-layout");
    let server = replica(prefix.store()).await;
    let (access, first) = server.login_with_refresh().await;
    let (refreshed, _) = server.refresh(&first).await.tokens();
    let family_keys: Vec<String> = prefix
        .keys()
        .into_iter()
        .filter(|key| key[prefix.as_str().len()..].starts_with("af:"))
        .collect();
    assert_eq!(family_keys.len(), 1, "{family_keys:?}");
    let key = &family_keys[0];
    let tag = &key[prefix.as_str().len() + "af:".len()..];
    assert!(
        tag.starts_with('{') && tag.ends_with('}') && tag.len() == 24,
        "{key}"
    );
    let client = redis::Client::open(common::redis::redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    let fields: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(key)
        .query(&mut connection)
        .unwrap();
    assert_eq!(fields.len(), 3, "two tokens and the counter: {fields:?}");
    for (field, value) in &fields {
        for token in [&access, &refreshed] {
            assert!(!field.contains(token.as_str()) && !value.contains(token.as_str()));
        }
    }
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
    assert!(ttl > 0, "the family's hash expires with its last token");
    let reply = server.revoke(&format!("token={first}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    let fields: Vec<String> = redis::cmd("HKEYS").arg(key).query(&mut connection).unwrap();
    assert_eq!(fields, ["!"], "only the marker is left");
    let ttl: i64 = redis::cmd("PTTL").arg(key).query(&mut connection).unwrap();
    assert!(ttl > 0, "the marker expires");
}

/// Issue 17 row 7: one login refreshing forever holds at most the cap of
/// working access tokens in Redis, its newest, and Redis holds no more.
#[tokio::test]
async fn redis_keeps_a_familys_newest_access_tokens() {
    let prefix = Prefix::new("family-cap");
    let store = prefix.store().with_max_tokens_per_family(3);
    let server = replica(store).await;
    common::a_family_holds_at_most(&server, 3, 12).await;
    let client = redis::Client::open(common::redis::redis_url()).unwrap();
    let mut connection = client.get_connection().unwrap();
    for key in prefix.keys() {
        if key[prefix.as_str().len()..].starts_with("af:") {
            let len: usize = redis::cmd("HLEN").arg(&key).query(&mut connection).unwrap();
            assert_eq!(len, 3 + 1, "three tokens and the counter");
        }
    }
    let prefix = Prefix::new("family-cap-default");
    let server = replica(prefix.store()).await;
    common::a_family_holds_at_most(&server, 10, 24).await;
}

/// A thief and the client racing on two replicas (see the helper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_token_outlives_a_reuse_it_raced_across_replicas() {
    let prefix = Prefix::new("family-race");
    let (a, b) = replicas_without_grace(&prefix).await;
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    for _ in 0..16 {
        common::no_access_token_outlives_a_reuse_it_raced(&a, &b).await;
    }
}

/// JWT access tokens, refresh families in Redis, revocations in Redis's
/// denylist: ending a family on one replica ends its JWTs on the other, with one
/// denylist entry for the family.
#[cfg(feature = "jwt")]
#[tokio::test]
async fn ending_a_family_ends_its_jwts_on_every_replica() {
    use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};

    let prefix = Prefix::new("family-jwt");
    let start = || async {
        let key = JwtKey::hs256("k1", b"a test secret of at least thirty-two bytes").unwrap();
        let tokens = JwtTokenStore::signing_with(key)
            .issuer("https://auth.example.com")
            .with_denylist(prefix.store())
            .build()
            .unwrap();
        let layer = OAuth2PasswordLayer::builder(tutorial::users())
            .refresh_tokens(prefix.store().with_retry_grace(Duration::ZERO))
            .token_store(tokens)
            .build();
        Server::start_with(layer).await
    };
    let (a, b) = (start().await, start().await);
    common::ending_a_family_ends_its_access_tokens(&a, &b).await;
    let denied = prefix
        .keys()
        .into_iter()
        .filter(|key| key[prefix.as_str().len()..].starts_with("jti:"))
        .count();
    assert_eq!(denied, 3, "one denylist entry per family ended");
}

/// RFC 7638 §3.1's example thumbprint: a client key a DPoP token is bound to.
const THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/// A bound token's record holds its key's thumbprint (public: the hash of a
/// public key) as `jkt`, in an access token's key, a family's access-token hash
/// and a refresh family; a record without `jkt` (an unbound token's, or one
/// written before bindings existed) reads as unbound, and a `jkt` that is no
/// thumbprint is a corrupt record (an error: 503), never an unbound token.
#[tokio::test]
async fn a_bound_tokens_record_holds_its_thumbprint_and_old_records_read_unbound() {
    use tower_oauth2_password::scope::Scopes;
    use tower_oauth2_password::token::{
        FamilyId, Grant, JwkThumbprint, RefreshLifetimes, RefreshTokenStore, TokenStore,
    };

    let prefix = Prefix::new("key-binding");
    let store = prefix.store();
    let key = JwkThumbprint::from_encoded(THUMBPRINT).unwrap();
    let in_an_hour = std::time::SystemTime::now() + Duration::from_secs(3600);
    let bound = Grant::new("johndoe", Scopes::empty(), in_an_hour).with_key_binding(key);
    let issued = store.issue(bound.clone()).await.unwrap();
    let token = issued.access_token.as_str();
    let resolved = store.resolve(token.into()).await.unwrap().unwrap();
    assert_eq!(resolved.key_binding, Some(key));
    let [record_key] = &prefix.keys()[..] else {
        panic!("one access token, one key: {:?}", prefix.keys());
    };
    let mut redis = prefix.sync();
    let record: String = redis::cmd("GET")
        .arg(record_key)
        .query(&mut *redis)
        .unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["jkt"], THUMBPRINT, "{record}");

    let mut rewrite = |record: &serde_json::Value| {
        let _: () = redis::cmd("SET")
            .arg(record_key)
            .arg(record.to_string())
            .arg("KEEPTTL")
            .query(&mut *redis)
            .unwrap();
    };
    record.as_object_mut().unwrap().remove("jkt");
    rewrite(&record);
    let old = store.resolve(token.into()).await.unwrap().unwrap();
    assert_eq!(
        (old.subject.as_str(), old.key_binding),
        ("johndoe", None),
        "a record without jkt is an unbound token's"
    );
    for corrupt in [
        serde_json::Value::Null,
        serde_json::json!("not a thumbprint"),
        serde_json::json!(&THUMBPRINT[..42]),
        serde_json::json!(format!("{THUMBPRINT}=")),
        serde_json::json!(key.as_bytes()),
    ] {
        record["jkt"] = corrupt.clone();
        rewrite(&record);
        assert!(
            store.resolve(token.into()).await.is_err(),
            "jkt {corrupt} is a corrupt record, not an unbound token"
        );
    }

    // In a refresh family: its access tokens' hash and the family's record.
    let family = FamilyId::random().unwrap();
    let in_family = bound.with_family(family);
    let issued = store.issue(in_family.clone()).await.unwrap();
    let resolved = store
        .resolve(issued.access_token.as_str().into())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resolved.key_binding, Some(key));
    let lifetimes = RefreshLifetimes::new(Duration::from_secs(60), Duration::from_secs(120));
    store
        .issue_refresh_token(in_family, lifetimes)
        .await
        .unwrap();
    for key in prefix.keys() {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut *redis).unwrap();
        if kind != "hash" {
            continue;
        }
        let fields: Vec<String> = redis::cmd("HVALS").arg(&key).query(&mut *redis).unwrap();
        assert!(
            fields
                .iter()
                .any(|field| field.contains(&format!(r#""jkt":"{THUMBPRINT}""#))),
            "{key} holds the binding: {fields:?}"
        );
    }
}
