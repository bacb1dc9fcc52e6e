use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{ready, Future};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::metrics;
use crate::store::StoreError;
use crate::token::grant::random;
use crate::token::grant::FamilyId as Id;
use crate::token::grant::{BearerToken, Grant, RefreshToken};
use crate::token::refresh::{
    millis, Chain, FamilyId, FamilyKey, FamilyToken, RefreshLifetimes, Step,
    DEFAULT_MAX_FAMILIES_PER_USER, DEFAULT_RETRY_GRACE,
};
use crate::token::refresh::{RefreshTokenStore, Rotation};
use crate::user::subject::Subject;

/// Refresh-token families in process memory: the embedded default, for one process.
///
/// One record per family (per login), whatever the number of rotations; a family
/// is dropped when it expires (swept at most once a minute, on issue) or when it
/// is revoked. Each family's MAC key is drawn at random and never leaves the
/// process. A user holds at most 100 live families by default
/// ([`with_max_families_per_user`](Self::with_max_families_per_user)): a login
/// beyond that ends the user's oldest family. Clones share the same families.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::scope::Scopes;
/// use tower_oauth2_password::token::{Grant, RefreshLifetimes, RefreshTokenStore, Rotation};
/// use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
///
/// # futures_util::FutureExt::now_or_never(async {
/// let store = MemoryRefreshTokenStore::new();
/// let day = Duration::from_secs(24 * 3600);
/// let lifetimes = RefreshLifetimes::new(14 * day, 30 * day);
/// let grant = Grant::new("johndoe", Scopes::empty(), SystemTime::now());
/// let first = store.issue_refresh_token(grant, lifetimes).await?;
/// let Rotation::Rotated { refresh_token: second, .. } =
///     store.rotate_refresh_token(first.as_str().into(), lifetimes).await?
/// else {
///     panic!("a fresh token rotates");
/// };
/// // `first` again, after the retry grace, would revoke the family; `second` rotates.
/// assert!(matches!(
///     store.rotate_refresh_token(second.as_str().into(), lifetimes).await?,
///     Rotation::Rotated { .. }
/// ));
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
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

struct Families {
    map: HashMap<FamilyId, Family>,
    /// Each user's families, oldest login first (ids of ended ones included until
    /// the next sweep or the user's next login).
    by_user: HashMap<Subject, VecDeque<FamilyId>>,
    max_per_user: usize,
    next_sweep: Option<SystemTime>,
}

struct Family {
    key: FamilyKey,
    chain: Chain,
    /// `expires_at` is when the family ends unless it is used again.
    grant: Grant,
    /// When the family started: its absolute lifetime counts from here.
    login: SystemTime,
}

/// How often issuing a token also drops expired families.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

impl MemoryRefreshTokenStore {
    /// An empty store with a 10-second retry grace.
    pub fn new() -> Self {
        Self::with_retry_grace(DEFAULT_RETRY_GRACE)
    }

    /// An empty store treating a token presented again within `grace` of its
    /// rotation as the client's retry (its answer was lost), not as reuse; once
    /// per generation. `Duration::ZERO` treats every second use as reuse.
    pub fn with_retry_grace(grace: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                families: Mutex::new(Families {
                    map: HashMap::new(),
                    by_user: HashMap::new(),
                    max_per_user: DEFAULT_MAX_FAMILIES_PER_USER,
                    next_sweep: None,
                }),
                retry_grace: grace,
            }),
        }
    }

    /// Lets one user hold at most `max` live families (at least 1; default 100):
    /// a login beyond that ends the user's oldest family, so a script logging in
    /// forever cannot grow memory without bound. Clones share the setting.
    pub fn with_max_families_per_user(self, max: usize) -> Self {
        self.families().max_per_user = max.max(1);
        self
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
        // Every update leaves the maps consistent between statements: a poisoned
        // lock still guards usable maps.
        self.inner
            .families
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn issue_now(
        &self,
        mut grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> Result<RefreshToken, StoreError> {
        let key = random()?;
        let family = match grant.family {
            Some(family) => family,
            None => Id::random()?,
        };
        grant.family = Some(family);
        let id = family.to_bytes();
        let now = SystemTime::now();
        grant.expires_at = lifetimes.expiry(now, now);
        let subject = grant.subject.clone();
        let mut families = self.families();
        if families.next_sweep.is_none_or(|next| now >= next) {
            families.sweep(now);
            families.next_sweep = Some(now + SWEEP_INTERVAL);
        }
        families.map.insert(
            id,
            Family {
                key,
                chain: Chain::start(),
                grant,
                login: now,
            },
        );
        families.cap(subject, id, now);
        metrics::live_tokens("memory_refresh", families.map.len());
        Ok(FamilyToken::new(&key, id, 0).encode())
    }

    fn peek_now(&self, token: BearerToken<'_>) -> Option<Grant> {
        let presented = FamilyToken::parse(token)?;
        let mut families = self.families();
        let family = families.live(&presented, SystemTime::now())?;
        Some(family.grant.clone())
    }

    fn rotate_now(&self, token: BearerToken<'_>, lifetimes: RefreshLifetimes) -> Rotation {
        let Some(presented) = FamilyToken::parse(token) else {
            return Rotation::Invalid;
        };
        let now = SystemTime::now();
        let mut families = self.families();
        let Some(family) = families.live(&presented, now) else {
            return Rotation::Invalid;
        };
        let now_ms = millis(now);
        match family
            .chain
            .step(presented.generation, now_ms, self.inner.retry_grace)
        {
            step @ (Step::Rotate | Step::Retry) => {
                family.chain = family.chain.rotated(presented.generation, now_ms);
                family.grant.expires_at = lifetimes.expiry(family.login, now);
                let next = FamilyToken::new(&family.key, presented.family, family.chain.current);
                Rotation::next(step == Step::Retry, family.grant.clone(), next.encode())
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

impl Families {
    /// The live family `presented` is a generation of.
    fn live(&mut self, presented: &FamilyToken, now: SystemTime) -> Option<&mut Family> {
        self.map
            .get_mut(&presented.family)
            .filter(|family| family.grant.is_live(now) && presented.is_signed_by(&family.key))
    }

    /// Drops expired families, and the ids of ended ones from the users' lists.
    fn sweep(&mut self, now: SystemTime) {
        self.map.retain(|_, family| family.grant.is_live(now));
        let map = &self.map;
        self.by_user.retain(|_, ids| {
            ids.retain(|id| map.contains_key(id));
            !ids.is_empty()
        });
    }

    /// Records `id` as `subject`'s newest family and ends their oldest beyond the
    /// cap. Only live families count.
    fn cap(&mut self, subject: Subject, id: FamilyId, now: SystemTime) {
        let Self {
            map,
            by_user,
            max_per_user,
            ..
        } = self;
        let ids = by_user.entry(subject).or_default();
        ids.push_back(id);
        if ids.len() <= *max_per_user {
            return;
        }
        ids.retain(|id| map.get(id).is_some_and(|family| family.grant.is_live(now)));
        while ids.len() > *max_per_user {
            if let Some(oldest) = ids.pop_front() {
                map.remove(&oldest);
            }
        }
    }
}

impl Default for MemoryRefreshTokenStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryRefreshTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (len, max_per_user) = {
            let families = self.families();
            (families.map.len(), families.max_per_user)
        };
        f.debug_struct("MemoryRefreshTokenStore")
            .field("families", &len)
            .field("retry_grace", &self.inner.retry_grace)
            .field("max_families_per_user", &max_per_user)
            .finish()
    }
}

impl RefreshTokenStore for MemoryRefreshTokenStore {
    fn issue_refresh_token(
        &self,
        grant: Grant,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<RefreshToken, StoreError>> + Send {
        ready(self.issue_now(grant, lifetimes))
    }

    fn peek_refresh_token(
        &self,
        token: BearerToken<'_>,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send {
        ready(Ok(self.peek_now(token)))
    }

    fn rotate_refresh_token(
        &self,
        token: BearerToken<'_>,
        lifetimes: RefreshLifetimes,
    ) -> impl Future<Output = Result<Rotation, StoreError>> + Send {
        ready(Ok(self.rotate_now(token, lifetimes)))
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
