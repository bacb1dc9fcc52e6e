use std::collections::HashMap;
use std::fmt;
use std::future::{ready, Future};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use super::{AccessToken, Grant, TokenStore};
use crate::error::StoreError;
use crate::scope::Scopes;

/// Opaque tokens in process memory: the embedded default, for one process.
///
/// A token is 264 random bits from the operating system, base64url-encoded
/// (44 characters). Its first 22 characters (132 bits) are a lookup key and its last
/// 22 a secret compared in constant time, so neither a hash-table probe nor a
/// comparison leaks how much of a guessed token is right. Tokens are looked up as
/// the text they are, with no decoding on the request path.
///
/// Tokens live in 16 shards, each behind its own lock, picked by the token's id.
/// Expired tokens are dropped by a sweep of a shard when a token is issued into it,
/// at most once per sweep interval (default one minute) per shard, so memory holds
/// at most the tokens issued within one lifetime plus one interval, and a sweep
/// blocks only the sixteenth of the tokens it covers. Clones share the same
/// tokens: keep one to [`revoke`](TokenStore::revoke) tokens on logout.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::{Grant, MemoryTokenStore, Scopes, TokenStore};
///
/// # tokio_test_block_on(async {
/// let store = MemoryTokenStore::new();
/// let grant = Grant {
///     subject: "johndoe".into(),
///     scopes: Scopes::empty(),
///     expires_at: SystemTime::now() + Duration::from_secs(60),
/// };
/// let token = store.issue(grant.clone()).await?;
/// assert_eq!(store.resolve(token.as_str()).await?, Some(grant));
/// store.revoke(token.as_str()).await?;
/// assert_eq!(store.resolve(token.as_str()).await?, None);
/// # Ok::<(), tower_oauth2_password::StoreError>(())
/// # }).unwrap();
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     futures_util::FutureExt::now_or_never(f).unwrap()
/// # }
/// ```
#[derive(Clone)]
pub struct MemoryTokenStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: [Shard; SHARDS],
    sweep_interval: Duration,
}

/// Shards: enough that a sweep of a million tokens stalls no lookup for long, few
/// enough that an empty store stays small.
const SHARDS: usize = 16;

type Tokens = HashMap<TokenId, Entry, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
struct Shard {
    tokens: RwLock<Tokens>,
    /// Seconds since the epoch after which the next `issue` here sweeps.
    next_sweep: AtomicU64,
}

impl Shard {
    fn read(&self) -> RwLockReadGuard<'_, Tokens> {
        // Every update is a single map operation: a poisoned map is still consistent.
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tokens> {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner)
    }
}

struct Entry {
    secret: Secret,
    grant: Grant,
}

/// The secret half of a token, as machine words: compared in constant time with
/// one fold and one `subtle` comparison instead of one per byte.
#[derive(Clone, Copy)]
struct Secret([u64; 3]);

impl Secret {
    fn new(text: &[u8; HALF]) -> Self {
        let mut bytes = [0u8; 24];
        bytes[..HALF].copy_from_slice(text);
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        Self([word(0), word(1), word(2)])
    }

    fn matches(&self, other: &Self) -> bool {
        let diff = self
            .0
            .iter()
            .zip(other.0)
            .fold(0u64, |diff, (a, b)| diff | (a ^ b));
        diff.ct_eq(&0).into()
    }
}

/// Random bytes per token: a multiple of 3, so that base64 has no partial character
/// and the text splits into two halves of equal strength.
const TOKEN_BYTES: usize = 33;
/// Characters per token, and per half.
const TOKEN_CHARS: usize = 44;
const HALF: usize = TOKEN_CHARS / 2;

/// The public half of a token, as text. Ids are random and only the store inserts
/// them, so a few of their own bytes make a good hash: no hashing work, no flooding
/// risk.
#[derive(PartialEq, Eq, Clone, Copy)]
struct TokenId([u8; HALF]);

impl TokenId {
    /// 48 random bits (8 base64 characters) spread over the whole word: hashbrown
    /// reads its control byte from the top bits and its bucket from the low ones.
    fn mixed(&self) -> u64 {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        u64::from_ne_bytes(word).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The shard, from bits the hash table does not favour.
    fn shard(&self) -> usize {
        (self.mixed() >> 40) as usize % SHARDS
    }
}

impl Hash for TokenId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.mixed());
    }
}

#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `TokenId` is hashed with this hasher, and it calls `write_u64`.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }
}

impl MemoryTokenStore {
    /// An empty store sweeping expired tokens at most once a minute.
    pub fn new() -> Self {
        Self::with_sweep_interval(Duration::from_secs(60))
    }

    /// An empty store sweeping expired tokens at most once per `interval`.
    pub fn with_sweep_interval(interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                shards: Default::default(),
                sweep_interval: interval,
            }),
        }
    }

    /// How many tokens are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().len())
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired token now, one shard at a time.
    pub fn purge_expired(&self) {
        let now = SystemTime::now();
        for shard in &self.inner.shards {
            let swept = sweep(&mut shard.write(), now);
            drop(swept);
        }
    }

    fn shard(&self, id: &TokenId) -> &Shard {
        &self.inner.shards[id.shard()]
    }

    fn issue_now(&self, grant: Grant) -> Result<AccessToken, StoreError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::new(e.to_string()))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        let Some((id, secret)) = split(token.as_bytes()) else {
            return Err(StoreError::new("base64 of 33 bytes is not 44 characters"));
        };
        let now = SystemTime::now();
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let shard = self.shard(&id);
        let mut tokens = shard.write();
        let swept = (now_secs >= shard.next_sweep.load(Ordering::Relaxed)).then(|| {
            let next = now_secs.saturating_add(self.inner.sweep_interval.as_secs());
            shard.next_sweep.store(next, Ordering::Relaxed);
            sweep(&mut tokens, now)
        });
        tokens.insert(id, Entry { secret, grant });
        drop(tokens);
        drop(swept);
        Ok(AccessToken::new(token))
    }

    /// The grant behind `token` if its secret matches, expired or not.
    #[inline]
    fn lookup(&self, token: &[u8]) -> Option<Grant> {
        let (id, secret) = split(token)?;
        let tokens = self.shard(&id).read();
        let entry = tokens.get(&id)?;
        entry.secret.matches(&secret).then(|| entry.grant.clone())
    }

    /// The grant behind `token` if its secret matches and it is live.
    fn lookup_live(&self, token: &str) -> Option<Grant> {
        self.lookup(token.as_bytes())
            .filter(|grant| grant.is_live(SystemTime::now()))
    }

    fn revoke_now(&self, token: &str) {
        let Some((id, secret)) = split(token.as_bytes()) else {
            return;
        };
        let mut tokens = self.shard(&id).write();
        if tokens
            .get(&id)
            .is_some_and(|entry| entry.secret.matches(&secret))
        {
            tokens.remove(&id);
        }
    }
}

/// Takes the expired tokens out of one shard, and after a mass expiry moves the
/// live ones to a table of their size. Returns what was taken out, for the caller
/// to drop once it has released the shard's lock: freeing tens of thousands of
/// allocations (and the allocator handing memory back to the system) takes longer
/// than finding them, and lookups must not wait for it.
fn sweep(tokens: &mut Tokens, now: SystemTime) -> (Vec<Grant>, Tokens) {
    // Left in each expired entry instead of its grant: dropping it frees nothing.
    let spent = Grant {
        subject: Arc::from(""),
        scopes: Scopes::empty(),
        expires_at: UNIX_EPOCH,
    };
    let mut expired = Vec::new();
    tokens.retain(|_, entry| {
        let live = entry.grant.is_live(now);
        if !live {
            expired.push(std::mem::replace(&mut entry.grant, spent.clone()));
        }
        live
    });
    let old_table = if tokens.len() < tokens.capacity() / 4 {
        let mut fitted = Tokens::with_capacity_and_hasher(tokens.len(), Default::default());
        fitted.extend(tokens.drain());
        std::mem::replace(tokens, fitted)
    } else {
        Tokens::default()
    };
    (expired, old_table)
}

/// A token's id and secret, if it has the length of one of ours. Anything else in
/// it simply matches no id, or no secret.
fn split(token: &[u8]) -> Option<(TokenId, Secret)> {
    let bytes: &[u8; TOKEN_CHARS] = token.try_into().ok()?;
    let (id, secret) = bytes.split_at(HALF);
    Some((
        TokenId(id.try_into().ok()?),
        Secret::new(secret.try_into().ok()?),
    ))
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("tokens", &self.len())
            .field("sweep_interval", &self.inner.sweep_interval)
            .finish()
    }
}

impl TokenStore for MemoryTokenStore {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<AccessToken, StoreError>> + Send {
        ready(self.issue_now(grant))
    }

    fn resolve(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<Option<Grant>, StoreError>> + Send {
        ready(Ok(self.lookup_live(token)))
    }

    /// Leaves the expiry check to the guard, which makes it anyway: one clock read
    /// per request instead of two.
    fn resolve_now(&self, token: &[u8]) -> Option<Result<Option<Grant>, StoreError>> {
        Some(Ok(self.lookup(token)))
    }

    fn revoke(&self, token: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.revoke_now(token);
        ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scopes;

    fn grant(lifetime: Duration) -> Grant {
        Grant {
            subject: "johndoe".into(),
            scopes: Scopes::empty(),
            expires_at: SystemTime::now() + lifetime,
        }
    }

    #[test]
    fn tokens_are_44_char_base64url_and_unique() {
        let store = MemoryTokenStore::new();
        let a = store.issue_now(grant(Duration::from_secs(60))).unwrap();
        let b = store.issue_now(grant(Duration::from_secs(60))).unwrap();
        assert_eq!(a.as_str().len(), 44);
        assert!(a
            .as_str()
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }

    #[test]
    fn resolve_rejects_tampered_and_foreign_tokens() {
        let store = MemoryTokenStore::new();
        let token = store.issue_now(grant(Duration::from_secs(60))).unwrap();
        let token = token.as_str();
        assert!(store.lookup(token.as_bytes()).is_some());
        // Same id, different secret.
        let mut tampered = token.to_owned();
        let other = if &tampered[40..41] == "A" { "B" } else { "A" };
        tampered.replace_range(40..41, other);
        assert_eq!(store.lookup(tampered.as_bytes()), None);
        for other in ["", "x", &token[..43], &format!("{token}A"), &"!".repeat(44)] {
            assert_eq!(store.lookup(other.as_bytes()), None, "{other}");
        }
        // A revoke with the wrong secret does nothing.
        store.revoke_now(&tampered);
        assert!(store.lookup(token.as_bytes()).is_some());
    }

    #[test]
    fn expired_tokens_do_not_resolve_and_are_swept() {
        let store = MemoryTokenStore::with_sweep_interval(Duration::ZERO);
        let expired = store.issue_now(grant(Duration::ZERO)).unwrap();
        assert_eq!(store.lookup_live(expired.as_str()), None);
        assert!(
            store.lookup(expired.as_str().as_bytes()).is_some(),
            "the guard checks expiry"
        );
        for _ in 0..100 {
            store.issue_now(grant(Duration::ZERO)).unwrap();
        }
        // Each issue first sweeps the shard it lands in: every shard holds at most
        // the last (expired) token issued into it.
        for shard in &store.inner.shards {
            assert!(
                shard.read().len() <= 1,
                "expired tokens are reclaimed on issue"
            );
        }
        store.issue_now(grant(Duration::from_secs(60))).unwrap();
        store.purge_expired();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn debug_does_not_show_tokens() {
        let store = MemoryTokenStore::new();
        let token = store.issue_now(grant(Duration::from_secs(60))).unwrap();
        assert!(!format!("{store:?}").contains(token.as_str()));
        assert_eq!(format!("{token:?}"), "AccessToken(<redacted>)");
    }
}
