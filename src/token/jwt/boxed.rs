//! [`DynJtiDenylist`] and [`BoxJtiDenylist`]: a denylist picked at run time, as
//! the token stores' boxed forms are.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::boxed::BoxFuture;
use crate::token::jwt::denylist::JtiDenylist;

/// [`JtiDenylist`] as a trait object, implemented for every `JtiDenylist`:
/// use it through [`BoxJtiDenylist`] (implement `JtiDenylist`, not this).
pub trait DynJtiDenylist: Send + Sync + 'static {
    /// [`JtiDenylist::deny`], boxed.
    fn dyn_deny<'a>(&'a self, jti: &'a str, until: SystemTime) -> BoxFuture<'a, ()>;

    /// [`JtiDenylist::is_denied`]: a ready answer is not boxed.
    fn dyn_is_denied(&self, jti: &str) -> Lookup<bool>;
}

impl<D: JtiDenylist> DynJtiDenylist for D {
    fn dyn_deny<'a>(&'a self, jti: &'a str, until: SystemTime) -> BoxFuture<'a, ()> {
        Box::pin(self.deny(jti, until))
    }

    #[inline]
    fn dyn_is_denied(&self, jti: &str) -> Lookup<bool> {
        self.is_denied(jti)
    }
}

/// Any [`JtiDenylist`], chosen at run time, for a
/// [`JwtTokenStore`](crate::token::jwt::JwtTokenStore) whose type does not depend on
/// where revocations are kept. Cloning it shares the denylist.
///
/// ```
/// use tower_oauth2_password::token::jwt::{
///      BoxJtiDenylist, JwtKey, JwtTokenStore, MemoryJtiDenylist,
/// };
///
/// let key = JwtKey::hs256("1", &[7; 32])?;
/// let tokens: JwtTokenStore<BoxJtiDenylist> = JwtTokenStore::signing_with(key)
///     .issuer("https://api.example.com")
///     .with_denylist(BoxJtiDenylist::new(MemoryJtiDenylist::new()))
///     .build()?;
/// # let _ = tokens;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct BoxJtiDenylist(Arc<dyn DynJtiDenylist>);

impl BoxJtiDenylist {
    /// Boxes `denylist`.
    pub fn new(denylist: impl JtiDenylist) -> Self {
        Self(Arc::new(denylist))
    }
}

impl From<Arc<dyn DynJtiDenylist>> for BoxJtiDenylist {
    fn from(denylist: Arc<dyn DynJtiDenylist>) -> Self {
        Self(denylist)
    }
}

impl fmt::Debug for BoxJtiDenylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxJtiDenylist").finish_non_exhaustive()
    }
}

impl JtiDenylist for BoxJtiDenylist {
    async fn deny(&self, jti: &str, until: SystemTime) -> Result<(), StoreError> {
        self.0.dyn_deny(jti, until).await
    }

    #[inline]
    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        self.0.dyn_is_denied(jti)
    }
}
