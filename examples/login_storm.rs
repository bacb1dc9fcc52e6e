//! Protected-route latency while a storm of logins hashes passwords: the tutorial
//! app in process, `GET /users/me` timed one request at a time, idle and then
//! while `STORM` clients (default 64) log in as fast as they can.
//!
//! ```text
//! cargo run --release --example login_storm   # REQUESTS=20000 STORM=64 HASHES=(CPUs)
//! ```
//!
//! Prints p50/p99 of the protected route for both phases, and how the storm's
//! logins were answered (200, or 503 from the bounded login queue).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;

#[path = "tutorial.rs"]
#[allow(dead_code)]
mod tutorial;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

async fn login(client: &HttpClient, base: &str) -> (u16, Bytes) {
    let request = Request::post(format!("{base}/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::from("username=johndoe&password=secret"))
        .expect("request");
    let response = client.request(request).await.expect("login sent");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body)
}

/// `requests` sequential `GET /users/me`, in microseconds each, sorted.
async fn time_protected_route(
    client: &HttpClient,
    base: &str,
    token: &str,
    requests: usize,
) -> Vec<u64> {
    let mut micros = Vec::with_capacity(requests);
    for _ in 0..requests {
        let request = Request::get(format!("{base}/users/me"))
            .header("authorization", format!("Bearer {token}"))
            .body(Full::default())
            .expect("request");
        let start = Instant::now();
        let response = client.request(request).await.expect("request sent");
        assert_eq!(response.status(), 200);
        response.into_body().collect().await.expect("body");
        micros.push(start.elapsed().as_micros() as u64);
    }
    micros.sort_unstable();
    micros
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let requests = env("REQUESTS", 20000);
    let storm = env("STORM", 64);
    let mut layer = tutorial::layer_builder();
    if let Some(hashes) = std::env::var("HASHES").ok().and_then(|n| n.parse().ok()) {
        layer = layer.max_concurrent_hashes(hashes);
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(tutorial::serve(
        listener,
        layer.build(),
        std::future::pending(),
    ));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
    let (status, body) = login(&client, &base).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let token = json["access_token"].as_str().expect("token").to_owned();

    // Warm-up, then idle.
    time_protected_route(&client, &base, &token, requests / 10).await;
    let idle = time_protected_route(&client, &base, &token, requests).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<[AtomicU64; 3]> = Arc::default(); // 200, 503, other
    let stormers: Vec<_> = (0..storm)
        .map(|_| {
            let (client, base, stop, counts) =
                (client.clone(), base.clone(), stop.clone(), counts.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let slot = match login(&client, &base).await.0 {
                        200 => 0,
                        503 => 1,
                        _ => 2,
                    };
                    counts[slot].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Let the queue fill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let snapshot = || counts.each_ref().map(|count| count.load(Ordering::Relaxed));
    let (before, started) = (snapshot(), Instant::now());
    let stormy = time_protected_route(&client, &base, &token, requests).await;
    let (after, elapsed) = (snapshot(), started.elapsed());
    stop.store(true, Ordering::Relaxed);
    for stormer in stormers {
        let _ = stormer.await;
    }

    println!("GET /users/me, {requests} sequential requests per phase; ms");
    println!("{:<28} {:>8} {:>8}", "phase", "p50", "p99");
    for (phase, sorted) in [
        ("idle", &idle),
        (&*format!("{storm} clients logging in"), &stormy),
    ] {
        println!(
            "{phase:<28} {:>8.3} {:>8.3}",
            percentile(sorted, 0.50),
            percentile(sorted, 0.99)
        );
    }
    println!(
        "p99 during the storm / idle: {:.2}x",
        percentile(&stormy, 0.99) / percentile(&idle, 0.99)
    );
    let [ok, busy, other] = [0, 1, 2].map(|i| after[i] - before[i]);
    println!(
        "storm logins meanwhile: {ok} x 200, {busy} x 503 (queue full or waited too long), \
         {other} other, in {:.1} s",
        elapsed.as_secs_f64()
    );
}
