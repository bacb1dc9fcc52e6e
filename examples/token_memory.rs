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
//! swept for a second), and reports how many issues that took, the longest one, and what is left.
//! Meanwhile a second thread keeps resolving a few live tokens (one or more per
//! shard) and reports its longest wait: what a guarded request saw of the sweeps.
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
    let expires_at = SystemTime::now() + issuing * 2 + Duration::from_secs(1);

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

    // Let the batch expire, then issue until it is gone: each issue sweeps the due shards.
    let wait = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        + sweep_interval
        + Duration::from_millis(100);
    println!("waiting {wait:.1?} for every token to expire...");
    std::thread::sleep(wait);
    let expired_still_held = store.len() - PROBES;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = std::thread::spawn({
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        move || {
            let mut worst = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                for token in &probes {
                    let start = Instant::now();
                    let found = now(store.resolve(token.as_str().into())).expect("resolve");
                    worst = worst.max(start.elapsed());
                    assert!(found.is_some(), "a live token was swept");
                }
            }
            worst
        }
    });
    let (mut issues, mut longest, mut sweeping) = (0, Duration::ZERO, Duration::ZERO);
    while store.len() > issues + PROBES {
        let start = Instant::now();
        now(store.issue(grant(SystemTime::now() + Duration::from_secs(60)))).expect("issue");
        let took = start.elapsed();
        (issues, longest, sweeping) = (issues + 1, longest.max(took), sweeping + took);
    }
    stop.store(true, Ordering::Relaxed);
    let worst_lookup = reader.join().expect("reader thread");
    let (heap2, rss2) = (heap(), rss());
    let after = store.len() - PROBES;
    println!(
        "  after expiry, before any issue: {expired_still_held} tokens held (sweeps run on issue)"
    );
    println!("  longest lookup of a live token meanwhile: {worst_lookup:.2?}");
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
             worst_lookup_ms\t{:.2}\n",
            per_token.as_nanos(),
            heap2.saturating_sub(heap0),
            rss2.saturating_sub(rss0),
            longest.as_secs_f64() * 1e3,
            sweeping.as_secs_f64() * 1e3,
            worst_lookup.as_secs_f64() * 1e3,
        );
        std::fs::write(&path, tsv).expect("write BENCH_OUT");
    }
}

fn mib(bytes: usize) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
