//! A coarse wall clock for the guard's expiry check.
//!
//! `SystemTime::now()` costs about 50 ns on the virtual machines we measure on (a
//! vDSO call; far more where the hypervisor offers no stable TSC): a sixth of what
//! the whole guard costs. Tokens live for minutes, so the guard reads a clock that
//! one background thread advances every [`TICK`], and takes "now" to be one tick
//! *after* that reading: a token is refused up to one tick early. If the thread is
//! starved of CPU, the clock lags by as long as it waits beyond its tick, and a
//! token may be accepted that long after its expiry. Where no thread can be
//! started, every read is a real one.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often the clock advances, and how early a token may be refused.
pub(crate) const TICK: Duration = Duration::from_millis(100);

/// Milliseconds since the epoch at the last tick, plus one tick: the time the guard
/// uses until the next one.
static NOW: AtomicU64 = AtomicU64::new(0);
/// Whether the ticking thread runs (set once, on first use).
static TICKING: OnceLock<bool> = OnceLock::new();

thread_local! {
    /// The last reading this thread turned into a `SystemTime`: a tick lasts 100 ms,
    /// so most reads reuse it instead of building one (two checked additions).
    static LAST: Cell<(u64, SystemTime)> = const { Cell::new((0, UNIX_EPOCH)) };
}

/// The current time, at most [`TICK`] ahead of the real one (behind it while the
/// ticking thread is starved of CPU).
#[inline]
pub(crate) fn now() -> SystemTime {
    if !*TICKING.get_or_init(start_ticking) {
        return SystemTime::now();
    }
    let millis = NOW.load(Ordering::Relaxed);
    LAST.with(|last| {
        let (seen, time) = last.get();
        if seen == millis {
            return time;
        }
        advance(last, millis)
    })
}

/// The first read of a tick on this thread. Out of line and cold: once per tick,
/// and inlined it sat in the middle of the guard's path.
#[cold]
#[inline(never)]
fn advance(last: &Cell<(u64, SystemTime)>, millis: u64) -> SystemTime {
    let time = UNIX_EPOCH + Duration::from_millis(millis);
    last.set((millis, time));
    time
}

fn start_ticking() -> bool {
    tick();
    std::thread::Builder::new()
        .name("oauth2-password-clock".into())
        .spawn(|| loop {
            std::thread::sleep(TICK);
            tick();
        })
        .is_ok()
}

fn tick() {
    let millis = (SystemTime::now() + TICK)
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_millis());
    NOW.store(u64::try_from(millis).unwrap_or(u64::MAX), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ahead_by_at_most_a_tick_and_advancing() {
        let first = now();
        assert!(first <= SystemTime::now() + TICK, "{first:?} too far ahead");
        // The ticking thread moves it on, however long a busy machine takes.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while now() == first {
            assert!(
                std::time::Instant::now() < deadline,
                "the clock never ticked"
            );
            std::thread::sleep(TICK);
        }
        assert!(now() <= SystemTime::now() + TICK);
    }
}
