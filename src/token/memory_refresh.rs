use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use super::refresh::{
    millis, random, Chain, FamilyId, FamilyKey, FamilyToken, Step, DEFAULT_RETRY_GRACE,
};
use super::{BearerToken, Grant, RefreshToken, RefreshTokenStore, Rotation};
use crate::error::StoreError;
use crate::token::FamilyId as Id;

/// Refresh-token families in process memory: the embedded default, for one process.
///
/// One record per family (per login), whatever the number of rotations; a family
/// is dropped when its current token expires (swept at most once a minute, on
/// issue) or when it is revoked. Clones share the same families.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::{Grant, MemoryRefreshTokenStore, RefreshTokenStore, Rotation, Scopes};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let store = MemoryRefreshTokenStore::new();
/// let later = SystemTime::now() + Duration::from_secs(3600);
/// let first = store.issue_refresh_token(Grant::new("johndoe", Scopes::empty(), later)).await?;
/// let Rotation::Rotated { refresh_token: second, .. } =
///     store.rotate_refresh_token(first.as_str().into(), later).await?
/// else {
///     panic!("a fresh token rotates");
/// };
/// // `first` again, after the retry grace, would revoke the family; `second` rotates.
/// assert!(matches!(
///     store.rotate_refresh_token(second.as_str().into(), later).await?,
///     Rotation::Rotated { .. }
/// ));
/// # Ok::<(), tower_oauth2_password::StoreError>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryRefreshTokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    families: Mutex<Families>,
    retry_grace: Duration,
}

#[derive(Default)]
struct Families {
    map: HashMap<FamilyId, Family>,
    next_sweep: Option<SystemTime>,
}

struct Family {
    key: FamilyKey,
    chain: Chain,
    /// `expires_at` is the current token's expiry.
    grant: Grant,
}

/// How often issuing a token also drops expired families.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl MemoryRefreshTokenStore {
    /// An empty store with a 10-second retry grace.
    pub fn new() -> Self {
        Self::with_retry_grace(DEFAULT_RETRY_GRACE)
    }

    /// An empty store treating a token presented again within `grace` of its
    /// rotation as the client's retry (its answer was lost), not as reuse.
    /// `Duration::ZERO` treats every second use as reuse.
    pub fn with_retry_grace(grace: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                families: Mutex::default(),
                retry_grace: grace,
            }),
        }
    }

    /// How many families are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.families().map.len()
    }

    /// Whether no family is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn families(&self) -> MutexGuard<'_, Families> {
        // Every update is a single map operation: a poisoned map is still consistent.
        self.inner
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn issue_now(&self, mut grant: Grant) -> Result<RefreshToken, StoreError> {
        let key = random()?;
        let family = match grant.family {
            Some(family) => family,
            None => Id::random()?,
        };
        grant.family = Some(family);
        let id = family.to_bytes();
        let now = SystemTime::now();
        let mut families = self.families();
        if families.next_sweep.is_none_or(|next| now >= next) {
            families.map.retain(|_, family| family.grant.is_live(now));
            families.next_sweep = Some(now + SWEEP_INTERVAL);
        }
        families.map.insert(
            id,
            Family {
                key,
                chain: Chain::start(),
                grant,
            },
        );
        Ok(FamilyToken::new(&key, id, 0).encode())
    }

    fn rotate_now(&self, token: BearerToken<'_>, expires_at: SystemTime) -> Rotation {
        let Some(presented) = FamilyToken::parse(token) else {
            return Rotation::Invalid;
        };
        let now = SystemTime::now();
        let mut families = self.families();
        let Some(family) = families.map.get_mut(&presented.family) else {
            return Rotation::Invalid;
        };
        if !family.grant.is_live(now) || !presented.is_signed_by(&family.key) {
            return Rotation::Invalid;
        }
        let now_ms = millis(now);
        match family
            .chain
            .step(presented.generation, now_ms, self.inner.retry_grace)
        {
            Step::Rotate => {
                family.chain = family.chain.rotated(presented.generation, now_ms);
                family.grant.expires_at = expires_at;
                let next = FamilyToken::new(&family.key, presented.family, family.chain.current);
                Rotation::Rotated {
                    grant: family.grant.clone(),
                    refresh_token: next.encode(),
                }
            }
            Step::Revoke => {
                let subject = family.grant.subject.clone();
                families.map.remove(&presented.family);
                Rotation::Reused {
                    subject,
                    family: Id::from_bytes(presented.family),
                }
            }
            Step::Refuse => Rotation::Invalid,
        }
    }

    fn revoke_now(&self, token: BearerToken<'_>) -> Option<Id> {
        let presented = FamilyToken::parse(token)?;
        let mut families = self.families();
        let signed = families
            .map
            .get(&presented.family)
            .is_some_and(|family| presented.is_signed_by(&family.key));
        signed.then(|| {
            families.map.remove(&presented.family);
            Id::from_bytes(presented.family)
        })
    }
}

impl Default for MemoryRefreshTokenStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryRefreshTokenStore")
            .field("families", &self.len())
            .field("retry_grace", &self.inner.retry_grace)
            .finish()
    }
}

impl RefreshTokenStore for MemoryRefreshTokenStore {
    fn issue_refresh_token(
        &self,
        grant: Grant,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send {
        ready(self.issue_now(grant))
    }

    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        expires_at: SystemTime,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        ready(Ok(self.rotate_now(token, expires_at)))
    }

    fn revoke_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<Id>, StoreError>> + Send {
        ready(Ok(self.revoke_now(token)))
    }

    fn revoke_family(&self, family: &Id) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.families().map.remove(&family.to_bytes());
        ready(Ok(()))
    }
}
