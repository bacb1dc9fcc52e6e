//! Replayed DPoP proofs: the [`ReplayStore`] trait, its memory and Redis stores.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::dpop::proof::VerifiedProof;
use crate::store::Lookup;
use crate::store::StoreError;
use crate::token::grant::{write_base64url, JwkThumbprint};

use self::log::{Key, Remembered};
use self::seconds::ProofsBySecond;

mod log;
mod seconds;

/// What identifies one proof for the [`ReplayStore`]: a SHA-256 hash of the
/// key's thumbprint and the proof's `jti`, after a domain-separation prefix;
/// and, as a hint where [`MemoryReplayStore`] files it, the second the proof
/// was issued in (its `iat`).
///
/// A `jti` is unique only per client key (RFC 9449 §11.1: every client picks its
/// own), so the same `jti` under two keys is two proofs. Hashing them gives every
/// store a key of 32 bytes whatever the client sent, and keeps what the client
/// chose out of the store (and out of Redis, where anyone who reads it would see
/// it). Two proofs collide only if SHA-256 does (SHA-256, not BLAKE2b: processors
/// from 2017 on compute it in hardware, several times faster).
///
/// Ids are equal when their hashes are. The memory store looks for a proof
/// among those issued in the same second only (a replayed proof is the same
/// bytes, `iat` included), so give it ids made alike: from a
/// [`VerifiedProof`] (as the layer does), or with
/// [`issued_at`](Self::issued_at).
///
/// ```
/// use tower_oauth2_password::dpop::{JwkThumbprint, ProofId};
///
/// let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
/// let other = JwkThumbprint::from_encoded("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").unwrap();
/// assert_eq!(ProofId::new(&key, "jti-1"), ProofId::new(&key, "jti-1"));
/// assert_ne!(ProofId::new(&key, "jti-1"), ProofId::new(&other, "jti-1"));
/// assert_eq!(ProofId::new(&key, "jti-1").to_string().len(), 43); // base64url
/// let issued = ProofId::new(&key, "jti-1").issued_at(1_700_000_000);
/// assert_eq!(issued.issued(), Some(1_700_000_000));
/// ```
#[derive(Clone, Copy)]
pub struct ProofId {
    hash: [u8; 32],
    /// The proof's `iat`, seconds since 1970; 0 when not known.
    issued: u64,
}

/// The hashes only: the issue time is where the memory store looks.
impl PartialEq for ProofId {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}

impl Eq for ProofId {}

/// Hashes the first eight bytes: a SHA-256 output spreads a table as well by
/// eight bytes as by 32, and no client can choose them (each would have to find
/// proofs whose ids share those bytes). All 32 through a derived `Hash` cost a
/// hash map about 170 instructions per lookup.
impl Hash for ProofId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.word(0));
    }
}

/// Separates these hashes from any other SHA-256 of the same inputs (the
/// thumbprint is one); `v2` since the hash changed from BLAKE2b (`v1`).
const DOMAIN: &[u8] = b"tower-oauth2-password dpop replay v2\0";

impl ProofId {
    /// The id of the proof with `jti` signed by the key whose thumbprint is
    /// `thumbprint`, its issue time not known.
    pub fn new(thumbprint: &JwkThumbprint, jti: &str) -> Self {
        Self::of_bytes(thumbprint, jti.as_bytes(), 0)
    }

    /// This id, of a proof whose `iat` is `iat` (seconds since 1970).
    #[must_use]
    pub fn issued_at(self, iat: u64) -> Self {
        Self {
            issued: iat,
            ..self
        }
    }

    /// The proof's `iat`, if known.
    pub fn issued(&self) -> Option<u64> {
        (self.issued != 0).then_some(self.issued)
    }

    fn of_bytes(thumbprint: &JwkThumbprint, jti: &[u8], issued: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(DOMAIN);
        // The thumbprint is always 32 bytes: no (thumbprint, jti) pair hashes as
        // another's would, without a length prefix.
        hasher.update(thumbprint.as_bytes());
        hasher.update(jti);
        Self {
            hash: hasher.finalize().into(),
            issued,
        }
    }

    /// The hash's `i`th group of eight bytes.
    fn word(&self, i: usize) -> u64 {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&self.hash[i * 8..i * 8 + 8]);
        u64::from_ne_bytes(bytes)
    }

    /// The hash's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.hash
    }
}

impl From<&VerifiedProof> for ProofId {
    fn from(proof: &VerifiedProof) -> Self {
        Self::of_bytes(proof.thumbprint(), proof.jti_bytes(), proof.iat())
    }
}

/// base64url without padding, 43 characters.
impl fmt::Display for ProofId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_base64url(f, &self.hash)
    }
}

impl fmt::Debug for ProofId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProofId({self})")
    }
}

/// Whether a [`ReplayStore`] saw a proof for the first time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sighting {
    /// Not seen before (or only after its entry expired): the proof passes, and
    /// is now remembered.
    First,
    /// Seen before and still remembered: a replay, to refuse.
    Replay,
}

impl Sighting {
    /// Whether this is a [`Replay`](Self::Replay).
    pub fn is_replay(self) -> bool {
        self == Self::Replay
    }
}

/// Where the `jti`s of DPoP proofs are remembered for as long as the proofs are
/// accepted (RFC 9449 §11.1), so that a proof is used once: one store shared
/// by every replica that accepts the same proofs (`RedisReplayStore`, feature
/// `redis`), or [`MemoryReplayStore`] for one process.
///
/// [`remember`](ReplayStore::remember) is one atomic operation, a
/// check-and-insert: of two requests carrying the same proof at the same time,
/// on one replica or two, exactly one is told [`Sighting::First`]. A store that
/// looked first and inserted after would let both through.
///
/// It runs on every request that carries a proof: answer [`Lookup::ready`] when
/// the answer is at hand, [`Lookup::pending`] when it must be awaited. An `Err`
/// refuses the request (503): a store that cannot answer never lets a replay
/// through.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::dpop::{
///     JwkThumbprint, MemoryReplayStore, ProofId, ReplayStore, Sighting, DEFAULT_MAX_AGE,
/// };
///
/// # futures_util::FutureExt::now_or_never(async {
/// let replays = MemoryReplayStore::new();
/// // From a `VerifiedProof`: `ProofId::from(&proof)`, and `proof.iat()` for the time.
/// let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
/// let proof = ProofId::new(&key, "e1j3V_bKic8-LAEB");
/// let iat = SystemTime::now();
/// // Remembered while the proof could still be accepted: `iat` plus the window
/// // (plus a second, as `iat` may have been a fraction of a second later).
/// let until = iat + DEFAULT_MAX_AGE + Duration::from_secs(1);
/// assert_eq!(replays.remember(&proof, until).await?, Sighting::First);
/// assert_eq!(replays.remember(&proof, until).await?, Sighting::Replay);
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
/// # }).unwrap().unwrap();
/// ```
pub trait ReplayStore: Send + Sync + 'static {
    /// Remembers `proof` until `until` and tells whether it was already
    /// remembered, in one atomic step. An entry already held keeps its own
    /// expiry. `until` in the past remembers nothing and answers
    /// [`Sighting::Replay`]: the proof's window closed between its check and
    /// this call, and its first sighting may have expired with it, so only a
    /// refusal is safe (a store that answered `First` would let a replay sent
    /// at the window's last moment through).
    fn remember(&self, proof: &ProofId, until: SystemTime) -> Lookup<Sighting>;
}

/// A shared store: the application keeps a handle and gives the layer a clone.
impl<R: ReplayStore + ?Sized> ReplayStore for Arc<R> {
    #[inline]
    fn remember(&self, proof: &ProofId, until: SystemTime) -> Lookup<Sighting> {
        (**self).remember(proof, until)
    }
}

/// The default capacity of a [`MemoryReplayStore`]: unexpired proofs held.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// While full, how often a new proof may look for expired entries (it reads
/// every entry under the lock), in milliseconds: a flood of new proofs is
/// refused at once in between.
const FULL_SWEEP_GAP_MS: u64 = 100;

/// A [`ReplayStore`] in process memory, for one process (with several replicas,
/// a proof replayed to another replica is not seen: use `RedisReplayStore`).
///
/// It holds at most `capacity` proofs ([`DEFAULT_REPLAY_CAPACITY`] unless
/// [`with_capacity`](Self::with_capacity) says otherwise). When that many are
/// held, a new proof is refused with a [`StoreError`] (503) rather than one
/// forgotten: a forgotten proof could be replayed, the one thing this store is
/// for, and an attacker who can fill the store could then choose when to forget
/// the proof they captured. Refusing lasts at most one acceptance window
/// (entries expire with it), and filling the store takes that many validly
/// signed proofs within one window; size it for the proofs one window brings at
/// peak (100 000 in 60 s is about 1 600 a second).
///
/// Proofs are kept by the second they were issued in (the proof's `iat`,
/// which its [`ProofId`] carries): a replayed proof is the same bytes as the
/// first, `iat` included, so it is looked for among its second's proofs only.
/// Each second keeps its proofs in arrival order (16 bytes each) and a filter
/// of two bytes per proof that tells almost every new proof from the held ones
/// without reading them (about one in 300 is read through, as is every
/// replay): a new proof touches the end of its second's list and one line of
/// its filter, not a random line of the whole window's. About 18 to 36 bytes a
/// proof, 3.6 MB at most at the default capacity. A second's proofs are dropped
/// together once all have expired (the seconds are looked over once a second,
/// and when the store is full at most every 100 ms: in between, new proofs
/// are refused at once).
///
/// Give it ids made alike for one proof: from the [`VerifiedProof`] (as the
/// layer does) or with [`ProofId::issued_at`]. Ids without an issue time
/// ([`ProofId::new`] alone) share one second, found by any expiry as in any
/// store, but not among those made with one.
///
/// One mutex around the seconds: a check-and-insert is a few cache lines, far
/// below what the proof's signature check costs. Clones share the entries.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use tower_oauth2_password::dpop::{JwkThumbprint, MemoryReplayStore, ProofId, ReplayStore};
///
/// # futures_util::FutureExt::now_or_never(async {
/// let replays = MemoryReplayStore::with_capacity(1);
/// let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
/// let until = SystemTime::now() + Duration::from_secs(60);
/// assert!(!replays.remember(&ProofId::new(&key, "a"), until).await?.is_replay());
/// assert!(replays.remember(&ProofId::new(&key, "b"), until).await.is_err()); // full
/// # Ok::<(), tower_oauth2_password::store::StoreError>(())
/// # }).unwrap().unwrap();
/// ```
#[derive(Clone)]
pub struct MemoryReplayStore {
    inner: Arc<MemoryInner>,
}

struct MemoryInner {
    proofs: Mutex<ProofsBySecond>,
    capacity: usize,
}

impl MemoryReplayStore {
    /// An empty store holding up to [`DEFAULT_REPLAY_CAPACITY`] proofs.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_REPLAY_CAPACITY)
    }

    /// An empty store holding up to `capacity` unexpired proofs.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::new(MemoryInner {
                proofs: Mutex::new(ProofsBySecond::new()),
                capacity,
            }),
        }
    }

    /// How many proofs are held, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.proofs().len()
    }

    /// Whether no proof is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most proofs held at once.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    fn proofs(&self) -> std::sync::MutexGuard<'_, ProofsBySecond> {
        // A panic cannot leave the proofs half-changed: an entry is pushed or
        // overwritten whole, a filter built aside and swapped in, a second
        // added or dropped whole.
        self.inner
            .proofs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn remember_now(&self, proof: &ProofId, until: SystemTime) -> Result<Sighting, StoreError> {
        let now = SystemTime::now();
        if until <= now {
            // The window closed after the proof's check: its first sighting
            // may have expired from here, so this may be a replay.
            return Ok(Sighting::Replay);
        }
        // Milliseconds, the expiry rounded up: held a fraction longer, never shorter.
        let now = millis_since_1970(now);
        let until = millis_since_1970(
            until
                .checked_add(Duration::from_nanos(999_999))
                .unwrap_or(until),
        );
        let answer = self.proofs().remember(
            Key::new(proof.word(0), proof.word(1)),
            proof.issued,
            until,
            now,
            self.inner.capacity,
            FULL_SWEEP_GAP_MS,
        );
        match answer {
            Remembered::First => Ok(Sighting::First),
            Remembered::Replay => Ok(Sighting::Replay),
            Remembered::Full => Err(StoreError::new(format!(
                "the DPoP replay store is full ({} unexpired proofs)",
                self.inner.capacity
            ))),
        }
    }
}

/// Whole milliseconds since 1970 (0 before).
fn millis_since_1970(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
}

impl Default for MemoryReplayStore {
    fn default() -> Self {
        Self::new()
    }
}

impl ReplayStore for MemoryReplayStore {
    /// Always ready.
    #[inline]
    fn remember(&self, proof: &ProofId, until: SystemTime) -> Lookup<Sighting> {
        Lookup::ready(self.remember_now(proof, until))
    }
}

/// The counts only: which proofs were seen is nobody's business.
impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("len", &self.len())
            .field("capacity", &self.inner.capacity)
            .finish()
    }
}

#[cfg(feature = "redis")]
pub use self::in_redis::RedisReplayStore;

#[cfg(feature = "redis")]
mod in_redis {
    use std::fmt;
    use std::sync::Arc;
    use std::time::SystemTime;

    use super::{ProofId, ReplayStore, Sighting};
    use crate::redis::{LuaScript, RedisConnection};
    use crate::store::Lookup;
    use crate::token::refresh::millis;

    /// DPoP proofs in Redis, on a [`RedisConnection`] (which the token store
    /// and the login throttle may share), so that a proof used on one replica is
    /// refused on every other: one `SET {prefix}dpop:{id} 1 NX PXAT {until}` per
    /// proof, which is the check and the insert in one step (`{id}` is the
    /// [`ProofId`], 43 base64url characters), in a script that refuses a
    /// proof whose `until` has passed by Redis's clock: keys expire by that
    /// clock, and a replica whose clock is behind it would otherwise take a
    /// replay sent as the proof's first sighting expires. One key per script,
    /// so it works on a Redis Cluster too.
    ///
    /// Within the connection's deadline or not at all: Redis down, slow or
    /// unreachable is a [`StoreError`](crate::store::StoreError), and the request
    /// is refused. Run Redis with `maxmemory-policy noeviction` (see
    /// [`RedisConnection`]): an evicted proof could be replayed.
    ///
    /// ```no_run
    /// use std::time::{Duration, SystemTime};
    /// use tower_oauth2_password::dpop::{JwkThumbprint, ProofId, RedisReplayStore, ReplayStore};
    /// use tower_oauth2_password::redis::RedisConnection;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let redis = RedisConnection::new("redis://127.0.0.1:6379")?.with_prefix("myapp:");
    /// let replays = RedisReplayStore::on(&redis);
    /// let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
    /// let proof = ProofId::new(&key, "e1j3V_bKic8-LAEB");
    /// let until = SystemTime::now() + Duration::from_secs(61);
    /// assert!(!replays.remember(&proof, until).await?.is_replay());
    /// assert!(replays.remember(&proof, until).await?.is_replay()); // here or on any replica
    /// # Ok(())
    /// # }
    /// ```
    #[derive(Clone)]
    pub struct RedisReplayStore {
        connection: RedisConnection,
        remember: Arc<LuaScript>,
    }

    impl RedisReplayStore {
        /// The store on `connection`, under its prefix.
        pub fn on(connection: &RedisConnection) -> Self {
            Self {
                connection: connection.clone(),
                remember: Arc::new(LuaScript::timed(REMEMBER)),
            }
        }
    }

    /// The connection; the script is the crate's.
    impl fmt::Debug for RedisReplayStore {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("RedisReplayStore")
                .field("connection", &self.connection)
                .finish()
        }
    }

    /// `1` when the proof was not held and now is, until `ARGV[1]`
    /// (milliseconds since 1970); `0` when it was held, or when `ARGV[1]` has
    /// passed by Redis's clock: a replica whose clock is behind Redis's
    /// accepts a proof for longer, while Redis may have dropped its first
    /// sighting already.
    const REMEMBER: &str = r#"
local expiry = tonumber(ARGV[1])
if expiry <= now then return 0 end
if redis.call('SET', KEYS[1], 1, 'NX', 'PXAT', expiry) then return 1 end
return 0
"#;

    impl ReplayStore for RedisReplayStore {
        fn remember(&self, proof: &ProofId, until: SystemTime) -> Lookup<Sighting> {
            if until <= SystemTime::now() {
                // The window closed after the proof's check (see the trait).
                return Lookup::ready(Ok(Sighting::Replay));
            }
            let key = self.connection.key(format_args!("dpop:{proof}"));
            let until = millis(until);
            let store = self.clone();
            Lookup::pending(async move {
                let first: i64 = store
                    .connection
                    .script(&store.remember, &[&key], &[until])
                    .await?;
                Ok(match first {
                    1 => Sighting::First,
                    _ => Sighting::Replay,
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(jti: &str) -> ProofId {
        let key = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
            .expect("a thumbprint");
        ProofId::new(&key, jti)
    }

    fn remember(
        store: &MemoryReplayStore,
        jti: &str,
        from_now: Duration,
    ) -> Result<Sighting, StoreError> {
        store.remember_now(&id(jti), SystemTime::now() + from_now)
    }

    #[test]
    fn a_full_store_refuses_new_proofs_rather_than_forget_one() {
        let store = MemoryReplayStore::with_capacity(2);
        let hour = Duration::from_secs(3600);
        assert_eq!(remember(&store, "a", hour).unwrap(), Sighting::First);
        assert_eq!(remember(&store, "b", hour).unwrap(), Sighting::First);
        let refused = remember(&store, "c", hour).unwrap_err();
        assert!(
            refused.to_string().contains("full (2 unexpired proofs)"),
            "{refused}"
        );
        assert_eq!(
            remember(&store, "a", hour).unwrap(),
            Sighting::Replay,
            "a held proof is still refused"
        );
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn a_full_store_makes_room_from_expired_entries() {
        let store = MemoryReplayStore::with_capacity(1);
        remember(&store, "short", Duration::from_millis(50)).unwrap();
        std::thread::sleep(Duration::from_millis(FULL_SWEEP_GAP_MS + 50));
        assert_eq!(
            remember(&store, "next", Duration::from_secs(60)).unwrap(),
            Sighting::First
        );
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn expired_proofs_are_refused_and_not_remembered() {
        let store = MemoryReplayStore::new();
        let past = SystemTime::now() - Duration::from_secs(1);
        assert_eq!(
            store.remember_now(&id("old"), past).unwrap(),
            Sighting::Replay
        );
        assert!(store.is_empty());
    }

    #[test]
    fn the_latest_expiry_a_clock_can_name_is_held_not_a_panic() {
        let store = MemoryReplayStore::new();
        let last = SystemTime::UNIX_EPOCH + Duration::new(i64::MAX as u64, 999_999_999);
        assert_eq!(
            store.remember_now(&id("far"), last).unwrap(),
            Sighting::First
        );
        assert_eq!(
            store.remember_now(&id("far"), last).unwrap(),
            Sighting::Replay
        );
    }

    #[test]
    fn debug_shows_counts_not_proofs() {
        let store = MemoryReplayStore::new();
        remember(&store, "secret-jti", Duration::from_secs(60)).unwrap();
        let shown = format!("{store:?}");
        assert_eq!(shown, "MemoryReplayStore { len: 1, capacity: 100000 }");
    }

    #[test]
    fn ids_depend_on_both_parts_and_their_boundary() {
        let a = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
        let b = JwkThumbprint::from_encoded("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I").unwrap();
        assert_ne!(ProofId::new(&a, "x"), ProofId::new(&b, "x"));
        assert_ne!(ProofId::new(&a, "x"), ProofId::new(&a, "y"));
        assert_ne!(ProofId::new(&a, ""), ProofId::new(&a, "x"));
        let shown = ProofId::new(&a, "x").to_string();
        assert_eq!(shown.len(), 43);
    }

    /// The construction the stores' keys depend on (Redis keeps them), checked
    /// against SHA-256 computed elsewhere (Python's hashlib):
    /// `SHA-256("tower-oauth2-password dpop replay v2\0" ‖ thumbprint ‖ jti)`.
    #[test]
    fn ids_are_the_documented_sha256() {
        let key =
            JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
        assert_eq!(
            ProofId::new(&key, "jti-1").to_string(),
            "iKljH1PiI-Rz-wxhQazXIqhsINvUF4KJdrVCSAo_cwQ"
        );
    }
}
