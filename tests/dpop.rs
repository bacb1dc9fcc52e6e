//! DPoP (RFC 9449, feature `dpop`) at the token endpoint and in the guard, over a
//! real socket: proofs made here with ed25519-dalek and p256, as a client
//! library would make them.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use common::{tutorial, tutorial_builder, Reply, Server, Stores};
use ed25519_dalek::Signer as _;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tower_oauth2_password::dpop::{DpopSettings, MemoryReplayStore};
use tower_oauth2_password::endpoint::TrustedProxies;
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;

/// A client's key pair.
enum Key {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

static JTI: AtomicU64 = AtomicU64::new(0);

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

impl Key {
    fn ed25519(seed: u8) -> Self {
        Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn p256(seed: u8) -> Self {
        Key::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap())
    }

    /// A proof for `method` and `htu`, of `token` when given, with `nonce`.
    fn proof(&self, method: &str, htu: &str, token: Option<&str>, nonce: Option<&str>) -> String {
        let (alg, jwk) = match self {
            Key::Ed25519(key) => (
                "EdDSA",
                json!({"kty": "OKP", "crv": "Ed25519",
                       "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes())}),
            ),
            Key::P256(key) => {
                // Uncompressed SEC1: 0x04, x, y.
                let point = key.verifying_key().to_sec1_bytes();
                (
                    "ES256",
                    json!({"kty": "EC", "crv": "P-256",
                           "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                           "y": URL_SAFE_NO_PAD.encode(&point[33..65])}),
                )
            }
        };
        let header = json!({"typ": "dpop+jwt", "alg": alg, "jwk": jwk});
        let jti = format!(
            "jti-{}-{}",
            std::process::id(),
            JTI.fetch_add(1, Ordering::Relaxed)
        );
        let mut claims = json!({"jti": jti, "htm": method, "htu": htu, "iat": now()});
        if let Some(token) = token {
            claims["ath"] = URL_SAFE_NO_PAD
                .encode(Sha256::digest(token.as_bytes()))
                .into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        format!("{signed}.{}", self.sign(&signed))
    }

    /// The base64url signature of `signed` by this key.
    fn sign(&self, signed: &str) -> String {
        let signature = match self {
            Key::Ed25519(key) => key.sign(signed.as_bytes()).to_bytes().to_vec(),
            Key::P256(key) => {
                let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
                signature.to_bytes().to_vec()
            }
        };
        URL_SAFE_NO_PAD.encode(signature)
    }
}

/// The tutorial with refresh tokens and DPoP as `settings` say; no login policy
/// (these tests refuse many requests from one address).
async fn start(settings: DpopSettings) -> Server {
    start_with_stores(Stores::Ready, settings).await
}

/// [`start`] with the tutorial's stores answering as `stores` says.
async fn start_with_stores(stores: Stores, settings: DpopSettings) -> Server {
    let layer = tutorial_builder(stores)
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .no_login_policy()
        .dpop(settings)
        .build();
    Server::start_with(layer).await
}

/// `POST /token` with `form`, and these extra headers.
async fn post_token(server: &Server, form: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    server
        .send(request.body(Full::from(form.to_owned())).unwrap())
        .await
}

/// `method path` with these headers.
async fn request(server: &Server, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = Request::builder().method(method).uri(server.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    server
        .send(request.body(Full::<Bytes>::default()).unwrap())
        .await
}

const LOGIN: &str = "username=johndoe&password=secret";

/// Logs in with a proof by `key`: (access token, refresh token).
async fn dpop_login(server: &Server, key: &Key) -> (String, String) {
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let reply = post_token(server, LOGIN, &[("dpop", &proof)]).await;
    dpop_tokens(&reply)
}

#[track_caller]
fn dpop_tokens(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    let json = reply.json();
    assert_eq!(json["token_type"], "DPoP");
    (
        json["access_token"].as_str().unwrap().to_owned(),
        json["refresh_token"].as_str().unwrap().to_owned(),
    )
}

/// `GET /users/me` with `Authorization: DPoP <token>` and `proof`.
async fn me_with(server: &Server, token: &str, proof: &str) -> Reply {
    let authorization = format!("DPoP {token}");
    request(
        server,
        Method::GET,
        "/users/me",
        &[("authorization", &authorization), ("dpop", proof)],
    )
    .await
}

/// A fresh proof for `GET /users/me` of `token` by `key`.
fn me_proof(server: &Server, key: &Key, token: &str) -> String {
    key.proof("GET", &server.url("/users/me"), Some(token), None)
}

#[track_caller]
fn assert_proof_refused(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "body: {:?}",
        reply.body
    );
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"DPoP error="invalid_dpop_proof", algs="ES256 EdDSA Ed25519""#)
    );
}

#[track_caller]
fn assert_dpop_invalid_token(reply: &Reply) {
    reply.assert_error(
        401,
        "Invalid authentication credentials",
        Some("invalid_token"),
    );
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"DPoP error="invalid_token", algs="ES256 EdDSA Ed25519""#)
    );
}

#[track_caller]
fn assert_bad_token_proof(reply: &Reply) {
    assert_eq!(
        reply.status,
        StatusCode::BAD_REQUEST,
        "body: {:?}",
        reply.body
    );
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.json()["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn a_dpop_token_works_with_a_proof_of_its_key_only() {
    for key in [Key::ed25519(7), Key::p256(7)] {
        let server = start(DpopSettings::allowed()).await;
        let (token, _) = dpop_login(&server, &key).await;
        let me = me_with(&server, &token, &me_proof(&server, &key, &token)).await;
        assert_eq!(me.status, StatusCode::OK, "body: {:?}", me.body);
        assert_eq!(me.json()["username"], "johndoe");

        // The same token as a bearer token: refused.
        assert_dpop_invalid_token(&server.me(&token).await);
        // With a proof by another key.
        let other = Key::ed25519(8);
        assert_proof_refused(&me_with(&server, &token, &me_proof(&server, &other, &token)).await);
        // Without a proof.
        let authorization = format!("DPoP {token}");
        let reply = request(
            &server,
            Method::GET,
            "/users/me",
            &[("authorization", &authorization)],
        )
        .await;
        assert_proof_refused(&reply);
        // A token that is not ASCII, with a proof of its own hash: no token.
        let odd = format!("{token}é");
        assert_dpop_invalid_token(&me_with(&server, &odd, &me_proof(&server, &key, &odd)).await);
        server.stop().await;
    }
}

/// The guard decides in `call` when every store answers at once, and awaits
/// the ones that do not: each mix of ready and awaited token, user and replay
/// stores lets a proof through once, and refuses its replay, another key's
/// proof and a disabled user alike.
#[tokio::test]
async fn dpop_tokens_are_checked_alike_whichever_stores_are_awaited() {
    use tower_oauth2_password::dpop::MemoryReplayStore;
    use tower_oauth2_password::testing::Awaited;

    for stores in [
        Stores::Ready,
        Stores::AwaitedTokens,
        Stores::AwaitedUsers,
        Stores::Awaited,
    ] {
        for awaited_replays in [false, true] {
            let replays = MemoryReplayStore::new();
            let replays = if awaited_replays {
                Awaited::new(replays)
            } else {
                Awaited::passthrough(replays)
            };
            let layer = tutorial_builder(stores)
                .refresh_tokens(MemoryRefreshTokenStore::new())
                .no_login_policy()
                .dpop(DpopSettings::allowed().replay_store(replays))
                .build();
            let users = layer.user_store().clone();
            let server = Server::start_with(layer).await;
            let key = Key::ed25519(21);
            let (token, _) = dpop_login(&server, &key).await;
            let proof = me_proof(&server, &key, &token);
            let me = me_with(&server, &token, &proof).await;
            assert_eq!(me.status, StatusCode::OK, "body: {:?}", me.body);
            assert_eq!(me.json()["username"], "johndoe");
            assert_proof_refused(&me_with(&server, &token, &proof).await);
            let other = Key::p256(21);
            assert_proof_refused(
                &me_with(&server, &token, &me_proof(&server, &other, &token)).await,
            );
            assert!(users.disable("johndoe"));
            me_with(&server, &token, &me_proof(&server, &key, &token))
                .await
                .assert_error(400, "Inactive user", None);
            server.stop().await;
        }
    }
}

/// An attacker who captured a request replays its proof many times at once,
/// from several client addresses: exactly one of the copies gets through,
/// whether the stores answer at once (the proof checked in `call`) or are
/// awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proof_replayed_at_once_from_many_addresses_passes_once() {
    for stores in [Stores::Ready, Stores::Awaited] {
        let server = start_with_stores(stores, DpopSettings::allowed()).await;
        let key = Key::p256(22);
        let (token, _) = dpop_login(&server, &key).await;
        let proof = me_proof(&server, &key, &token);
        let attempts: Vec<_> = (0..32)
            .map(|i| {
                let client = server.connecting_from(&format!("127.0.0.{}", 2 + i % 8));
                let (token, proof) = (token.clone(), proof.clone());
                tokio::spawn(async move { me_with(&client, &token, &proof).await })
            })
            .collect();
        let mut replies = Vec::new();
        for attempt in attempts {
            replies.push(attempt.await.expect("the request task ends"));
        }
        let passed = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .count();
        assert_eq!(passed, 1, "{stores:?}");
        for reply in replies.iter().filter(|r| r.status != StatusCode::OK) {
            assert_proof_refused(reply);
        }
        server.stop().await;
    }
}

/// An attacker who captured a client's proofs (a log, a proxy) replays every
/// one of them while the client is still sending them: 300 proofs, each sent by
/// its owner and by the attacker at once, from eight client addresses, all in
/// flight together. The memory replay store grows from its first 16 slots
/// through several rebuilds meanwhile; each proof passes exactly once, every
/// other copy is refused, and a second wave of replays afterwards is refused
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_proofs_replayed_while_the_replay_store_grows_pass_once_each() {
    let replays = MemoryReplayStore::with_capacity(1_000);
    let server = start(DpopSettings::allowed().replay_store(replays.clone())).await;
    let key = Key::ed25519(31);
    let (token, _) = dpop_login(&server, &key).await;
    let proofs: Vec<String> = (0..300).map(|_| me_proof(&server, &key, &token)).collect();
    let send_all = |wave: usize| {
        let attempts: Vec<_> = proofs
            .iter()
            .enumerate()
            .flat_map(|(n, proof)| [(n, proof.clone()), (n, proof.clone())])
            .enumerate()
            .map(|(i, (n, proof))| {
                let client = server.connecting_from(&format!("127.0.0.{}", 2 + (i + wave) % 8));
                let token = token.clone();
                tokio::spawn(async move { (n, me_with(&client, &token, &proof).await) })
            })
            .collect();
        async move {
            let mut replies = Vec::new();
            for attempt in attempts {
                replies.push(attempt.await.expect("the request task ends"));
            }
            replies
        }
    };
    let mut passed = vec![0; proofs.len()];
    for (n, reply) in send_all(0).await {
        if reply.status == StatusCode::OK {
            assert_eq!(reply.json()["username"], "johndoe");
            passed[n] += 1;
        } else {
            assert_proof_refused(&reply);
        }
    }
    assert!(passed.iter().all(|&times| times == 1), "{passed:?}");
    // The login's proof and the 300.
    assert_eq!(replays.len(), 301);
    for (_, reply) in send_all(1).await {
        assert_proof_refused(&reply);
    }
    server.stop().await;
}

/// The memory replay store keeps proofs by the second they were issued in and
/// drops a second's whole once its proofs expire. An attacker who captures
/// every proof sent over several seconds replays all of them after each new
/// one, many at once from several addresses: each is refused every time (by
/// the store while its window lasts, as too old after), a second's proofs are
/// not forgotten while they could pass, and once forgotten, replays are still
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_replayed_as_their_seconds_are_dropped_are_still_refused() {
    let replays = MemoryReplayStore::with_capacity(1_000);
    let settings = DpopSettings::allowed()
        .max_age(Duration::from_secs(1))
        .replay_store(replays.clone());
    let server = start(settings).await;
    let key = Key::ed25519(32);
    let (token, _) = dpop_login(&server, &key).await;
    let replay_all = |captured: &[String]| {
        let attempts: Vec<_> = captured
            .iter()
            .enumerate()
            .map(|(i, proof)| {
                let client = server.connecting_from(&format!("127.0.0.{}", 2 + i % 8));
                let (token, proof) = (token.clone(), proof.clone());
                tokio::spawn(async move { me_with(&client, &token, &proof).await })
            })
            .collect();
        async move {
            for attempt in attempts {
                assert_proof_refused(&attempt.await.expect("the request task ends"));
            }
        }
    };
    let mut captured = Vec::new();
    let (first, last) = (now(), now() + 2);
    while now() <= last {
        let proof = me_proof(&server, &key, &token);
        assert_eq!(
            me_with(&server, &token, &proof).await.status,
            StatusCode::OK
        );
        captured.push(proof);
        replay_all(&captured).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(now() > first + 2, "proofs of at least three seconds");

    // Every captured proof's second has expired (iat + 1 s window + 1 s).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = me_proof(&server, &key, &token);
    assert_eq!(
        me_with(&server, &token, &fresh).await.status,
        StatusCode::OK
    );
    assert_eq!(replays.len(), 1, "the expired seconds were dropped");
    captured.push(fresh);
    replay_all(&captured).await;
    server.stop().await;
}

/// 32 requests at once with `token` and these proofs in turn, from 127.0.0.2 to
/// 127.0.0.9: every one refused as `invalid_dpop_proof`.
async fn all_refused_at_once(server: &Server, token: &str, proofs: &[String]) {
    let attempts: Vec<_> = (0..32)
        .map(|i| {
            let client = server.connecting_from(&format!("127.0.0.{}", 2 + i % 8));
            let (token, proof) = (token.to_owned(), proofs[i % proofs.len()].clone());
            tokio::spawn(async move { me_with(&client, &token, &proof).await })
        })
        .collect();
    for attempt in attempts {
        assert_proof_refused(&attempt.await.expect("the request task ends"));
    }
}

/// `proof` lets `token` through once, and is refused the second time.
async fn passes_once(server: &Server, token: &str, proof: &str) {
    let me = me_with(server, token, proof).await;
    assert_eq!(me.status, StatusCode::OK, "body: {:?}", me.body);
    assert_proof_refused(&me_with(server, token, proof).await);
}

/// An attacker who captured a proof sends re-encodings of it that a lenient
/// base64url decoder would read as the same bytes (stray bits in a segment's
/// last character, padding, the standard alphabet), many at once from several
/// client addresses, before its owner uses it: every one is refused, and none
/// uses the proof up, so the owner's request still passes (once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn re_encoded_twins_of_a_proof_are_refused_and_do_not_use_it_up() {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let server = start(DpopSettings::allowed()).await;
    let key = Key::ed25519(23);
    let (token, _) = dpop_login(&server, &key).await;
    let proof = me_proof(&server, &key, &token);
    let segments: Vec<&str> = proof.split('.').collect();
    let mut twins = Vec::new();
    for (i, segment) in segments.iter().enumerate() {
        // A last character carrying 4 (length 4n + 2) or 2 (4n + 3) unused bits.
        let unused: usize = match segment.len() % 4 {
            2 => 0b1111,
            3 => 0b11,
            _ => 0,
        };
        let mut with = |segment: String| {
            let mut twin = segments.clone();
            twin[i] = &segment;
            twins.push(twin.join("."));
        };
        if unused != 0 {
            let last = segment.as_bytes()[segment.len() - 1];
            let sextet = ALPHABET.iter().position(|&c| c == last).unwrap();
            for bit in [1, unused & !(unused >> 1)] {
                let mut bytes = segment.as_bytes().to_vec();
                *bytes.last_mut().unwrap() = ALPHABET[sextet ^ bit];
                with(String::from_utf8(bytes).unwrap());
            }
            with(format!("{segment}{}", "=".repeat(4 - segment.len() % 4)));
        }
        if segment.contains(['-', '_']) {
            with(segment.replace('-', "+").replace('_', "/"));
        }
    }
    assert!(twins.len() >= 4, "the proof's segments offer re-encodings");

    all_refused_at_once(&server, &token, &twins).await;
    passes_once(&server, &token, &proof).await;
    server.stop().await;
}

/// The guard compares a proof's key with the token's binding before it checks
/// the signature. An attacker who captured a token and one of its proofs races
/// the owner's next proof with forgeries that name the owner's key (the
/// captured header, which the key cache holds): the next proof's claims under
/// the captured signature, under its own signature with a bit flipped, under
/// the attacker's signature, and fresh claims under the attacker's signature;
/// many at once from several client addresses, whether the token store answers
/// at once or is awaited. Every one is refused, none uses up the `jti` it
/// names, and the owner's next proof passes (once). A token never issued is
/// refused for the token, whatever its proof, with a DPoP challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proofs_naming_the_owners_key_are_refused_and_use_nothing_up() {
    for stores in [Stores::Ready, Stores::Awaited] {
        for (key, attacker) in [
            (Key::ed25519(24), Key::ed25519(25)),
            (Key::p256(24), Key::p256(25)),
        ] {
            let server = start_with_stores(stores, DpopSettings::allowed()).await;
            let (token, _) = dpop_login(&server, &key).await;
            let captured = me_proof(&server, &key, &token);
            assert_eq!(
                me_with(&server, &token, &captured).await.status,
                StatusCode::OK
            );
            let next = me_proof(&server, &key, &token);
            let forgeries = forgeries_of(&next, &captured, &attacker, &server, &token);

            all_refused_at_once(&server, &token, &forgeries).await;
            passes_once(&server, &token, &next).await;

            let never_issued = "an-access-token-this-server-never-issued";
            let proof = me_proof(&server, &key, never_issued);
            let (signed, _) = proof.rsplit_once('.').unwrap();
            let captured_signature = captured.rsplit('.').next().unwrap();
            let forgery = format!("{signed}.{captured_signature}");
            assert_dpop_invalid_token(&me_with(&server, never_issued, &forgery).await);
            assert_dpop_invalid_token(&me_with(&server, never_issued, &proof).await);
            server.stop().await;
        }
    }
}

/// Forgeries of `next`, a proof of `token` by its owner, by an attacker who
/// captured `captured` (an earlier proof of the owner's): `next`'s header and
/// claims under the captured signature, under `attacker`'s signature and under
/// `next`'s own with one of five bits flipped; and the owner's header with the
/// attacker's fresh claims (for `GET /users/me` at `server`) under the
/// attacker's signature.
fn forgeries_of(
    next: &str,
    captured: &str,
    attacker: &Key,
    server: &Server,
    token: &str,
) -> Vec<String> {
    let [header, claims, signature]: [&str; 3] =
        next.split('.').collect::<Vec<_>>().try_into().unwrap();
    let captured_signature = captured.rsplit('.').next().unwrap();
    let signed = format!("{header}.{claims}");
    let mut forgeries = vec![
        format!("{signed}.{captured_signature}"),
        format!("{signed}.{}", attacker.sign(&signed)),
    ];
    let signature_bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    for bit in [0, 9, 255, 260, 511] {
        let mut flipped = signature_bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        forgeries.push(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(flipped)));
    }
    let fresh = attacker.proof("GET", &server.url("/users/me"), Some(token), None);
    let fresh_claims = fresh.split('.').nth(1).unwrap();
    let forged = format!("{header}.{fresh_claims}");
    forgeries.push(format!("{forged}.{}", attacker.sign(&forged)));
    forgeries
}

#[tokio::test]
async fn a_replayed_or_misdirected_proof_is_refused() {
    let server = start(DpopSettings::allowed()).await;
    let key = Key::p256(3);
    let (token, _) = dpop_login(&server, &key).await;
    let proof = me_proof(&server, &key, &token);
    assert_eq!(
        me_with(&server, &token, &proof).await.status,
        StatusCode::OK
    );
    assert_proof_refused(&me_with(&server, &token, &proof).await);

    // Another URL, another method, another token's hash.
    let elsewhere = key.proof("GET", &server.url("/items/"), Some(&token), None);
    assert_proof_refused(&me_with(&server, &token, &elsewhere).await);
    let post = key.proof("POST", &server.url("/users/me"), Some(&token), None);
    assert_proof_refused(&me_with(&server, &token, &post).await);
    let no_ath = key.proof("GET", &server.url("/users/me"), None, None);
    assert_proof_refused(&me_with(&server, &token, &no_ath).await);
    let other_ath = key.proof("GET", &server.url("/users/me"), Some("another"), None);
    assert_proof_refused(&me_with(&server, &token, &other_ath).await);
    // Two proofs.
    let authorization = format!("DPoP {token}");
    let (a, b) = (
        me_proof(&server, &key, &token),
        me_proof(&server, &key, &token),
    );
    let reply = request(
        &server,
        Method::GET,
        "/users/me",
        &[
            ("authorization", &authorization),
            ("dpop", &a),
            ("dpop", &b),
        ],
    )
    .await;
    assert_proof_refused(&reply);
    // A replayed login proof.
    let login_proof = key.proof("POST", &server.url("/token"), None, None);
    dpop_tokens(&post_token(&server, LOGIN, &[("dpop", &login_proof)]).await);
    assert_bad_token_proof(&post_token(&server, LOGIN, &[("dpop", &login_proof)]).await);
    server.stop().await;
}

#[tokio::test]
async fn bearer_tokens_still_work_where_dpop_is_allowed() {
    let server = start(DpopSettings::allowed()).await;
    let (token, _) = server.login_with_refresh().await;
    assert_eq!(server.me(&token).await.status, StatusCode::OK);
    // An unbound token sent as DPoP is refused.
    let key = Key::ed25519(1);
    assert_dpop_invalid_token(&me_with(&server, &token, &me_proof(&server, &key, &token)).await);
    // No credentials: either scheme is offered.
    let reply = request(&server, Method::GET, "/users/me", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(challenges, ["Bearer", r#"DPoP algs="ES256 EdDSA Ed25519""#]);
    server.stop().await;
}

#[tokio::test]
async fn required_mode_refuses_bearer_and_logins_without_a_proof() {
    let server = start(DpopSettings::required()).await;
    let reply = server.post_form(LOGIN).await;
    assert_bad_token_proof(&reply);
    assert_eq!(
        reply.json()["detail"],
        "A DPoP proof is required: send one in the DPoP header"
    );
    let key = Key::ed25519(2);
    let (token, _) = dpop_login(&server, &key).await;
    assert_dpop_invalid_token(&server.me(&token).await);
    // Even an unbound token someone made is refused as Bearer (no lookup at all).
    assert_dpop_invalid_token(&server.me("an-unbound-token").await);
    let reply = request(&server, Method::GET, "/users/me", &[]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"DPoP algs="ES256 EdDSA Ed25519""#)
    );
    let me = me_with(&server, &token, &me_proof(&server, &key, &token)).await;
    assert_eq!(me.status, StatusCode::OK);
    server.stop().await;
}

#[tokio::test]
async fn a_bound_refresh_token_needs_a_proof_by_its_key_and_is_not_burnt_without() {
    let server = start(DpopSettings::allowed()).await;
    let key = Key::ed25519(4);
    let (_, refresh) = dpop_login(&server, &key).await;
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");

    // A thief with the refresh token but not the key.
    assert_bad_token_proof(&post_token(&server, &form, &[]).await);
    let thief = Key::p256(9);
    let proof = thief.proof("POST", &server.url("/token"), None, None);
    let reply = post_token(&server, &form, &[("dpop", &proof)]).await;
    assert_bad_token_proof(&reply);
    assert_eq!(
        reply.json()["detail"],
        "The DPoP proof is not by the key the refresh token is bound to"
    );

    // The owner's family still works: the same refresh token rotates.
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let (access, next) = dpop_tokens(&post_token(&server, &form, &[("dpop", &proof)]).await);
    assert_ne!(next, refresh);
    let me = me_with(&server, &access, &me_proof(&server, &key, &access)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_dpop_invalid_token(&server.me(&access).await);
    server.stop().await;
}

#[tokio::test]
async fn an_unbound_family_refreshed_with_a_proof_gets_a_bound_access_token() {
    let server = start(DpopSettings::allowed()).await;
    let (_, refresh) = server.login_with_refresh().await;
    let key = Key::ed25519(5);
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let form = format!("grant_type=refresh_token&refresh_token={refresh}");
    let (access, next) = dpop_tokens(&post_token(&server, &form, &[("dpop", &proof)]).await);
    assert_dpop_invalid_token(&server.me(&access).await);
    assert_eq!(
        me_with(&server, &access, &me_proof(&server, &key, &access))
            .await
            .status,
        StatusCode::OK
    );
    // The family itself stays unbound: a refresh without a proof is a bearer one.
    let (bearer, _) = server.refresh(&next).await.tokens();
    assert_eq!(server.me(&bearer).await.status, StatusCode::OK);
    server.stop().await;
}

/// A login with a proof by `key` and no nonce, on a server that asks for
/// nonces: refused with `use_dpop_nonce`; the nonce it offers.
async fn nonce_asked_for(server: &Server, key: &Key) -> String {
    let url = server.url("/token");
    let reply = post_token(
        server,
        LOGIN,
        &[("dpop", &key.proof("POST", &url, None, None))],
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["error"], "use_dpop_nonce");
    reply.header("dpop-nonce").expect("a nonce").to_owned()
}

#[tokio::test]
async fn server_nonces_are_asked_for_and_honoured() {
    let server = start(DpopSettings::allowed().server_nonces(&[42; 32])).await;
    let key = Key::p256(6);
    let url = server.url("/token");
    let nonce = nonce_asked_for(&server, &key).await;
    let proof = key.proof("POST", &url, None, Some(&nonce));
    let reply = post_token(&server, LOGIN, &[("dpop", &proof)]).await;
    let (token, _) = dpop_tokens(&reply);
    let nonce = reply
        .header("dpop-nonce")
        .expect("a fresh nonce")
        .to_owned();

    // The guard asks too, with a 401.
    let reply = me_with(&server, &token, &me_proof(&server, &key, &token)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"DPoP error="use_dpop_nonce", algs="ES256 EdDSA Ed25519""#)
    );
    assert!(reply.header("dpop-nonce").is_some());
    let proof = key.proof("GET", &server.url("/users/me"), Some(&token), Some(&nonce));
    assert_eq!(
        me_with(&server, &token, &proof).await.status,
        StatusCode::OK
    );
    // A nonce made up by the client is not one.
    let proof = key.proof(
        "GET",
        &server.url("/users/me"),
        Some(&token),
        Some("made-up"),
    );
    assert_eq!(reply.status, me_with(&server, &token, &proof).await.status);
    server.stop().await;
}

/// A client holding one real server nonce tries to mint others without the
/// server's secret: every bit of its MAC flipped in turn, and its time moved an
/// hour on (a nonce that would never expire) with the MAC kept, sent at once
/// from several addresses. Every forgery is asked for a real nonce; the real one
/// still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_server_nonces_are_refused() {
    let server = start(DpopSettings::allowed().server_nonces(&[43; 32])).await;
    let key = Key::ed25519(24);
    let url = server.url("/token");
    let nonce = nonce_asked_for(&server, &key).await;
    let bytes = URL_SAFE_NO_PAD.decode(&nonce).expect("base64url");
    assert_eq!(bytes.len(), 24, "8 bytes of time, a 16-byte MAC");

    let mut forgeries: Vec<String> = (8 * 8..24 * 8)
        .map(|bit| {
            let mut forged = bytes.clone();
            forged[bit / 8] ^= 1 << (bit % 8);
            URL_SAFE_NO_PAD.encode(forged)
        })
        .collect();
    let mut later = bytes.clone();
    let seconds = u64::from_be_bytes(bytes[..8].try_into().unwrap()) + 3600;
    later[..8].copy_from_slice(&seconds.to_be_bytes());
    forgeries.push(URL_SAFE_NO_PAD.encode(later));

    let attempts: Vec<_> = forgeries
        .iter()
        .enumerate()
        .map(|(i, forged)| {
            let client = server.connecting_from(&format!("127.0.0.{}", 2 + i % 8));
            let proof = key.proof("POST", &url, None, Some(forged));
            tokio::spawn(async move { post_token(&client, LOGIN, &[("dpop", &proof)]).await })
        })
        .collect();
    for attempt in attempts {
        let reply = attempt.await.expect("the request task ends");
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "body: {:?}",
            reply.body
        );
        assert_eq!(reply.json()["error"], "use_dpop_nonce");
        assert!(reply.header("dpop-nonce").is_some(), "a real nonce offered");
    }
    let proof = key.proof("POST", &url, None, Some(&nonce));
    dpop_tokens(&post_token(&server, LOGIN, &[("dpop", &proof)]).await);
    server.stop().await;
}

#[tokio::test]
async fn forwarded_hosts_count_only_from_trusted_proxies() {
    let key = Key::ed25519(10);
    let forwarded = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "api.example.com"),
    ];
    // An untrusted peer: the proof must name the host the request was sent to.
    let server = start(DpopSettings::allowed()).await;
    let proof = key.proof("POST", "https://api.example.com/token", None, None);
    let mut headers = forwarded.to_vec();
    headers.push(("dpop", &proof));
    assert_bad_token_proof(&post_token(&server, LOGIN, &headers).await);
    server.stop().await;

    // The tests' peer (127.0.0.1) as a trusted proxy: its word is the URL.
    let layer = tutorial_builder(Stores::Ready)
        .no_login_policy()
        .trusted_proxies(TrustedProxies::x_forwarded_for(["127.0.0.1"]).unwrap())
        .dpop(DpopSettings::allowed())
        .build();
    let server = Server::start_with(layer).await;
    let proof = key.proof("POST", "https://api.example.com/token", None, None);
    let mut headers = forwarded.to_vec();
    headers.push(("dpop", &proof));
    let reply = post_token(&server, LOGIN, &headers).await;
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
    server.stop().await;
}

#[tokio::test]
async fn a_public_url_is_what_proofs_name() {
    let server = start(DpopSettings::allowed().public_url("https://api.example.com")).await;
    let key = Key::ed25519(11);
    let local = key.proof("POST", &server.url("/token"), None, None);
    assert_bad_token_proof(&post_token(&server, LOGIN, &[("dpop", &local)]).await);
    let public = key.proof("POST", "https://api.example.com/token", None, None);
    let reply = post_token(&server, LOGIN, &[("dpop", &public)]).await;
    let (token, _) = dpop_tokens(&reply);
    let proof = key.proof(
        "GET",
        "https://api.example.com/users/me",
        Some(&token),
        None,
    );
    assert_eq!(
        me_with(&server, &token, &proof).await.status,
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test]
async fn algorithms_can_be_narrowed() {
    use tower_oauth2_password::dpop::DpopAlgorithm;
    let server = start(DpopSettings::allowed().algorithms([DpopAlgorithm::EdDsa])).await;
    let es256 = Key::p256(12).proof("POST", &server.url("/token"), None, None);
    assert_bad_token_proof(&post_token(&server, LOGIN, &[("dpop", &es256)]).await);
    dpop_login(&server, &Key::ed25519(12)).await;
    let reply = request(&server, Method::GET, "/users/me", &[]).await;
    let challenges: Vec<&str> = reply
        .headers
        .get_all("www-authenticate")
        .iter()
        .map(|value| value.to_str().unwrap())
        .collect();
    assert_eq!(challenges, ["Bearer", r#"DPoP algs="EdDSA Ed25519""#]);
    server.stop().await;
}

#[tokio::test]
async fn the_metadata_names_the_proof_algorithms() {
    let layer = tutorial::layer_builder()
        .issuer("https://auth.example.com")
        .dpop(DpopSettings::allowed())
        .build();
    let server = Server::start_with(layer).await;
    let reply = request(
        &server,
        Method::GET,
        "/.well-known/oauth-authorization-server",
        &[],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "Ed25519"])
    );
    server.stop().await;
}

#[tokio::test]
async fn the_replay_store_may_be_shared() {
    let replays = MemoryReplayStore::new();
    let a = start(DpopSettings::allowed().replay_store(replays.clone())).await;
    assert!(replays.is_empty());
    dpop_login(&a, &Key::ed25519(13)).await;
    assert_eq!(replays.len(), 1);
    a.stop().await;
}

/// Two replicas sharing a `RedisReplayStore`: a proof accepted by one is a
/// replay at the other.
#[cfg(feature = "redis")]
#[tokio::test]
async fn a_proof_is_accepted_once_across_replicas_sharing_redis() {
    use common::redis::Prefix;
    use tower_oauth2_password::dpop::RedisReplayStore;

    let prefix = Prefix::new("dpop-replicas");
    let layer = tutorial_builder(Stores::Ready)
        .no_login_policy()
        .dpop(DpopSettings::allowed().replay_store(RedisReplayStore::on(&prefix.connection())))
        .build();
    let a = Server::start_with(layer).await;
    let key = Key::ed25519(14);
    let proof_for = |server: &Server| key.proof("POST", &server.url("/token"), None, None);
    let proof = proof_for(&a);
    dpop_tokens_without_refresh(&post_token(&a, LOGIN, &[("dpop", &proof)]).await);
    assert_bad_token_proof(&post_token(&a, LOGIN, &[("dpop", &proof)]).await);
    // Another replica, reached (as behind a load balancer) at the same URL: its
    // public URL is a's.
    let b = {
        let layer = tutorial_builder(Stores::Ready)
            .no_login_policy()
            .dpop(
                DpopSettings::allowed()
                    .public_url(&a.url(""))
                    .replay_store(RedisReplayStore::on(&prefix.connection())),
            )
            .build();
        Server::start_with(layer).await
    };
    assert_bad_token_proof(&post_token(&b, LOGIN, &[("dpop", &proof)]).await);
    // A fresh proof for that URL passes at b.
    let fresh = proof_for(&a);
    dpop_tokens_without_refresh(&post_token(&b, LOGIN, &[("dpop", &fresh)]).await);
    a.stop().await;
    b.stop().await;
}

/// Two replicas share tokens and the replay store in Redis, each with its own
/// key cache (the owner's header is cached at one only): forgeries of the
/// owner's next proof, sent to both at once from several addresses, are all
/// refused, and the owner's proof then passes once across the two.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_proofs_are_refused_at_every_replica_sharing_redis() {
    use common::redis::Prefix;
    use tower_oauth2_password::dpop::RedisReplayStore;

    let prefix = Prefix::new("dpop-forged-replicas");
    let replica = |public_url: Option<String>| {
        let mut settings =
            DpopSettings::allowed().replay_store(RedisReplayStore::on(&prefix.connection()));
        if let Some(url) = public_url {
            settings = settings.public_url(&url);
        }
        let layer = tutorial_builder(Stores::Ready)
            .token_store(prefix.store())
            .refresh_tokens(MemoryRefreshTokenStore::new())
            .no_login_policy()
            .dpop(settings)
            .build();
        Server::start_with(layer)
    };
    let a = replica(None).await;
    // Reached (as behind a load balancer) at a's URL.
    let b = replica(Some(a.url(""))).await;
    let (key, attacker) = (Key::p256(26), Key::p256(27));
    let (token, _) = dpop_login(&a, &key).await;
    let captured = me_proof(&a, &key, &token);
    assert_eq!(me_with(&a, &token, &captured).await.status, StatusCode::OK);
    let next = me_proof(&a, &key, &token);
    let forgeries = forgeries_of(&next, &captured, &attacker, &a, &token);
    tokio::join!(
        all_refused_at_once(&a, &token, &forgeries),
        all_refused_at_once(&b, &token, &forgeries),
    );
    let me = me_with(&b, &token, &next).await;
    assert_eq!(me.status, StatusCode::OK, "body: {:?}", me.body);
    assert_proof_refused(&me_with(&a, &token, &next).await);
    a.stop().await;
    b.stop().await;
}

#[cfg(feature = "redis")]
#[track_caller]
fn dpop_tokens_without_refresh(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_eq!(reply.json()["token_type"], "DPoP");
}

#[tokio::test]
async fn introspection_names_the_key_a_token_is_bound_to() {
    use base64::engine::general_purpose::STANDARD;
    use tower_oauth2_password::endpoint::{ClientSecretHash, IntrospectionClients};

    let secret = "the resource server's secret, long enough";
    let layer = tutorial_builder(Stores::Ready)
        .no_login_policy()
        .introspection(
            IntrospectionClients::new().client("rs", ClientSecretHash::of(secret).unwrap()),
        )
        .dpop(DpopSettings::allowed())
        .build();
    let server = Server::start_with(layer).await;
    let key = Key::ed25519(15);
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let reply = post_token(&server, LOGIN, &[("dpop", &proof)]).await;
    assert_eq!(reply.json()["token_type"], "DPoP");
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    let basic = format!("Basic {}", STANDARD.encode(format!("rs:{secret}")));
    let request = Request::post(server.url("/introspect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", basic)
        .body(Full::from(format!("token={token}")))
        .unwrap();
    let answer = server.send(request).await.json();
    assert_eq!(answer["active"], true);
    assert_eq!(answer["token_type"], "DPoP");
    let Key::Ed25519(signing) = &key else {
        unreachable!()
    };
    // RFC 7638: SHA-256 of the required members, in lexicographic order.
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(signing.verifying_key().as_bytes())
    );
    let jkt = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(answer["cnf"]["jkt"], jkt);
    server.stop().await;
}

#[tokio::test]
async fn dpop_may_be_required_on_some_paths_only() {
    let layer = tutorial_builder(Stores::Ready)
        .no_login_policy()
        .dpop(DpopSettings::allowed())
        .require_dpop("/users/*")
        .build();
    let server = Server::start_with(layer).await;
    let token = server.login("johndoe", "secret").await;
    // Elsewhere the bearer token passes the guard (and the app answers 404).
    assert_eq!(
        server.get_as("/items/", &token).await.status,
        StatusCode::NOT_FOUND
    );
    // Under /users, in any spelling, only DPoP.
    assert_dpop_invalid_token(&server.me(&token).await);
    assert_dpop_invalid_token(&server.get_as("//users/me", &token).await);
    let key = Key::ed25519(16);
    let proof = key.proof("POST", &server.url("/token"), None, None);
    let reply = post_token(&server, LOGIN, &[("dpop", &proof)]).await;
    assert_eq!(reply.json()["token_type"], "DPoP");
    let bound = reply.json()["access_token"].as_str().unwrap().to_owned();
    let me = me_with(&server, &bound, &me_proof(&server, &key, &bound)).await;
    assert_eq!(me.status, StatusCode::OK);
    server.stop().await;
}
