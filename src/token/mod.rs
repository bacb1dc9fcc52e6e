//! Access tokens: the [`TokenStore`] trait and what it stores.

mod memory;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

pub use memory::MemoryTokenStore;

use crate::error::StoreError;
use crate::scope::Scopes;

/// Issues, resolves and revokes access tokens.
///
/// Every call is async and fallible so that Redis or a database fit; an unknown,
/// expired or revoked token resolves to `Ok(None)`. An `Err` makes the layer answer
/// 503: a broken store never lets a request through.
pub trait TokenStore: Send + Sync + 'static {
    /// Issues a new token for `grant`, valid until `grant.expires_at`.
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<AccessToken, StoreError>> + Send;

    /// The grant behind `token`, if it is known, unexpired and not revoked.
    ///
    /// `token` comes straight from the client (checked to be RFC 6750 `b64token`
    /// syntax, nothing more): implementations must compare secrets in constant time
    /// and look tokens up, never scan.
    fn resolve(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send;

    /// The same as [`resolve`](Self::resolve), for stores that can answer without
    /// waiting (in memory); `None` (the default) means "call `resolve`". The guard
    /// uses it to decide in `call` without allocating a future. It checks
    /// `expires_at` itself afterwards, so this method may return expired grants.
    ///
    /// Unlike `resolve`'s, `token` here is the header's bytes as sent, without
    /// whitespace at either end but otherwise unchecked (not even UTF-8): checking
    /// first would cost as much as the lookup, and anything the store did not issue
    /// is simply not found.
    fn resolve_now(&self, token: &[u8]) -> Option<Result<Option<Grant>, StoreError>> {
        let _ = token;
        None
    }

    /// Revokes `token`; unknown tokens are not an error.
    fn revoke(&self, token: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What a token stands for: who, which scopes, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The username the token was issued to.
    pub subject: Arc<str>,
    /// The scopes granted.
    pub scopes: Scopes,
    /// When the token stops being valid.
    pub expires_at: SystemTime,
}

impl Grant {
    /// Whether the grant is still valid at `now`.
    pub fn is_live(&self, now: SystemTime) -> bool {
        now < self.expires_at
    }
}

/// An access token as handed to the client. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wraps a token string produced by a [`TokenStore`].
    pub fn new(token: String) -> Self {
        Self(token)
    }

    /// The token, to send to the client (and nowhere else: not to logs).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}
