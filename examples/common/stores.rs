//! The examples' token stores, chosen from the environment:
//!
//! - `TOKEN_STORE=memory` (the default): tokens in process memory.
//! - `TOKEN_STORE=redis`: tokens in Redis at `REDIS_URL` (default
//!   `redis://127.0.0.1:6379`) under `REDIS_PREFIX` (default
//!   `tower-oauth2-password:`), shared by every replica; needs `--features redis`.
//!   `REDIS_CLUSTER_URLS=redis://h1:p1,redis://h2:p2,…` (seed nodes of a Redis
//!   Cluster) wins over `REDIS_URL`, for every Redis part.
//! - `TOKEN_STORE=jwt`: HS256 JWTs signed with `JWT_SECRET` (at least 32 bytes;
//!   `JWT_KID`, default `1`, names the key; `ISSUER`, the URL the service is
//!   known by, goes in every token's `iss` and `aud` claims and must be the same on
//!   every replica, default `urn:tower-oauth2-password:tutorial`); revoked tokens
//!   are remembered in memory, or in Redis when `REDIS_URL` is set; needs
//!   `--features jwt` (and `redis` for `REDIS_URL`).
//!   With `JWT_ALG=EdDSA` the tokens are signed with an Ed25519 key instead:
//!   `JWT_ED25519_SEED` holds its 32-byte secret in base64url (the same on every
//!   replica; without it a key is generated at start, and tokens die with the
//!   process), and its public key is served at `/.well-known/jwks.json`.
//! - `REFRESH_TOKENS=1`: logins also get refresh tokens, kept in Redis when Redis
//!   is in use, else in memory. In Redis they need `REFRESH_SECRET` (at least 32
//!   bytes, the same on every replica): the families' MAC keys are derived from
//!   it, so that what Redis holds mints no token.
//!
//! With Redis, the login throttle counts failures there too, so replicas share them.
//!
//! Anything else is refused before the example listens, with one line saying why.

#[cfg(feature = "jwt")]
use tower_oauth2_password::endpoint::Jwks;
#[cfg(feature = "redis")]
use tower_oauth2_password::endpoint::LoginThrottle;
use tower_oauth2_password::layer::Builder;
#[cfg(feature = "jwt")]
use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
use tower_oauth2_password::token::memory::{MemoryRefreshTokenStore, MemoryTokenStore};
#[cfg(feature = "redis")]
use tower_oauth2_password::token::redis::RedisTokenStore;
use tower_oauth2_password::token::{BoxRefreshTokenStore, BoxTokenStore};
use tower_oauth2_password::user::UserStore;

/// What the environment chose: the token stores, and the Redis they use (where
/// login-failure counts go too, so that replicas share them).
pub struct Stores {
    tokens: BoxTokenStore,
    refresh: Option<BoxRefreshTokenStore>,
    /// The public keys to publish, for `JWT_ALG=EdDSA`.
    #[cfg(feature = "jwt")]
    jwks: Option<Jwks>,
    #[cfg(feature = "redis")]
    redis: Option<RedisTokenStore>,
}

impl Stores {
    fn new(tokens: BoxTokenStore, refresh: Option<BoxRefreshTokenStore>) -> Self {
        Self {
            tokens,
            refresh,
            #[cfg(feature = "jwt")]
            jwks: None,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    #[cfg(feature = "jwt")]
    fn with_jwks(mut self, jwks: Option<Jwks>) -> Self {
        self.jwks = jwks;
        self
    }

    #[cfg(feature = "redis")]
    fn with_redis(mut self, redis: RedisTokenStore) -> Self {
        self.redis = Some(redis);
        self
    }

    /// The Redis connection the stores use, if they use Redis (DPoP's replay
    /// store goes there too).
    #[cfg(feature = "redis")]
    pub fn redis_connection(&self) -> Option<&tower_oauth2_password::redis::RedisConnection> {
        self.redis.as_ref().map(RedisTokenStore::connection)
    }

    /// `builder` with these stores, and with Redis its login throttle counting in
    /// Redis (the default throttle counts in this process).
    pub fn apply<Us: UserStore>(self, builder: Builder<Us>) -> Builder<Us, BoxTokenStore> {
        let mut builder = builder.token_store(self.tokens);
        #[cfg(feature = "jwt")]
        if let Some(jwks) = self.jwks {
            builder = builder.jwks(jwks);
        }
        if let Some(refresh) = self.refresh {
            builder = builder.refresh_tokens(refresh);
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = self.redis {
            builder = builder.login_policy(LoginThrottle::new().in_redis(redis));
        }
        builder
    }
}

/// Refresh tokens in process memory, if asked for.
fn memory_refresh(refresh: bool) -> Option<BoxRefreshTokenStore> {
    refresh.then(|| BoxRefreshTokenStore::new(MemoryRefreshTokenStore::new()))
}

/// The stores the environment names, or exits with status 2 and the one line saying why, before the
/// example listens: a replica with the wrong store must not serve.
pub async fn from_env_or_exit() -> Stores {
    match from_env().await {
        Ok(stores) => stores,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    }
}

/// Reads `TOKEN_STORE`, `REDIS_URL`, `REDIS_PREFIX` and `REFRESH_TOKENS`; `Err`
/// is the line to print before exiting.
async fn from_env() -> Result<Stores, String> {
    let refresh = match std::env::var("REFRESH_TOKENS").as_deref() {
        Err(_) | Ok("" | "0") => false,
        Ok("1") => true,
        Ok(_) => return Err("REFRESH_TOKENS must be 1 or 0".into()),
    };
    let kind = std::env::var("TOKEN_STORE").unwrap_or_else(|_| "memory".into());
    match kind.as_str() {
        "memory" => Ok(Stores::new(
            BoxTokenStore::new(MemoryTokenStore::new()),
            memory_refresh(refresh),
        )),
        "redis" => redis(refresh).await,
        "jwt" => jwt(refresh).await,
        _ => Err("TOKEN_STORE must be memory, redis or jwt".into()),
    }
}

/// The stores of `TOKEN_STORE=redis`.
#[cfg(feature = "redis")]
async fn redis(refresh: bool) -> Result<Stores, String> {
    let store = redis_store().await?;
    let refresh = redis_refresh(refresh, &store)?;
    Ok(Stores::new(BoxTokenStore::new(store.clone()), refresh).with_redis(store))
}

#[cfg(not(feature = "redis"))]
async fn redis(_refresh: bool) -> Result<Stores, String> {
    Err("TOKEN_STORE=redis needs the redis feature: cargo run --features redis --example …".into())
}

/// The stores of `TOKEN_STORE=jwt`. No message shows a secret.
#[cfg(feature = "jwt")]
async fn jwt(refresh: bool) -> Result<Stores, String> {
    let kid = std::env::var("JWT_KID").unwrap_or_else(|_| "1".into());
    let key = match std::env::var("JWT_ALG").as_deref() {
        Err(_) | Ok("HS256") => {
            let secret = std::env::var("JWT_SECRET").map_err(|_| {
                "TOKEN_STORE=jwt needs JWT_SECRET (at least 32 random bytes), or JWT_ALG=EdDSA"
                    .to_owned()
            })?;
            JwtKey::hs256(&kid, secret.as_bytes())
                .map_err(|error| format!("JWT_SECRET: {error}"))?
        }
        Ok("EdDSA") => {
            JwtKey::ed25519(&kid, &ed25519_seed()?).map_err(|error| format!("JWT_KID: {error}"))?
        }
        Ok(_) => return Err("JWT_ALG must be HS256 or EdDSA".into()),
    };
    let issuer =
        std::env::var("ISSUER").unwrap_or_else(|_| "urn:tower-oauth2-password:tutorial".into());
    let builder = JwtTokenStore::signing_with(key).issuer(issuer);
    if std::env::var_os("REDIS_URL").is_none() && std::env::var_os("REDIS_CLUSTER_URLS").is_none() {
        let tokens = builder.build().map_err(|error| error.to_string())?;
        let jwks = published(&tokens);
        return Ok(
            Stores::new(BoxTokenStore::new(tokens), memory_refresh(refresh)).with_jwks(jwks),
        );
    }
    jwt_on_redis(builder, refresh).await
}

/// The key set to publish: the store's public keys, none for HS256.
#[cfg(feature = "jwt")]
fn published<D>(tokens: &JwtTokenStore<D>) -> Option<Jwks> {
    let jwks = Jwks::of(tokens);
    (!jwks.is_empty()).then_some(jwks)
}

/// `JWT_ED25519_SEED` (32 bytes, base64url or base64), or a key made now.
#[cfg(feature = "jwt")]
fn ed25519_seed() -> Result<[u8; 32], String> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    let Ok(text) = std::env::var("JWT_ED25519_SEED") else {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| format!("no random key: {error}"))?;
        tracing::warn!(
            "JWT_ALG=EdDSA without JWT_ED25519_SEED: a key made for this process; \
             its tokens end with it, and no other replica accepts them"
        );
        return Ok(seed);
    };
    let text = text.trim();
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .or_else(|_| STANDARD.decode(text))
        .map_err(|_| "JWT_ED25519_SEED is not base64url".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("JWT_ED25519_SEED must be 32 bytes, not {}", bytes.len()))
}

/// JWTs whose revocations (and refresh tokens) every replica sees, in Redis.
#[cfg(all(feature = "jwt", feature = "redis"))]
async fn jwt_on_redis(
    builder: tower_oauth2_password::token::jwt::JwtTokenStoreBuilder,
    refresh: bool,
) -> Result<Stores, String> {
    let store = redis_store().await?;
    let tokens = builder
        .with_denylist(store.clone())
        .build()
        .map_err(|error| error.to_string())?;
    let refresh = redis_refresh(refresh, &store)?;
    let jwks = published(&tokens);
    Ok(Stores::new(BoxTokenStore::new(tokens), refresh)
        .with_redis(store)
        .with_jwks(jwks))
}

#[cfg(all(feature = "jwt", not(feature = "redis")))]
async fn jwt_on_redis(
    _builder: tower_oauth2_password::token::jwt::JwtTokenStoreBuilder,
    _refresh: bool,
) -> Result<Stores, String> {
    Err("REDIS_URL with TOKEN_STORE=jwt needs the redis feature too".into())
}

#[cfg(not(feature = "jwt"))]
async fn jwt(_refresh: bool) -> Result<Stores, String> {
    Err("TOKEN_STORE=jwt needs the jwt feature: cargo run --features jwt --example …".into())
}

/// `REDIS_CLUSTER_URLS` (a cluster's seed nodes, comma-separated), else
/// `REDIS_URL` (default `redis://127.0.0.1:6379`), under `REDIS_PREFIX`.
#[cfg(feature = "redis")]
async fn redis_store() -> Result<RedisTokenStore, String> {
    use tower_oauth2_password::redis::RedisConnection;

    let prefix = std::env::var("REDIS_PREFIX").unwrap_or_else(|_| "tower-oauth2-password:".into());
    // Not the URL itself in the messages: it may hold a password.
    let connection = match std::env::var("REDIS_CLUSTER_URLS") {
        Ok(seeds) => {
            let seeds: Vec<&str> = seeds
                .split(',')
                .map(str::trim)
                .filter(|seed| !seed.is_empty())
                .collect();
            RedisConnection::cluster(&seeds).map_err(|error| {
                format!("REDIS_CLUSTER_URLS is not a list of Redis URLs: {error}")
            })?
        }
        Err(_) => {
            let url =
                std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
            RedisConnection::new(&url)
                .map_err(|error| format!("REDIS_URL is not a usable Redis URL: {error}"))?
        }
    };
    let store = RedisTokenStore::on(&connection.with_prefix(&prefix));
    // Replicas may start before Redis: warn, and answer 503 until it is up.
    if let Err(error) = store.ping().await {
        tracing::warn!(%error, "Redis does not answer yet; token requests get 503 until it does");
    }
    Ok(store)
}

/// Refresh tokens in Redis, if asked for: keyed from `REFRESH_SECRET`, which
/// every replica must share. Neither message shows the secret.
#[cfg(feature = "redis")]
fn redis_refresh(
    refresh: bool,
    store: &RedisTokenStore,
) -> Result<Option<BoxRefreshTokenStore>, String> {
    if !refresh {
        return Ok(None);
    }
    let secret = std::env::var("REFRESH_SECRET").map_err(|_| {
        "REFRESH_TOKENS=1 in Redis needs REFRESH_SECRET (at least 32 random bytes, the same on every replica)"
            .to_owned()
    })?;
    let store = store
        .clone()
        .with_refresh_secret("1", secret.as_bytes())
        .map_err(|error| format!("REFRESH_SECRET: {error}"))?;
    Ok(Some(BoxRefreshTokenStore::new(store)))
}
