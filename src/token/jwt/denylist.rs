//! Revoked JWTs: the [`JtiDenylist`] trait and its in-memory implementation.

use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use crate::clock;
use crate::store::Lookup;
use crate::store::StoreError;

/// Where a [`JwtTokenStore`](super::JwtTokenStore) remembers revoked tokens, by
/// their `jti`, until they would have expired anyway.
///
/// A JWT is valid wherever its signature checks out, so revoking one means telling
/// every replica that verifies it: with several replicas, keep the denylist in a
/// shared store (Redis). [`MemoryJtiDenylist`], the default, serves one process.
///
/// [`is_denied`](Self::is_denied) runs on every guarded request, after the token's
/// signature and claims have been checked: answer [`Lookup::ready`] when the answer
/// is at hand, [`Lookup::pending`] when it must be awaited. An `Err` from either
/// method makes the layer answer 503: a denylist that cannot be read never lets a
/// revoked token through.
pub trait JtiDenylist: Send + Sync + 'static {
    /// Denies `jti` until `until` (the token's expiry, leeway included); the entry
    /// may be forgotten after that. An entry denied again keeps the later of its
    /// two `until`s, never the earlier.
    ///
    /// The entry is a token's `jti` or, for a token of a refresh family, the
    /// family's id (as text: 22 base64url characters, 128 random bits, like a
    /// `jti`): one entry ends every token of the family.
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether `jti` is denied now.
    fn is_denied(&self, jti: &str) -> Lookup<bool>;
}

/// A shared denylist: the application keeps a handle and gives the store a clone.
impl<D: JtiDenylist + ?Sized> JtiDenylist for Arc<D> {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).deny(jti, until)
    }

    #[inline]
    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        (**self).is_denied(jti)
    }
}

/// The default capacity of a [`MemoryJtiDenylist`]: live (not yet expired) entries.
pub const DEFAULT_DENYLIST_CAPACITY: usize = 100_000;

/// How often [`MemoryJtiDenylist::deny`] drops the entries that expired.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// A [`JtiDenylist`] in process memory, for one process: entries are dropped once
/// their token would have expired (swept when a token is denied, at most once a
/// minute, and whenever the list is full).
///
/// It holds at most `capacity` live entries ([`DEFAULT_DENYLIST_CAPACITY`] unless
/// [`with_capacity`](Self::with_capacity) says otherwise). When that many tokens
/// are revoked and unexpired, `deny` fails (the revocation answers 503) rather
/// than forget one: a forgotten entry would bring a revoked token back. Only tokens
/// whose signature checks out reach the list, and the tokens of one refresh
/// family share one entry, so filling it takes that many logins. Clones share the
/// same entries.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::token::jwt::{JtiDenylist, MemoryJtiDenylist};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let denylist = MemoryJtiDenylist::new();
/// denylist.deny("x1Yb3Qc5lm2nqXnO7dLzKg", SystemTime::now() + Duration::from_secs(60)).await?;
/// assert!(denylist.is_denied("x1Yb3Qc5lm2nqXnO7dLzKg").await?);
/// assert!(!denylist.is_denied("another-jti").await?);
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryJtiDenylist {
    inner: Arc<Inner>,
}

struct Inner {
    entries: RwLock<Entries>,
    /// The number of entries, readable without the lock: most requests come while
    /// nothing is revoked, and then skip the lock and the hashing.
    len: AtomicUsize,
    capacity: usize,
}

struct Entries {
    until: HashMap<Box<str>, SystemTime, foldhash::fast::RandomState>,
    next_sweep: SystemTime,
}

impl MemoryJtiDenylist {
    /// An empty denylist holding up to [`DEFAULT_DENYLIST_CAPACITY`] live entries.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_DENYLIST_CAPACITY)
    }

    /// An empty denylist holding up to `capacity` live entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                entries: RwLock::new(Entries {
                    until: HashMap::default(),
                    next_sweep: SystemTime::UNIX_EPOCH,
                }),
                len: AtomicUsize::new(0),
                capacity,
            }),
        }
    }

    /// How many entries are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner.len.load(Ordering::Acquire)
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn deny_now(&self, jti: &str, until: SystemTime) -> Result<(), StoreError> {
        let now = SystemTime::now();
        if until <= now {
            return Ok(()); // expired already: nothing left to deny
        }
        // Every update is a single map operation: a poisoned map is still consistent.
        let mut entries = self
            .inner
            .entries
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let full = entries.until.len() >= self.inner.capacity && !entries.until.contains_key(jti);
        if full || now >= entries.next_sweep {
            entries.until.retain(|_, until| *until > now);
            entries.next_sweep = now + SWEEP_INTERVAL;
        }
        let held = entries.until.len();
        let result = match entries.until.get_mut(jti) {
            Some(until_held) => {
                *until_held = (*until_held).max(until);
                Ok(())
            }
            None if held >= self.inner.capacity => Err(StoreError::new(format!(
                "the JWT denylist is full ({} unexpired revocations)",
                self.inner.capacity
            ))),
            None => {
                entries.until.insert(jti.into(), until);
                Ok(())
            }
        };
        // Under the lock: a reader that sees the new count sees the entry.
        self.inner.len.store(entries.until.len(), Ordering::Release);
        result
    }

    #[inline]
    fn is_denied_now(&self, jti: &str) -> bool {
        if self.inner.len.load(Ordering::Acquire) == 0 {
            return false;
        }
        let entries = self
            .inner
            .entries
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        entries
            .until
            .get(jti)
            .is_some_and(|until| *until > clock::now())
    }
}

impl Default for MemoryJtiDenylist {
    fn default() -> Self {
        Self::new()
    }
}

impl JtiDenylist for MemoryJtiDenylist {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        ready(self.deny_now(jti, until))
    }

    /// Always ready.
    #[inline]
    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        Lookup::ready(Ok(self.is_denied_now(jti)))
    }
}

impl fmt::Debug for MemoryJtiDenylist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryJtiDenylist")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny(list: &MemoryJtiDenylist, jti: &str, from_now: Duration) -> Result<(), StoreError> {
        list.deny_now(jti, SystemTime::now() + from_now)
    }

    #[test]
    fn entries_are_forgotten_after_their_expiry() {
        let list = MemoryJtiDenylist::new();
        deny(&list, "a", Duration::from_secs(3600)).unwrap();
        list.deny_now("gone", SystemTime::now() - Duration::from_secs(1))
            .unwrap();
        assert!(list.is_denied_now("a"));
        assert!(
            !list.is_denied_now("gone"),
            "an expired token needs no entry"
        );
        assert_eq!(list.len(), 1);
    }

    #[test]
    fn a_full_list_refuses_rather_than_forgets() {
        let list = MemoryJtiDenylist::with_capacity(2);
        deny(&list, "a", Duration::from_secs(3600)).unwrap();
        deny(&list, "b", Duration::from_secs(3600)).unwrap();
        assert!(deny(&list, "c", Duration::from_secs(3600)).is_err());
        deny(&list, "a", Duration::from_secs(7200)).expect("a held entry can be renewed");
        assert!(list.is_denied_now("a") && list.is_denied_now("b"));
        assert!(!list.is_denied_now("c"));
    }

    #[test]
    fn a_full_list_makes_room_from_expired_entries() {
        let list = MemoryJtiDenylist::with_capacity(1);
        deny(&list, "short", Duration::from_millis(50)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        deny(&list, "next", Duration::from_secs(3600)).expect("the expired entry made room");
        assert_eq!(list.len(), 1);
        assert!(list.is_denied_now("next"));
    }
}
