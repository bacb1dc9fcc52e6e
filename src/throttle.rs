//! [`LoginThrottle`]: the default [`LoginPolicy`], brute-force limits per username
//! and per client address (RFC 6749 §4.3.2).

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use crate::error::Rejection;
use crate::lookup::Lookup;
use crate::policy::{LoginAttempt, LoginDecision, LoginPolicy};
use crate::subject::Subject;

/// Default failures per username in a window before logins for it are refused.
pub const DEFAULT_FAILURES_PER_USERNAME: u32 = 5;
/// Default failures per client address in a window before its logins are refused.
pub const DEFAULT_FAILURES_PER_ADDRESS: u32 = 20;
/// Default window for both limits: 15 minutes.
pub const DEFAULT_THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Default bound on the keys each counter table holds (usernames; addresses).
pub const DEFAULT_THROTTLE_KEYS: usize = 100_000;

/// Refuses logins (429 with `Retry-After`, before any password hash is computed)
/// for a username or a client address with too many failed attempts in a window.
/// On by default in every [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer).
///
/// - **Per username**: at most 5 failures in 15 minutes, by default. Unknown users
///   are counted like known ones, so a 429 reveals nothing about which exist.
///   Usernames are counted without regard to case. A successful login clears its
///   username's count; refused attempts are not counted, so a locked username opens
///   again at the end of its window, whatever an attacker sends meanwhile.
/// - **Per client address**: at most 20 failures in 15 minutes, by default, across
///   all usernames (IPv6 addresses by their /64 network, which one client usually
///   has whole). The address is the connection's peer (see
///   [`PeerAddr`](crate::PeerAddr)), or behind
///   [trusted proxies](crate::Builder::trusted_proxies) the client they name. A
///   success does not clear it: one valid account must not buy an address more
///   guesses.
///
/// A window starts at the first failure and lasts a fixed time. Counts live in
/// process memory, in two tables of at most 100,000 keys each by default; a full
/// table first drops expired windows, then the one closest to its end. Keys are
/// only added after a password check, so they grow no faster than the server
/// hashes.
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::{LoginThrottle, MemoryUserStore, OAuth2PasswordLayer};
///
/// let throttle = LoginThrottle::new()
///     .per_username(10, Duration::from_secs(600))
///     .per_address(100, Duration::from_secs(600));
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .login_policy(throttle)
///     .build();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct LoginThrottle {
    per_username: Limit,
    per_address: Limit,
    counts: Arc<dyn FailureCounts>,
    /// The counts in memory: `counts` itself, or the fallback of a shared store.
    memory: Arc<MemoryCounts>,
}

/// At most `max_failures` in `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit {
    max_failures: u32,
    window: Duration,
}

/// What a count is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum KeyKind {
    Username,
    Address,
}

/// A counted key: a username in lower case, or an address (an IPv6 one as its /64
/// network).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    kind: KeyKind,
    text: String,
}

/// Where a [`LoginThrottle`] keeps its counts: process memory, or Redis (shared
/// by every replica, falling back to memory while it is down).
pub(crate) trait FailureCounts: Send + Sync + 'static {
    /// How long `key` is still refused: `Some` once it has `limit.max_failures`
    /// failures in a live window.
    fn refused_for(&self, key: &Key, limit: Limit) -> Lookup<Option<Duration>>;

    /// Counts a failure against `key`, starting a window of `limit.window` if it
    /// has none.
    fn add_failure(&self, key: &Key, limit: Limit) -> Lookup<()>;

    /// Forgets `key`'s failures.
    fn clear(&self, key: &Key) -> Lookup<()>;
}

impl LoginThrottle {
    /// The defaults: 5 failures per username and 20 per client address in 15
    /// minutes, at most 100,000 keys per table.
    pub fn new() -> Self {
        let memory = Arc::new(MemoryCounts::new(DEFAULT_THROTTLE_KEYS));
        Self {
            per_username: Limit {
                max_failures: DEFAULT_FAILURES_PER_USERNAME,
                window: DEFAULT_THROTTLE_WINDOW,
            },
            per_address: Limit {
                max_failures: DEFAULT_FAILURES_PER_ADDRESS,
                window: DEFAULT_THROTTLE_WINDOW,
            },
            counts: Arc::clone(&memory) as Arc<dyn FailureCounts>,
            memory,
        }
    }

    /// Refuses a username's logins after `max_failures` failures (at least 1) within
    /// `window` of the first, until that window ends.
    pub fn per_username(mut self, max_failures: u32, window: Duration) -> Self {
        self.per_username = Limit::new(max_failures, window);
        self
    }

    /// Refuses a client address's logins after `max_failures` failures (at least
    /// 1) within `window` of the first, until that window ends.
    pub fn per_address(mut self, max_failures: u32, window: Duration) -> Self {
        self.per_address = Limit::new(max_failures, window);
        self
    }

    /// Keeps at most `keys` usernames and as many addresses (at least 1 each) in
    /// memory. Counts in memory again: call it before
    /// [`in_redis`](Self::in_redis), whose fallback it sizes.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.memory = Arc::new(MemoryCounts::new(keys));
        self.counts = Arc::clone(&self.memory) as Arc<dyn FailureCounts>;
        self
    }

    /// Keeps the counts in Redis, on `store`'s connection and under its key
    /// prefix (`{prefix}throttle:u:…` and `throttle:a:…`, hashes of the keys,
    /// expiring with their windows), so that every replica sees every failure.
    /// Counting is one atomic script on Redis's clock. While Redis cannot answer
    /// (within the store's timeout), the throttle counts in memory and logs a
    /// warning: local limits, never none.
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn in_redis(mut self, store: crate::RedisTokenStore) -> Self {
        self.counts = Arc::new(redis_counts::RedisCounts::new(
            store,
            Arc::clone(&self.memory),
        ));
        self
    }

    fn keys(attempt: &LoginAttempt<'_>) -> (Key, Option<Key>) {
        let username = Key {
            kind: KeyKind::Username,
            text: attempt.username().to_lowercase(),
        };
        let address = attempt.client_ip().map(|ip| Key {
            kind: KeyKind::Address,
            text: address_key(ip),
        });
        (username, address)
    }
}

impl Limit {
    fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures.max(1),
            window,
        }
    }
}

/// An address as counted: IPv4 as it is, IPv6 by its /64 network.
fn address_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("per_username", &self.per_username)
            .field("per_address", &self.per_address)
            .finish_non_exhaustive()
    }
}

impl LoginPolicy for LoginThrottle {
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        let (username, address) = Self::keys(attempt);
        let by_username = self.counts.refused_for(&username, self.per_username);
        let by_address = address.map(|key| self.counts.refused_for(&key, self.per_address));
        let decide = |username: Option<Duration>, address: Option<Duration>| match username
            .into_iter()
            .chain(address)
            .max()
        {
            Some(retry_after) => LoginDecision::refuse(retry_after),
            None => LoginDecision::Allow,
        };
        match (by_username.into_ready(), by_address.map(Lookup::into_ready)) {
            (Ok(username), None) => Lookup::ready(username.map(|u| decide(u, None))),
            (Ok(username), Some(Ok(address))) => {
                Lookup::ready(username.and_then(|u| Ok(decide(u, address?))))
            }
            (username, address) => Lookup::pending(async move {
                let username = match username {
                    Ok(ready) => ready?,
                    Err(pending) => pending.await?,
                };
                let address = match address {
                    None => None,
                    Some(Ok(ready)) => ready?,
                    Some(Err(pending)) => pending.await?,
                };
                Ok(decide(username, address))
            }),
        }
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        let (username, address) = Self::keys(attempt);
        let by_username = self.counts.add_failure(&username, self.per_username);
        match address {
            None => by_username,
            Some(address) => both(
                by_username,
                self.counts.add_failure(&address, self.per_address),
            ),
        }
    }

    fn succeeded(&self, attempt: &LoginAttempt<'_>, _subject: &Subject) -> Lookup<()> {
        self.counts.clear(&Self::keys(attempt).0)
    }
}

/// Both notifications, ready if both are.
fn both(first: Lookup<()>, second: Lookup<()>) -> Lookup<()> {
    match (first.into_ready(), second.into_ready()) {
        (Ok(first), Ok(second)) => Lookup::ready(first.and(second)),
        (first, second) => Lookup::pending(async move {
            let first = match first {
                Ok(ready) => ready,
                Err(pending) => pending.await,
            };
            let second = match second {
                Ok(ready) => ready,
                Err(pending) => pending.await,
            };
            first.and(second)
        }),
    }
}

#[cfg(feature = "redis")]
mod redis_counts {
    use std::sync::Arc;
    use std::time::Duration;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use blake2::digest::consts::U16;
    use blake2::{Blake2b, Digest};
    use redis::Script;

    use super::{FailureCounts, Key, KeyKind, Limit, MemoryCounts};
    use crate::error::StoreError;
    use crate::lookup::Lookup;
    use crate::RedisTokenStore;

    /// One failure: the window starts with the first (or with a key that lost
    /// its expiry), on Redis's clock.
    const ADD_FAILURE: &str = r"
local failures = redis.call('INCR', KEYS[1])
if failures == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return failures
";

    pub(super) struct RedisCounts {
        store: RedisTokenStore,
        fallback: Arc<MemoryCounts>,
        add_failure: Script,
    }

    impl RedisCounts {
        pub(super) fn new(store: RedisTokenStore, fallback: Arc<MemoryCounts>) -> Self {
            Self {
                store,
                fallback,
                add_failure: Script::new(ADD_FAILURE),
            }
        }

        /// The key's Redis key: a hash, so Redis holds no usernames (people type
        /// passwords into that field).
        fn redis_key(&self, key: &Key) -> String {
            let kind = match key.kind {
                KeyKind::Username => "u",
                KeyKind::Address => "a",
            };
            let hash = URL_SAFE_NO_PAD.encode(Blake2b::<U16>::digest(key.text.as_bytes()));
            self.store.prefixed(&format!("throttle:{kind}:{hash}"))
        }
    }

    /// Redis's answer, or when it has none, memory's.
    async fn or_memory<T>(
        answer: Result<T, StoreError>,
        memory: impl FnOnce() -> Lookup<T>,
    ) -> Result<T, StoreError> {
        match answer {
            Ok(answer) => Ok(answer),
            Err(error) => {
                tracing::warn!(%error, "login throttle: Redis unavailable, counting in memory");
                memory().await
            }
        }
    }

    impl FailureCounts for RedisCounts {
        fn refused_for(&self, key: &Key, limit: Limit) -> Lookup<Option<Duration>> {
            let (store, fallback) = (self.store.clone(), Arc::clone(&self.fallback));
            let (redis_key, key) = (self.redis_key(key), key.clone());
            Lookup::pending(async move {
                let answer = store
                    .run(|mut connection| async move {
                        redis::pipe()
                            .cmd("GET")
                            .arg(&redis_key)
                            .cmd("PTTL")
                            .arg(&redis_key)
                            .query_async::<(Option<u32>, i64)>(&mut connection)
                            .await
                    })
                    .await
                    .map(|(failures, left)| {
                        let refused = failures.unwrap_or(0) >= limit.max_failures && left > 0;
                        refused.then(|| Duration::from_millis(left.unsigned_abs()))
                    });
                or_memory(answer, || fallback.refused_for(&key, limit)).await
            })
        }

        fn add_failure(&self, key: &Key, limit: Limit) -> Lookup<()> {
            let (store, fallback) = (self.store.clone(), Arc::clone(&self.fallback));
            let (redis_key, key, script) =
                (self.redis_key(key), key.clone(), self.add_failure.clone());
            let window = u64::try_from(limit.window.as_millis())
                .unwrap_or(u64::MAX)
                .max(1);
            Lookup::pending(async move {
                let answer = store
                    .run(|mut connection| async move {
                        script
                            .key(&redis_key)
                            .arg(window)
                            .invoke_async::<i64>(&mut connection)
                            .await
                    })
                    .await
                    .map(drop);
                or_memory(answer, || fallback.add_failure(&key, limit)).await
            })
        }

        fn clear(&self, key: &Key) -> Lookup<()> {
            let (store, fallback) = (self.store.clone(), Arc::clone(&self.fallback));
            let (redis_key, key) = (self.redis_key(key), key.clone());
            Lookup::pending(async move {
                let answer = store.query::<i64>("DEL", &redis_key).await.map(drop);
                // Memory may hold counts from an outage: clear them too.
                let cleared = fallback.clear(&key).await;
                or_memory(answer, || Lookup::ready(cleared)).await
            })
        }
    }
}

/// Logs a refused login at `info`, so that operators see attacks: who (the client
/// address, and the username or its keyed hash) and why. Never the password.
/// Store failures are not logged here: `Rejection::store_failed` logged them.
pub(crate) fn log_refused(attempt: &LoginAttempt<'_>, hash_username: bool, rejection: &Rejection) {
    let reason = match rejection {
        Rejection::InvalidGrant => "unknown user or wrong password",
        Rejection::TooManyAttempts(_) => "too many failed attempts (429)",
        Rejection::Busy(why) => why,
        _ => return,
    };
    let client = attempt
        .client_ip()
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    if hash_username {
        /// One key for the process: a username's hash stays the same in its logs.
        static KEY: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
        let hash = KEY
            .get_or_init(Default::default)
            .hash_one(attempt.username());
        tracing::info!(%client, username_hash = %format_args!("{hash:016x}"), reason, "login refused");
    } else {
        // Debug-quoted: a username with a line break cannot forge a log line.
        tracing::info!(%client, username = ?attempt.username(), reason, "login refused");
    }
}

/// Counts in process memory: a table per kind of key, each bounded.
struct MemoryCounts {
    usernames: Mutex<Table>,
    addresses: Mutex<Table>,
    max_keys: usize,
    /// Keys are hashed with a per-process random seed: the tables hold no
    /// usernames, and nobody can aim collisions at them.
    hasher: foldhash::fast::RandomState,
}

type Table = HashMap<u64, Window, foldhash::fast::FixedState>;

/// Failures so far and when their window ends.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    ends: Instant,
}

impl MemoryCounts {
    fn new(max_keys: usize) -> Self {
        Self {
            usernames: Mutex::default(),
            addresses: Mutex::default(),
            max_keys: max_keys.max(1),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The key's table (locked: every update is one map operation, so a poisoned
    /// table is still consistent) and its hash.
    fn table(&self, key: &Key) -> (std::sync::MutexGuard<'_, Table>, u64) {
        let table = match key.kind {
            KeyKind::Username => &self.usernames,
            KeyKind::Address => &self.addresses,
        };
        let hash = self.hasher.hash_one(&key.text);
        (table.lock().unwrap_or_else(PoisonError::into_inner), hash)
    }
}

impl FailureCounts for MemoryCounts {
    fn refused_for(&self, key: &Key, limit: Limit) -> Lookup<Option<Duration>> {
        let now = Instant::now();
        let (table, hash) = self.table(key);
        let refused = table
            .get(&hash)
            .filter(|window| window.failures >= limit.max_failures && window.ends > now)
            .map(|window| window.ends - now);
        Lookup::ready(Ok(refused))
    }

    fn add_failure(&self, key: &Key, limit: Limit) -> Lookup<()> {
        let now = Instant::now();
        let (mut table, hash) = self.table(key);
        if let Some(window) = table.get_mut(&hash).filter(|window| window.ends > now) {
            window.failures = window.failures.saturating_add(1);
            return Lookup::ready(Ok(()));
        }
        if table.len() >= self.max_keys && !table.contains_key(&hash) {
            make_room(&mut table, self.max_keys, now);
        }
        table.insert(
            hash,
            Window {
                failures: 1,
                ends: now + limit.window,
            },
        );
        Lookup::ready(Ok(()))
    }

    fn clear(&self, key: &Key) -> Lookup<()> {
        let (mut table, hash) = self.table(key);
        table.remove(&hash);
        Lookup::ready(Ok(()))
    }
}

/// Drops the expired windows of a full table, or if none has expired, the one
/// that ends first (the count an attacker gains least by having forgotten).
fn make_room(table: &mut Table, max_keys: usize, now: Instant) {
    table.retain(|_, window| window.ends > now);
    if table.len() < max_keys {
        return;
    }
    let first_to_end = table
        .iter()
        .min_by_key(|(_, window)| window.ends)
        .map(|(&hash, _)| hash);
    if let Some(hash) = first_to_end {
        table.remove(&hash);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Extensions, HeaderMap};

    fn decide(throttle: &LoginThrottle, attempt: &LoginAttempt<'_>) -> LoginDecision {
        throttle.check(attempt).into_ready().unwrap().unwrap()
    }

    #[test]
    fn a_full_table_forgets_the_window_that_ends_first() {
        let counts = MemoryCounts::new(2);
        let key = |text: &str| Key {
            kind: KeyKind::Username,
            text: text.into(),
        };
        let limit = |secs| Limit::new(1, Duration::from_secs(secs));
        for (name, secs) in [("a", 100), ("b", 50), ("c", 200)] {
            counts
                .add_failure(&key(name), limit(secs))
                .into_ready()
                .unwrap()
                .unwrap();
        }
        let refused = |name| {
            counts
                .refused_for(&key(name), limit(1))
                .into_ready()
                .unwrap()
                .unwrap()
        };
        assert!(refused("a").is_some());
        assert!(refused("b").is_none(), "b's window ended first: evicted");
        assert!(refused("c").is_some());
        assert_eq!(counts.usernames.lock().unwrap().len(), 2);
    }

    #[test]
    fn usernames_are_counted_without_regard_to_case_and_ipv6_by_network() {
        let throttle = LoginThrottle::new().per_username(1, Duration::from_secs(60));
        let (headers, extensions) = (HeaderMap::new(), Extensions::new());
        throttle
            .failed(&LoginAttempt::new("JohnDoe", &headers, &extensions))
            .into_ready()
            .unwrap()
            .unwrap();
        let attempt = LoginAttempt::new("johndoe", &headers, &extensions);
        assert!(matches!(
            decide(&throttle, &attempt),
            LoginDecision::Refuse { .. }
        ));

        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1");
    }
}
