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
/// network), as text a shared store (Redis) can use as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    kind: KeyKind,
    text: String,
}

/// Where a [`LoginThrottle`] keeps its counts: process memory here; a shared store
/// (Redis: `INCR` and `PEXPIRE … NX` in one script, on Redis's clock) plugs in
/// behind the same three calls, falling back to memory while it is down.
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
        Self {
            per_username: Limit {
                max_failures: DEFAULT_FAILURES_PER_USERNAME,
                window: DEFAULT_THROTTLE_WINDOW,
            },
            per_address: Limit {
                max_failures: DEFAULT_FAILURES_PER_ADDRESS,
                window: DEFAULT_THROTTLE_WINDOW,
            },
            counts: Arc::new(MemoryCounts::new(DEFAULT_THROTTLE_KEYS)),
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

    /// Keeps at most `keys` usernames and as many addresses (at least 1 each).
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.counts = Arc::new(MemoryCounts::new(keys));
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
