//! The [`ReplayStore`] conformance suite (features `testing` and `dpop`).

use std::sync::Barrier;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::report::{self, BrokenRule, Report};
use super::run_id;
use crate::dpop::replay::{ProofId, ReplayStore, Sighting};
use crate::token::grant::JwkThumbprint;

/// The [`ReplayStore`] conformance suite: a proof passes the first time and is
/// refused after, the same `jti` under another key is another proof, an entry
/// ends with its expiry, and of many concurrent sightings of one proof exactly
/// one passes. Every proof is new to the store (random keys and `jti`s), so the
/// rules can run on a shared store. One rule waits about a second.
///
/// ```
/// use tower_oauth2_password::dpop::MemoryReplayStore;
/// use tower_oauth2_password::testing::ReplayStoreSuite;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// ReplayStoreSuite::new().run(&MemoryReplayStore::new()).await;
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ReplayStoreSuite {
    _private: (),
}

/// How long the expiry rule's entry lasts.
const SHORT: Duration = Duration::from_millis(600);
/// How many sightings of one proof the concurrency rule makes at once.
const CONCURRENT: usize = 64;

impl ReplayStoreSuite {
    /// The suite.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs every rule against `store`; panics listing every rule broken.
    pub async fn run<R: ReplayStore>(&self, store: &R) {
        report::fail_on("ReplayStoreSuite", &self.check(store).await);
    }

    /// Runs every rule against `store` and returns the broken ones.
    pub async fn check<R: ReplayStore>(&self, store: &R) -> Vec<BrokenRule> {
        let mut report = Report::default();
        crate::__replay_store_rules!(__each_rule!(report, self, store));
        report.into_broken()
    }

    /// A proof never seen passes.
    pub async fn a_first_sighting_passes<R: ReplayStore>(&self, store: &R) {
        let proof = ProofId::new(&thumbprint(), &jti());
        assert_eq!(
            remember(store, &proof, in_a_minute()).await,
            Sighting::First,
            "a proof never seen must pass"
        );
    }

    /// A proof seen before is a replay, however often it comes back, and with
    /// any expiry.
    pub async fn a_second_sighting_is_a_replay<R: ReplayStore>(&self, store: &R) {
        let proof = ProofId::new(&thumbprint(), &jti());
        let until = in_a_minute();
        assert_eq!(remember(store, &proof, until).await, Sighting::First);
        for until in [
            until,
            until + Duration::from_secs(60),
            until - Duration::from_secs(30),
        ] {
            assert_eq!(
                remember(store, &proof, until).await,
                Sighting::Replay,
                "a proof seen before must be refused"
            );
        }
    }

    /// The same `jti` from another key is another proof (a `jti` is unique per
    /// key only), and another `jti` from the same key too.
    pub async fn another_key_or_jti_is_another_proof<R: ReplayStore>(&self, store: &R) {
        let (key, other_key, jti) = (thumbprint(), thumbprint(), jti());
        let until = in_a_minute();
        assert_eq!(
            remember(store, &ProofId::new(&key, &jti), until).await,
            Sighting::First
        );
        assert_eq!(
            remember(store, &ProofId::new(&other_key, &jti), until).await,
            Sighting::First,
            "the same jti under another key must pass"
        );
        assert_eq!(
            remember(store, &ProofId::new(&key, &format!("{jti}A")), until).await,
            Sighting::First,
            "another jti under the same key must pass"
        );
        assert_eq!(
            remember(store, &ProofId::new(&key, &jti), until).await,
            Sighting::Replay,
            "the first proof is still remembered"
        );
    }

    /// Once its expiry has passed, a proof is forgotten: it passes again (the
    /// verifier refuses it by then, and the store need not keep it). A proof
    /// whose expiry has passed already is refused every time: its window
    /// closed between the check and the store, where its first sighting may
    /// have expired. Waits about a second.
    pub async fn an_entry_ends_with_its_expiry<R: ReplayStore>(&self, store: &R) {
        let proof = ProofId::new(&thumbprint(), &jti());
        let until = SystemTime::now() + SHORT;
        assert_eq!(remember(store, &proof, until).await, Sighting::First);
        assert_eq!(
            remember(store, &proof, until).await,
            Sighting::Replay,
            "a proof must be remembered until its expiry"
        );
        tokio::time::sleep(SHORT + Duration::from_millis(400)).await;
        assert_eq!(
            remember(store, &proof, in_a_minute()).await,
            Sighting::First,
            "a proof must be forgotten once its expiry has passed"
        );

        let stale = ProofId::new(&thumbprint(), &jti());
        let past = SystemTime::now() - Duration::from_secs(1);
        for _ in 0..2 {
            assert_eq!(
                remember(store, &stale, past).await,
                Sighting::Replay,
                "a proof whose expiry has passed must be refused"
            );
        }
    }

    /// 64 sightings of one proof at once, from 64 threads and awaited
    /// together, let exactly one through: the check and the insert are one step.
    pub async fn concurrent_sightings_let_one_through<R: ReplayStore>(&self, store: &R) {
        let proof = ProofId::new(&thumbprint(), &jti());
        let until = in_a_minute();
        let runtime = tokio::runtime::Handle::current();
        let start = Barrier::new(CONCURRENT);
        // Each thread calls `remember` (a store in memory answers there and
        // then); the answers, ready or pending, are then awaited concurrently.
        let lookups: Vec<_> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..CONCURRENT)
                .map(|_| {
                    scope.spawn(|| {
                        let _runtime = runtime.enter();
                        start.wait();
                        store.remember(&proof, until)
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|thread| thread.join().expect("a remember call panicked"))
                .collect()
        });
        let tasks: Vec<_> = lookups.into_iter().map(tokio::spawn).collect();
        let mut first = 0;
        for task in tasks {
            match task.await.expect("a remember call panicked") {
                Ok(Sighting::First) => first += 1,
                Ok(Sighting::Replay) => {}
                Err(error) => panic!("remember failed on a working store: {error}"),
            }
        }
        assert_eq!(
            first, 1,
            "of {CONCURRENT} concurrent sightings of one proof, exactly one must pass"
        );
    }
}

/// A random key thumbprint (43 base64url characters, as a real one).
fn thumbprint() -> JwkThumbprint {
    let mut bytes = [0u8; 32];
    for chunk in bytes.chunks_mut(8) {
        chunk.copy_from_slice(&run_id().to_ne_bytes());
    }
    JwkThumbprint::from_encoded(&URL_SAFE_NO_PAD.encode(bytes)).expect("a canonical thumbprint")
}

/// A random `jti`, as clients make them.
fn jti() -> String {
    URL_SAFE_NO_PAD.encode(run_id().to_ne_bytes())
}

fn in_a_minute() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

async fn remember<R: ReplayStore>(store: &R, proof: &ProofId, until: SystemTime) -> Sighting {
    store
        .remember(proof, until)
        .await
        .unwrap_or_else(|error| panic!("remember failed on a working store: {error}"))
}

/// One `#[tokio::test]` per rule of the
/// `ReplayStoreSuite` (features `testing` and `dpop`), each on a store built by
/// the expression given.
///
/// ```
/// # #[cfg(feature = "dpop")]
/// mod memory_replay_store {
///     use tower_oauth2_password::dpop::MemoryReplayStore;
///
///     tower_oauth2_password::replay_store_tests!(MemoryReplayStore::new());
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! replay_store_tests {
    ($store:expr $(,)?) => {
        $crate::__replay_store_rules!(__conformance_tests!(
            $crate::testing::ReplayStoreSuite::new(),
            $store
        ));
    };
}

/// Calls `$m!(args; rule, ...)` with every rule of its suite: the one list the
/// suite's `check` and its test macro share.
#[doc(hidden)]
#[macro_export]
macro_rules! __replay_store_rules {
    ($m:ident!($($args:tt)*)) => {
        $crate::$m!($($args)*;
            a_first_sighting_passes,
            a_second_sighting_is_a_replay,
            another_key_or_jti_is_another_proof,
            an_entry_ends_with_its_expiry,
            concurrent_sightings_let_one_through,
        );
    };
}
