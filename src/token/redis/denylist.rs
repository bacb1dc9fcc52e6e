//! [`RedisJtiDenylist`]: revoked JWT ids in Redis, seen by every replica.

use std::future::Future;
use std::time::SystemTime;

use crate::redis::RedisConnection;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::redis::store::RedisTokenStore;
use crate::token::refresh::millis;

/// Revoked JWTs in Redis, on a [`RedisConnection`] (which the token store and
/// the login throttle may share): `{prefix}jti:{jti}`, or the family's id for a
/// token of a refresh family, expiring with the token or family, so that a
/// logout on one replica reaches every replica that verifies the same tokens.
/// One `EXISTS` per guarded request.
///
/// ```no_run
/// use tower_oauth2_password::redis::RedisConnection;
/// use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
/// use tower_oauth2_password::token::redis::RedisJtiDenylist;
///
/// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
/// let key = JwtKey::hs256("2025-01", b"a secret of at least thirty-two bytes!")?;
/// let tokens = JwtTokenStore::signing_with(key)
///     .with_denylist(RedisJtiDenylist::on(&redis))
///     .build()?;
/// # let _ = tokens;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A [`RedisTokenStore`] is one too, on its connection.
#[cfg(feature = "jwt")]
#[derive(Debug, Clone)]
pub struct RedisJtiDenylist {
    connection: RedisConnection,
}

#[cfg(feature = "jwt")]
impl RedisJtiDenylist {
    /// The denylist on `connection`, under its prefix.
    pub fn on(connection: &RedisConnection) -> Self {
        Self {
            connection: connection.clone(),
        }
    }
}

#[cfg(feature = "jwt")]
impl crate::token::jwt::denylist::JtiDenylist for RedisJtiDenylist {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        deny_jti(&self.connection, jti, until)
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        jti_is_denied(&self.connection, jti)
    }
}

/// The [`RedisJtiDenylist`] on the store's connection:
/// `JwtTokenStore::signing_with(key).with_denylist(redis_store)`.
#[cfg(feature = "jwt")]
impl crate::token::jwt::denylist::JtiDenylist for RedisTokenStore {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        deny_jti(self.redis(), jti, until)
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        jti_is_denied(self.redis(), jti)
    }
}

/// One `MULTI`: the entry, never shortened (a family's entry is denied again
/// with the expiry of whichever of its tokens is revoked).
#[cfg(feature = "jwt")]
fn deny_jti(
    connection: &RedisConnection,
    jti: &str,
    until: SystemTime,
) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
    let key = connection.key(format_args!("jti:{jti}"));
    let until = millis(until).max(1);
    let connection = connection.clone();
    async move {
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("PXAT")
            .arg(until);
        pipe.cmd("PEXPIREAT").arg(&key).arg(until).arg("GT");
        connection.run_atomic(pipe).await
    }
}

#[cfg(feature = "jwt")]
fn jti_is_denied(connection: &RedisConnection, jti: &str) -> Lookup<bool> {
    let key = connection.key(format_args!("jti:{jti}"));
    let connection = connection.clone();
    Lookup::pending(async move { connection.query("EXISTS", &key).await })
}
