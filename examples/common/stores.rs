//! The examples' token stores, chosen from the environment:
//!
//! - `TOKEN_STORE=memory` (the default): tokens in process memory.
//! - `TOKEN_STORE=redis`: tokens in Redis at `REDIS_URL` (default
//!   `redis://127.0.0.1:6379`) under `REDIS_PREFIX` (default
//!   `tower-oauth2-password:`), shared by every replica; needs `--features redis`.
//! - `TOKEN_STORE=jwt`: HS256 JWTs signed with `JWT_SECRET` (at least 32 bytes;
//!   `JWT_KID`, default `1`, names the key; `ISSUER`, the URL the service is
//!   known by, goes in every token's `iss` and `aud` claims and must be the same on
//!   every replica, default `urn:tower-oauth2-password:tutorial`); revoked tokens
//!   are remembered in memory, or in Redis when `REDIS_URL` is set; needs
//!   `--features jwt` (and `redis` for `REDIS_URL`).
//! - `REFRESH_TOKENS=1`: logins also get refresh tokens, kept in Redis when Redis
//!   is in use, else in memory. In Redis they need `REFRESH_SECRET` (at least 32
//!   bytes, the same on every replica): the families' MAC keys are derived from
//!   it, so that what Redis holds mints no token.
//!
//! With Redis, the login throttle counts failures there too, so replicas share them.
//!
//! Anything else is refused before the example listens, with one line saying why.

use std::time::SystemTime;

use tower_oauth2_password::{
    BearerToken, Builder, FamilyId, Grant, IssuedToken, Lookup, MemoryRefreshTokenStore,
    MemoryTokenStore, RefreshLifetimes, RefreshToken, RefreshTokenStore, Revocation, Rotation,
    StoreError, TokenStore, TokenTypeHint, UserStore,
};
#[cfg(feature = "jwt")]
use tower_oauth2_password::{JwtKey, JwtTokenStore};
#[cfg(feature = "redis")]
use tower_oauth2_password::{LoginThrottle, RedisTokenStore};

/// The access-token store `TOKEN_STORE` names.
#[derive(Clone)]
pub enum Tokens {
    Memory(MemoryTokenStore),
    #[cfg(feature = "redis")]
    Redis(RedisTokenStore),
    #[cfg(feature = "jwt")]
    Jwt(JwtTokenStore),
    #[cfg(all(feature = "jwt", feature = "redis"))]
    JwtRedis(JwtTokenStore<RedisTokenStore>),
}

/// The refresh-token store that goes with it.
#[derive(Clone)]
pub enum RefreshTokens {
    Memory(MemoryRefreshTokenStore),
    #[cfg(feature = "redis")]
    Redis(RedisTokenStore),
}

/// What the environment chose: the token stores, and the Redis they use (where
/// login-failure counts go too, so that replicas share them).
pub struct Stores {
    tokens: Tokens,
    refresh: Option<RefreshTokens>,
    #[cfg(feature = "redis")]
    redis: Option<RedisTokenStore>,
}

impl Stores {
    fn new(tokens: Tokens, refresh: Option<RefreshTokens>) -> Self {
        Self {
            tokens,
            refresh,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    #[cfg(feature = "redis")]
    fn with_redis(mut self, redis: RedisTokenStore) -> Self {
        self.redis = Some(redis);
        self
    }

    /// `builder` with these stores, and with Redis its login throttle counting in
    /// Redis (the default throttle counts in this process).
    pub fn apply<Us: UserStore>(self, builder: Builder<Us>) -> Builder<Us, Tokens> {
        let mut builder = builder.token_store(self.tokens);
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
            Tokens::Memory(MemoryTokenStore::new()),
            refresh.then(|| RefreshTokens::Memory(MemoryRefreshTokenStore::new())),
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
    Ok(Stores::new(Tokens::Redis(store.clone()), refresh).with_redis(store))
}

#[cfg(not(feature = "redis"))]
async fn redis(_refresh: bool) -> Result<Stores, String> {
    Err("TOKEN_STORE=redis needs the redis feature: cargo run --features redis --example …".into())
}

/// The stores of `TOKEN_STORE=jwt`. Neither message shows the secret.
#[cfg(feature = "jwt")]
async fn jwt(refresh: bool) -> Result<Stores, String> {
    let secret = std::env::var("JWT_SECRET")
        .map_err(|_| "TOKEN_STORE=jwt needs JWT_SECRET (at least 32 random bytes)".to_owned())?;
    let kid = std::env::var("JWT_KID").unwrap_or_else(|_| "1".into());
    let key =
        JwtKey::hs256(&kid, secret.as_bytes()).map_err(|error| format!("JWT_SECRET: {error}"))?;
    let issuer =
        std::env::var("ISSUER").unwrap_or_else(|_| "urn:tower-oauth2-password:tutorial".into());
    let builder = JwtTokenStore::signing_with(key).issuer(issuer);
    if std::env::var_os("REDIS_URL").is_none() {
        let tokens = builder.build().map_err(|error| error.to_string())?;
        let refresh = refresh.then(|| RefreshTokens::Memory(MemoryRefreshTokenStore::new()));
        return Ok(Stores::new(Tokens::Jwt(tokens), refresh));
    }
    jwt_on_redis(builder, refresh).await
}

/// JWTs whose revocations (and refresh tokens) every replica sees, in Redis.
#[cfg(all(feature = "jwt", feature = "redis"))]
async fn jwt_on_redis(
    builder: tower_oauth2_password::JwtTokenStoreBuilder,
    refresh: bool,
) -> Result<Stores, String> {
    let store = redis_store().await?;
    let tokens = builder
        .with_denylist(store.clone())
        .build()
        .map_err(|error| error.to_string())?;
    let refresh = redis_refresh(refresh, &store)?;
    Ok(Stores::new(Tokens::JwtRedis(tokens), refresh).with_redis(store))
}

#[cfg(all(feature = "jwt", not(feature = "redis")))]
async fn jwt_on_redis(
    _builder: tower_oauth2_password::JwtTokenStoreBuilder,
    _refresh: bool,
) -> Result<Stores, String> {
    Err("REDIS_URL with TOKEN_STORE=jwt needs the redis feature too".into())
}

#[cfg(not(feature = "jwt"))]
async fn jwt(_refresh: bool) -> Result<Stores, String> {
    Err("TOKEN_STORE=jwt needs the jwt feature: cargo run --features jwt --example …".into())
}

/// `REDIS_URL` (default `redis://127.0.0.1:6379`) under `REDIS_PREFIX`.
#[cfg(feature = "redis")]
async fn redis_store() -> Result<RedisTokenStore, String> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = std::env::var("REDIS_PREFIX").unwrap_or_else(|_| "tower-oauth2-password:".into());
    // Not the URL itself in the message: it may hold a password.
    let store = RedisTokenStore::new(&url)
        .map_err(|error| format!("REDIS_URL is not a usable Redis URL: {error}"))?
        .with_prefix(&prefix);
    // Replicas may start before Redis: warn, and answer 503 until it is up.
    if let Err(error) = store.ping().await {
        tracing::warn!(%error, "Redis does not answer yet; token requests get 503 until it does");
    }
    Ok(store)
}

/// Refresh tokens in Redis, if asked for: keyed from `REFRESH_SECRET`, which
/// every replica must share. Neither message shows the secret.
#[cfg(feature = "redis")]
fn redis_refresh(refresh: bool, store: &RedisTokenStore) -> Result<Option<RefreshTokens>, String> {
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
    Ok(Some(RefreshTokens::Redis(store)))
}

impl TokenStore for Tokens {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        match self {
            Self::Memory(store) => store.issue(grant).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.issue(grant).await,
            #[cfg(feature = "jwt")]
            Self::Jwt(store) => store.issue(grant).await,
            #[cfg(all(feature = "jwt", feature = "redis"))]
            Self::JwtRedis(store) => store.issue(grant).await,
        }
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        match self {
            Self::Memory(store) => store.resolve(token),
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.resolve(token),
            #[cfg(feature = "jwt")]
            Self::Jwt(store) => store.resolve(token),
            #[cfg(all(feature = "jwt", feature = "redis"))]
            Self::JwtRedis(store) => store.resolve(token),
        }
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        match self {
            Self::Memory(store) => store.revoke(token, hint).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.revoke(token, hint).await,
            #[cfg(feature = "jwt")]
            Self::Jwt(store) => store.revoke(token, hint).await,
            #[cfg(all(feature = "jwt", feature = "redis"))]
            Self::JwtRedis(store) => store.revoke(token, hint).await,
        }
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        match self {
            Self::Memory(store) => store.revoke_family(family, until).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => TokenStore::revoke_family(store, family, until).await,
            #[cfg(feature = "jwt")]
            Self::Jwt(store) => store.revoke_family(family, until).await,
            #[cfg(all(feature = "jwt", feature = "redis"))]
            Self::JwtRedis(store) => store.revoke_family(family, until).await,
        }
    }
}

impl RefreshTokenStore for RefreshTokens {
    async fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> Result<RefreshToken, StoreError> {
        match self {
            Self::Memory(store) => store.issue_refresh_token(grant, lifetimes).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.issue_refresh_token(grant, lifetimes).await,
        }
    }

    async fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<Grant>, StoreError> {
        match self {
            Self::Memory(store) => store.peek_refresh_token(token).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.peek_refresh_token(token).await,
        }
    }

    async fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> Result<Rotation, StoreError> {
        match self {
            Self::Memory(store) => store.rotate_refresh_token(token, lifetimes).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.rotate_refresh_token(token, lifetimes).await,
        }
    }

    async fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<FamilyId>, StoreError> {
        match self {
            Self::Memory(store) => store.revoke_refresh_token(token).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.revoke_refresh_token(token).await,
        }
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => RefreshTokenStore::revoke_family(store, family).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => RefreshTokenStore::revoke_family(store, family).await,
        }
    }
}
