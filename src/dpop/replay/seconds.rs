//! The memory replay store's proofs, in one [`ProofLog`] per second of issue.
//!
//! A replayed proof is the same bytes, its `iat` included, so it is looked for
//! among the proofs issued in the same second only. The proofs a server checks
//! now were issued in the last second or so: the logs that take them hold a
//! second's proofs each (1 600 at 100 000 in a 60-second window), however many
//! the window holds. A second's log is dropped whole once every entry in it
//! has expired: no sweep reads live entries, and nothing the size of the
//! window is ever copied.

use std::collections::VecDeque;

use super::log::{Key, ProofLog, Remembered};

/// How often, in milliseconds, the seconds are looked over for one whose
/// entries have all expired (one comparison per second held).
const SWEEP_EVERY_MS: u64 = 1000;

/// The proofs held, by the second (since 1970) they were issued in; proofs
/// whose issue time is not known share the second 0.
pub(super) struct ProofsBySecond {
    /// Sorted by second, no second twice, none empty; with proofs checked by
    /// the layer, at most as many as the acceptance window has seconds.
    seconds: VecDeque<Second>,
    /// Where the last proof went: most proofs go to the same second.
    last: usize,
    /// Entries over all logs, expired ones not yet dropped included.
    in_use: usize,
    /// When the seconds were last looked over.
    last_sweep: u64,
}

/// The proofs issued in one second.
struct Second {
    second: u64,
    log: ProofLog,
}

impl ProofsBySecond {
    pub(super) fn new() -> Self {
        ProofsBySecond {
            seconds: VecDeque::new(),
            last: 0,
            in_use: 0,
            last_sweep: 0,
        }
    }

    /// Entries held, expired ones not yet dropped included (at most a second
    /// past their second's last expiry, or until a new proof comes).
    pub(super) fn len(&self) -> usize {
        self.in_use
    }

    /// As [`ProofLog::remember`], in the log of the second `issued`:
    /// `capacity` counts the entries of every second. While full, the other
    /// seconds are looked over at most once per `full_gap` milliseconds.
    pub(super) fn remember(
        &mut self,
        key: Key,
        issued: u64,
        until: u64,
        now: u64,
        capacity: usize,
        full_gap: u64,
    ) -> Remembered {
        if now >= self.last_sweep.saturating_add(SWEEP_EVERY_MS) {
            self.sweep(now);
        }
        // At most twice: once more after looking the other seconds over.
        for swept in [false, true] {
            let index = match self.seconds.get(self.last) {
                Some(held) if held.second == issued => self.last,
                _ => self.find_or_add(issued),
            };
            self.last = index;
            let log = &mut self.seconds[index].log;
            let before = log.len();
            // This second may grow by the room the other seconds leave.
            let room = capacity.saturating_sub(self.in_use);
            let answer = log.remember(key, until, now, before + room, full_gap);
            let after = log.len();
            self.in_use = self.in_use - before + after;
            if after == 0 {
                self.seconds.remove(index); // refused, in a second of its own
            }
            if answer == Remembered::Full
                && !swept
                && now >= self.last_sweep.saturating_add(full_gap)
            {
                // Room may be held by other seconds whose entries have all expired.
                self.sweep(now);
                continue;
            }
            return answer;
        }
        Remembered::Full
    }

    /// Where the second `issued` is held, added (empty) if it is not.
    fn find_or_add(&mut self, issued: u64) -> usize {
        match self
            .seconds
            .binary_search_by_key(&issued, |held| held.second)
        {
            Ok(index) => index,
            Err(index) => {
                // A new latest second starts with room for as many proofs
                // as the last one took: no growing every second at a steady
                // rate.
                let log = match self.seconds.back() {
                    Some(last) if index == self.seconds.len() => {
                        ProofLog::with_room_for(last.log.len())
                    }
                    _ => ProofLog::with_room_for(0),
                };
                let second = issued;
                self.seconds.insert(index, Second { second, log });
                index
            }
        }
    }

    /// Drops the seconds whose entries have all expired at `now`.
    fn sweep(&mut self, now: u64) {
        let mut dropped = 0;
        self.seconds.retain(|held| {
            let expired = held.log.expired_at(now);
            if expired {
                dropped += held.log.len();
            }
            !expired
        });
        self.in_use -= dropped;
        self.last_sweep = now;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::dpop::replay::log::tests::{answer_as_a_map_of_expiries, id, steps};

    const GAP: u64 = 100;

    #[test]
    fn a_second_is_dropped_whole_once_its_entries_have_expired() {
        let mut proofs = ProofsBySecond::new();
        // 100 proofs issued in each of three seconds, held until 10, 11, 12 s.
        for n in 0..300 {
            let k = u64::from(n / 100);
            let answer =
                proofs.remember(id(n), 100 + k, 10_000 + k * 1_000, 5_000, usize::MAX, GAP);
            assert_eq!(answer, Remembered::First);
        }
        assert_eq!((proofs.len(), proofs.seconds.len()), (300, 3));
        // At 11.5 s the first two seconds' entries have expired.
        let answer = proofs.remember(id(299), 102, 12_000, 11_500, usize::MAX, GAP);
        assert_eq!(answer, Remembered::Replay);
        assert_eq!((proofs.len(), proofs.seconds.len()), (100, 1));
        let answer = proofs.remember(id(0), 100, 12_000, 11_500, usize::MAX, GAP);
        assert_eq!(answer, Remembered::First);
    }

    #[test]
    fn a_proof_is_looked_for_in_the_second_it_was_issued_in() {
        let mut proofs = ProofsBySecond::new();
        let remember = |proofs: &mut ProofsBySecond, issued| {
            proofs.remember(id(7), issued, 9_000, 1_000, usize::MAX, GAP)
        };
        assert_eq!(remember(&mut proofs, 1), Remembered::First);
        assert_eq!(remember(&mut proofs, 1), Remembered::Replay);
        // Another `iat` is another proof (only the key's holder can sign one).
        assert_eq!(remember(&mut proofs, 2), Remembered::First);
    }

    #[test]
    fn a_full_store_drops_the_seconds_that_expired_and_takes_the_proof() {
        use Remembered::{First, Full};
        let mut proofs = ProofsBySecond::new();
        // (proof, issued, until, now, answer) with a capacity of two.
        let steps = [
            (1, 1, 1_200, 1_000, First),
            (2, 1, 1_200, 1_000, First),
            // Full; the seconds were looked over at 1 000, the gap has not passed.
            (3, 2, 9_000, 1_050, Full),
            // Second 1 has expired and the gap has passed: dropped, room made.
            (3, 2, 9_000, 1_250, First),
            (4, 3, 9_000, 1_250, First),
            (5, 4, 9_000, 1_400, Full),
        ];
        for (n, issued, until, now, answer) in steps {
            let got = proofs.remember(id(n), issued, until, now, 2, GAP);
            assert_eq!(got, answer, "proof {n} at {now}");
        }
        // A refused proof leaves no second behind.
        assert_eq!((proofs.len(), proofs.seconds.len()), (2, 2));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// As one log is (proof `n` issued in second `n % 5`, as a proof's
        /// `iat` is part of it), with the seconds sorted, none empty, and
        /// their entries counted.
        #[test]
        fn answers_as_a_map_of_expiries(steps in steps(), capacity in 1..400usize) {
            let mut proofs = ProofsBySecond::new();
            answer_as_a_map_of_expiries(steps, capacity, |n, until, now| {
                let issued = u64::from(n % 5) + 1;
                let answer = proofs.remember(id(n), issued, until, now, capacity, GAP);
                let counted: usize = proofs.seconds.iter().map(|held| held.log.len()).sum();
                prop_assert_eq!(counted, proofs.len());
                prop_assert!(proofs.seconds.iter().all(|held| held.log.len() > 0));
                let sorted = proofs.seconds.iter().zip(proofs.seconds.iter().skip(1));
                prop_assert!(sorted.clone().all(|(a, b)| a.second < b.second));
                Ok((answer, proofs.len()))
            })?;
        }
    }
}
