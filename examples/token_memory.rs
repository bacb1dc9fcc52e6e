//! What the memory token store costs in memory: bytes per live token at 1 million
//! tokens, and whether expired tokens are given back.
//!
//! ```text
//! cargo run --release --example token_memory            # 1 million tokens
//! TOKENS=100000 cargo run --release --example token_memory
//! ```
//!
//! Tokens are issued as the token endpoint issues them (a fresh subject string and
//! empty scopes per grant), each to a user of its own (as when a million users hold
//! a token each; one user may hold at most 100). Heap bytes are counted exactly by a counting global
//! allocator (bytes requested, without the allocator's own overhead); RSS is read from
//! `/proc/self/status` (what the operating system sees, allocator overhead included).
//! All tokens expire at the same instant; the program then waits for it and issues
//! fresh tokens until no expired one is left (each issue sweeps every shard not
//! swept for a second, a batch of 4096 tokens at a time), and reports how many issues
//! that took, the longest one, and what is left. Meanwhile a second thread keeps
//! resolving a few live tokens (one or more per shard) and reports its longest wait
//! and how many waited over 10 ms: what a guarded request saw of the sweeps. The same
//! thread runs while the batch expires, when nothing sweeps: its longest wait then
//! is what the machine's own scheduling costs (on a loaded 2-core VM, milliseconds).
//!
//! `BENCH_OUT=file` also writes the results as TSV (for `scripts/bench.sh`).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::{Grant, TokenStore};

/// Live tokens looked up during the sweeps: enough to land in every shard.
const PROBES: usize = 64;

// Heap bytes counted by a global allocator; RSS from `/proc/self/status`.
#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{heap, rss};

/// The memory store's futures are ready at once.
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("the memory token store never waits"),
    }
}

/// A grant as the token endpoint makes it: a fresh subject (another user each
/// time), scopes collected from the (empty) request.
fn grant(expires_at: SystemTime) -> Grant {
    static USERS: AtomicUsize = AtomicUsize::new(0);
    Grant::new(
        format!("user{}", USERS.fetch_add(1, Ordering::Relaxed)),
        std::iter::empty::<&str>().collect(),
        expires_at,
    )
}

fn main() {
    let count: usize = std::env::var("TOKENS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let sweep_interval = Duration::from_secs(1);
    let store = MemoryTokenStore::with_sweep_interval(sweep_interval);

    // How fast tokens are issued here, to pick an expiry the whole batch outlives.
    let probe = MemoryTokenStore::new();
    let start = Instant::now();
    for _ in 0..10_000 {
        now(probe.issue(grant(SystemTime::now() + Duration::from_secs(60)))).expect("issue");
    }
    let per_token = start.elapsed() / 10_000;
    drop(probe);
    let issuing = per_token * u32::try_from(count).expect("token count fits in u32");
    // Generous: issuing slows down as the store grows, and more on a loaded machine.
    let expires_at = SystemTime::now() + issuing * 3 + Duration::from_secs(5);

    let (heap0, rss0) = (heap(), rss());
    let start = Instant::now();
    let mut last = None;
    for _ in 0..count {
        last = Some(now(store.issue(grant(expires_at))).expect("issue"));
    }
    let took = start.elapsed();
    let (heap1, rss1) = (heap(), rss());
    let live = store.len();
    assert_eq!(live, count, "every token still live");
    let last = last.expect("at least one token");
    assert!(now(store.resolve(last.access_token.as_str().into()))
        .expect("resolve")
        .is_some());
    drop(last);

    let heap_per_token = (heap1 - heap0) as f64 / count as f64;
    let rss_per_token = rss1.saturating_sub(rss0) as f64 / count as f64;
    println!(
        "memory token store, {count} live tokens (issued in {took:.2?}, {per_token:.2?} each):"
    );
    println!(
        "  heap: {:>8.1} MiB, {heap_per_token:6.1} bytes per token (requested from the allocator)",
        mib(heap1 - heap0)
    );
    println!(
        "  RSS:  {:>8.1} MiB, {rss_per_token:6.1} bytes per token (allocator overhead included)",
        mib(rss1.saturating_sub(rss0))
    );

    // Live tokens spread over every shard, for a reader to look up during the sweeps.
    let probes: Vec<String> = (0..PROBES)
        .map(|_| {
            let token = now(store.issue(grant(SystemTime::now() + Duration::from_secs(3600))));
            token.expect("issue").access_token.as_str().to_owned()
        })
        .collect();

    // Let the batch expire, then issue until it is gone: each issue sweeps a batch
    // of the due shards. A reader looks up live tokens meanwhile, and while the
    // batch expires (nothing sweeps then: what the machine's scheduling alone
    // costs a lookup, the baseline).
    let wait = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + sweep_interval
        + Duration::from_millis(100);
    println!("waiting {wait:.1?} for every token to expire...");
    let probes = Arc::new(probes);
    let quiet = watch(&store, &probes);
    std::thread::sleep(wait);
    let quiet = quiet.finish();
    let expired_still_held = store.len() - PROBES;
    let sweeping_watch = watch(&store, &probes);
    let (mut issues, mut longest, mut sweeping, mut slow_issues) =
        (0, Duration::ZERO, Duration::ZERO, 0);
    let mut times = Vec::new();
    while store.len() > issues + PROBES {
        let start = Instant::now();
        now(store.issue(grant(SystemTime::now() + Duration::from_secs(60)))).expect("issue");
        let took = start.elapsed();
        (issues, longest, sweeping) = (issues + 1, longest.max(took), sweeping + took);
        slow_issues += usize::from(took > SLOW);
        times.push(took);
    }
    times.sort();
    let percentile = |p: usize| {
        times
            .get(times.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    let (median_issue, p99_issue) = (percentile(50), percentile(99));
    let during = sweeping_watch.finish();
    let worst_lookup = during.worst;
    let (heap2, rss2) = (heap(), rss());
    let after = store.len() - PROBES;
    println!(
        "  after expiry, before any issue: {expired_still_held} tokens held (sweeps run on issue)"
    );
    println!(
        "  lookups of live tokens (another thread) while the issues swept: {} , the longest {:.2?}, {} over {SLOW:?}",
        during.lookups, during.worst, during.slow
    );
    println!(
        "  the same before, while nothing swept (the machine's own stalls): {}, the longest {:.2?}, {} over {SLOW:?}",
        quiet.lookups, quiet.worst, quiet.slow
    );
    println!(
        "  issues while sweeping: median {median_issue:.2?}, p99 {p99_issue:.2?}, {slow_issues} over {SLOW:?}"
    );
    println!(
        "  after {issues} more issues ({sweeping:.2?} in all, the longest {longest:.2?}): \
         {after} live token(s) held; heap {:.1} MiB above the start ({:.1} bytes per token issued), \
         RSS {:.1} MiB above the start",
        mib(heap2.saturating_sub(heap0)),
        heap2.saturating_sub(heap0) as f64 / count as f64,
        mib(rss2.saturating_sub(rss0)),
    );
    store.purge_expired();
    drop(store);
    let (heap3, rss3) = (heap(), rss());
    println!(
        "  store dropped: heap {:.1} MiB above the start, RSS {:.1} MiB above the start",
        mib(heap3.saturating_sub(heap0)),
        mib(rss3.saturating_sub(rss0)),
    );

    if let Some(path) = std::env::var_os("BENCH_OUT") {
        let tsv = format!(
            "tokens\t{count}\n\
             heap_bytes_per_token\t{heap_per_token:.1}\n\
             rss_bytes_per_token\t{rss_per_token:.1}\n\
             issue_ns\t{}\n\
             held_after_expiry_before_issue\t{expired_still_held}\n\
             issues_to_reclaim\t{issues}\n\
             held_after_sweep\t{after}\n\
             heap_bytes_after_sweep\t{}\n\
             rss_bytes_after_sweep\t{}\n\
             sweep_ms\t{:.1}\n\
             sweep_total_ms\t{:.1}\n\
             worst_lookup_ms\t{:.2}\n\
             slow_lookups\t{}\n\
             quiet_worst_lookup_ms\t{:.2}\n\
             slow_issues\t{slow_issues}\n\
             median_issue_ms\t{:.3}\n\
             p99_issue_ms\t{:.3}\n",
            per_token.as_nanos(),
            heap2.saturating_sub(heap0),
            rss2.saturating_sub(rss0),
            longest.as_secs_f64() * 1e3,
            sweeping.as_secs_f64() * 1e3,
            worst_lookup.as_secs_f64() * 1e3,
            during.slow,
            quiet.worst.as_secs_f64() * 1e3,
            median_issue.as_secs_f64() * 1e3,
            p99_issue.as_secs_f64() * 1e3,
        );
        std::fs::write(&path, tsv).expect("write BENCH_OUT");
    }
}

/// A lookup or an issue slower than this is a stall.
const SLOW: Duration = Duration::from_millis(10);

/// What a reader thread saw: how many lookups, the longest, how many over [`SLOW`].
struct Seen {
    lookups: usize,
    worst: Duration,
    slow: usize,
}

struct Watch {
    stop: Arc<AtomicBool>,
    reader: std::thread::JoinHandle<Seen>,
}

impl Watch {
    fn finish(self) -> Seen {
        self.stop.store(true, Ordering::Relaxed);
        self.reader.join().expect("reader thread")
    }
}

/// A thread looking up `probes` (live tokens) over and over until told to stop.
fn watch(store: &MemoryTokenStore, probes: &Arc<Vec<String>>) -> Watch {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (store, stop, probes) = (store.clone(), Arc::clone(&stop), Arc::clone(probes));
        move || {
            let mut seen = Seen {
                lookups: 0,
                worst: Duration::ZERO,
                slow: 0,
            };
            while !stop.load(Ordering::Relaxed) {
                for token in probes.iter() {
                    let start = Instant::now();
                    let found = now(store.resolve(token.as_str().into())).expect("resolve");
                    let took = start.elapsed();
                    assert!(found.is_some(), "a live token was swept");
                    seen.lookups += 1;
                    seen.worst = seen.worst.max(took);
                    seen.slow += usize::from(took > SLOW);
                }
            }
            seen
        }
    });
    Watch { stop, reader }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
