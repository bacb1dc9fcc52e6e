//! [`CachedUserStore`]: the guard's user lookups kept for a bounded time, for stores
//! that ask a database on every guarded request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::password::HashedPassword;
use crate::store::{Lookup, StoreError};
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

/// The default [`max_staleness`](CachedUserStoreBuilder::max_staleness).
const DEFAULT_STALENESS: Duration = Duration::from_secs(1);
/// The default [`max_entries`](CachedUserStoreBuilder::max_entries).
const DEFAULT_ENTRIES: usize = 10_000;

/// A [`UserStore`] whose guard lookups ([`UserStore::principal`]) are kept for at
/// most [`max_staleness`](CachedUserStoreBuilder::max_staleness) (default 1 s):
/// opt-in, for stores such as [`SqlUserStore`](crate::user::sql::SqlUserStore)
/// that make a database query on every guarded request.
///
/// **What it allows.** For up to `max_staleness` after a change in the store, a
/// replica may still answer the guard from what it read before it: a user
/// disabled or removed, a password changed, or a scope taken away (each a new
/// security stamp) may still pass the guard on that replica for that long. Not
/// longer: an entry older than `max_staleness` is never used, and the next
/// request reads the store again. [`invalidate`](Self::invalidate) ends that
/// window at once on this replica.
///
/// **What it leaves alone.** The login ([`UserStore::credentials`]: the password
/// hash, scopes, stamp) always asks the store: a new password works, and an old
/// one fails, at once. A login that reads a stamp or an active flag other than the
/// cached one drops the cached entry, so that the tokens it issues are not refused
/// by the guard for the rest of the window.
///
/// **Bounded.** At most [`max_entries`](CachedUserStoreBuilder::max_entries)
/// users (default 10,000), unknown users ("no such user") included; past that,
/// expired entries are swept, and if none are, one entry is dropped for each new
/// one. Store errors are never kept: the next request asks again.
///
/// **One query per user at a time.** Requests of one user arriving while the
/// store is being asked wait for that answer (an error included) instead of each
/// asking; if the request that asked goes away, the next waiting one asks.
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::user::CachedUserStore;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// # let store = MemoryUserStore::<String>::new(); // e.g. a SqlUserStore
/// let users = CachedUserStore::builder(store)
///     // A disabled user, or an old password's tokens, pass for at most this long.
///     .max_staleness(Duration::from_millis(500))
///     .max_entries(50_000)
///     .build();
/// let layer = OAuth2PasswordLayer::new(users.clone());
/// // After changing a user, end the window on this replica at once:
/// users.invalidate("johndoe");
/// # let _ = layer;
/// ```
///
/// Clones share the cache.
pub struct CachedUserStore<S: UserStore> {
    inner: Arc<Inner<S>>,
}

struct Inner<S: UserStore> {
    store: S,
    max_staleness: Duration,
    max_entries: usize,
    state: Mutex<State<S::User>>,
    /// Bumped by every invalidation: an answer asked for before one is given to
    /// the requests waiting for it, but not kept.
    epoch: AtomicU64,
}

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

struct State<U> {
    entries: Map<Subject, Entry<U>>,
    /// The lookups being asked of the store, one per user.
    flights: Map<Subject, Arc<Flight<U>>>,
    /// When expired entries were last swept, so that a full cache sweeps at
    /// most once per `max_staleness`.
    swept: Instant,
}

struct Entry<U> {
    principal: Option<Principal<U>>,
    read: Instant,
}

/// One lookup of the store, shared by the requests of one user.
struct Flight<U> {
    epoch: u64,
    answer: OnceCell<Result<Option<Principal<U>>, Arc<StoreError>>>,
}

impl<S: UserStore> CachedUserStore<S> {
    /// `store`'s guard lookups kept for at most 1 s, for at most 10,000 users.
    pub fn new(store: S) -> Self {
        Self::builder(store).build()
    }

    /// A cache on `store` with other bounds.
    pub fn builder(store: S) -> CachedUserStoreBuilder<S> {
        CachedUserStoreBuilder {
            store,
            max_staleness: DEFAULT_STALENESS,
            max_entries: DEFAULT_ENTRIES,
        }
    }

    /// The store it asks.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// How long a change in the store may go unseen by the guard: see
    /// [`CachedUserStoreBuilder::max_staleness`].
    pub fn max_staleness(&self) -> Duration {
        self.inner.max_staleness
    }

    /// How many users are cached now, unknown ones included.
    pub fn len(&self) -> usize {
        self.inner.state().entries.len()
    }

    /// Whether no user is cached now.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets what was read of `subject` on this replica (the name tokens are
    /// issued to, as the store answers it): the next guarded request of the user
    /// asks the store. Call it after disabling a user or changing their password
    /// or scopes, for the change to take effect here at once; other replicas see
    /// it within their `max_staleness`.
    pub fn invalidate(&self, subject: &str) {
        self.inner.forget(subject);
    }

    /// Forgets every user on this replica.
    pub fn clear(&self) {
        let mut state = self.inner.state();
        self.inner.epoch.fetch_add(1, Ordering::Relaxed);
        state.entries.clear();
        state.flights.clear();
    }
}

impl<S: UserStore> Inner<S> {
    fn state(&self) -> MutexGuard<'_, State<S::User>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn forget(&self, subject: &str) {
        let subject = Subject::from(subject);
        let mut state = self.state();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        state.entries.remove(&subject);
        state.flights.remove(&subject);
    }

    /// Keeps `answer` (unless an invalidation came since the flight took off) and
    /// lands the flight.
    fn land(&self, subject: &Subject, flight: &Arc<Flight<S::User>>, answer: &Answer<S::User>) {
        let mut state = self.state();
        if state
            .flights
            .get(subject)
            .is_some_and(|current| Arc::ptr_eq(current, flight))
        {
            state.flights.remove(subject);
        }
        let Ok(principal) = answer else {
            return;
        };
        if self.epoch.load(Ordering::Relaxed) != flight.epoch || self.max_entries == 0 {
            return;
        }
        let now = Instant::now();
        if !state.entries.contains_key(subject) && state.entries.len() >= self.max_entries {
            if now.duration_since(state.swept) >= self.max_staleness {
                let max_staleness = self.max_staleness;
                state
                    .entries
                    .retain(|_, entry| now.duration_since(entry.read) < max_staleness);
                state.swept = now;
            }
            if state.entries.len() >= self.max_entries {
                let victim = state.entries.keys().next().cloned();
                if let Some(victim) = victim {
                    state.entries.remove(&victim);
                }
            }
        }
        state.entries.insert(
            subject.clone(),
            Entry {
                principal: principal.clone(),
                read: now,
            },
        );
    }
}

type Answer<U> = Result<Option<Principal<U>>, Arc<StoreError>>;

impl<S: UserStore> Clone for CachedUserStore<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// The bounds, not the users.
impl<S: UserStore> fmt::Debug for CachedUserStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedUserStore")
            .field("max_staleness", &self.inner.max_staleness)
            .field("max_entries", &self.inner.max_entries)
            .field("cached", &self.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`CachedUserStore`]: [`CachedUserStore::builder`].
#[derive(Debug)]
pub struct CachedUserStoreBuilder<S> {
    store: S,
    max_staleness: Duration,
    max_entries: usize,
}

impl<S: UserStore> CachedUserStoreBuilder<S> {
    /// How long a user read from the store is used by the guard (default 1 s).
    ///
    /// This is exactly the window in which, on this replica, a user disabled or
    /// removed in the store, a changed password (the old password's tokens), or a
    /// scope taken away (tokens carrying it) may still pass the guard: each
    /// change is seen at most `max_staleness` after it was made, or at once after
    /// [`CachedUserStore::invalidate`]. `Duration::ZERO` caches nothing, but still
    /// asks the store once for concurrent requests of one user.
    #[must_use]
    pub fn max_staleness(mut self, max_staleness: Duration) -> Self {
        self.max_staleness = max_staleness;
        self
    }

    /// How many users are kept at most (default 10,000), unknown users included:
    /// the cache never grows past it, whatever subjects the requests name. Zero
    /// keeps none.
    #[must_use]
    pub fn max_entries(mut self, max_entries: usize) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// The store.
    pub fn build(self) -> CachedUserStore<S> {
        CachedUserStore {
            inner: Arc::new(Inner {
                store: self.store,
                max_staleness: self.max_staleness,
                max_entries: self.max_entries,
                state: Mutex::new(State {
                    entries: Map::default(),
                    flights: Map::default(),
                    swept: Instant::now(),
                }),
                epoch: AtomicU64::new(0),
            }),
        }
    }
}

impl<S: UserStore> UserStore for CachedUserStore<S> {
    type User = S::User;

    /// Ready at once from a fresh entry; else one lookup of the store per user
    /// at a time, awaited.
    fn principal(&self, subject: &Subject) -> Lookup<Option<Principal<S::User>>> {
        let flight = {
            let mut state = self.inner.state();
            if let Some(entry) = state.entries.get(subject) {
                if entry.read.elapsed() < self.inner.max_staleness {
                    return Lookup::ready(Ok(entry.principal.clone()));
                }
            }
            let epoch = self.inner.epoch.load(Ordering::Relaxed);
            Arc::clone(state.flights.entry(subject.clone()).or_insert_with(|| {
                Arc::new(Flight {
                    epoch,
                    answer: OnceCell::new(),
                })
            }))
        };
        let inner = Arc::clone(&self.inner);
        let subject = subject.clone();
        Lookup::pending(async move {
            let answer = flight
                .answer
                .get_or_init(|| async {
                    let answer = inner.store.principal(&subject).await.map_err(Arc::new);
                    inner.land(&subject, &flight, &answer);
                    answer
                })
                .await;
            match answer {
                Ok(principal) => Ok(principal.clone()),
                Err(error) => Err(StoreError::new(Arc::clone(error))),
            }
        })
    }

    /// Always the store's: never cached. A cached entry the answer contradicts
    /// (another stamp, another active flag) is dropped.
    async fn credentials(&self, username: &str) -> Result<Option<Credentials>, StoreError> {
        let credentials = self.inner.store.credentials(username).await?;
        if let Some(found) = &credentials {
            let mut state = self.inner.state();
            let stale = state.entries.get(&found.subject).is_some_and(|entry| {
                entry.principal.as_ref().is_none_or(|principal| {
                    principal.stamp != found.stamp || principal.active != found.active
                })
            });
            if stale {
                self.inner.epoch.fetch_add(1, Ordering::Relaxed);
                state.entries.remove(&found.subject);
                state.flights.remove(&found.subject);
            }
        }
        Ok(credentials)
    }

    fn canonical_username<'a>(&self, username: &'a str) -> Cow<'a, str> {
        self.inner.store.canonical_username(username)
    }

    fn update_password_hash(
        &self,
        subject: &Subject,
        old: &HashedPassword,
        new: HashedPassword,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.inner.store.update_password_hash(subject, old, new)
    }
}
