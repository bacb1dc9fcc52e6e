//! The memory replay store's table: open addressing in one array of 16-byte
//! slots, so that a proof's check and insert touch one cache line.
//!
//! A proof lands at a random place in its table, and a table larger than the
//! caches near the core costs a cache miss per proof (one table held the whole
//! window until the store kept one per second, see `seconds`). `HashMap`
//! (hashbrown) keeps its control bytes and its entries in two arrays: two
//! misses per proof, which held three quarters of the old store's samples in a
//! profile on an AMD EPYC (see the guide's performance page). Here the slot
//! holds its own "in use" mark, and a probe reads on from the slot the id names
//! (linear probing, at most three quarters of the slots in use: a probe reads
//! about five slots, 80 bytes, one or two adjacent cache lines; a table at most
//! half full, twice the size, measured no faster).
//!
//! Nothing is deleted one by one: an expired entry stays until a new proof's
//! probe passes it (and reuses its slot) or the table is rebuilt. A rebuild
//! keeps only unexpired entries, in a table two to four times their number;
//! it runs when three quarters of the slots are in use, or when the store is
//! full and an entry has expired.

/// Of a slot's second word, the low bits hold the expiry (milliseconds since
/// 1970, up to the year 2109), the high ones more of the id.
const EXPIRY_BITS: u32 = 42;
const EXPIRY_MASK: u64 = (1 << EXPIRY_BITS) - 1;
/// The smallest table: 256 bytes.
const MIN_SLOTS: usize = 16;

/// One held proof: 86 bits of its id and until when it is held.
///
/// Two proofs' ids share 86 bits only by chance (odds of about 2⁻⁸⁶ per pair)
/// or by a client's own effort (about 2⁴³ hashes for a pair of its own), and
/// such a client would only see its own second proof refused: the key's
/// thumbprint is hashed into the id, so no other client's proof can be aimed at.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
#[repr(C, align(16))]
struct Slot {
    /// The id's first eight bytes: where its probe starts, and most of the test.
    id: u64,
    /// 22 more bits of the id above the expiry; 0 in a slot never used.
    rest: u64,
}

impl Slot {
    fn new(key: Key, until: u64) -> Self {
        Slot {
            id: key.id,
            // Never 0 (a slot not in use), even with a clock before 1970.
            rest: key.tag | until.clamp(1, EXPIRY_MASK),
        }
    }

    fn in_use(self) -> bool {
        self.rest != 0
    }

    fn holds(self, key: Key) -> bool {
        self.id == key.id && self.rest & !EXPIRY_MASK == key.tag
    }

    /// Until when (milliseconds since 1970) the proof is held.
    fn until(self) -> u64 {
        self.rest & EXPIRY_MASK
    }

    /// Held at `now`; a slot not in use is not.
    fn live_at(self, now: u64) -> bool {
        self.until() > now
    }
}

/// What a slot keeps of a proof's id (a SHA-256 output: its bits are spread
/// evenly, and its low ones index the table).
#[derive(Clone, Copy)]
pub(super) struct Key {
    id: u64,
    /// 22 bits of the second word, where [`Slot::rest`] keeps them.
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
}

/// Where a probe ended.
enum Probe {
    /// The proof's own slot.
    Held(usize),
    /// The proof is not held; it goes here: a slot never used, or the first
    /// expired one passed (`reuse`).
    Absent { slot: usize, reuse: bool },
}

/// Where the probe for `id` starts in a table of `len` slots (a power of two).
fn home(id: u64, len: usize) -> usize {
    // The id is a SHA-256 output: its low bits spread the table.
    #[allow(clippy::cast_possible_truncation)]
    let low = id as usize;
    low & (len - 1)
}

/// The slot after `index`, wrapping round a table of `len` slots.
fn next(index: usize, len: usize) -> usize {
    (index + 1) & (len - 1)
}

/// Whether a table of `len` slots may have `in_use` of them in use.
fn has_room(in_use: usize, len: usize) -> bool {
    in_use * 4 <= len * 3
}

/// The answer to [`ProofTable::remember`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Remembered {
    /// Not held: now it is.
    First,
    /// Held and unexpired.
    Replay,
    /// Not held, and `capacity` unexpired proofs are (or no room could be made).
    Full,
}

/// The proofs of a [`MemoryReplayStore`](super::MemoryReplayStore), their
/// expiries in milliseconds since 1970.
pub(super) struct ProofTable {
    /// A power of two in length, at most three quarters of them in use.
    slots: Box<[Slot]>,
    /// Slots in use, expired ones included.
    in_use: usize,
    /// No entry expires before this (a lower bound): a full table with nothing
    /// expired need not be read through.
    earliest: u64,
    /// No entry is held past this (an upper bound): the table may be dropped
    /// whole after it.
    latest: u64,
    /// When the last rebuild ran.
    last_rebuild: u64,
}

impl ProofTable {
    pub(super) fn new() -> Self {
        Self::with_room_for(0)
    }

    /// An empty table with room for `proofs` before it grows.
    pub(super) fn with_room_for(proofs: usize) -> Self {
        let mut len = MIN_SLOTS;
        while !has_room(proofs, len) {
            len *= 2;
        }
        ProofTable {
            slots: vec![Slot::default(); len].into_boxed_slice(),
            in_use: 0,
            earliest: u64::MAX,
            latest: 0,
            last_rebuild: 0,
        }
    }

    /// Slots in use, expired ones not yet reused or dropped included.
    pub(super) fn len(&self) -> usize {
        self.in_use
    }

    /// Whether every entry has expired at `now` (an empty table's have).
    pub(super) fn expired_at(&self, now: u64) -> bool {
        self.latest <= now
    }

    /// Remembers the proof `key` until `until` unless it is held (a replay) or
    /// `capacity` unexpired proofs are; the check and the insert are one probe.
    /// While full, the table is read through for expired entries at most once
    /// per `full_gap` milliseconds: in between a new proof is refused at once.
    pub(super) fn remember(
        &mut self,
        key: Key,
        until: u64,
        now: u64,
        capacity: usize,
        full_gap: u64,
    ) -> Remembered {
        // At most twice: after a rebuild at most half the slots are in use.
        for rebuilt in [false, true] {
            let slot = match self.probe(key, now) {
                Probe::Held(slot) if self.slots[slot].live_at(now) => return Remembered::Replay,
                // Held but expired: this proof's window starts again.
                Probe::Held(slot) | Probe::Absent { slot, reuse: true } => slot,
                Probe::Absent { slot, reuse: false } => {
                    let full = self.in_use >= capacity;
                    if !full && has_room(self.in_use + 1, self.slots.len()) {
                        self.in_use += 1;
                        slot
                    } else if rebuilt
                        || (full && (now < self.earliest || now < self.last_rebuild + full_gap))
                    {
                        return Remembered::Full;
                    } else {
                        self.rebuild(now);
                        continue;
                    }
                }
            };
            self.slots[slot] = Slot::new(key, until);
            self.earliest = self.earliest.min(until);
            self.latest = self.latest.max(until);
            return Remembered::First;
        }
        Remembered::Full
    }

    /// From the slot `key` names, on to its own slot or one never used; the
    /// first expired slot passed is where it would go.
    fn probe(&self, key: Key, now: u64) -> Probe {
        let mut index = home(key.id, self.slots.len());
        let mut expired = None;
        // Ends: at most three quarters of the slots are in use.
        loop {
            let slot = self.slots[index];
            if !slot.in_use() {
                return match expired {
                    Some(slot) => Probe::Absent { slot, reuse: true },
                    None => Probe::Absent {
                        slot: index,
                        reuse: false,
                    },
                };
            }
            if slot.holds(key) {
                return Probe::Held(index);
            }
            if expired.is_none() && !slot.live_at(now) {
                expired = Some(index);
            }
            index = next(index, self.slots.len());
        }
    }

    /// A new table of the unexpired entries, two to four times their number
    /// in slots.
    fn rebuild(&mut self, now: u64) {
        let live = self.slots.iter().filter(|slot| slot.live_at(now)).count();
        let len = (2 * (live + 1)).next_power_of_two().max(MIN_SLOTS);
        // Filled aside and swapped in whole: the table in use is never half
        // copied.
        let mut slots = vec![Slot::default(); len].into_boxed_slice();
        let (mut earliest, mut latest) = (u64::MAX, 0);
        for slot in self.slots.iter().filter(|slot| slot.live_at(now)) {
            let mut index = home(slot.id, len);
            while slots[index].in_use() {
                index = next(index, len);
            }
            slots[index] = *slot;
            earliest = earliest.min(slot.until());
            latest = latest.max(slot.until());
        }
        self.slots = slots;
        self.in_use = live;
        self.earliest = earliest;
        self.latest = latest;
        self.last_rebuild = now;
    }
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
    fn grows_past_its_first_slots_and_keeps_every_proof() {
        let mut table = ProofTable::new();
        let ids: Vec<Key> = (0..10_000).map(id).collect();
        for proof in &ids {
            assert_eq!(
                table.remember(*proof, 2_000, 1_000, usize::MAX, GAP),
                Remembered::First
            );
        }
        assert_eq!(table.len(), 10_000);
        assert!(has_room(table.len(), table.slots.len()));
        for proof in &ids {
            assert_eq!(
                table.remember(*proof, 2_000, 1_500, usize::MAX, GAP),
                Remembered::Replay
            );
        }
    }

    #[test]
    fn made_with_room_it_does_not_grow() {
        let mut table = ProofTable::with_room_for(1_000);
        let len = table.slots.len();
        for n in 0..1_000 {
            table.remember(id(n), 2_000, 1_000, usize::MAX, GAP);
        }
        assert_eq!((table.len(), table.slots.len()), (1_000, len));
        assert_eq!(ProofTable::with_room_for(0).slots.len(), MIN_SLOTS);
    }

    #[test]
    fn expired_slots_are_reused_and_dropped_when_it_is_rebuilt() {
        let mut table = ProofTable::new();
        for n in 0..1_000 {
            table.remember(id(n), 2_000, 1_000, usize::MAX, GAP);
        }
        let grown = table.slots.len();
        // Every entry expired, and each new proof is held 50 ms, one every
        // 10 ms: new proofs take expired slots, or a rebuild drops them, and
        // the table does not grow.
        let mut now = 2_000;
        for n in 1_000..5_000 {
            now += 10;
            assert_eq!(
                table.remember(id(n), now + 50, now, usize::MAX, GAP),
                Remembered::First
            );
            assert!(has_room(table.len(), grown), "{}", table.len());
        }
        assert!(table.slots.len() <= grown);
        // The expired proofs are first sightings again, the held ones replays.
        assert_eq!(
            table.remember(id(0), now + 50, now + 10, usize::MAX, GAP),
            Remembered::First
        );
        assert_eq!(
            table.remember(id(4_999), now + 50, now + 10, usize::MAX, GAP),
            Remembered::Replay
        );
    }

    #[test]
    fn a_full_table_refuses_until_an_entry_expires_and_the_gap_has_passed() {
        use Remembered::{First, Full, Replay};
        let mut table = ProofTable::new();
        // (proof, until, now, answer) with a capacity of two.
        let steps = [
            (1, 1_050, 1_000, First),
            (2, 5_000, 1_000, First),
            (3, 5_000, 1_000, Full),
            // Proof 1 expired, no rebuild yet: room is made (or proof 3's
            // probe passes proof 1's slot and takes it: First either way).
            (3, 5_000, 1_100, First),
            (4, 5_000, 1_150, Full),
            (2, 5_000, 1_150, Replay),
        ];
        for (n, until, now, answer) in steps {
            assert_eq!(
                table.remember(id(n), until, now, 2, GAP),
                answer,
                "proof {n} at {now}"
            );
        }
        assert_eq!(table.len(), 2);
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Held to a map of every proof's expiry: the same answer for every
        /// proof, at any capacity, and never full below it.
        #[test]
        fn answers_as_a_map_of_expiries(steps in steps(), capacity in 1..400usize) {
            let mut table = ProofTable::new();
            let mut model: HashMap<u32, u64> = HashMap::new();
            let mut now = 1_000u64;
            for step in steps {
                match step {
                    Step::Wait { ms } => now += ms,
                    Step::Remember { n, hold } => {
                        let held = model.get(&n).is_some_and(|&until| until > now);
                        let live = model.values().filter(|&&until| until > now).count();
                        let answer = table.remember(id(n), now + hold, now, capacity, GAP);
                        if held {
                            prop_assert_eq!(answer, Remembered::Replay);
                        } else if live < capacity && answer == Remembered::Full {
                            // Refused below capacity only while expired
                            // entries wait for the gap between rebuilds.
                            prop_assert!(table.len() >= capacity);
                        } else if live >= capacity {
                            prop_assert_eq!(answer, Remembered::Full);
                        } else {
                            prop_assert_eq!(answer, Remembered::First);
                        }
                        if answer == Remembered::First {
                            model.insert(n, now + hold);
                        }
                        prop_assert!(table.len() <= capacity);
                        prop_assert!(has_room(table.len(), table.slots.len()));
                    }
                }
            }
        }
    }
}
