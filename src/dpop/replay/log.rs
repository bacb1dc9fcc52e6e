//! One second's proofs for the memory replay store: a log in arrival order,
//! and a filter that tells most new proofs from held ones without reading it.
//!
//! Looking a new proof up at a random place in a table costs a cache miss
//! once the table outgrows the caches near the core, however small it is next
//! to the window's proofs: a random line is touched again only after the
//! table's size in other lookups, and the requests in between (a p256
//! verification, hyper's buffers) push it out. A per-second hash table of 3 400
//! proofs (128 KiB) still put most of the store's time on one load in a
//! profile on an AMD EPYC. Here a new proof is appended to the log, whose end
//! is always in the cache, and marked in a blocked Bloom filter of two bytes
//! per proof (one 64-byte block per proof): one line read, of a set of lines
//! an eighth the size of such a table, so more of it stays near the core.
//! Only a proof the filter may hold (a replay, or about one new proof
//! in 300) reads the log through. A client that grinds `jti`s until its ids
//! hit set bits makes each of its proofs read its second's log (about a
//! nanosecond per proof held in that second): on top of a signature check
//! each such proof costs us anyway, and bounded by the second's proofs.
//!
//! Nothing is deleted one by one: the whole second is dropped once every entry
//! has expired (see `seconds`), and the log is compacted (expired entries
//! dropped, the filter rebuilt) when the store is full or the log has doubled
//! since it was last compacted, in both cases only once an entry has expired.

/// Of an entry's second word, the low bits hold the expiry (milliseconds since
/// 1970, up to the year 2109), the high ones more of the id.
const EXPIRY_BITS: u32 = 42;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
/// Proofs per filter block: 16 bits each, about 0.3 % false positives.
const PER_BLOCK: usize = 32;
/// Bits a proof sets in its block.
const BITS: u32 = 4;
/// The smallest log compacted for having doubled.
const MIN_COMPACTED: usize = 64;

/// One held proof: 86 bits of its id and until when it is held.
///
/// Two proofs' ids share 86 bits only by chance (odds of about 2⁻⁸⁶ per pair)
/// or by a client's own effort (about 2⁴³ hashes for a pair of its own), and
/// such a client would only see its own second proof refused: the key's
/// thumbprint is hashed into the id, so no other client's proof can be aimed at.
#[derive(Clone, Copy)]
struct Entry {
    /// The id's first eight bytes.
    id: u64,
    /// 22 more bits of the id above the expiry.
    rest: u64,
}

impl Entry {
    fn new(key: Key, until: u64) -> Self {
        Entry {
            id: key.id,
            rest: key.tag | until.min(EXPIRY_MASK),
        }
    }

    /// The part of the id it keeps.
    fn key(self) -> Key {
        Key {
            id: self.id,
            tag: self.rest & !EXPIRY_MASK,
        }
    }

    fn holds(self, key: Key) -> bool {
        self.id == key.id && self.rest & !EXPIRY_MASK == key.tag
    }

    /// Until when (milliseconds since 1970) the proof is held.
    fn until(self) -> u64 {
        self.rest & EXPIRY_MASK
    }

    /// Held at `now`.
    fn live_at(self, now: u64) -> bool {
        self.until() > now
    }
}

/// What an entry keeps of a proof's id (a SHA-256 output: its bits are spread
/// evenly).
#[derive(Clone, Copy)]
pub(super) struct Key {
    id: u64,
    /// 22 bits of the second word, where [`Entry::rest`] keeps them.
    tag: u64,
}

impl Key {
    /// The key of an id whose first two words are `first` and `second`.
    pub(super) fn new(first: u64, second: u64) -> Self {
        Key {
            id: first,
            tag: second & !EXPIRY_MASK,
        }
    }

    /// Its filter block in a filter of `blocks` blocks (a power of two), and
    /// the bits it sets there: the id's low bits pick the block, higher ones
    /// the bits.
    fn in_filter(self, blocks: usize) -> (usize, Block) {
        #[allow(clippy::cast_possible_truncation)]
        let index = self.id as usize & (blocks - 1);
        let mut mask = Block::default();
        for i in 0..BITS {
            let bit = (self.id >> (28 + 9 * i)) & 511;
            mask.0[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        (index, mask)
    }
}

/// 512 bits of the filter, one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; 8]);

impl Block {
    fn covers(&self, mask: &Block) -> bool {
        self.0
            .iter()
            .zip(&mask.0)
            .all(|(have, want)| have & want == *want)
    }

    fn add(&mut self, mask: &Block) {
        for (have, want) in self.0.iter_mut().zip(&mask.0) {
            *have |= want;
        }
    }
}

/// The answer to [`ProofLog::remember`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Remembered {
    /// Not held: now it is.
    First,
    /// Held and unexpired.
    Replay,
    /// Not held, and `capacity` proofs are (or no room could be made).
    Full,
}

/// The proofs of one second of a [`MemoryReplayStore`](super::MemoryReplayStore),
/// their expiries in milliseconds since 1970.
pub(super) struct ProofLog {
    /// Every proof held, in arrival order, expired ones not yet compacted away
    /// included.
    entries: Vec<Entry>,
    /// A power of two in length, at least one block per [`PER_BLOCK`] entries.
    filter: Box<[Block]>,
    /// No entry expires before this (a lower bound): until then, compacting
    /// drops nothing.
    earliest: u64,
    /// No entry is held past this (an upper bound).
    latest: u64,
    /// Entries after the last compaction (or 0).
    compacted_to: usize,
    /// When the store last compacted this log for being full.
    last_full_compaction: u64,
}

impl ProofLog {
    /// An empty log with room for `proofs` before it grows.
    pub(super) fn with_room_for(proofs: usize) -> Self {
        ProofLog {
            entries: Vec::with_capacity(proofs),
            filter: vec![Block::default(); blocks_for(proofs)].into_boxed_slice(),
            earliest: u64::MAX,
            latest: 0,
            compacted_to: 0,
            last_full_compaction: 0,
        }
    }

    /// Entries held, expired ones not yet compacted away included.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether every entry has expired at `now` (an empty log's have).
    pub(super) fn expired_at(&self, now: u64) -> bool {
        self.latest <= now
    }

    /// Remembers the proof `key` until `until` unless it is held (a replay) or
    /// `capacity` proofs are. While full, expired entries are dropped at most
    /// once per `full_gap` milliseconds: in between a new proof is refused.
    pub(super) fn remember(
        &mut self,
        key: Key,
        until: u64,
        now: u64,
        capacity: usize,
        full_gap: u64,
    ) -> Remembered {
        let (block, mask) = key.in_filter(self.filter.len());
        if self.filter[block].covers(&mask) {
            // A replay, or a new proof the filter cannot tell: the log decides.
            if let Some(entry) = self.entries.iter_mut().find(|entry| entry.holds(key)) {
                if entry.live_at(now) {
                    return Remembered::Replay;
                }
                // Held but expired: this proof's window starts again.
                *entry = Entry::new(key, until);
                self.held_until(until);
                return Remembered::First;
            }
        }
        if self.entries.len() >= capacity {
            let may_drop = now >= self.earliest && now >= self.last_full_compaction + full_gap;
            if !may_drop {
                return Remembered::Full;
            }
            self.last_full_compaction = now;
            self.compact(now);
            if self.entries.len() >= capacity {
                return Remembered::Full;
            }
        } else if self.entries.len() >= 2 * self.compacted_to.max(MIN_COMPACTED)
            && now >= self.earliest
        {
            self.compact(now);
        }
        self.entries.push(Entry::new(key, until));
        self.held_until(until);
        if blocks_for(self.entries.len()) > self.filter.len() {
            self.refilter();
        } else {
            let (block, mask) = key.in_filter(self.filter.len());
            self.filter[block].add(&mask);
        }
        Remembered::First
    }

    fn held_until(&mut self, until: u64) {
        self.earliest = self.earliest.min(until);
        self.latest = self.latest.max(until);
    }

    /// Drops the entries expired at `now`, and marks the rest in a new filter.
    fn compact(&mut self, now: u64) {
        self.entries.retain(|entry| entry.live_at(now));
        self.compacted_to = self.entries.len();
        self.earliest = self
            .entries
            .iter()
            .map(|entry| entry.until())
            .min()
            .unwrap_or(u64::MAX);
        self.refilter();
    }

    /// A filter sized for the entries, each marked in it.
    fn refilter(&mut self) {
        let mut filter = vec![Block::default(); blocks_for(self.entries.len())].into_boxed_slice();
        for entry in &self.entries {
            let (block, mask) = entry.key().in_filter(filter.len());
            filter[block].add(&mask);
        }
        self.filter = filter;
    }
}

/// Filter blocks for `proofs` proofs: a power of two, at least one.
fn blocks_for(proofs: usize) -> usize {
    proofs.div_ceil(PER_BLOCK).max(1).next_power_of_two()
}

#[cfg(test)]
pub(super) mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    const GAP: u64 = 100;

    /// Proof `n`'s key: two words of splitmix64, spread as a SHA-256 output's.
    pub(in crate::dpop::replay) fn id(n: u32) -> Key {
        let mix = |mut z: u64| {
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let seed = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        Key::new(mix(seed), mix(seed ^ 0x5851_f42d_4c95_7f2d))
    }

    #[test]
    fn keeps_every_proof_as_it_grows() {
        let mut log = ProofLog::with_room_for(0);
        for n in 0..10_000 {
            assert_eq!(
                log.remember(id(n), 2_000, 1_000, usize::MAX, GAP),
                Remembered::First
            );
        }
        assert_eq!(log.len(), 10_000);
        assert!(log.filter.len() * PER_BLOCK >= log.len());
        for n in 0..10_000 {
            assert_eq!(
                log.remember(id(n), 2_000, 1_500, usize::MAX, GAP),
                Remembered::Replay
            );
        }
    }

    #[test]
    fn the_filter_reads_the_log_for_few_new_proofs() {
        let mut log = ProofLog::with_room_for(0);
        for n in 0..10_000 {
            log.remember(id(n), 2_000, 1_000, usize::MAX, GAP);
        }
        let blocks = log.filter.len();
        let maybe = (10_000..110_000)
            .filter(|&n| {
                let (block, mask) = id(n).in_filter(blocks);
                log.filter[block].covers(&mask)
            })
            .count();
        assert!(maybe < 1_000, "{maybe} of 100 000 new proofs read the log");
    }

    #[test]
    fn expired_entries_are_dropped_once_the_log_has_doubled() {
        let mut log = ProofLog::with_room_for(0);
        // Each proof held 50 ms, one every 10 ms: the log stays small.
        let mut now = 1_000;
        for n in 0..5_000 {
            now += 10;
            let answer = log.remember(id(n), now + 50, now, usize::MAX, GAP);
            assert_eq!(answer, Remembered::First);
            assert!(log.len() <= 2 * MIN_COMPACTED, "{}", log.len());
        }
        // The expired proofs are first sightings again, the held ones replays.
        assert_eq!(
            log.remember(id(0), now + 50, now + 10, usize::MAX, GAP),
            Remembered::First
        );
        assert_eq!(
            log.remember(id(4_999), now + 50, now + 10, usize::MAX, GAP),
            Remembered::Replay
        );
    }

    #[test]
    fn a_full_log_refuses_until_an_entry_expires_and_the_gap_has_passed() {
        use Remembered::{First, Full, Replay};
        let mut log = ProofLog::with_room_for(0);
        // (proof, until, now, answer) with a capacity of two.
        let steps = [
            (1, 1_050, 1_000, First),
            (2, 5_000, 1_000, First),
            (3, 5_000, 1_000, Full),
            // Proof 1 expired: compacted away, room made.
            (3, 5_000, 1_100, First),
            (4, 5_000, 1_150, Full),
            (2, 5_000, 1_150, Replay),
        ];
        for (n, until, now, answer) in steps {
            assert_eq!(
                log.remember(id(n), until, now, 2, GAP),
                answer,
                "proof {n} at {now}"
            );
        }
        assert_eq!(log.len(), 2);
    }

    #[derive(Debug, Clone)]
    pub(in crate::dpop::replay) enum Step {
        /// Remember proof `n`, held for `hold` ms from now.
        Remember { n: u32, hold: u64 },
        /// Let `ms` pass.
        Wait { ms: u64 },
    }

    pub(in crate::dpop::replay) fn steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            4 => (0..300u32, 1..500u64).prop_map(|(n, hold)| Step::Remember { n, hold }),
            1 => (0..200u64).prop_map(|ms| Step::Wait { ms }),
        ];
        proptest::collection::vec(step, 1..2_000)
    }

    /// Runs `steps` through a store, `remember(n, until, now)` answering and
    /// telling the store's size after, and holds every answer to a map of
    /// expiries: the same answer for every proof, at any capacity, and never
    /// full below it but while expired entries wait to be dropped.
    pub(in crate::dpop::replay) fn answer_as_a_map_of_expiries(
        steps: Vec<Step>,
        capacity: usize,
        mut remember: impl FnMut(u32, u64, u64) -> Result<(Remembered, usize), TestCaseError>,
    ) -> Result<(), TestCaseError> {
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut now = 1_000u64;
        for step in steps {
            match step {
                Step::Wait { ms } => now += ms,
                Step::Remember { n, hold } => {
                    let held = model.get(&n).is_some_and(|&until| until > now);
                    let live = model.values().filter(|&&until| until > now).count();
                    let (answer, len) = remember(n, now + hold, now)?;
                    if held {
                        prop_assert_eq!(answer, Remembered::Replay);
                    } else if live < capacity && answer == Remembered::Full {
                        prop_assert!(len >= capacity);
                    } else if live >= capacity {
                        prop_assert_eq!(answer, Remembered::Full);
                    } else {
                        prop_assert_eq!(answer, Remembered::First);
                    }
                    if answer == Remembered::First {
                        model.insert(n, now + hold);
                    }
                    prop_assert!(len <= capacity);
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn answers_as_a_map_of_expiries(steps in steps(), capacity in 1..400usize) {
            let mut log = ProofLog::with_room_for(0);
            answer_as_a_map_of_expiries(steps, capacity, |n, until, now| {
                let answer = log.remember(id(n), until, now, capacity, GAP);
                prop_assert!(log.filter.len() * PER_BLOCK >= log.len());
                Ok((answer, log.len()))
            })?;
        }
    }
}
