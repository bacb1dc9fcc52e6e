//! What one login costs at the token endpoint, next to the floor: a raw Argon2id
//! verification of the same hash.
//!
//! ```text
//! cargo bench --bench login -- --measurement-time 3 --warm-up-time 1
//! ```
//!
//! - `token_endpoint`: `POST /token` with the right password, through the layer with
//!   its default Argon2id hasher (m=19456 KiB, t=2, p=1), via
//!   `tower::ServiceExt::oneshot` on a tokio runtime (the layer verifies on tokio's
//!   blocking pool);
//! - `raw_argon2_verify`: `argon2`'s `verify_password` on the same PHC string, on the
//!   calling thread: the floor;
//! - `wrong_password`, `unknown_user`, `disabled_user` (with
//!   `refuse_inactive_login(true)`): the failures, which must cost what the right
//!   password costs, or the time tells which usernames exist (or are disabled).
//!
//! The layer runs without a login policy: the throttle would answer the repeated
//! failures with a cheap 429. After criterion, the cases run again in interleaved
//! rounds (drift hits them alike) and the bench prints medians, the ratio to the
//! floor and the ratio to the right password; `BENCH_OUT=file` also writes them as
//! TSV (for `scripts/bench.sh`).

mod support;
use support::{quartiles, Mode};

use std::hint::black_box;
use std::time::Instant;

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use bytes::Bytes;
use criterion::{Criterion, SamplingMode};
use http::header::CONTENT_TYPE;
use http::{Request, StatusCode};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

type Case = (&'static str, Box<dyn FnMut()>);

fn cases() -> Vec<Case> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let hash = Argon2Hasher::new().hash("secret").expect("hash");
    let phc = hash.as_str().to_owned();
    let mut disabled = StoredUser::new("Alice", hash.clone());
    disabled.active = false;
    let users = MemoryUserStore::new()
        .with_user("johndoe", StoredUser::new("John Doe", hash))
        .with_user("alice", disabled);
    let layer = OAuth2PasswordLayer::builder(users)
        .refuse_inactive_login(true)
        .no_login_policy()
        .build();
    let app =
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_request: Request<Full<Bytes>>| async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::<Bytes>::default()))
            });
    let runtime = std::rc::Rc::new(runtime);

    let login = |form: &'static str, expected: StatusCode| -> Box<dyn FnMut()> {
        let app = app.clone();
        let runtime = runtime.clone();
        Box::new(move || {
            let request = Request::post("/token")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Full::from(form))
                .expect("request");
            let response = runtime
                .block_on(app.clone().oneshot(request))
                .expect("infallible");
            assert_eq!(response.status(), expected, "{form}");
            black_box(response);
        })
    };
    vec![
        (
            "token_endpoint",
            login("username=johndoe&password=secret", StatusCode::OK),
        ),
        (
            "raw_argon2_verify",
            Box::new(move || {
                let parsed = PasswordHash::new(&phc).expect("PHC string");
                let ok = Argon2::default()
                    .verify_password(black_box(b"secret"), &parsed)
                    .is_ok();
                assert!(ok);
            }),
        ),
        (
            "wrong_password",
            login("username=johndoe&password=nope", StatusCode::BAD_REQUEST),
        ),
        (
            "unknown_user",
            login("username=nobody&password=secret", StatusCode::BAD_REQUEST),
        ),
        (
            "disabled_user",
            login("username=alice&password=secret", StatusCode::BAD_REQUEST),
        ),
    ]
}

fn main() {
    let mut cases = cases();
    let mode = Mode::from_env();
    if mode.criterion {
        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("login");
        group.sampling_mode(SamplingMode::Flat).sample_size(10);
        for (name, run) in &mut cases {
            group.bench_function(*name, |b| b.iter(&mut *run));
        }
        group.finish();
        criterion.final_summary();
    }
    if mode.interleaved {
        interleaved(&mut cases);
    }
}

/// Times every case in rounds of 3 logins each, in rotating order; prints medians and
/// the ratio of each case to the raw verification within the same round.
fn interleaved(cases: &mut [Case]) {
    const ROUNDS: usize = 15;
    const PER_ROUND: u32 = 3;
    let mut samples = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for round in 0..=ROUNDS {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let start = Instant::now();
            for _ in 0..PER_ROUND {
                (cases[i].1)();
            }
            let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(PER_ROUND);
            if round > 0 {
                samples[i].push(ms);
            }
        }
    }
    let floor = cases
        .iter()
        .position(|(name, _)| *name == "raw_argon2_verify")
        .expect("floor case");
    println!("\ninterleaved: {ROUNDS} rounds x {PER_ROUND} logins per case; ms per login");
    let right = cases
        .iter()
        .position(|(name, _)| *name == "token_endpoint")
        .expect("right-password case");
    println!(
        "{:<18} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "case", "median", "p25", "p75", "vs floor", "vs right"
    );
    let mut tsv = String::from("case\tmedian_ms\tp25_ms\tp75_ms\tratio_to_raw\tratio_to_right\n");
    // The median of the per-round ratios of case `i` to case `to`.
    let ratio = |i: usize, to: usize| {
        let ratios: Vec<f64> = samples[i]
            .iter()
            .zip(&samples[to])
            .map(|(c, f)| c / f)
            .collect();
        quartiles(&ratios).1
    };
    for (i, (name, _)) in cases.iter().enumerate() {
        let (p25, median, p75) = quartiles(&samples[i]);
        let (to_floor, to_right) = (ratio(i, floor), ratio(i, right));
        println!(
            "{name:<18} {median:>8.2} {p25:>8.2} {p75:>8.2} {to_floor:>8.3}x {to_right:>8.3}x"
        );
        tsv += &format!("{name}\t{median:.3}\t{p25:.3}\t{p75:.3}\t{to_floor:.4}\t{to_right:.4}\n");
    }
    println!(
        "target: token_endpoint <= 1.10x raw_argon2_verify; failures ~1.0x the right password"
    );
    if let Some(path) = std::env::var_os("BENCH_OUT") {
        std::fs::write(&path, tsv).expect("write BENCH_OUT");
    }
}
