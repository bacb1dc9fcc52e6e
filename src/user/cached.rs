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
#[cfg(feature = "redis")]
use crate::redis::RedisConnection;
use crate::store::{Lookup, StoreError};
use crate::user::store::{Credentials, Principal, UserStore};
use crate::user::subject::Subject;

/// The default [`max_staleness`](CachedUserStoreBuilder::max_staleness).
const DEFAULT_STALENESS: Duration = Duration::from_secs(1);
/// The default [`max_entries`](CachedUserStoreBuilder::max_entries).
const DEFAULT_ENTRIES: usize = 10_000;

/// A [`UserStore`] whose guard lookups ([`UserStore::principal`]) are kept for at
/// most [`max_staleness`](CachedUserStoreBuilder::max_staleness) (default 1 s):
#[cfg_attr(
    feature = "sqlx",
    doc = "opt-in, for stores such as [`SqlUserStore`](crate::user::sql::SqlUserStore)"
)]
#[cfg_attr(
    not(feature = "sqlx"),
    doc = "opt-in, for stores such as `SqlUserStore` (feature `sqlx`)"
)]
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
/// **Across replicas** (feature `redis`): with
#[cfg_attr(
    feature = "redis",
    doc = "[`invalidations`](CachedUserStoreBuilder::invalidations),"
)]
#[cfg_attr(not(feature = "redis"), doc = "`invalidations`,")]
/// [`invalidate_everywhere`](Self::invalidate_everywhere) ends the window on every
/// replica sharing the Redis channel, within a Redis round trip. A message lost
/// (Redis down, a replica reconnecting) falls back to `max_staleness`: the bound
/// holds whatever Redis does.
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
    #[cfg(feature = "redis")]
    broadcast: Option<broadcast::Broadcast>,
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
            #[cfg(feature = "redis")]
            redis: None,
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

    /// [`invalidate`](Self::invalidate) on this replica, and (with
    #[cfg_attr(
        feature = "redis",
        doc = "[`invalidations`](CachedUserStoreBuilder::invalidations), feature"
    )]
    #[cfg_attr(not(feature = "redis"), doc = "`invalidations`, feature")]
    /// `redis`) on every replica listening on the same Redis channel. Without a
    /// channel, the same as `invalidate`.
    ///
    /// # Errors
    ///
    /// If Redis cannot be told: this replica has forgotten the user anyway, and
    /// the others see the change within their `max_staleness`.
    pub async fn invalidate_everywhere(&self, subject: &str) -> Result<(), StoreError> {
        self.inner.forget(subject);
        #[cfg(feature = "redis")]
        if let Some(broadcast) = &self.inner.broadcast {
            return broadcast.publish(subject).await;
        }
        Ok(())
    }

    /// Forgets every user on this replica.
    pub fn clear(&self) {
        self.inner.clear();
    }
}

impl<S: UserStore> Inner<S> {
    fn state(&self) -> MutexGuard<'_, State<S::User>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn clear(&self) {
        let mut state = self.state();
        self.epoch.fetch_add(1, Ordering::Relaxed);
        state.entries.clear();
        state.flights.clear();
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
        if self.epoch.load(Ordering::Relaxed) != flight.epoch
            || self.max_entries == 0
            || self.max_staleness.is_zero()
        {
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

/// A request waiting for a flight. If the last one goes away before the answer
/// (its client left), the flight leaves the map with it: no flight stays behind
/// that nobody waits for.
struct Waiter<S: UserStore> {
    inner: Arc<Inner<S>>,
    subject: Subject,
    flight: Arc<Flight<S::User>>,
}

impl<S: UserStore> Drop for Waiter<S> {
    fn drop(&mut self) {
        if self.flight.answer.initialized() {
            return;
        }
        let mut state = self.inner.state();
        // The map's handle and this one: requests take theirs under the lock.
        let last = Arc::strong_count(&self.flight) == 2
            && state
                .flights
                .get(&self.subject)
                .is_some_and(|current| Arc::ptr_eq(current, &self.flight));
        if last {
            state.flights.remove(&self.subject);
        }
    }
}

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
    #[cfg(feature = "redis")]
    redis: Option<RedisConnection>,
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

    /// Listens for invalidations on the Redis channel `user-cache:invalidate`
    /// under `redis`'s prefix (one server; not a Redis Cluster), and publishes
    /// there on [`CachedUserStore::invalidate_everywhere`]: replicas with the
    /// same prefix forget a user together. Each replica holds one more
    /// connection to Redis, made on the first lookup (on a Tokio runtime) and
    /// made again after it ends; when it is (re)made, the replica forgets every
    /// user, since messages may have been missed meanwhile.
    ///
    /// ```
    /// use tower_oauth2_password::redis::RedisConnection;
    /// use tower_oauth2_password::user::CachedUserStore;
    /// use tower_oauth2_password::MemoryUserStore;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
    /// # let store = MemoryUserStore::<String>::new(); // e.g. a SqlUserStore
    /// let users = CachedUserStore::builder(store).invalidations(&redis).build();
    /// # let _ = users;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    #[must_use]
    pub fn invalidations(mut self, redis: impl Into<RedisConnection>) -> Self {
        self.redis = Some(redis.into());
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
                #[cfg(feature = "redis")]
                broadcast: self.redis.map(broadcast::Broadcast::new),
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
        #[cfg(feature = "redis")]
        if let Some(broadcast) = &self.inner.broadcast {
            broadcast.listen(&self.inner);
        }
        let waiter = Waiter {
            inner: Arc::clone(&self.inner),
            subject: subject.clone(),
            flight,
        };
        Lookup::pending(async move {
            let Waiter {
                inner,
                subject,
                flight,
            } = &waiter;
            let answer = flight
                .answer
                .get_or_init(|| async {
                    let answer = inner.store.principal(subject).await.map_err(Arc::new);
                    inner.land(subject, flight, &answer);
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

/// Invalidations through Redis pub/sub (feature `redis`).
#[cfg(feature = "redis")]
mod broadcast {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Weak};
    use std::time::Duration;

    use futures_util::future::{self, Either};
    use futures_util::StreamExt;

    use super::Inner;
    use crate::redis::RedisConnection;
    use crate::store::StoreError;
    use crate::user::store::UserStore;

    /// How long a listener waits before subscribing again after a failure.
    const RETRY: Duration = Duration::from_secs(1);

    pub(super) struct Broadcast {
        redis: RedisConnection,
        channel: String,
        /// Whether the listening task was started.
        listening: AtomicBool,
        /// Ends the listening task when the cache is dropped (the task holds
        /// only a weak handle, and may wait on Redis for a long time).
        stop: tokio::sync::watch::Sender<()>,
    }

    impl Broadcast {
        pub(super) fn new(redis: RedisConnection) -> Self {
            let channel = redis.key(format_args!("user-cache:invalidate"));
            Self {
                redis,
                channel,
                listening: AtomicBool::new(false),
                stop: tokio::sync::watch::Sender::new(()),
            }
        }

        pub(super) async fn publish(&self, subject: &str) -> Result<(), StoreError> {
            self.redis
                .query::<i64>("PUBLISH", (&self.channel, subject))
                .await
                .map(drop)
        }

        /// Starts the listener once, on the current Tokio runtime (if any: else
        /// on a later lookup).
        pub(super) fn listen<S: UserStore>(&self, inner: &Arc<Inner<S>>) {
            if self.listening.load(Ordering::Relaxed) {
                return;
            }
            let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                return;
            };
            if self.listening.swap(true, Ordering::Relaxed) {
                return;
            }
            let task = listener(
                Arc::downgrade(inner),
                self.redis.clone(),
                self.channel.clone(),
                self.stop.subscribe(),
            );
            runtime.spawn(task);
        }
    }

    /// Subscribes, forgets every user (messages may have been missed before),
    /// then forgets each user named on the channel; again after the
    /// subscription ends; until the cache is dropped.
    async fn listener<S: UserStore>(
        inner: Weak<Inner<S>>,
        redis: RedisConnection,
        channel: String,
        mut stop: tokio::sync::watch::Receiver<()>,
    ) {
        let stopped = stop.changed();
        futures_util::pin_mut!(stopped);
        loop {
            let subscribed = redis.subscribe(&channel);
            futures_util::pin_mut!(subscribed);
            let messages = match future::select(stopped.as_mut(), subscribed).await {
                Either::Left(_) => return,
                Either::Right((Ok(messages), _)) => messages,
                Either::Right((Err(error), _)) => {
                    tracing::warn!(%error, "user cache: cannot subscribe to invalidations; retrying");
                    let retry = tokio::time::sleep(RETRY);
                    futures_util::pin_mut!(retry);
                    if let Either::Left(_) = future::select(stopped.as_mut(), retry).await {
                        return;
                    }
                    continue;
                }
            };
            match inner.upgrade() {
                Some(inner) => inner.clear(),
                None => return,
            }
            let mut messages = messages;
            loop {
                let next = messages.next();
                let message = match future::select(stopped.as_mut(), next).await {
                    Either::Left(_) => return,
                    Either::Right((message, _)) => message,
                };
                let Some(message) = message else {
                    tracing::warn!(
                        "user cache: the invalidations subscription ended; subscribing again"
                    );
                    break;
                };
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                match message.get_payload::<String>() {
                    Ok(subject) => inner.forget(&subject),
                    // Not ours to read: forget everyone rather than no one.
                    Err(_) => inner.clear(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;

    /// A store that never answers the guard: a database that hangs.
    struct Hanging;

    impl UserStore for Hanging {
        type User = String;

        fn principal(&self, _: &Subject) -> Lookup<Option<Principal<String>>> {
            Lookup::pending(std::future::pending())
        }

        async fn credentials(&self, _: &str) -> Result<Option<Credentials>, StoreError> {
            Ok(None)
        }
    }

    fn flights<S: UserStore>(cache: &CachedUserStore<S>) -> usize {
        cache.inner.state().flights.len()
    }

    /// Requests whose clients leave before the store answers leave nothing behind.
    #[test]
    fn a_flight_nobody_waits_for_leaves_the_map() {
        let cache = CachedUserStore::new(Hanging);
        let subject = Subject::from("johndoe");
        let first = cache.principal(&subject);
        let second = cache.principal(&subject);
        assert_eq!(flights(&cache), 1, "one flight for one user");
        // Polled (the store asked), then gone.
        assert!(first.now_or_never().is_none());
        assert_eq!(flights(&cache), 1, "the second still waits");
        drop(second);
        assert_eq!(flights(&cache), 0);
        assert!(cache.is_empty());
    }
}
