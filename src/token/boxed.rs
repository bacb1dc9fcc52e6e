//! Token stores as trait objects: [`DynTokenStore`] and [`BoxTokenStore`] for
//! access tokens, [`DynRefreshTokenStore`] and [`BoxRefreshTokenStore`] for
//! refresh tokens (and for the JWT denylist, [`jwt::BoxJtiDenylist`](super::jwt::BoxJtiDenylist)).
//!
//! The store traits return `impl Future`, so that a store in memory costs no
//! allocation; that makes them impossible to use as `dyn`. Each `Dyn…` trait is
//! the same contract with boxed futures, implemented for every store; each
//! `Box…` type holds one behind an `Arc` and implements the store trait again,
//! so that an application picks its store at run time (from its configuration)
//! and hands the layer one type.
//!
//! Lookups the guard makes on every request ([`TokenStore::resolve`],
//! [`JtiDenylist::is_denied`](super::JtiDenylist::is_denied)) answer a
//! [`Lookup`], which is a trait object's answer already: a boxed store's ready
//! answer still allocates nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{
    BearerToken, FamilyId, Grant, IssuedToken, RefreshToken, Revocation, TokenTypeHint,
};
use crate::token::refresh::{RefreshLifetimes, RefreshTokenStore, Rotation};
use crate::token::store::TokenStore;

/// A store's answer to await, boxed: what a trait object can return. (A `Box…`
/// method with two borrows is an `async fn` that awaits it: its future must name
/// each borrow's lifetime, and the box is bounded by their meet, which it cannot.)
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`TokenStore`] as a trait object, implemented for every `TokenStore`: use it
/// through [`BoxTokenStore`] (implement `TokenStore`, not this).
///
/// The method names differ from `TokenStore`'s so that a call on a store stays
/// unambiguous with both traits in scope.
pub trait DynTokenStore: Send + Sync + 'static {
    /// [`TokenStore::issue`], boxed.
    fn dyn_issue(&self, grant: Grant) -> BoxFuture<'_, IssuedToken>;

    /// [`TokenStore::resolve`]: a ready answer is not boxed.
    fn dyn_resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>>;

    /// [`TokenStore::revoke`], boxed.
    fn dyn_revoke<'a>(
        &'a self,
        token: BearerToken<'a>,
        hint: Option<TokenTypeHint>,
    ) -> BoxFuture<'a, Revocation>;

    /// [`TokenStore::revoke_family`], boxed.
    fn dyn_revoke_family<'a>(
        &'a self,
        family: &'a FamilyId,
        until: SystemTime,
    ) -> BoxFuture<'a, Revocation>;
}

impl<S: TokenStore> DynTokenStore for S {
    fn dyn_issue(&self, grant: Grant) -> BoxFuture<'_, IssuedToken> {
        Box::pin(self.issue(grant))
    }

    #[inline]
    fn dyn_resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.resolve(token)
    }

    fn dyn_revoke<'a>(
        &'a self,
        token: BearerToken<'a>,
        hint: Option<TokenTypeHint>,
    ) -> BoxFuture<'a, Revocation> {
        Box::pin(self.revoke(token, hint))
    }

    fn dyn_revoke_family<'a>(
        &'a self,
        family: &'a FamilyId,
        until: SystemTime,
    ) -> BoxFuture<'a, Revocation> {
        Box::pin(self.revoke_family(family, until))
    }
}

/// Any [`TokenStore`], chosen at run time: one type for the layer whichever store
/// the configuration names. Cloning it shares the store.
///
/// The guard's lookup goes through one virtual call and stays allocation-free
/// when the store answers at once (the memory store does); issuing and revoking
/// box their future.
///
/// ```
/// use tower_oauth2_password::token::BoxTokenStore;
/// use tower_oauth2_password::token::memory::MemoryTokenStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// # fn store_named(name: &str) -> Result<BoxTokenStore, String> {
/// match name {
///     "memory" => Ok(BoxTokenStore::new(MemoryTokenStore::new())),
///     // "redis" => Ok(BoxTokenStore::new(RedisTokenStore::new(&url)?)), …
///     other => Err(format!("no token store named {other}")),
/// }
/// # }
/// let tokens = store_named("memory")?;
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .token_store(tokens)
///     .build();
/// # let _ = layer;
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct BoxTokenStore(Arc<dyn DynTokenStore>);

impl BoxTokenStore {
    /// Boxes `store`.
    pub fn new(store: impl TokenStore) -> Self {
        Self(Arc::new(store))
    }
}

impl From<Arc<dyn DynTokenStore>> for BoxTokenStore {
    fn from(store: Arc<dyn DynTokenStore>) -> Self {
        Self(store)
    }
}

impl fmt::Debug for BoxTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxTokenStore").finish_non_exhaustive()
    }
}

impl TokenStore for BoxTokenStore {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        self.0.dyn_issue(grant)
    }

    #[inline]
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        self.0.dyn_resolve(token)
    }

    async fn revoke(
        &self,
        token: BearerToken<'_>,
        hint: Option<TokenTypeHint>,
    ) -> Result<Revocation, StoreError> {
        self.0.dyn_revoke(token, hint).await
    }

    async fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> Result<Revocation, StoreError> {
        self.0.dyn_revoke_family(family, until).await
    }
}

/// [`RefreshTokenStore`] as a trait object, implemented for every
/// `RefreshTokenStore`: use it through [`BoxRefreshTokenStore`] (implement
/// `RefreshTokenStore`, not this). The method names are `dyn_` and the
/// `RefreshTokenStore` method's, so calls stay unambiguous.
pub trait DynRefreshTokenStore: Send + Sync + 'static {
    /// [`RefreshTokenStore::issue_refresh_token`], boxed.
    fn dyn_issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> BoxFuture<'_, RefreshToken>;

    /// [`RefreshTokenStore::peek_refresh_token`], boxed.
    fn dyn_peek_refresh_token<'a>(&'a self, token: BearerToken<'a>)
        -> BoxFuture<'a, Option<Grant>>;

    /// [`RefreshTokenStore::rotate_refresh_token`], boxed.
    fn dyn_rotate_refresh_token<'a>(
        &'a self,
        token: BearerToken<'a>,
        lifetimes: RefreshLifetimes,
    ) -> BoxFuture<'a, Rotation>;

    /// [`RefreshTokenStore::revoke_refresh_token`], boxed.
    fn dyn_revoke_refresh_token<'a>(
        &'a self,
        token: BearerToken<'a>,
    ) -> BoxFuture<'a, Option<FamilyId>>;

    /// [`RefreshTokenStore::revoke_family`], boxed.
    fn dyn_revoke_refresh_family<'a>(&'a self, family: &'a FamilyId) -> BoxFuture<'a, ()>;
}

impl<S: RefreshTokenStore> DynRefreshTokenStore for S {
    fn dyn_issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> BoxFuture<'_, RefreshToken> {
        Box::pin(self.issue_refresh_token(grant, lifetimes))
    }

    fn dyn_peek_refresh_token<'a>(
        &'a self,
        token: BearerToken<'a>,
    ) -> BoxFuture<'a, Option<Grant>> {
        Box::pin(self.peek_refresh_token(token))
    }

    fn dyn_rotate_refresh_token<'a>(
        &'a self,
        token: BearerToken<'a>,
        lifetimes: RefreshLifetimes,
    ) -> BoxFuture<'a, Rotation> {
        Box::pin(self.rotate_refresh_token(token, lifetimes))
    }

    fn dyn_revoke_refresh_token<'a>(
        &'a self,
        token: BearerToken<'a>,
    ) -> BoxFuture<'a, Option<FamilyId>> {
        Box::pin(self.revoke_refresh_token(token))
    }

    fn dyn_revoke_refresh_family<'a>(&'a self, family: &'a FamilyId) -> BoxFuture<'a, ()> {
        Box::pin(RefreshTokenStore::revoke_family(self, family))
    }
}

/// Any [`RefreshTokenStore`], chosen at run time. Cloning it shares the store.
///
/// ```
/// use tower_oauth2_password::token::BoxRefreshTokenStore;
/// use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let refresh = BoxRefreshTokenStore::new(MemoryRefreshTokenStore::new());
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .refresh_tokens(refresh)
///     .build();
/// assert!(layer.issues_refresh_tokens());
/// ```
#[derive(Clone)]
pub struct BoxRefreshTokenStore(Arc<dyn DynRefreshTokenStore>);

impl BoxRefreshTokenStore {
    /// Boxes `store`.
    pub fn new(store: impl RefreshTokenStore) -> Self {
        Self(Arc::new(store))
    }
}

impl From<Arc<dyn DynRefreshTokenStore>> for BoxRefreshTokenStore {
    fn from(store: Arc<dyn DynRefreshTokenStore>) -> Self {
        Self(store)
    }
}

impl fmt::Debug for BoxRefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxRefreshTokenStore")
            .finish_non_exhaustive()
    }
}

impl RefreshTokenStore for BoxRefreshTokenStore {
    fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send {
        self.0.dyn_issue_refresh_token(grant, lifetimes)
    }

    async fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<Grant>, StoreError> {
        self.0.dyn_peek_refresh_token(token).await
    }

    async fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> Result<Rotation, StoreError> {
        self.0.dyn_rotate_refresh_token(token, lifetimes).await
    }

    async fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> Result<Option<FamilyId>, StoreError> {
        self.0.dyn_revoke_refresh_token(token).await
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<(), StoreError> {
        self.0.dyn_revoke_refresh_family(family).await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::FutureExt as _;

    use super::*;
    use crate::scope::Scopes;
    use crate::token::memory::access::MemoryTokenStore;

    /// The guard's fast path: a store that answers at once still does behind a box.
    #[test]
    fn a_boxed_store_answers_a_ready_lookup_at_once() {
        let store = BoxTokenStore::new(MemoryTokenStore::new());
        let grant = Grant::new(
            "johndoe",
            Scopes::empty(),
            SystemTime::now() + Duration::from_secs(60),
        );
        let issued = store.issue(grant.clone()).now_or_never().unwrap().unwrap();
        let token = BearerToken::from(issued.access_token.as_str());
        let shared = store.clone();
        let answer = shared.resolve(token).into_ready().expect("ready");
        assert_eq!(answer.unwrap(), Some(grant));
        let revoked = store.revoke(token, None).now_or_never().unwrap().unwrap();
        assert_eq!(revoked, Revocation::Revoked);
        let answer = store.resolve(token).into_ready().expect("ready");
        assert_eq!(answer.unwrap(), None);
    }
}
