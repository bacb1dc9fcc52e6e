//! [`LoginThrottle`]: the default [`LoginPolicy`], brute-force limits per
//! (username, client address), per username and per client address (RFC 6749
//! §4.3.2), reserved before the password check.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::audit::ThrottleLimit;
use crate::endpoint::policy::{LoginAttempt, LoginDecision, LoginPolicy, RefreshAttempt};
use crate::store::Lookup;
use crate::user::subject::Subject;

/// Default failures per (username, client address) in a window before that
/// pair's logins are refused.
pub const DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS: u32 = 5;
/// Default failures per username, from all addresses together, in
/// [`DEFAULT_USERNAME_WINDOW`] before every login for it is refused: NIST SP
/// 800-63B §5.2.2 allows at most 100 consecutive failures per account.
pub const DEFAULT_FAILURES_PER_USERNAME: u32 = 100;
/// Default failures per client address, over all usernames, in a window before
/// its logins are refused.
pub const DEFAULT_FAILURES_PER_ADDRESS: u32 = 20;
/// Default window of the per-pair and per-address limits: 15 minutes.
pub const DEFAULT_THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Default window of the per-username limit: one hour.
pub const DEFAULT_USERNAME_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Default bound on the keys each counter table holds (pairs; usernames;
/// addresses).
pub const DEFAULT_THROTTLE_KEYS: usize = 100_000;

/// How long a client refused only because attempts are still being checked
/// should wait: they end within a password check.
const IN_FLIGHT_RETRY: Duration = Duration::from_secs(1);

/// Refuses logins (429 with `Retry-After`, before any password hash is computed)
/// after too many failed attempts in a window. On by default in every
/// [`OAuth2PasswordLayer`](crate::OAuth2PasswordLayer). Three counts, each in a
/// fixed window that starts with its first attempt:
///
/// | counted per | default | what it stops |
/// |---|---|---|
/// | (username, client address) | 5 in 15 min | guessing one user's password from one address |
/// | username, all addresses together | 100 in 1 hour | guessing from many addresses |
/// | client address, all usernames | 20 in 15 min | one address trying many users |
///
/// **What it promises.** An attacker with one address gets at most 5 guesses per
/// user and 20 in all per 15 minutes; with N addresses, at most `5·N` per user
/// (and `20·N` in all) per 15 minutes, and never more than 100 per user per
/// hour, however many addresses: NIST SP 800-63B §5.2.2 caps consecutive
/// failures per account at 100, and an hour keeps a botnet to 2,400 guesses per
/// account a day. **What it costs.** A user is locked out only from the
/// addresses that failed (the pair's count), so a stranger's wrong passwords do
/// not stop the right one from a clean address, until the per-username cap: an
/// attacker with at least 20 addresses (100 failures) can lock an account for
/// up to an hour after their last try. Refused attempts are not counted, so
/// nobody can hold a lock longer than a window after they stop.
///
/// **Counted before the check.** An allowed attempt is reserved on all three
/// counts, atomically with the decision, before the user store and the hasher
/// are asked; a wrong password or an unknown user keeps it, a success gives it
/// back (and clears the pair's count; the username's and the address's keep
/// their failures, so one valid account buys no address more guesses), and an
/// attempt that got no verdict (busy server, store down, client gone) gives it
/// back. So concurrency cannot slip past a limit: of 64 wrong passwords sent at
/// once, 5 get a verdict and the rest 429. While attempts are in flight a count
/// may be full of reservations: that 429 says `Retry-After: 1`.
///
/// Unknown users are counted like known ones, so a 429 reveals nothing about
/// which exist. Usernames are counted in the form the user store matches them
/// ([`UserStore::canonical_username`](crate::user::UserStore::canonical_username)), so
/// every spelling of one user shares its counts. The address is the
/// connection's peer (see [`PeerAddr`](crate::endpoint::PeerAddr)), or behind
/// [trusted proxies](crate::layer::Builder::trusted_proxies) the client they name; IPv6
/// addresses by their /64 network, which one client usually has whole. Without
/// an address every client is one: the pair's 5 then hold per username.
///
/// Refresh grants: an invalid, expired or reused refresh token counts as a
/// failure against the client address, and a throttled address gets 429 on the
/// refresh grant too.
///
/// Counts live in process memory, in three tables of at most 100,000 keys each
/// by default; a full table first drops expired windows, then the one closest to
/// its end. Keys are added by attempts let through to the password check, so
/// they grow no faster than the server hashes. With several replicas, keep them
/// in Redis (`in_redis`, feature `redis`).
///
/// ```
/// use std::time::Duration;
/// use tower_oauth2_password::endpoint::LoginThrottle;
/// use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer};
///
/// let throttle = LoginThrottle::new()
///     .per_username_and_address(10, Duration::from_secs(600))
///     .per_username(50, Duration::from_secs(3600))
///     .per_address(100, Duration::from_secs(600));
/// let layer = OAuth2PasswordLayer::builder(MemoryUserStore::<String>::new())
///     .login_policy(throttle)
///     .build();
/// # let _ = layer;
/// ```
#[derive(Clone)]
pub struct LoginThrottle {
    per_pair: Limit,
    per_username: Limit,
    per_address: Limit,
    /// Built from the settings below by [`Self::with_counts`], whichever of
    /// their builder methods runs last.
    counts: Arc<dyn FailureCounts>,
    max_keys: usize,
    #[cfg(feature = "redis")]
    redis: Option<crate::redis::RedisConnection>,
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
    /// A canonical username and a client address.
    Pair,
    Username,
    Address,
}

/// A counted key: a canonical username, an address (an IPv6 one as its /64
/// network), or both; and the limit it is counted against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    kind: KeyKind,
    text: String,
    limit: Limit,
}

/// How an attempt ends for a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A reserved attempt failed: its reservation becomes a failure.
    Failed,
    /// A failure that had no reservation (a refresh grant).
    Counted,
    /// A reserved attempt gives its reservation back.
    GivenBack,
    /// Forget the key's failures (and reservations).
    Cleared,
}

/// Where a [`LoginThrottle`] keeps its counts: process memory, or Redis (shared
/// by every replica, falling back to memory while it is down).
pub(crate) trait FailureCounts: Send + Sync + 'static {
    /// How long the attempt must wait: `Some` once any key has its limit's worth
    /// of failures and reservations in a live window. Else, if `reserve`, one
    /// attempt is reserved on every key, in the same atomic step.
    fn admit(&self, keys: &[Key], reserve: bool) -> Lookup<Option<Refusal>>;

    /// Applies each key's outcome; a failure with no live window starts one.
    fn settle(&self, keys: &[(Key, Outcome)]) -> Lookup<()>;
}

impl LoginThrottle {
    /// The defaults: per (username, address) 5 failures and per address 20 in
    /// 15 minutes, per username 100 in an hour, at most 100,000 keys per table.
    pub fn new() -> Self {
        Self {
            per_pair: Limit::new(
                DEFAULT_FAILURES_PER_USERNAME_AND_ADDRESS,
                DEFAULT_THROTTLE_WINDOW,
            ),
            per_username: Limit::new(DEFAULT_FAILURES_PER_USERNAME, DEFAULT_USERNAME_WINDOW),
            per_address: Limit::new(DEFAULT_FAILURES_PER_ADDRESS, DEFAULT_THROTTLE_WINDOW),
            counts: Arc::new(MemoryCounts::new(DEFAULT_THROTTLE_KEYS)),
            max_keys: DEFAULT_THROTTLE_KEYS,
            #[cfg(feature = "redis")]
            redis: None,
        }
    }

    /// Refuses a username's logins from one client address after `max_failures`
    /// failures (at least 1) from it within `window` of the first, until that
    /// window ends. Default: 5 in 15 minutes.
    pub fn per_username_and_address(mut self, max_failures: u32, window: Duration) -> Self {
        self.per_pair = Limit::new(max_failures, window);
        self
    }

    /// Refuses a username's logins from every address after `max_failures`
    /// failures (at least 1) from all addresses together within `window` of the
    /// first, until that window ends. Default: 100 in an hour. Keep it above the
    /// per-pair limit: it is how far strangers can lock a user out.
    pub fn per_username(mut self, max_failures: u32, window: Duration) -> Self {
        self.per_username = Limit::new(max_failures, window);
        self
    }

    /// Refuses a client address's logins after `max_failures` failures (at
    /// least one) over all usernames within `window` of the first, until that
    /// window ends. Default: 20 in 15 minutes.
    pub fn per_address(mut self, max_failures: u32, window: Duration) -> Self {
        self.per_address = Limit::new(max_failures, window);
        self
    }

    /// Keeps at most `keys` of each kind (at least 1) in memory: the counts
    /// themselves, or with `in_redis` (feature `redis`; before or after this)
    /// the fallback while Redis is down. Default 100,000.
    pub fn max_keys(mut self, keys: usize) -> Self {
        self.max_keys = keys;
        self.with_counts()
    }

    /// Keeps the counts in Redis, on `connection` (a
    /// [`RedisConnection`](crate::redis::RedisConnection), a reference to one, or a
    /// [`RedisTokenStore`](crate::token::redis::RedisTokenStore) whose connection to share)
    /// under its key prefix (`{prefix}throttle:p:…`, `throttle:u:…` and
    /// `throttle:a:…`, hashes of the keys, expiring with their windows), so
    /// that every replica sees every attempt. Reserving is one atomic script
    /// over the attempt's keys, on Redis's clock, so replicas cannot together
    /// slip past a limit either. While Redis cannot answer (within the
    /// connection's deadline), the throttle counts in memory and logs a
    /// warning: local limits, never none.
    ///
    /// The builder's methods go in any order.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use tower_oauth2_password::endpoint::LoginThrottle;
    /// use tower_oauth2_password::redis::RedisConnection;
    ///
    /// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
    /// let throttle = LoginThrottle::new()
    ///     .in_redis(&redis)
    ///     .per_username(50, Duration::from_secs(3600))
    ///     .max_keys(10_000);
    /// # let _ = throttle;
    /// # Ok::<(), tower_oauth2_password::store::StoreError>(())
    /// ```
    #[cfg(feature = "redis")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
    pub fn in_redis(mut self, connection: impl Into<crate::redis::RedisConnection>) -> Self {
        self.redis = Some(connection.into());
        self.with_counts()
    }

    /// The counts the settings say: in memory, or in Redis with memory as its
    /// fallback. Built afresh (empty) by each method that changes them, so
    /// their order does not matter.
    fn with_counts(mut self) -> Self {
        let memory = Arc::new(MemoryCounts::new(self.max_keys));
        self.counts = memory.clone();
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            self.counts = Arc::new(redis_counts::RedisCounts::new(redis.clone(), memory));
        }
        self
    }

    /// The attempt's keys: the pair, the username, and the address if known.
    fn keys(&self, attempt: &LoginAttempt<'_>) -> Vec<Key> {
        let username = attempt.canonical_username();
        let address = attempt.client_ip().map(address_key);
        let pair = format!(
            "{username}\0{}",
            address.as_deref().unwrap_or("unknown address")
        );
        let mut keys = vec![
            Key::new(KeyKind::Pair, pair, self.per_pair),
            Key::new(KeyKind::Username, username.to_owned(), self.per_username),
        ];
        keys.extend(self.address(attempt.client()));
        keys
    }

    fn address(&self, client: &RefreshAttempt<'_>) -> Option<Key> {
        let address = address_key(client.client_ip()?);
        Some(Key::new(KeyKind::Address, address, self.per_address))
    }

    /// Settles every key of `attempt` with the outcome `outcome` gives its kind.
    fn settle(
        &self,
        attempt: &LoginAttempt<'_>,
        outcome: impl Fn(KeyKind) -> Outcome,
    ) -> Lookup<()> {
        let keys: Vec<_> = self
            .keys(attempt)
            .into_iter()
            .map(|key| {
                let outcome = outcome(key.kind);
                (key, outcome)
            })
            .collect();
        self.counts.settle(&keys)
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

impl Key {
    fn new(kind: KeyKind, text: String, limit: Limit) -> Self {
        Self { kind, text, limit }
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
        let mut debug = f.debug_struct("LoginThrottle");
        debug
            .field("per_username_and_address", &self.per_pair)
            .field("per_username", &self.per_username)
            .field("per_address", &self.per_address)
            .field("max_keys", &self.max_keys);
        #[cfg(feature = "redis")]
        debug.field("redis", &self.redis);
        debug.finish_non_exhaustive()
    }
}

/// How long to wait, and the kind of key whose limit was reached (the one with
/// the longest wait).
pub(crate) type Refusal = (Duration, KeyKind);

/// A refusal as a decision.
fn decision(refused: Lookup<Option<Refusal>>) -> Lookup<LoginDecision> {
    refused.map(|refused| {
        Ok(match refused? {
            Some((retry_after, kind)) => {
                let limit = match kind {
                    KeyKind::Pair => ThrottleLimit::UsernameAndAddress,
                    KeyKind::Username => ThrottleLimit::Username,
                    KeyKind::Address => ThrottleLimit::Address,
                };
                LoginDecision::Refuse { retry_after, limit }
            }
            None => LoginDecision::Allow,
        })
    })
}

impl LoginPolicy for LoginThrottle {
    /// Reserves the attempt on its pair, username and address counts, or
    /// refuses it: one atomic step.
    fn check(&self, attempt: &LoginAttempt<'_>) -> Lookup<LoginDecision> {
        decision(self.counts.admit(&self.keys(attempt), true))
    }

    fn failed(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        self.settle(attempt, |_| Outcome::Failed)
    }

    /// Clears the pair's count; the username and the address get their
    /// reservation back and keep their failures.
    fn succeeded(&self, attempt: &LoginAttempt<'_>, _subject: &Subject) -> Lookup<()> {
        self.settle(attempt, |kind| match kind {
            KeyKind::Pair => Outcome::Cleared,
            KeyKind::Username | KeyKind::Address => Outcome::GivenBack,
        })
    }

    fn abandoned(&self, attempt: &LoginAttempt<'_>) -> Lookup<()> {
        self.settle(attempt, |_| Outcome::GivenBack)
    }

    /// Refused while the client's address is.
    fn check_refresh(&self, attempt: &RefreshAttempt<'_>) -> Lookup<LoginDecision> {
        match self.address(attempt) {
            Some(address) => decision(self.counts.admit(&[address], false)),
            None => Lookup::ready(Ok(LoginDecision::Allow)),
        }
    }

    /// A failure against the client's address.
    fn refresh_failed(&self, attempt: &RefreshAttempt<'_>) -> Lookup<()> {
        match self.address(attempt) {
            Some(address) => self.counts.settle(&[(address, Outcome::Counted)]),
            None => Lookup::ready(Ok(())),
        }
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

    use super::{FailureCounts, Key, KeyKind, MemoryCounts, Outcome, Refusal, IN_FLIGHT_RETRY};
    use crate::redis::{LuaScript, RedisConnection};
    use crate::store::Lookup;

    /// The check and the reservation, in one step for all the attempt's keys
    /// (each a hash: `f` failures, `r` reservations). ARGV[1]: 1 to reserve;
    /// then per key its limit and window (ms), and the wait (ms) for a count
    /// full only of reservations. Returns the wait in ms, 0 when admitted, and
    /// the (1-based) index of the key with the longest wait.
    const ADMIT: &str = r"
local wait, which = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 * i - 1])
  local v = redis.call('HMGET', key, 'f', 'r')
  local f, r = tonumber(v[1]) or 0, tonumber(v[2]) or 0
  if f + r >= limit then
    local left = redis.call('PTTL', key)
    if f < limit or left < 1 then left = tonumber(ARGV[3 * i + 1]) end
    if left > wait then wait, which = left, i end
  end
end
if wait > 0 or ARGV[1] ~= '1' then return {wait, which} end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'r', 1)
  if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[3 * i]) end
end
return {0, 0}
";

    /// Each key's outcome (ARGV: per key `f` failed, `c` counted, `g` given back,
    /// `x` cleared, and its window in ms); a failure with no live window starts
    /// one, on Redis's clock.
    const SETTLE: &str = r"
for i, key in ipairs(KEYS) do
  local outcome = ARGV[2 * i - 1]
  if outcome == 'x' then
    redis.call('DEL', key)
  else
    if (outcome == 'f' or outcome == 'g') and (tonumber(redis.call('HGET', key, 'r')) or 0) > 0 then
      redis.call('HINCRBY', key, 'r', -1)
    end
    if outcome == 'f' or outcome == 'c' then
      redis.call('HINCRBY', key, 'f', 1)
      if redis.call('PTTL', key) < 0 then redis.call('PEXPIRE', key, ARGV[2 * i]) end
    end
  end
end
return 0
";

    pub(super) struct RedisCounts {
        redis: RedisConnection,
        fallback: Arc<MemoryCounts>,
        admit: Arc<LuaScript>,
        settle: Arc<LuaScript>,
    }

    impl RedisCounts {
        pub(super) fn new(redis: RedisConnection, fallback: Arc<MemoryCounts>) -> Self {
            Self {
                redis,
                fallback,
                admit: Arc::new(LuaScript::new(ADMIT)),
                settle: Arc::new(LuaScript::new(SETTLE)),
            }
        }

        /// The key's Redis key: a hash, so Redis holds no usernames (people type
        /// passwords into that field) and no addresses. On a cluster the hash
        /// of the username (of the address for an address's count) is the
        /// hash tag: a username's two counts (its own and the pair's) share a
        /// slot, the address's is elsewhere.
        fn redis_key(&self, key: &Key) -> String {
            let kind = match key.kind {
                KeyKind::Pair => "p",
                KeyKind::Username => "u",
                KeyKind::Address => "a",
            };
            let hashed = hash(&key.text);
            if !self.redis.is_cluster() {
                return self.redis.key(format_args!("throttle:{kind}:{hashed}"));
            }
            match key.kind {
                // `{username}\0{address}`: the pair's tag is its username's.
                KeyKind::Pair => {
                    let tag = hash(key.text.split('\0').next().unwrap_or_default());
                    self.redis.key(format_args!("throttle:p:{{{tag}}}{hashed}"))
                }
                KeyKind::Username | KeyKind::Address => {
                    self.redis.key(format_args!("throttle:{kind}:{{{hashed}}}"))
                }
            }
        }

        /// The keys in the groups one script may touch: all of them on one
        /// server; on a cluster, those of one slot (the username's, the
        /// address's), in the order given.
        fn groups<T: Clone>(&self, keys: &[T], key: fn(&T) -> &Key) -> Vec<Vec<T>> {
            if !self.redis.is_cluster() {
                return vec![keys.to_vec()];
            }
            let (address, username): (Vec<T>, Vec<T>) = keys
                .iter()
                .cloned()
                .partition(|item| key(item).kind == KeyKind::Address);
            [username, address]
                .into_iter()
                .filter(|group| !group.is_empty())
                .collect()
        }
    }

    /// Keys with their outcomes, and their Redis keys.
    type Settled = (Vec<(Key, Outcome)>, Vec<String>);

    fn hash(text: &str) -> String {
        URL_SAFE_NO_PAD.encode(Blake2b::<U16>::digest(text.as_bytes()))
    }

    fn millis(duration: Duration) -> u64 {
        u64::try_from(duration.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    fn admit_args(keys: &[Key], reserve: bool) -> Vec<String> {
        let mut args = vec![u8::from(reserve).to_string()];
        for key in keys {
            args.extend([
                key.limit.max_failures.to_string(),
                millis(key.limit.window).to_string(),
                millis(IN_FLIGHT_RETRY).to_string(),
            ]);
        }
        args
    }

    fn settle_args(keys: &[(Key, Outcome)]) -> Vec<String> {
        let mut args = Vec::with_capacity(2 * keys.len());
        for (key, outcome) in keys {
            let outcome = match outcome {
                Outcome::Failed => "f",
                Outcome::Counted => "c",
                Outcome::GivenBack => "g",
                Outcome::Cleared => "x",
            };
            args.extend([outcome.to_owned(), millis(key.limit.window).to_string()]);
        }
        args
    }

    /// On one server, one script checks and reserves every key at once. On a
    /// cluster, one per slot group, the username's first: a group that refuses
    /// gives the groups before it their reservations back (so a concurrent
    /// attempt may see one in-flight reservation too many for that moment and
    /// be told to retry shortly: never a guess beyond a limit, at worst a
    /// spurious short 429); the remaining groups are only checked, for the
    /// longest wait. Redis unavailable at any step: reservations made are
    /// given back (if Redis answers) and memory decides, as on one server.
    impl FailureCounts for RedisCounts {
        fn admit(&self, keys: &[Key], reserve: bool) -> Lookup<Option<Refusal>> {
            let groups: Vec<(Vec<Key>, Vec<String>)> = self
                .groups(keys, |key| key)
                .into_iter()
                .map(|group| {
                    let names = group.iter().map(|key| self.redis_key(key)).collect();
                    (group, names)
                })
                .collect();
            let (redis, fallback, script, settle) = (
                self.redis.clone(),
                Arc::clone(&self.fallback),
                self.admit.clone(),
                self.settle.clone(),
            );
            let owned = keys.to_vec();
            Lookup::pending(async move {
                // The longest wait any group asks for, and the limit that asked.
                let mut refused: Option<(u64, KeyKind)> = None;
                let mut reserved: Vec<(Vec<Key>, Vec<String>)> = Vec::new();
                let mut failed = None;
                for (group, names) in groups {
                    let reserving = reserve && refused.is_none();
                    let args = admit_args(&group, reserving);
                    // The script names the refusing key by its 1-based index in `names`.
                    match redis.script::<(u64, usize)>(&script, &names, &args).await {
                        Ok((0, _)) if reserving => reserved.push((group, names)),
                        Ok((0, _)) => {}
                        Ok((wait, which)) => {
                            let kind = which
                                .checked_sub(1)
                                .and_then(|i| group.get(i))
                                .map_or(KeyKind::Address, |key| key.kind);
                            if refused.is_none_or(|(longest, _)| wait > longest) {
                                refused = Some((wait, kind));
                            }
                        }
                        Err(error) => {
                            failed = Some(error);
                            break;
                        }
                    }
                }
                if refused.is_some() || failed.is_some() {
                    for (group, names) in reserved {
                        let given_back: Vec<_> = group
                            .into_iter()
                            .map(|key| (key, Outcome::GivenBack))
                            .collect();
                        let _ = redis
                            .script::<i64>(&settle, &names, &settle_args(&given_back))
                            .await;
                    }
                }
                if let Some(error) = failed {
                    tracing::warn!(%error, "login throttle: Redis unavailable, counting in memory");
                    return fallback.admit(&owned, reserve).await;
                }
                Ok(refused.map(|(wait, kind)| (Duration::from_millis(wait), kind)))
            })
        }

        fn settle(&self, keys: &[(Key, Outcome)]) -> Lookup<()> {
            let groups: Vec<Settled> = self
                .groups(keys, |(key, _)| key)
                .into_iter()
                .map(|group| {
                    let names = group.iter().map(|(key, _)| self.redis_key(key)).collect();
                    (group, names)
                })
                .collect();
            let (redis, fallback, script) = (
                self.redis.clone(),
                Arc::clone(&self.fallback),
                self.settle.clone(),
            );
            Lookup::pending(async move {
                for (group, names) in groups {
                    let settled = redis
                        .script::<i64>(&script, &names, &settle_args(&group))
                        .await;
                    if let Err(error) = settled {
                        tracing::warn!(%error, "login throttle: Redis unavailable, counting in memory");
                        fallback.settle(&group).await?;
                    }
                }
                Ok(())
            })
        }
    }
}

/// Counts in process memory: a table per kind of key, each bounded, all under
/// one lock so that an attempt is checked and reserved on all its keys at once.
struct MemoryCounts {
    tables: Mutex<[Table; 3]>,
    max_keys: usize,
    /// Keys are hashed with a per-process random seed: the tables hold no
    /// usernames, and nobody can aim collisions at them.
    hasher: foldhash::fast::RandomState,
}

type Table = HashMap<u64, Window, foldhash::fast::FixedState>;

/// Failures and reservations so far, and when their window ends.
#[derive(Debug, Clone, Copy)]
struct Window {
    failures: u32,
    reserved: u32,
    ends: Instant,
}

impl Window {
    /// How long an attempt must wait, if `limit` is reached.
    fn refused_for(&self, limit: Limit, now: Instant) -> Option<Duration> {
        let live = self.ends > now;
        let full = self.failures.saturating_add(self.reserved) >= limit.max_failures;
        (live && full).then(|| {
            if self.failures >= limit.max_failures {
                self.ends - now
            } else {
                IN_FLIGHT_RETRY
            }
        })
    }
}

impl MemoryCounts {
    fn new(max_keys: usize) -> Self {
        Self {
            tables: Mutex::default(),
            max_keys: max_keys.max(1),
            hasher: foldhash::fast::RandomState::default(),
        }
    }

    /// The tables, locked: every update completes under the lock, so a poisoned
    /// one is still consistent.
    fn lock(&self) -> std::sync::MutexGuard<'_, [Table; 3]> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn slot(&self, key: &Key) -> (usize, u64) {
        let table = match key.kind {
            KeyKind::Pair => 0,
            KeyKind::Username => 1,
            KeyKind::Address => 2,
        };
        (table, self.hasher.hash_one(&key.text))
    }

    /// `key`'s live window, started (empty) if it has none.
    fn window<'t>(&self, tables: &'t mut [Table; 3], key: &Key, now: Instant) -> &'t mut Window {
        let (table, hash) = self.slot(key);
        let table = &mut tables[table];
        if table.get(&hash).is_none_or(|window| window.ends <= now) {
            if table.len() >= self.max_keys && !table.contains_key(&hash) {
                make_room(table, self.max_keys, now);
            }
            table.insert(
                hash,
                Window {
                    failures: 0,
                    reserved: 0,
                    ends: now + key.limit.window,
                },
            );
        }
        table.get_mut(&hash).expect("inserted above")
    }

    fn admit(&self, keys: &[Key], reserve: bool) -> Lookup<Option<Refusal>> {
        let now = Instant::now();
        let mut tables = self.lock();
        let refused = keys
            .iter()
            .filter_map(|key| {
                let (table, hash) = self.slot(key);
                let wait = tables[table].get(&hash)?.refused_for(key.limit, now)?;
                Some((wait, key.kind))
            })
            .max_by_key(|(wait, _)| *wait);
        if refused.is_none() && reserve {
            for key in keys {
                let window = self.window(&mut tables, key, now);
                window.reserved = window.reserved.saturating_add(1);
            }
        }
        Lookup::ready(Ok(refused))
    }

    fn settle(&self, keys: &[(Key, Outcome)]) -> Lookup<()> {
        let now = Instant::now();
        let mut tables = self.lock();
        for (key, outcome) in keys {
            let (table, hash) = self.slot(key);
            match outcome {
                Outcome::Cleared => {
                    tables[table].remove(&hash);
                }
                Outcome::GivenBack => {
                    let emptied = tables[table].get_mut(&hash).is_some_and(|window| {
                        window.reserved = window.reserved.saturating_sub(1);
                        window.reserved == 0 && window.failures == 0
                    });
                    if emptied {
                        tables[table].remove(&hash);
                    }
                }
                Outcome::Failed | Outcome::Counted => {
                    let window = self.window(&mut tables, key, now);
                    if *outcome == Outcome::Failed {
                        window.reserved = window.reserved.saturating_sub(1);
                    }
                    window.failures = window.failures.saturating_add(1);
                }
            }
        }
        Lookup::ready(Ok(()))
    }
}

impl FailureCounts for MemoryCounts {
    fn admit(&self, keys: &[Key], reserve: bool) -> Lookup<Option<Refusal>> {
        MemoryCounts::admit(self, keys, reserve)
    }

    fn settle(&self, keys: &[(Key, Outcome)]) -> Lookup<()> {
        MemoryCounts::settle(self, keys)
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

    fn ready<T>(lookup: Lookup<T>) -> T {
        lookup.into_ready().unwrap().unwrap()
    }

    #[test]
    fn a_full_table_forgets_the_window_that_ends_first() {
        let counts = MemoryCounts::new(2);
        let key = |text: &str, secs| {
            Key::new(
                KeyKind::Username,
                text.into(),
                Limit::new(1, Duration::from_secs(secs)),
            )
        };
        for (name, secs) in [("a", 100), ("b", 50), ("c", 200)] {
            ready(counts.settle(&[(key(name, secs), Outcome::Counted)]));
        }
        let refused = |name| ready(counts.admit(&[key(name, 1)], false));
        assert!(refused("a").is_some());
        assert!(refused("b").is_none(), "b's window ended first: evicted");
        assert!(refused("c").is_some());
        assert_eq!(counts.lock()[1].len(), 2);
    }

    #[test]
    fn reservations_count_until_settled_and_a_full_count_of_them_says_one_second() {
        let counts = MemoryCounts::new(10);
        let key = Key::new(
            KeyKind::Pair,
            "k".into(),
            Limit::new(2, Duration::from_secs(600)),
        );
        let keys = std::slice::from_ref(&key);
        assert_eq!(ready(counts.admit(keys, true)), None);
        assert_eq!(ready(counts.admit(keys, true)), None);
        assert_eq!(
            ready(counts.admit(keys, true)),
            Some((IN_FLIGHT_RETRY, KeyKind::Pair))
        );
        ready(counts.settle(&[(key.clone(), Outcome::GivenBack)]));
        assert_eq!(ready(counts.admit(keys, true)), None);
        for _ in 0..2 {
            ready(counts.settle(&[(key.clone(), Outcome::Failed)]));
        }
        let (wait, _) = ready(counts.admit(keys, true)).unwrap();
        assert!(
            wait > Duration::from_secs(590),
            "{wait:?}: the window's end"
        );
    }

    #[test]
    fn usernames_are_counted_as_the_store_canonicalises_them_and_ipv6_by_network() {
        let throttle = LoginThrottle::new().per_username_and_address(1, Duration::from_secs(60));
        let (headers, extensions) = (HeaderMap::new(), Extensions::new());
        let typed = |name| {
            LoginAttempt::new(name, &headers, &extensions).with_canonical_username("johndoe")
        };
        assert_eq!(
            ready(throttle.check(&typed("JohnDoe"))),
            LoginDecision::Allow
        );
        ready(throttle.failed(&typed("JohnDoe")));
        assert!(matches!(
            ready(throttle.check(&typed("JOHNDOE"))),
            LoginDecision::Refuse { .. }
        ));
        // As typed, when the store says so (the default).
        let exact = LoginAttempt::new("JohnDoe", &headers, &extensions);
        assert_eq!(ready(throttle.check(&exact)), LoginDecision::Allow);

        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.1");
    }
}
