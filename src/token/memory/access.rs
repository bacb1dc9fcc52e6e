use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{ready, Future};
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hashbrown::HashTable;
use subtle::ConstantTimeEq;
use zeroize::Zeroize;

use crate::clock;
use crate::metrics;
use crate::scope::Scopes;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{
    AccessToken, BearerToken, FamilyId, Grant, IssuedToken, JwkThumbprint, Revocation,
    TokenTypeHint, DEFAULT_MAX_TOKENS_PER_FAMILY,
};
use crate::token::store::TokenStore;
use crate::user::subject::Subject;

/// Opaque tokens in process memory: the embedded default, for one process.
///
/// A token is 264 random bits from the operating system, base64url-encoded
/// (44 characters). Its first 22 characters (132 bits) are a lookup key and its last
/// 22 a secret compared in constant time, so neither a hash-table probe nor a
/// comparison leaks how much of a guessed token is right. Tokens are looked up as
/// the text they are, with no decoding on the request path.
///
/// Tokens live in 16 shards, each behind its own lock, picked by the token's id.
/// Expired tokens are dropped by sweeps: each issue sweeps a batch of 1024 tokens
/// of the shard it lands in and of the next in turn, each shard once per sweep
/// interval (default one minute) and until its sweep reaches its end, so every
/// shard is swept whether or not tokens land in it, and memory holds at most the
/// tokens issued within one lifetime plus one interval (and the issues a sweep
/// takes: about 500 for a million expired tokens). A lookup waits for at most
/// one batch of one shard, an issue for two batches.
///
/// A live token takes about 180 bytes at a million tokens (a token id and secret,
/// expiry, stamp, a subject of up to 23 bytes, scopes; its user's list, the
/// indexes): the guide's performance page has the figures. A longer subject, any
/// scope, a refresh family or a DPoP key binding add an allocation.
///
/// A user holds at most 100 live tokens by default
/// ([`with_max_tokens_per_user`](Self::with_max_tokens_per_user)): a new login
/// beyond that revokes the user's oldest token, so a script logging in forever
/// cannot grow memory without bound. A refresh family holds at most 10
/// ([`with_max_tokens_per_family`](Self::with_max_tokens_per_family)): a refresh
/// beyond that revokes the family's oldest. [`revoke_family`](TokenStore::revoke_family)
/// ends a family's tokens at once. Clones share the same tokens: keep one to
/// [`revoke`](TokenStore::revoke) tokens on logout.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::scope::Scopes;
/// use tower_oauth2_password::token::{Grant, TokenStore};
/// use tower_oauth2_password::token::memory::MemoryTokenStore;
///
/// # tokio_test_block_on(async {
/// let store = MemoryTokenStore::new();
/// let grant = Grant::new("johndoe", Scopes::empty(), SystemTime::now() + Duration::from_secs(60));
/// let issued = store.issue(grant).await?;
/// let token = issued.access_token.as_str();
/// let resolved = store.resolve(token.into()).await?.expect("a live token");
/// assert_eq!(resolved.subject, "johndoe");
/// assert_eq!(resolved.expires_at, issued.expires_at);
/// store.revoke(token.into(), None).await?;
/// assert_eq!(store.resolve(token.into()).await?, None);
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
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
    /// Who holds which tokens. Locked before a shard, never while one is.
    lists: Mutex<Lists>,
    /// Seeded per store: nobody can aim subjects at one list.
    subject_hasher: foldhash::fast::RandomState,
    max_per_user: AtomicUsize,
    max_per_family: AtomicUsize,
    /// The shard the next issue sweeps besides its own, if it is due.
    sweep_turn: AtomicUsize,
}

/// Default cap on one user's live tokens.
const DEFAULT_MAX_TOKENS_PER_USER: usize = 100;

#[derive(Default)]
struct Lists {
    /// Each user's live tokens, oldest first, to evict the oldest beyond
    /// `max_per_user`; keyed by a hash of the subject, so a user costs no copy of
    /// it. Dense tables: a user holding one token costs 40 bytes and an index
    /// bucket, not a half-empty hash table's worth; 16 of them, so that growing
    /// or shrinking one rehashes a sixteenth of the users while issues wait.
    users: [Dense<UserTokens>; SHARDS],
    /// Each refresh family's live tokens, oldest first: to end them together, and
    /// to evict the oldest beyond `max_per_family`.
    families: HashMap<FamilyId, TokenIds, foldhash::fast::FixedState>,
    /// Families ended, and until when a token issued for one is not stored (a
    /// refresh racing the reuse that ended its family).
    ended: HashMap<FamilyId, SystemTime, foldhash::fast::FixedState>,
    /// `ended` is swept of expired entries once it holds this many.
    sweep_ended_at: usize,
}

/// One user's tokens, under the hash of their subject.
struct UserTokens {
    user: u64,
    ids: TokenIds,
}

impl Keyed for UserTokens {
    type Key = u64;

    fn key(&self) -> &u64 {
        &self.user
    }

    fn hash(user: &u64) -> u64 {
        // Already a seeded hash of the subject.
        *user
    }
}

/// One user's (or family's) token ids, oldest first. Most hold one token: it is
/// kept inline, with no allocation of its own.
enum TokenIds {
    One(TokenId),
    Many(VecDeque<TokenId>),
}

impl TokenIds {
    fn push(&mut self, id: TokenId) {
        match self {
            Self::One(first) => *self = Self::Many(VecDeque::from([*first, id])),
            Self::Many(ids) => ids.push_back(id),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::One(_) => 1,
            Self::Many(ids) => ids.len(),
        }
    }

    /// Takes out the oldest id (a `One` is left to its owner to remove).
    fn pop_oldest(&mut self) -> Option<TokenId> {
        match self {
            Self::One(_) => None,
            Self::Many(ids) => ids.pop_front(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = &TokenId> {
        let (one, many) = match self {
            Self::One(id) => (Some(id), None),
            Self::Many(ids) => (None, Some(ids.iter())),
        };
        one.into_iter().chain(many.into_iter().flatten())
    }

    /// Keeps the ids `keep` says to; whether any are left.
    fn retain(&mut self, mut keep: impl FnMut(&TokenId) -> bool) -> bool {
        match self {
            Self::One(id) => keep(id),
            Self::Many(ids) => {
                ids.retain(|id| keep(id));
                !ids.is_empty()
            }
        }
    }

    /// Records `id` as the newest, and takes out (to revoke) the oldest ones
    /// beyond `max`.
    fn push_beyond(&mut self, id: TokenId, max: usize) -> Vec<TokenId> {
        self.push(id);
        let mut beyond = Vec::new();
        while self.len() > max {
            let Some(oldest) = self.pop_oldest() else {
                break;
            };
            beyond.push(oldest);
        }
        beyond
    }
}

/// Shards: enough that a sweep of a million tokens stalls no lookup for long, few
/// enough that an empty store stays small.
const SHARDS: usize = 16;

/// Tokens a sweep looks at before it lets go of the shard's lock (and the issue
/// that runs it returns): a sweep of a million expired tokens is spread over
/// about 500 issues, each stalling lookups of one shard for a fraction of a
/// millisecond.
const SWEEP_BATCH: usize = 1024;

/// One shard's tokens, and how far the sweep in progress has got.
#[derive(Default)]
struct Tokens {
    table: Dense<Slot>,
    /// Where the sweep in progress goes on (0: at the start of the next).
    sweep_at: usize,
}

#[derive(Default)]
struct Shard {
    tokens: RwLock<Tokens>,
    /// Seconds since the epoch after which the next `issue` here sweeps.
    next_sweep: AtomicU64,
}

impl Shard {
    #[inline]
    fn read(&self) -> RwLockReadGuard<'_, Tokens> {
        // Every update is a single table operation: a poisoned table is still consistent.
        self.tokens.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Tokens> {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One token as held: 120 bytes, none of them on the heap for most tokens (a
/// subject of up to 23 bytes, no scope, no family, no key binding).
struct Slot {
    id: TokenId,
    secret: Secret,
    expires_at: SystemTime,
    stamp: u64,
    subject: Subject,
    scopes: Scopes,
    /// What few tokens carry: a family (refresh tokens on) or a key binding
    /// (DPoP). Boxed, so that the others do not pay their 50 bytes.
    rare: Option<Box<Rare>>,
}

struct Rare {
    family: Option<FamilyId>,
    key_binding: Option<JwkThumbprint>,
}

impl Slot {
    fn new(id: TokenId, secret: Secret, grant: Grant) -> Self {
        let Grant {
            subject,
            scopes,
            expires_at,
            stamp,
            family,
            key_binding,
        } = grant;
        let rare = (family.is_some() || key_binding.is_some()).then(|| {
            Box::new(Rare {
                family,
                key_binding,
            })
        });
        Self {
            id,
            secret,
            expires_at,
            stamp,
            subject,
            scopes,
            rare,
        }
    }

    fn family(&self) -> Option<FamilyId> {
        self.rare.as_ref().and_then(|rare| rare.family)
    }

    #[inline]
    fn grant(&self) -> Grant {
        let (family, key_binding) = match &self.rare {
            None => (None, None),
            Some(rare) => (rare.family, rare.key_binding),
        };
        Grant {
            subject: self.subject.clone(),
            scopes: self.scopes.clone(),
            expires_at: self.expires_at,
            stamp: self.stamp,
            family,
            key_binding,
        }
    }
}

impl Keyed for Slot {
    type Key = TokenId;

    fn key(&self) -> &TokenId {
        &self.id
    }

    fn hash(id: &TokenId) -> u64 {
        id.mixed()
    }
}

/// Items per chunk of a [`Chunks`]: 123 KB of tokens, freed and allocated whole.
const CHUNK_BITS: u32 = 10;
const CHUNK: usize = 1 << CHUNK_BITS;

/// Items side by side, in chunks of [`CHUNK`]: every chunk but the last is full,
/// and the last grows by doubling up to a chunk. A single `Vec` doubling its
/// capacity would leave up to half of it spare (a third, growing by half), and
/// copy everything on each growth under the shard's lock; chunks leave at most
/// one chunk's worth spare and copy at most one chunk.
struct Chunks<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunks<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Chunks<T> {
    fn len(&self) -> usize {
        self.len
    }

    /// Items the chunks have room for.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.chunks.iter().map(Vec::capacity).sum()
    }

    #[inline]
    fn get(&self, at: usize) -> Option<&T> {
        self.chunks.get(at >> CHUNK_BITS)?.get(at & (CHUNK - 1))
    }

    fn get_mut(&mut self, at: usize) -> Option<&mut T> {
        self.chunks
            .get_mut(at >> CHUNK_BITS)?
            .get_mut(at & (CHUNK - 1))
    }

    fn push(&mut self, item: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK => {
                if last.len() == last.capacity() {
                    last.reserve_exact(last.len().max(4).min(CHUNK - last.len()));
                }
                last.push(item);
            }
            _ => {
                // The first chunk starts small: a store of a few tokens stays small.
                let mut chunk = Vec::with_capacity(if self.chunks.is_empty() { 4 } else { CHUNK });
                chunk.push(item);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    /// Takes out the item at `at`, and moves the last one into its place.
    fn swap_remove(&mut self, at: usize) -> Option<T> {
        if at >= self.len {
            return None;
        }
        let last = self.chunks.last_mut()?.pop()?;
        self.len -= 1;
        if self.chunks.last().is_some_and(Vec::is_empty) {
            self.chunks.pop();
        }
        if at == self.len {
            return Some(last);
        }
        self.get_mut(at).map(|item| std::mem::replace(item, last))
    }

    /// Whether under a quarter of the room is used.
    fn is_sparse(&self) -> bool {
        self.chunks
            .last()
            .is_some_and(|last| last.len() < last.capacity() / 4)
            || self.chunks.capacity() > 4 * self.chunks.len().max(1)
    }

    fn shrink_to_fit(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
        self.chunks.shrink_to_fit();
    }

    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = &T> {
        self.chunks.iter().flatten()
    }
}

/// What [`Dense`] holds: items that know their key.
trait Keyed {
    type Key: PartialEq;

    fn key(&self) -> &Self::Key;

    /// The key's hash, as the index uses it.
    fn hash(key: &Self::Key) -> u64;
}

/// A table of items found by key: the items side by side in [`Chunks`], and a
/// hash index of their positions (4 bytes and a control byte a bucket). A hash
/// map holding the items themselves keeps each in a bucket, and its buckets are
/// between 44 % and 87.5 % full: at a million tokens in 16 shards, 48 %, so
/// every byte of an item cost two. Here an item costs its size once, and 5 to 11
/// bytes of index.
///
/// Removing an item moves the last one into its place.
struct Dense<T> {
    index: HashTable<u32>,
    items: Chunks<T>,
}

impl<T> Default for Dense<T> {
    fn default() -> Self {
        Self {
            index: HashTable::new(),
            items: Chunks::default(),
        }
    }
}

/// The most items a shrinking index rehashes (well under a millisecond).
const REHASH_MAX: usize = 16_384;

/// A table already holds `u32::MAX` items.
struct Full;

impl<T: Keyed> Dense<T> {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn position(&self, key: &T::Key) -> Option<usize> {
        let items = &self.items;
        let found = self.index.find(T::hash(key), |&at| {
            items.get(at as usize).is_some_and(|item| item.key() == key)
        })?;
        Some(*found as usize)
    }

    /// The item under `key`: found once, by the index's comparison (looking it up
    /// again by position would cost the guard's lookup a second chunk fetch).
    #[inline]
    fn get(&self, key: &T::Key) -> Option<&T> {
        let mut found = None;
        self.index
            .find(T::hash(key), |&at| match self.items.get(at as usize) {
                Some(item) if item.key() == key => {
                    found = Some(item);
                    true
                }
                _ => false,
            })?;
        found
    }

    fn get_mut(&mut self, key: &T::Key) -> Option<&mut T> {
        let at = self.position(key)?;
        self.items.get_mut(at)
    }

    /// Adds `item`, whose key the table must not hold yet.
    fn insert(&mut self, item: T) -> Result<(), Full> {
        let at = u32::try_from(self.items.len()).map_err(|_| Full)?;
        let hash = T::hash(item.key());
        self.items.push(item);
        let items = &self.items;
        self.index.insert_unique(hash, at, |&at| rehash(items, at));
        Ok(())
    }

    fn remove(&mut self, key: &T::Key) -> Option<T> {
        let at = self.position(key)?;
        self.remove_at(at)
    }

    /// Takes out the item at `at`, and moves the last one into its place.
    fn remove_at(&mut self, at: usize) -> Option<T> {
        let hash = T::hash(self.items.get(at)?.key());
        let position = u32::try_from(at).ok()?;
        if let Ok(entry) = self.index.find_entry(hash, |&p| p == position) {
            entry.remove();
        }
        let item = self.items.swap_remove(at)?;
        if let Some(moved) = self.items.get(at) {
            let last = u32::try_from(self.items.len()).ok()?;
            if let Some(p) = self.index.find_mut(T::hash(moved.key()), |&p| p == last) {
                *p = position;
            }
        }
        Some(item)
    }

    /// Gives memory back once under a quarter of it is used (after a mass
    /// expiry).
    fn shrink_if_sparse(&mut self) {
        if self.items.is_sparse() {
            self.items.shrink_to_fit();
        }
        // A smaller index rehashes every item left, under the caller's lock: only
        // once few are left (a big index of few items costs 5 bytes a bucket).
        if self.index.capacity() > 4 * self.items.len().max(16) && self.items.len() <= REHASH_MAX {
            let items = &self.items;
            self.index.shrink_to_fit(|&at| rehash(items, at));
        }
    }
}

/// The hash of the item at `at`, for the index to move it when it grows or shrinks.
fn rehash<T: Keyed>(items: &Chunks<T>, at: u32) -> u64 {
    items.get(at as usize).map_or(0, |item| T::hash(item.key()))
}

/// Half a token's text as three machine words (the last two bytes zero). Words,
/// not a 22-byte array: an array is copied as overlapping odd-sized pieces, and
/// reading the copy back word by word stalls on store-to-load forwarding.
#[inline]
fn words(text: &[u8; HALF]) -> [u64; 3] {
    let mut bytes = [0u8; 24];
    bytes[..HALF].copy_from_slice(text);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(w)
    };
    [word(0), word(1), word(2)]
}

/// The secret half of a token: compared in constant time with one fold and one
/// `subtle` comparison instead of one per byte.
#[derive(Clone, Copy)]
struct Secret([u64; 3]);

impl Secret {
    #[inline]
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

/// The public half of a token, as its text's words. Ids are random and only the
/// store inserts them, so a few of their own bytes make a good hash: no hashing
/// work, no flooding risk.
#[derive(PartialEq, Eq, Clone, Copy)]
struct TokenId([u64; 3]);

impl TokenId {
    /// 48 random bits (8 base64 characters) spread over the whole word: hashbrown
    /// reads its control byte from the top bits and its bucket from the low ones.
    fn mixed(&self) -> u64 {
        self.0[0].wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    /// The shard, from bits the hash table does not favour.
    fn shard(&self) -> usize {
        (self.mixed() >> 40) as usize % SHARDS
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
                lists: Mutex::default(),
                subject_hasher: Default::default(),
                sweep_turn: AtomicUsize::new(0),
                max_per_user: AtomicUsize::new(DEFAULT_MAX_TOKENS_PER_USER),
                max_per_family: AtomicUsize::new(DEFAULT_MAX_TOKENS_PER_FAMILY),
            }),
        }
    }

    /// Keeps at most `max` live tokens per user (default 100, at least 1): issuing
    /// one more revokes the user's oldest. Clones share the setting.
    pub fn with_max_tokens_per_user(self, max: usize) -> Self {
        self.inner.max_per_user.store(max.max(1), Ordering::Relaxed);
        self
    }

    /// Keeps at most `max` live tokens per refresh family (default 10, at least
    /// 1): issuing one more (a refresh) revokes the family's oldest. Clones share
    /// the setting.
    pub fn with_max_tokens_per_family(self, max: usize) -> Self {
        self.inner
            .max_per_family
            .store(max.max(1), Ordering::Relaxed);
        self
    }

    /// How many tokens are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|shard| shard.read().table.len())
            .sum()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired token now, one shard at a time, and each shard a batch
    /// of tokens at a time (lookups wait for one batch at most).
    pub fn purge_expired(&self) {
        let now = SystemTime::now();
        for shard in &self.inner.shards {
            shard.write().sweep_at = 0;
            while !self.sweep_batch(shard, now) {}
        }
        if metrics::counts_tokens() {
            metrics::live_tokens("memory_access", self.len());
        }
    }

    /// Sweeps the next batch of one shard's tokens, then takes the expired ones
    /// off their users' lists and frees them, with the shard's lock released.
    /// Whether the shard's sweep is over.
    fn sweep_batch(&self, shard: &Shard, now: SystemTime) -> bool {
        let (expired, done) = shard.write().sweep(now);
        if !expired.is_empty() {
            let mut lists = self.lists();
            for slot in &expired {
                lists.forget(self.user_key(&slot.subject), slot.family(), &slot.id);
            }
            // After a mass expiry, give the lists' tables back too.
            for users in &mut lists.users {
                users.shrink_if_sparse();
            }
            if lists.families.len() < lists.families.capacity() / 4 {
                lists.families.shrink_to_fit();
            }
        }
        // Freed here, after both locks: freeing is slower than finding.
        drop(expired);
        done
    }

    /// The key of `subject`'s list of tokens.
    fn user_key(&self, subject: &Subject) -> u64 {
        self.inner.subject_hasher.hash_one(subject.as_str())
    }

    fn shard(&self, id: &TokenId) -> &Shard {
        &self.inner.shards[id.shard()]
    }

    fn issue_now(&self, grant: Grant) -> Result<IssuedToken, StoreError> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::new(e.to_string()))?;
        let token = URL_SAFE_NO_PAD.encode(bytes);
        bytes.zeroize();
        let Some((id, secret)) = split(token.as_bytes()) else {
            return Err(StoreError::new("base64 of 33 bytes is not 44 characters"));
        };
        let now = SystemTime::now();
        let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.sweep_due_shards(&id, now, now_secs);
        let expires_at = grant.expires_at;
        let user = self.user_key(&grant.subject);
        let family = grant.family;
        let mut lists = self.lists();
        // Under the lists' lock: a family ended now cannot miss this token.
        if family.is_some_and(|family| lists.has_ended(family, now)) {
            // The family was ended while this token was being issued: it is
            // never stored, and never resolves.
            return Ok(IssuedToken::new(AccessToken::new(token), expires_at));
        }
        {
            let mut tokens = self.shard(&id).write();
            if tokens.table.get(&id).is_some() {
                // 132 random bits met an id already held: never seen, refused.
                return Err(StoreError::new("a new token's id is already taken"));
            }
            tokens
                .table
                .insert(Slot::new(id, secret, grant))
                .map_err(|Full| StoreError::new("a token shard is full"))?;
        }
        self.evict_beyond_caps(&mut lists, user, family, id);
        drop(lists);
        if metrics::counts_tokens() {
            // 16 shard read locks: next to a login's password hash, nothing.
            metrics::live_tokens("memory_access", self.len());
        }
        Ok(IssuedToken::new(AccessToken::new(token), expires_at))
    }

    /// Sweeps a batch of the shard the new token lands in, and of the next one in
    /// turn, each if its sweep is under way or it was not swept for an interval:
    /// every shard's expired tokens go, a batch at a time, whether or not new ones
    /// land in it, and one issue sweeps at most two batches.
    fn sweep_due_shards(&self, landing: &TokenId, now: SystemTime, now_secs: u64) {
        let next = now_secs.saturating_add(self.inner.sweep_interval.as_secs());
        let turn = self.inner.sweep_turn.fetch_add(1, Ordering::Relaxed) % SHARDS;
        for shard in [self.shard(landing), &self.inner.shards[turn]] {
            if now_secs >= shard.next_sweep.load(Ordering::Relaxed) && self.sweep_batch(shard, now)
            {
                shard.next_sweep.store(next, Ordering::Relaxed);
            }
        }
    }

    /// Records `id` as the newest token of the user whose subject hashes to
    /// `user`, and of `family`, and revokes their oldest ones beyond the caps.
    fn evict_beyond_caps(
        &self,
        lists: &mut Lists,
        user: u64,
        family: Option<FamilyId>,
        id: TokenId,
    ) {
        let max = self.inner.max_per_user.load(Ordering::Relaxed);
        let users = &mut lists.users[user_shard(user)];
        let beyond = match users.get_mut(&user) {
            Some(listed) => listed.ids.push_beyond(id, max),
            None => {
                // No more than `u32::MAX` users: at worst, a user not capped.
                let _ = users.insert(UserTokens {
                    user,
                    ids: TokenIds::One(id),
                });
                Vec::new()
            }
        };
        for oldest in beyond {
            if let Some(slot) = self.shard(&oldest).write().table.remove(&oldest) {
                if let Some(family) = slot.family() {
                    forget(&mut lists.families, family, &oldest);
                }
            }
        }
        let Some(family) = family else {
            return;
        };
        let max = self.inner.max_per_family.load(Ordering::Relaxed);
        let beyond = match lists.families.get_mut(&family) {
            Some(ids) => ids.push_beyond(id, max),
            None => {
                lists.families.insert(family, TokenIds::One(id));
                Vec::new()
            }
        };
        for oldest in beyond {
            if let Some(slot) = self.shard(&oldest).write().table.remove(&oldest) {
                forget_user(&mut lists.users, self.user_key(&slot.subject), &oldest);
            }
        }
    }

    /// Who holds which tokens (each update leaves the lists consistent: a
    /// poisoned lock still guards consistent lists).
    fn lists(&self) -> std::sync::MutexGuard<'_, Lists> {
        self.inner
            .lists
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Revokes every token of `family`, and refuses to store one issued for it
    /// until `until`.
    fn revoke_family_now(&self, family: FamilyId, until: SystemTime) {
        let mut lists = self.lists();
        lists.end(family, until, SystemTime::now());
        let Some(ids) = lists.families.remove(&family) else {
            return;
        };
        for id in ids.iter() {
            if let Some(slot) = self.shard(id).write().table.remove(id) {
                forget_user(&mut lists.users, self.user_key(&slot.subject), id);
            }
        }
    }

    /// The grant behind `token` if its secret matches and it is live (by the
    /// guard's coarse clock: a memory read, not a clock call per request).
    #[inline]
    fn lookup(&self, token: &[u8]) -> Option<Grant> {
        let (id, secret) = split(token)?;
        let now = clock::now();
        let tokens = self.shard(&id).read();
        let slot = tokens.table.get(&id)?;
        (slot.secret.matches(&secret) && now < slot.expires_at).then(|| slot.grant())
    }

    fn revoke_now(&self, token: &[u8]) {
        let Some((id, secret)) = split(token) else {
            return;
        };
        let mut tokens = self.shard(&id).write();
        let Some(at) = tokens.table.position(&id) else {
            return;
        };
        if tokens
            .table
            .items
            .get(at)
            .is_some_and(|slot| slot.secret.matches(&secret))
        {
            let removed = tokens.table.remove_at(at);
            drop(tokens);
            if let Some(slot) = removed {
                self.lists()
                    .forget(self.user_key(&slot.subject), slot.family(), &id);
            }
        }
    }
}

impl Tokens {
    /// Takes the expired tokens out of the next batch of this shard, and gives
    /// memory back once under a quarter of it is used. Returns what was taken out,
    /// for the caller to drop once it has released the shard's lock (freeing takes
    /// longer than finding, and lookups must not wait for it), and whether the
    /// sweep reached the end of the shard.
    fn sweep(&mut self, now: SystemTime) -> (Vec<Slot>, bool) {
        let mut expired = Vec::new();
        let mut at = self.sweep_at;
        for _ in 0..SWEEP_BATCH {
            let Some(slot) = self.table.items.get(at) else {
                break;
            };
            if now < slot.expires_at {
                at += 1;
            } else if let Some(slot) = self.table.remove_at(at) {
                // The last token moved here: looked at next.
                expired.push(slot);
            }
        }
        let done = at >= self.table.len();
        self.sweep_at = if done { 0 } else { at };
        if done {
            // Once a sweep, at its end: then a shrink rehashes only live tokens.
            self.table.shrink_if_sparse();
        }
        (expired, done)
    }
}

impl Lists {
    /// Takes `id` off the lists of the user keyed `user` and of `family`.
    fn forget(&mut self, user: u64, family: Option<FamilyId>, id: &TokenId) {
        forget_user(&mut self.users, user, id);
        if let Some(family) = family {
            forget(&mut self.families, family, id);
        }
    }

    /// Whether `family` was ended and its tokens are still refused at `now`.
    fn has_ended(&self, family: FamilyId, now: SystemTime) -> bool {
        self.ended.get(&family).is_some_and(|until| now < *until)
    }

    /// Records that `family` ended, until `until`; forgets the ends that are
    /// over, now and then (each time their number has doubled).
    fn end(&mut self, family: FamilyId, until: SystemTime, now: SystemTime) {
        if self.ended.len() >= self.sweep_ended_at {
            self.ended.retain(|_, until| now < *until);
            self.sweep_ended_at = (self.ended.len() * 2).max(64);
        }
        let held = self.ended.entry(family).or_insert(until);
        *held = (*held).max(until);
    }
}

/// Takes `id` off the list keyed `key`.
fn forget<K: Hash + Eq, S: BuildHasher>(lists: &mut HashMap<K, TokenIds, S>, key: K, id: &TokenId) {
    if let Some(ids) = lists.get_mut(&key) {
        if !ids.retain(|kept| kept != id) {
            lists.remove(&key);
        }
    }
}

/// Takes `id` off the list of the user keyed `user`.
fn forget_user(users: &mut [Dense<UserTokens>; SHARDS], user: u64, id: &TokenId) {
    let users = &mut users[user_shard(user)];
    if let Some(listed) = users.get_mut(&user) {
        if !listed.ids.retain(|kept| kept != id) {
            users.remove(&user);
        }
    }
}

/// Which of the 16 user tables holds the user keyed `user`: from bits neither
/// the table's bucket (the low ones) nor its control byte (the top 7) uses.
fn user_shard(user: u64) -> usize {
    (user >> 32) as usize % SHARDS
}

/// A token's id and secret, if it has the length of one of ours. Anything else in
/// it simply matches no id, or no secret. Inlined: out of line it was a function
/// of its own on every guarded request's path.
#[inline]
fn split(token: &[u8]) -> Option<(TokenId, Secret)> {
    let bytes: &[u8; TOKEN_CHARS] = token.try_into().ok()?;
    let (id, secret) = bytes.split_at(HALF);
    Some((
        TokenId(words(id.try_into().ok()?)),
        Secret(words(secret.try_into().ok()?)),
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
            .field(
                "max_tokens_per_user",
                &self.inner.max_per_user.load(Ordering::Relaxed),
            )
            .field(
                "max_tokens_per_family",
                &self.inner.max_per_family.load(Ordering::Relaxed),
            )
            .finish()
    }
}

impl TokenStore for MemoryTokenStore {
    fn issue(&self, grant: Grant) -> impl Future<Output = Result<IssuedToken, StoreError>> + Send {
        ready(self.issue_now(grant))
    }

    /// Always ready.
    #[inline]
    fn resolve(&self, token: BearerToken<'_>) -> Lookup<Option<Grant>> {
        Lookup::ready(Ok(self.lookup(token.as_bytes())))
    }

    /// Only access tokens live here; `hint` changes nothing.
    fn revoke(
        &self,
        token: BearerToken<'_>,
        _hint: Option<TokenTypeHint>,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        self.revoke_now(token.as_bytes());
        ready(Ok(Revocation::Revoked))
    }

    fn revoke_family(
        &self,
        family: &FamilyId,
        until: SystemTime,
    ) -> impl Future<Output = Result<Revocation, StoreError>> + Send {
        self.revoke_family_now(*family, until);
        ready(Ok(Revocation::Revoked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(lifetime: Duration) -> Grant {
        Grant::new("johndoe", Scopes::empty(), SystemTime::now() + lifetime)
    }

    fn issue(store: &MemoryTokenStore, lifetime: Duration) -> String {
        let issued = store.issue_now(grant(lifetime)).unwrap();
        issued.access_token.as_str().to_owned()
    }

    /// A token that expired an hour ago: expired by any clock, the guard's coarse
    /// one included (which lags when its thread is starved on a loaded machine).
    fn issue_expired(store: &MemoryTokenStore) -> String {
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        let grant = Grant::new("johndoe", Scopes::empty(), an_hour_ago);
        let issued = store.issue_now(grant).unwrap();
        issued.access_token.as_str().to_owned()
    }

    impl MemoryTokenStore {
        /// How many tokens the per-user lists hold.
        fn listed_for_users(&self) -> usize {
            let lists = self.lists();
            let users = lists.users.iter().flat_map(|users| users.items.iter());
            users.map(|listed| listed.ids.len()).sum()
        }
    }

    #[test]
    fn tokens_are_44_char_base64url_and_unique() {
        let store = MemoryTokenStore::new();
        let a = issue(&store, Duration::from_secs(60));
        let b = issue(&store, Duration::from_secs(60));
        assert_eq!(a.len(), 44);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(a, b);
    }

    #[test]
    fn a_revoke_with_the_wrong_secret_does_nothing() {
        let store = MemoryTokenStore::new();
        let token = issue(&store, Duration::from_secs(60));
        let mut tampered = token.clone().into_bytes();
        tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
        store.revoke_now(&tampered);
        assert!(store.lookup(token.as_bytes()).is_some());
    }

    #[test]
    fn expired_tokens_do_not_resolve_and_are_swept() {
        let store = MemoryTokenStore::with_sweep_interval(Duration::ZERO);
        let expired = issue_expired(&store);
        assert_eq!(store.lookup(expired.as_bytes()), None);
        for _ in 0..100 {
            issue_expired(&store);
        }
        // Each issue sweeps its own shard and the next in turn: at most the
        // expired tokens issued in the last 16 issues are left.
        assert!(store.len() <= 16, "expired tokens are reclaimed on issue");
        issue(&store, Duration::from_secs(60));
        store.purge_expired();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn expired_tokens_are_swept_in_shards_no_new_token_lands_in() {
        let store = MemoryTokenStore::with_sweep_interval(Duration::ZERO);
        let expired: Vec<_> = (0..64).map(|_| issue_expired(&store)).collect();
        // Live tokens land where they may; in 16 issues every shard's turn comes.
        let live: Vec<_> = (0..16)
            .map(|_| issue(&store, Duration::from_secs(60)))
            .collect();
        assert_eq!(store.len(), 16);
        assert!(live
            .iter()
            .all(|token| store.lookup(token.as_bytes()).is_some()));
        assert!(expired
            .iter()
            .all(|token| store.lookup(token.as_bytes()).is_none()));
        // The per-user lists lose them too.
        assert_eq!(store.listed_for_users(), 16);
    }

    #[test]
    fn a_user_beyond_the_cap_loses_their_oldest_tokens() {
        let store = MemoryTokenStore::new().with_max_tokens_per_user(3);
        let tokens: Vec<_> = (0..5)
            .map(|_| issue(&store, Duration::from_secs(60)))
            .collect();
        let live: Vec<bool> = tokens
            .iter()
            .map(|token| store.lookup(token.as_bytes()).is_some())
            .collect();
        assert_eq!(live, [false, false, true, true, true]);
        assert_eq!(store.len(), 3);
        // Other users are not affected.
        let other = store
            .issue_now(Grant::new(
                "alice",
                Scopes::empty(),
                SystemTime::now() + Duration::from_secs(60),
            ))
            .unwrap();
        assert!(store
            .lookup(other.access_token.as_str().as_bytes())
            .is_some());
        assert_eq!(store.len(), 4);
        // A revoked token no longer counts: the next one evicts nothing.
        store.revoke_now(tokens[4].as_bytes());
        issue(&store, Duration::from_secs(60));
        assert!(store.lookup(tokens[2].as_bytes()).is_some());
        assert!(store.lookup(tokens[3].as_bytes()).is_some());
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn families_are_capped_ended_and_forgotten_with_their_tokens() {
        let store = MemoryTokenStore::new()
            .with_max_tokens_per_family(2)
            .with_max_tokens_per_user(3);
        let family = FamilyId::from_bytes([1; 16]);
        let other = FamilyId::from_bytes([2; 16]);
        let in_family = |family| {
            let issued = store
                .issue_now(grant(Duration::from_secs(60)).with_family(family))
                .unwrap();
            issued.access_token.as_str().to_owned()
        };
        let live = |token: &String| store.lookup(token.as_bytes()).is_some();
        let a = [in_family(family), in_family(family), in_family(family)];
        assert_eq!(a.each_ref().map(live), [false, true, true], "family cap");
        // The user cap evicts across families, and the family's list follows.
        let b = [in_family(other), in_family(other)];
        assert_eq!(a.each_ref().map(live), [false, false, true], "user cap");
        assert!(b.iter().all(live));
        assert_eq!(store.lists().families[&family].len(), 1);
        store.revoke_family_now(family, SystemTime::now() + Duration::from_secs(60));
        assert!(!live(&a[2]) && b.iter().all(live));
        assert!(!store.lists().families.contains_key(&family));
        assert_eq!(store.listed_for_users(), 2);
        // Ended: a token still being issued for it is never stored.
        assert!(!live(&in_family(family)));
        assert_eq!(store.len(), 2);
        // Revoked one by one, the lists forget it too.
        store.revoke_now(b[0].as_bytes());
        assert_eq!(store.lists().families[&other].len(), 1);
    }

    #[test]
    fn bound_and_family_tokens_resolve_with_what_they_were_issued_with() {
        let store = MemoryTokenStore::new();
        let key = JwkThumbprint::from_bytes([9; 32]);
        let family = FamilyId::from_bytes([3; 16]);
        let long = "a-subject-longer-than-twenty-three-bytes";
        let grants = [
            grant(Duration::from_secs(60)).with_key_binding(key),
            grant(Duration::from_secs(60))
                .with_family(family)
                .with_stamp(7),
            Grant::new(
                long,
                ["read", "write"].into_iter().collect(),
                SystemTime::now() + Duration::from_secs(60),
            )
            .with_family(family)
            .with_key_binding(key),
            grant(Duration::from_secs(60)),
        ];
        for grant in grants {
            let issued = store.issue_now(grant.clone()).unwrap();
            let resolved = store.lookup(issued.access_token.as_str().as_bytes());
            assert_eq!(resolved, Some(grant));
        }
    }

    #[test]
    fn tokens_stay_found_while_others_are_removed_around_them() {
        // Removing a token moves its shard's last one into its place: every
        // other token must still be found, by its own secret only.
        let store = MemoryTokenStore::new().with_max_tokens_per_user(10_000);
        let tokens: Vec<_> = (0..2000)
            .map(|_| issue(&store, Duration::from_secs(60)))
            .collect();
        for token in tokens.iter().step_by(3) {
            store.revoke_now(token.as_bytes());
        }
        for (i, token) in tokens.iter().enumerate() {
            assert_eq!(store.lookup(token.as_bytes()).is_some(), i % 3 != 0, "{i}");
        }
        assert_eq!(store.len(), 2000 - 667);
        assert_eq!(store.listed_for_users(), 2000 - 667);
    }

    #[test]
    fn a_large_expiry_is_swept_a_batch_at_a_time() {
        let store =
            MemoryTokenStore::with_sweep_interval(Duration::ZERO).with_max_tokens_per_user(1000);
        let expired = SHARDS * SWEEP_BATCH * 2;
        let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
        // Issued straight into the shards: issuing sweeps as it goes.
        {
            let mut lists = store.lists();
            for i in 0..expired {
                let token = URL_SAFE_NO_PAD.encode(rand_bytes());
                let (id, secret) = split(token.as_bytes()).unwrap();
                let grant = Grant::new(format!("user{i}"), Scopes::empty(), an_hour_ago);
                let user = store.user_key(&grant.subject);
                let _ = store
                    .shard(&id)
                    .write()
                    .table
                    .insert(Slot::new(id, secret, grant));
                store.evict_beyond_caps(&mut lists, user, None, id);
            }
        }
        assert_eq!(store.len(), expired);
        // One issue sweeps at most two batches.
        issue(&store, Duration::from_secs(60));
        assert!(store.len() >= expired + 1 - 2 * SWEEP_BATCH);
        let live: Vec<_> = (0..200)
            .map(|_| issue(&store, Duration::from_secs(60)))
            .collect();
        assert_eq!(store.len(), 201, "every shard swept to the end");
        assert_eq!(store.listed_for_users(), 201);
        assert!(live
            .iter()
            .all(|token| store.lookup(token.as_bytes()).is_some()));
        // And the memory was given back.
        let capacity: usize = store
            .inner
            .shards
            .iter()
            .map(|shard| shard.read().table.items.capacity())
            .sum();
        assert!(capacity < 4 * 201 + SHARDS * 8, "{capacity}");
    }

    #[test]
    fn a_dense_table_finds_every_item_across_chunks_as_items_come_and_go() {
        let mut table = Dense::<UserTokens>::default();
        let item = |user: u64| UserTokens {
            user,
            ids: TokenIds::One(TokenId([user; 3])),
        };
        let count = 3 * CHUNK as u64 + 17;
        for user in 0..count {
            assert!(table
                .insert(item(user.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
                .is_ok());
        }
        // Removals from every chunk move the last items into the holes.
        for user in (0..count).step_by(3) {
            let key = user.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            assert_eq!(table.remove(&key).map(|listed| listed.user), Some(key));
        }
        for user in 0..count {
            let key = user.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            let found = table.get(&key).map(|listed| listed.user);
            assert_eq!(found, (user % 3 != 0).then_some(key), "{user}");
        }
        let left = table.len();
        assert_eq!(left as u64, count - count.div_ceil(3));
        assert_eq!(table.items.iter().count(), left);
        // Emptied, it gives its chunks back.
        for user in 0..count {
            table.remove(&user.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        table.shrink_if_sparse();
        assert_eq!((table.len(), table.items.capacity()), (0, 0));
    }

    fn rand_bytes() -> [u8; TOKEN_BYTES] {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).unwrap();
        bytes
    }

    #[test]
    fn debug_does_not_show_tokens() {
        let store = MemoryTokenStore::new();
        let issued = store.issue_now(grant(Duration::from_secs(60))).unwrap();
        assert!(!format!("{store:?}").contains(issued.access_token.as_str()));
        assert_eq!(
            format!("{:?}", issued.access_token),
            "AccessToken(<redacted>)"
        );
    }
}
