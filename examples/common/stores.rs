//! The examples' token stores, chosen from the environment:
//!
//! - `TOKEN_STORE=memory` (the default): tokens in process memory.
//! - `TOKEN_STORE=redis`: tokens in Redis at `REDIS_URL` (default
//!   `redis://127.0.0.1:6379`) under `REDIS_PREFIX` (default
//!   `tower-oauth2-password:`), shared by every replica; needs `--features redis`.
//! - `REFRESH_TOKENS=1`: logins also get refresh tokens, kept beside the access
//!   tokens (in memory, or in Redis).
//!
//! Anything else is refused before the example listens, with one line saying why.

use std::time::SystemTime;

#[cfg(feature = "redis")]
use tower_oauth2_password::RedisTokenStore;
use tower_oauth2_password::{
    BearerToken, Grant, IssuedToken, Lookup, MemoryRefreshTokenStore, MemoryTokenStore,
    RefreshToken, RefreshTokenStore, Revocation, Rotation, StoreError, TokenStore, TokenTypeHint,
};

/// The access-token store `TOKEN_STORE` names.
#[derive(Clone)]
pub enum Tokens {
    Memory(MemoryTokenStore),
    #[cfg(feature = "redis")]
    Redis(RedisTokenStore),
}

/// The refresh-token store that goes with it.
#[derive(Clone)]
pub enum RefreshTokens {
    Memory(MemoryRefreshTokenStore),
    #[cfg(feature = "redis")]
    Redis(RedisTokenStore),
}

/// Reads `TOKEN_STORE`, `REDIS_URL`, `REDIS_PREFIX` and `REFRESH_TOKENS`; `Err`
/// is the line to print before exiting.
pub async fn from_env() -> Result<(Tokens, Option<RefreshTokens>), String> {
    let refresh = match std::env::var("REFRESH_TOKENS").as_deref() {
        Err(_) | Ok("" | "0") => false,
        Ok("1") => true,
        Ok(_) => return Err("REFRESH_TOKENS must be 1 or 0".into()),
    };
    let kind = std::env::var("TOKEN_STORE").unwrap_or_else(|_| "memory".into());
    match kind.as_str() {
        "memory" => Ok((
            Tokens::Memory(MemoryTokenStore::new()),
            refresh.then(|| RefreshTokens::Memory(MemoryRefreshTokenStore::new())),
        )),
        "redis" => redis(refresh).await,
        _ => Err("TOKEN_STORE must be memory or redis".into()),
    }
}

/// The stores of `TOKEN_STORE=redis`.
#[cfg(feature = "redis")]
async fn redis(refresh: bool) -> Result<(Tokens, Option<RefreshTokens>), String> {
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
    let refresh = refresh.then(|| RefreshTokens::Redis(store.clone()));
    Ok((Tokens::Redis(store), refresh))
}

#[cfg(not(feature = "redis"))]
async fn redis(_refresh: bool) -> Result<(Tokens, Option<RefreshTokens>), String> {
    Err("TOKEN_STORE=redis needs the redis feature: cargo run --features redis --example …".into())
}

impl TokenStore for Tokens {
    async fn issue(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        match self {
            Self::Memory(store) => store.issue(grant).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.issue(grant).await,
        }
    }

    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        match self {
            Self::Memory(store) => store.resolve(token),
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.resolve(token),
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
        }
    }
}

impl RefreshTokenStore for RefreshTokens {
    async fn issue_refresh_token(&self, grant: Grant) -> Result<RefreshToken, StoreError> {
        match self {
            Self::Memory(store) => store.issue_refresh_token(grant).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.issue_refresh_token(grant).await,
        }
    }

    async fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        expires_at: SystemTime,
    ) -> Result<Rotation, StoreError> {
        match self {
            Self::Memory(store) => store.rotate_refresh_token(token, expires_at).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.rotate_refresh_token(token, expires_at).await,
        }
    }

    async fn revoke_refresh_token(&self, token: BearerToken<'_>) -> Result<(), StoreError> {
        match self {
            Self::Memory(store) => store.revoke_refresh_token(token).await,
            #[cfg(feature = "redis")]
            Self::Redis(store) => store.revoke_refresh_token(token).await,
        }
    }
}
