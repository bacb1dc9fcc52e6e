//! What one guarded request costs, in process, next to what users would otherwise use.
//!
//! ```text
//! cargo bench --bench guard -- --measurement-time 3 --warm-up-time 1
//! ```
//!
//! Every case sends the same `GET /users/me` (with `Authorization: Bearer …`) through
//! `tower::ServiceExt::oneshot` to the same handler:
//!
//! - `bare`: the handler alone;
//! - `tower_http_bearer`: tower-http's `ValidateRequestHeaderLayer::bearer`, one
//!   header comparison: the cheapest bearer check there is;
//! - `map_lookup`: a minimal hand-written guard (parse the header, look the token up
//!   in a `HashMap` behind an `RwLock`, put the user in the extensions): the least
//!   work any opaque-token guard does (`examples/common/map_lookup.rs`);
//!   `map_lookup_arc` is the same with the user cloned as an `Arc`, not a `String`;
//! - `map_lookup2`: the floor of a guard that resolves the user on every request,
//!   as ours does (so that disabling a user takes effect at once): two lookups,
//!   token → username and username → user, each map behind its `RwLock`;
//! - `memory`: our layer with the memory stores and a valid token; `boxed`: the
//!   same memory store behind a `BoxTokenStore` (what an application that picks its
//!   store at run time pays: one virtual call, no allocation);
//! - `jwt` (feature `jwt`): our layer with `JwtTokenStore` (HS256) and a token it
//!   issued; beside it `jsonwebtoken_decode`, a guard that does nothing but
//!   jsonwebtoken's own `decode` of the same token (same key, leeway and required
//!   claims) and puts the subject in the extensions; `jwt_eddsa`: our layer with
//!   Ed25519 JWTs (a signature verification costs tens of microseconds);
//! - `missing_header`, `invalid_token`: our layer's rejections;
//! - `memory_metrics` (feature `metrics`): `memory` with a Prometheus recorder
//!   installed before its layer was built (the rows above were built before it, so
//!   they count into no-op handles): what the guard's counter costs. The
//!   interleaved rounds print `memory_metrics − memory` (target ≤ 30 ns);
//! - `dpop_es256`, `dpop_eddsa` (feature `dpop`): our layer with DPoP allowed, a
//!   token bound to the client's key and `Authorization: DPoP …` with a fresh proof
//!   per request (signed before the timer starts); beside them `verify_es256`,
//!   `verify_eddsa`, one bare signature verification of such a proof each, by the
//!   crate's own signature check. The interleaved rounds print
//!   `dpop_x − memory − verify_x` (target ≤ 2 µs). Each request and each bare
//!   verification runs at the next of 256 stack placements (see `dpop::deeper`).
//!   `dpop_es256_paired`, `dpop_eddsa_paired` measure the same per request: each
//!   request's time minus that of a bare verification of another proof made
//!   alike beside it (the same microsecond, so drift cancels; verifying the
//!   request's own signature twice would let the second find its branches
//!   learnt) and minus a Bearer request to the same layer beside them (the
//!   guard's path without a proof). A fifth interval times a bare verification
//!   and then a Bearer request as one, for a second difference in which the
//!   Bearer steps run after a verification on both sides
//!   (`delta:…-verified_bearer`). The order alternates, so that neither side
//!   always runs in the caches the other warmed. Each request is built just
//!   before it is timed (hot, as hyper hands it over), and each pair runs at
//!   another stack placement (both verifications moved by microseconds with
//!   where their stack data fell; see `dpop::deeper`).
//!
//! Criterion measures each case on its own; its means drift by up to 1.5x between
//! runs on small shared machines, so after criterion the bench runs all cases again
//! in *interleaved rounds* (each round times every case once, in rotating order;
//! `BENCH_ROUNDS`, default 101) and prints medians and the target ratio from those.
//! `BENCH_OUT=file` also writes them as TSV (for `scripts/bench.sh`).
//! `BENCH_PROCESSES=12` runs those rounds in 12 fresh processes instead and prints
//! the median over processes of each row: one process's figures carry its layout
//! (a ratio moved from 1.27x to 1.57x between two processes of one binary), so
//! compare builds by that median.
//!
//! `BENCH_CASE=memory BENCH_ITERS=10000` runs only that case that many times (after a
//! warm-up) and exits: `scripts/bench.sh` runs it under callgrind for instruction
//! counts. `BENCH_LIST=1` prints the case names.
//!
//! `BENCH_SPACER=es256` (or `eddsa`, `coin`, `steady`) runs something untimed
//! before each interval of the paired DPoP rows: a bare verification, or a loop
//! of unpredictable (`coin`) or predictable (`steady`) branches; what the proof
//! check costs then depends on what ran just before it (see `dpop::Spacer`).
//!
//! A new token store (JWT, Redis) is one more `ours(…)` line in `cases()`.

mod support;
use support::{quartiles, Mode};

#[path = "../examples/common/map_lookup.rs"]
mod map_lookup;
use map_lookup::{MapLookup2Layer, MapLookupLayer};

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use criterion::Criterion;
use futures_util::future::{ready, Ready};
use http::header::AUTHORIZATION;
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::Full;
use tower::{service_fn, Layer, Service, ServiceBuilder, ServiceExt};
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::token::memory::MemoryTokenStore;
use tower_oauth2_password::token::{BoxTokenStore, Grant, TokenStore};
use tower_oauth2_password::user::UserStore;
use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, StoredUser};

/// The user model handed to handlers: a name, as in the crate's quick start.
type User = String;

/// The one case `BENCH_CASE` names, if it names one: the others are built
/// (and checked) but not run.
fn only_case() -> Option<&'static str> {
    static ONLY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ONLY.get_or_init(|| std::env::var("BENCH_CASE").ok())
        .as_deref()
}

/// Argon2id hash of "secret" (the guard never verifies it).
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$QlGICJv0VkLd2pqAa9i9+Q$8jVAeYmJi0SJhtpkUv7OIxBaTEMmu/PL5yjLUR5dcQ8";

/// Every case, in the order they are reported. `bare` must stay first.
fn cases() -> Vec<Box<dyn Case>> {
    let token = random_token();
    let [map_lookup, map_lookup_arc] = map_lookups(&token);
    let mut cases = vec![
        oneshot("bare", handler(), Some(&token)),
        tower_http_bearer(&token),
        map_lookup,
        map_lookup_arc,
        oneshot(
            "map_lookup2",
            MapLookup2Layer::new(&token, "johndoe", "John Doe".to_owned()).layer(handler()),
            Some(&token),
        ),
        // Our layer, one line per token store, each with a token it issued:
        ours("memory", MemoryTokenStore::new()),
        ours("boxed", BoxTokenStore::new(MemoryTokenStore::new())),
    ];
    // Beside `memory`: a DPoP-bound token with a fresh proof per request, and one
    // bare signature verification per algorithm.
    #[cfg(feature = "dpop")]
    cases.extend(dpop::cases());
    // One GET to the Redis at REDIS_URL per request (the keys expire in a day).
    #[cfg(feature = "redis")]
    cases.push(redis());
    #[cfg(feature = "jwt")]
    cases.extend(jwt::cases());
    // Our rejections (they do not depend on the store much; measured with memory).
    let layer = layer(MemoryTokenStore::new());
    let app = ServiceBuilder::new().layer(layer).service(handler());
    cases.push(oneshot("missing_header", app.clone(), None));
    cases.push(oneshot("invalid_token", app, Some(&token)));
    // Last: the recorder is global, and the layers built above must not see it.
    #[cfg(feature = "metrics")]
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        metrics::set_global_recorder(recorder).expect("the bench's only recorder");
        let after_memory = cases
            .iter()
            .position(|case| case.name() == "boxed")
            .map_or(0, |i| i + 1);
        cases.insert(
            after_memory,
            ours("memory_metrics", MemoryTokenStore::new()),
        );
    }
    cases
}

type Body = Full<Bytes>;
type Answer = Ready<Result<Response<Body>, Infallible>>;

/// The handler every case ends in: a fixed 200 response.
fn handler(
) -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible, Future = Answer>
       + Clone
       + Send
       + 'static {
    service_fn(|_request: Request<Body>| {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"{}")))))
    })
}

fn users() -> MemoryUserStore<User> {
    let hash = HashedPassword::parse(PHC).expect("valid PHC string");
    MemoryUserStore::new().with_user("johndoe", StoredUser::new("John Doe".to_owned(), hash))
}

fn layer<Ts: TokenStore>(tokens: Ts) -> OAuth2PasswordLayer<MemoryUserStore<User>, Ts> {
    OAuth2PasswordLayer::builder(users())
        .token_store(tokens)
        .build()
}

/// Our layer in front of the handler, with `tokens` as token store, called with a
/// token that store issued (as the token endpoint would: with the user's stamp).
fn ours<Ts: TokenStore>(name: &'static str, tokens: Ts) -> Box<dyn Case> {
    ours_and_token(name, tokens).0
}

/// [`ours`], and the token it sends.
fn ours_and_token<Ts: TokenStore>(name: &'static str, tokens: Ts) -> (Box<dyn Case>, String) {
    let layer = layer(tokens);
    let token = johndoe_token(&layer, |grant| grant);
    let app = ServiceBuilder::new().layer(layer).service(handler());
    (oneshot(name, app, Some(&token)), token)
}

/// A token `layer`'s store issued for johndoe, as the token endpoint would (with
/// his stamp, valid for a day), its grant first passed through `adjust`.
fn johndoe_token<Ts: TokenStore>(
    layer: &OAuth2PasswordLayer<MemoryUserStore<User>, Ts>,
    adjust: impl FnOnce(Grant) -> Grant,
) -> String {
    let johndoe = drive(layer.user_store().credentials("johndoe"))
        .expect("user store answers")
        .expect("johndoe exists");
    let grant = Grant::new(
        johndoe.subject,
        Scopes::empty(),
        SystemTime::now() + Duration::from_secs(24 * 3600),
    )
    .with_stamp(johndoe.stamp);
    let token = drive(layer.token_store().issue(adjust(grant))).expect("token issued");
    token.access_token.as_str().to_owned()
}

/// The `jwt` rows: our layer with HS256 JWTs, and jsonwebtoken's `decode` of the
/// same token.
#[cfg(feature = "jwt")]
mod jwt {
    use std::sync::Arc;

    use super::*;
    use jsonwebtoken::{Algorithm, DecodingKey, Validation};
    use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};

    const SECRET: &[u8; 32] = b"bench-secret-bench-secret-bench!";
    const ISSUER: &str = "https://auth.example.com";

    pub(super) fn cases() -> [Box<dyn Case>; 3] {
        let key = JwtKey::hs256("bench", SECRET).expect("valid key");
        let store = JwtTokenStore::signing_with(key)
            .issuer(ISSUER)
            .build()
            .expect("valid store");
        let (ours, token) = ours_and_token("jwt", store);
        let key = JwtKey::ed25519("bench-ed", &[7; 32]).expect("valid key");
        let eddsa = JwtTokenStore::signing_with(key)
            .issuer(ISSUER)
            .build()
            .expect("valid store");
        [
            ours,
            jsonwebtoken_decode(&token),
            super::ours("jwt_eddsa", eddsa),
        ]
    }

    /// Our claims, as a jsonwebtoken user would declare them.
    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // read by serde
    struct Claims {
        sub: String,
        exp: u64,
        iat: u64,
        nbf: u64,
        jti: String,
        scope: Option<String>,
        stamp: u64,
    }

    fn jsonwebtoken_decode(token: &str) -> Box<dyn Case> {
        let key = DecodingKey::from_secret(SECRET).expect("valid key");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = tower_oauth2_password::token::jwt::DEFAULT_LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        // Our tokens name the issuer as their audience too: check both, as we do.
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        let verifier = Arc::new((key, validation));
        let service = service_fn(move |mut request: Request<Body>| {
            let (key, validation) = &*verifier;
            let claims = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .and_then(|token| jsonwebtoken::decode::<Claims>(token, key, validation).ok());
            let status = match claims {
                Some(data) => {
                    request.extensions_mut().insert(data.claims.sub);
                    StatusCode::OK
                }
                None => StatusCode::UNAUTHORIZED,
            };
            let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
            *response.status_mut() = status;
            ready(Ok::<_, Infallible>(response))
        });
        oneshot("jsonwebtoken_decode", service, Some(token))
    }
}

/// The `dpop_es256` and `dpop_eddsa` rows (feature `dpop`): our layer with DPoP
/// allowed, the memory stores, a token bound to the client's key, and a fresh
/// proof (unique `jti`, `ath` of the token) per request, checked against the
/// memory replay store and the layer's default `KeyCache` (one client, one key,
/// one header: from its second proof on, the header's algorithm, decoded key and
/// thumbprint come from the cache, as for any client that keeps its key); beside
/// each, `verify_es256` / `verify_eddsa`: one bare signature verification of a
/// fresh proof made the same way, by the crate's own signature check (the key
/// decoded once from the proof's `jwk`, the signature read from its 64 bytes
/// each time, as the proof check does). The interleaved rounds print
/// `dpop_x − memory − verify_x`: what the proof check costs beyond its signature
/// (target ≤ 2 µs).
///
/// The `dpop_x_paired` rows time it per pair instead (see `Dpop::run`): a DPoP
/// request, a bare verification of another proof, a Bearer request to the same
/// layer and an empty interval, each built hot just before its interval, at a
/// stack depth that moves from pair to pair, against a replay store holding
/// other clients' proofs as a busy server's does (1 600 issued each second, the
/// default capacity's 100 000 in the 60-s window). They take two proofs per pair; count
/// instructions with the unpaired rows (`BENCH_CASE=dpop_eddsa`, minus
/// `verify_eddsa` and `memory`).
///
/// Proofs are signed before the timer starts: each of the four cases keeps a
/// pool, topped up outside the timed loop. Under `BENCH_CASE` the pool is filled once, at start,
/// with `BENCH_PROOFS` proofs (default 12 100, enough for `scripts/bench.sh`'s
/// runs of 1 000 + 11 000), so that two callgrind runs of different lengths sign
/// the same number of proofs and their difference counts the guard alone.
#[cfg(feature = "dpop")]
mod dpop {
    use std::collections::VecDeque;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use serde_json::json;
    use sha2::{Digest as _, Sha256};
    use tower_oauth2_password::dpop::{
        verify_proof, DpopSettings, JwkThumbprint, MemoryReplayStore, NormalizedUri, ProofCheck,
        ProofId, PublicJwk, ReplayStore, Sighting, VerifiedProof,
    };

    use super::*;

    /// Where the bench's clients think the service is (the layer's public URL).
    const PUBLIC_URL: &str = "https://api.example.com";

    /// The client keys of the two rows (fixed seeds: every run signs alike).
    #[derive(Clone)]
    enum Key {
        Es256(p256::ecdsa::SigningKey),
        EdDsa(ed25519_dalek::SigningKey),
    }

    impl Key {
        fn es256() -> Self {
            Key::Es256(p256::ecdsa::SigningKey::from_slice(&[7; 32]).expect("a scalar"))
        }

        fn eddsa() -> Self {
            Key::EdDsa(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))
        }

        fn header(&self) -> serde_json::Value {
            match self {
                Key::Es256(key) => {
                    let point = key.verifying_key().to_sec1_point(false);
                    let coordinate =
                        |c: Option<&_>| URL_SAFE_NO_PAD.encode(c.expect("uncompressed"));
                    json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": {
                        "kty": "EC", "crv": "P-256",
                        "x": coordinate(point.x()), "y": coordinate(point.y()),
                    }})
                }
                Key::EdDsa(key) => json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": {
                    "kty": "OKP", "crv": "Ed25519",
                    "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
                }}),
            }
        }

        fn sign(&self, input: &[u8]) -> Vec<u8> {
            match self {
                Key::Es256(key) => {
                    use p256::ecdsa::signature::Signer as _;
                    let signature: p256::ecdsa::Signature = key.sign(input);
                    signature.to_bytes().to_vec()
                }
                Key::EdDsa(key) => {
                    use ed25519_dalek::Signer as _;
                    key.sign(input).to_bytes().to_vec()
                }
            }
        }
    }

    /// Signs proofs of `GET {PUBLIC_URL}/users/me` for one access token.
    struct Prover {
        key: Key,
        header: String,
        ath: String,
        next_jti: u64,
    }

    /// One signed proof: the `DPoP` header's value, and its signing input and
    /// signature for a bare verification of the same signature.
    struct SignedProof {
        header: HeaderValue,
        input: String,
        signature: [u8; 64],
    }

    impl Prover {
        fn new(key: Key, token: Option<&str>) -> Self {
            let header = URL_SAFE_NO_PAD.encode(key.header().to_string());
            let ath = token.map_or_else(String::new, |token| {
                URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
            });
            Prover {
                key,
                header,
                ath,
                next_jti: 0,
            }
        }

        /// A fresh proof.
        fn proof(&mut self) -> SignedProof {
            self.next_jti += 1;
            let iat = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .as_secs();
            let mut claims = json!({
                "jti": format!("bench-{:016x}", self.next_jti),
                "htm": "GET",
                "htu": format!("{PUBLIC_URL}/users/me"),
                "iat": iat,
            });
            if !self.ath.is_empty() {
                claims["ath"] = self.ath.clone().into();
            }
            let input = format!(
                "{}.{}",
                self.header,
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let signature = self.key.sign(input.as_bytes());
            let proof = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&signature));
            SignedProof {
                header: HeaderValue::from_str(&proof).expect("base64url is a valid header value"),
                input,
                signature: signature.try_into().expect("64 bytes"),
            }
        }
    }

    /// A pool of proofs signed ahead, so that no timed loop signs.
    struct Pool {
        prover: Prover,
        /// Signed proofs not used yet, oldest first.
        proofs: VecDeque<SignedProof>,
    }

    impl Pool {
        /// A pool for `name`'s row; filled at once with `BENCH_PROOFS` proofs
        /// when only that row runs (`BENCH_CASE`).
        fn new(name: &str, prover: Prover) -> Self {
            let mut pool = Pool {
                prover,
                proofs: VecDeque::new(),
            };
            if only_case() == Some(name) {
                let n = std::env::var("BENCH_PROOFS")
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(12_100);
                pool.top_up(n);
            }
            pool
        }

        /// Signs proofs until `n` are waiting.
        fn top_up(&mut self, n: usize) {
            while self.proofs.len() < n {
                self.proofs.push_back(self.prover.proof());
            }
        }

        /// The next `n` proofs.
        fn take(&mut self, n: usize) -> Vec<SignedProof> {
            self.top_up(n);
            self.proofs.drain(..n).collect()
        }
    }

    pub(super) fn cases() -> Vec<Box<dyn Case>> {
        vec![
            verify("verify_es256", Key::es256()),
            guard("dpop_es256", Key::es256(), false),
            guard("dpop_es256_paired", Key::es256(), true),
            verify("verify_eddsa", Key::eddsa()),
            guard("dpop_eddsa", Key::eddsa(), false),
            guard("dpop_eddsa_paired", Key::eddsa(), true),
        ]
    }

    /// Our layer with DPoP allowed and a token bound to `key`; `paired`: each
    /// request timed beside a bare verification of its own proof's signature.
    fn guard(name: &'static str, key: Key, paired: bool) -> Box<dyn Case> {
        // The key's thumbprint, as the token endpoint would bind it.
        let thumbprint = *verified(&key).thumbprint();

        // An hour's window: under valgrind the pool is signed long before it is
        // used. The window changes when entries expire, not the work per request;
        // the store is large enough for every proof of a run.
        let replays = MemoryReplayStore::with_capacity(2_000_000);
        // A row built but not run (`BENCH_CASE` names another) stays empty:
        // under valgrind, 288,000 proof ids took 4 of every 5 instructions of
        // every other row's run.
        if paired && only_case().is_none_or(|only| only == name) {
            hold_other_proofs(&replays);
        }
        let settings = DpopSettings::allowed()
            .public_url(PUBLIC_URL)
            .max_age(Duration::from_secs(3600))
            .replay_store(replays);
        let layer = OAuth2PasswordLayer::builder(users())
            .token_store(MemoryTokenStore::new())
            .dpop(settings)
            .build();
        let token = johndoe_token(&layer, |grant| grant.with_key_binding(thumbprint));
        // An unbound token of the same user, for the paired rows' Bearer requests.
        let bearer = johndoe_token(&layer, |grant| grant);
        let service = ServiceBuilder::new().layer(layer).service(handler());

        Box::new(Dpop {
            name,
            service,
            authorization: HeaderValue::from_str(&format!("DPoP {token}"))
                .expect("valid header value"),
            bearer: HeaderValue::from_str(&format!("Bearer {bearer}")).expect("valid header value"),
            paired: paired.then(|| SignatureCheck::of(&key)),
            beyond: Beyond::default(),
            pairs: 0,
            pool: Pool::new(name, Prover::new(key, Some(&token))),
            spacer: Spacer::from_env(),
        })
    }

    /// Fills `replays` as a busy server's store is: other clients' proofs,
    /// 1 600 issued each second (the default capacity, 100 000 proofs in the
    /// 60-s window, is that rate) over the last minute and the next two (the
    /// run's own proofs find that second's others beside them), each held for
    /// the bench's hour-long window. The unpaired rows start empty and end with
    /// a few tens of thousands.
    fn hold_other_proofs(replays: &MemoryReplayStore) {
        const PER_SECOND: u64 = 1_600;
        let other = JwkThumbprint::from_encoded("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
            .expect("a thumbprint");
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        for iat in now - 60..now + 120 {
            let until = SystemTime::UNIX_EPOCH + Duration::from_secs(iat + 1 + 3600);
            for i in 0..PER_SECOND {
                let proof = ProofId::new(&other, &format!("other-{iat}-{i}")).issued_at(iat);
                let sighting = drive(replays.remember(&proof, until)).expect("room for it");
                assert_eq!(sighting, Sighting::First);
            }
        }
    }

    /// The proof's header name, made once: a name parsed from `"dpop"` per
    /// request is an allocation, freed inside the timed call, that no Bearer
    /// request makes.
    const DPOP: http::HeaderName = http::HeaderName::from_static("dpop");

    struct Dpop<S> {
        name: &'static str,
        service: S,
        authorization: HeaderValue,
        /// `Bearer` and an unbound token, for a paired row's Bearer requests.
        bearer: HeaderValue,
        /// For a paired row: the check of each proof's signature, bare, beside
        /// its request.
        paired: Option<SignatureCheck>,
        /// A paired row's last run: what its requests took beyond those bare
        /// verifications and a Bearer request each.
        beyond: Beyond,
        /// Pairs (unpaired: requests) timed so far, over every round: where
        /// the next one's order and stack depth come from.
        pairs: usize,
        pool: Pool,
        /// What a paired row runs, untimed, before each interval.
        spacer: Spacer,
    }

    impl<S> Dpop<S> {
        fn request(&self, proof: HeaderValue) -> Request<Body> {
            let mut request = Request::new(Full::default());
            *request.uri_mut() = Uri::from_static("/users/me");
            let headers = request.headers_mut();
            headers.insert(AUTHORIZATION, self.authorization.clone());
            headers.insert(DPOP, proof);
            request
        }

        /// The same request with the unbound token as `Bearer`, and no proof.
        fn bearer_request(&self) -> Request<Body> {
            let mut request = Request::new(Full::default());
            *request.uri_mut() = Uri::from_static("/users/me");
            request
                .headers_mut()
                .insert(AUTHORIZATION, self.bearer.clone());
            request
        }
    }

    impl<S, ResBody> Case for Dpop<S>
    where
        S: Service<Request<Body>, Response = Response<ResBody>> + Clone,
        S::Error: std::fmt::Debug,
    {
        fn name(&self) -> &'static str {
            self.name
        }

        fn status(&mut self) -> StatusCode {
            let proof = self.pool.take(1).pop().expect("one proof");
            let request = self.request(proof.header);
            let response = drive(self.service.clone().oneshot(request)).expect("infallible");
            response.status()
        }

        /// Unpaired: the time of `iters` requests. Paired: the time of the
        /// requests alone, each timed on its own; [`Case::beyond_verification`]
        /// then holds what they took beyond the bare verifications.
        fn run(&mut self, iters: u64) -> Duration {
            let n = usize::try_from(iters).expect("iterations fit in memory");
            let proofs = self.pool.take(n);
            let mut refused = 0u64;
            let took = match &self.paired {
                None => {
                    let requests: Vec<Request<Body>> = proofs
                        .into_iter()
                        .map(|proof| self.request(proof.header))
                        .collect();
                    let start = Instant::now();
                    for request in requests {
                        let depth = next_depth(&mut self.pairs);
                        let status = deeper(depth, || {
                            let response = drive(self.service.clone().oneshot(black_box(request)))
                                .expect("infallible");
                            response.status()
                        });
                        refused += u64::from(status != StatusCode::OK);
                    }
                    start.elapsed()
                }
                Some(check) => {
                    // Per pair, four intervals, each from a clock read to the
                    // next: a bare verification, the DPoP request, a Bearer
                    // request to the same layer (its user and token stores,
                    // the guard's path without a proof), and nothing (the
                    // clock's own cost). What the proof check adds is
                    // `dpop − verification − (bearer − nothing)`: per pair, so
                    // that drift slower than a pair cancels.
                    //
                    // The bare check verifies another proof of the pool (same
                    // key, made alike), not the request's own: the second of
                    // two verifications of one signature finds its
                    // data-dependent branches learnt, a head start no
                    // server's verification gets. With twins, the request
                    // minus its twin's check was 0.9 µs with the check first
                    // and 3.1 µs with it second (EdDSA; ES256 0.6 and
                    // 4.2 µs), and alternating left the difference of the two
                    // head starts in the result. Verification is
                    // variable-time, so pairs of different signatures differ;
                    // their mean over a round's pairs does not.
                    //
                    // Each input is copied just before its interval, untimed:
                    // a server's request arrives hot in cache (hyper has just
                    // read and parsed it), and so does a bare check's; inputs
                    // built long before (a round's worth of proofs, signed
                    // ahead) charged their cache misses to whichever side
                    // read them first. The order alternates (bare check
                    // first, then the requests first), so that neither side
                    // always runs in the caches the other warmed.
                    //
                    // A fifth interval times a bare verification of a third
                    // proof and then a Bearer request, as one: its Bearer
                    // request runs after a verification, as the DPoP request's
                    // own steps after its signature check do, and
                    // `dpop − (verification; bearer)` charges the proof check
                    // with its own steps only. Timed apart, the Bearer request
                    // runs in caches the previous interval left warm, and the
                    // difference also charges the proof check with the
                    // Bearer steps' misses after p256's 270–340 µs.
                    let mut guarded = Duration::ZERO;
                    let mut apart = Vec::with_capacity(n);
                    let mut after_verification = Vec::with_capacity(n);
                    let nanos = |took: Duration| took.as_nanos() as f64;
                    let others = self.pool.take(n);
                    let thirds = self.pool.take(n);
                    let spacer = &self.spacer;
                    for ((proof, other), third) in proofs.iter().zip(&others).zip(&thirds) {
                        let i = self.pairs;
                        self.pairs += 1;
                        // Each answers its time and whether it was refused.
                        let verify = || {
                            let input = black_box(other.input.clone());
                            let start = Instant::now();
                            let valid = check.check(input.as_bytes(), &other.signature);
                            (start.elapsed(), !valid)
                        };
                        let serve = |request: Request<Body>| {
                            let request = black_box(request);
                            let start = Instant::now();
                            let response =
                                drive(self.service.clone().oneshot(request)).expect("infallible");
                            (start.elapsed(), response.status() != StatusCode::OK)
                        };
                        let dpop = || {
                            // As hyper hands a header over: a slice of the
                            // connection's buffer, just read, which outlives
                            // the request (dropping it is a count, not a free).
                            let read = Bytes::copy_from_slice(proof.header.as_bytes());
                            let header = HeaderValue::from_maybe_shared(read.clone())
                                .expect("a header value");
                            let served = serve(self.request(header));
                            drop(read);
                            served
                        };
                        let bearer = || serve(self.bearer_request());
                        let verification_then_bearer = || {
                            let input = black_box(third.input.clone());
                            let request = black_box(self.bearer_request());
                            let start = Instant::now();
                            let valid = check.check(input.as_bytes(), &third.signature);
                            let response =
                                drive(self.service.clone().oneshot(request)).expect("infallible");
                            (
                                start.elapsed(),
                                !valid || response.status() != StatusCode::OK,
                            )
                        };
                        let nothing = || {
                            let start = Instant::now();
                            black_box(start.elapsed())
                        };
                        // All four run at the same depth, which moves from
                        // pair to pair (see `deeper`); both orders visit each.
                        let depth = depth_of(i / 2);
                        let (
                            (verification, bad),
                            (request_time, refusal),
                            (bearer_time, other),
                            (together, wrong),
                        ) = if i % 2 == 0 {
                            let verified = spacer.before(depth, verify);
                            let served = spacer.before(depth, dpop);
                            let bearer = spacer.before(depth, bearer);
                            let together = spacer.before(depth, verification_then_bearer);
                            (verified, served, bearer, together)
                        } else {
                            let together = spacer.before(depth, verification_then_bearer);
                            let bearer = spacer.before(depth, bearer);
                            let served = spacer.before(depth, dpop);
                            (spacer.before(depth, verify), served, bearer, together)
                        };
                        let clock = deeper(depth, nothing);
                        refused += u64::from(bad)
                            + u64::from(refusal)
                            + u64::from(other)
                            + u64::from(wrong);
                        guarded += request_time;
                        apart.push(
                            nanos(request_time)
                                - nanos(verification)
                                - (nanos(bearer_time) - nanos(clock)),
                        );
                        after_verification.push(nanos(request_time) - nanos(together));
                    }
                    self.beyond = Beyond {
                        apart: pair_statistics(apart),
                        after_verification: pair_statistics(after_verification),
                    };
                    guarded
                }
            };
            // A refused proof (replay store full, window passed) would time the
            // wrong thing: stop rather than report it.
            assert_eq!(refused, 0, "{}: {refused} requests refused", self.name);
            took
        }

        fn beyond_verification(&self) -> Option<Beyond> {
            self.paired.as_ref().map(|_| self.beyond)
        }
    }

    /// What a paired row runs, untimed, before each of a pair's intervals
    /// (`BENCH_SPACER`; none by default): the code every interval starts
    /// right after. On the AMD EPYC Zen 3 the same EdDSA proof check cost
    /// 1.2–1.8 µs more beyond its verification with a p256 verification
    /// before each interval, and nothing measurable with an Ed25519 one (see
    /// the guide's performance page, Zen 3, 2026-12-07 evening).
    enum Spacer {
        None,
        /// `es256`, `eddsa`: one bare verification of a fixed proof.
        Verification(SignatureCheck, SignedProof),
        /// `coin`: 16,384 rounds of three branches on pseudo-random bits (a
        /// predictor's tables filled with unpredictable history); `steady`:
        /// the same rounds on zeros, every branch predictable.
        Branches(Vec<u8>),
    }

    impl Spacer {
        fn from_env() -> Self {
            let kind = std::env::var("BENCH_SPACER").unwrap_or_default();
            let verification = |key: Key| {
                let proof = Prover::new(key.clone(), None).proof();
                Spacer::Verification(SignatureCheck::of(&key), proof)
            };
            let bits = |random: bool| {
                (0..16_384u32)
                    .map(|i| {
                        if !random {
                            return 0;
                        }
                        // Knuth's multiplicative hash: bits no predictor learns.
                        let x = i.wrapping_mul(2_654_435_761).rotate_left(13) ^ 0x9e37_79b9;
                        (x.wrapping_mul(2_246_822_519) >> 29) as u8
                    })
                    .collect()
            };
            match kind.as_str() {
                "" => Spacer::None,
                "es256" => verification(Key::es256()),
                "eddsa" => verification(Key::eddsa()),
                "coin" => Spacer::Branches(bits(true)),
                "steady" => Spacer::Branches(bits(false)),
                other => panic!("BENCH_SPACER={other:?}: es256, eddsa, coin or steady"),
            }
        }

        /// Runs the spacer, then `f` at stack depth `depth` (see [`deeper`]).
        fn before<R>(&self, depth: usize, f: impl FnOnce() -> R) -> R {
            self.run();
            deeper(depth, f)
        }

        fn run(&self) {
            match self {
                Spacer::None => {}
                Spacer::Verification(check, proof) => {
                    assert!(check.check(black_box(proof.input.as_bytes()), &proof.signature));
                }
                Spacer::Branches(bits) => {
                    let (mut a, mut b) = (0u64, 0u64);
                    for &c in black_box(bits) {
                        // `black_box` in each arm keeps them branches, not
                        // conditional moves.
                        if c & 1 != 0 {
                            a = black_box(a.wrapping_add(u64::from(c)));
                        } else {
                            b = black_box(b ^ u64::from(c).rotate_left(7));
                        }
                        if c & 2 != 0 {
                            a = black_box(a.rotate_left(3));
                        }
                        if c & 4 != 0 {
                            b = black_box(b.wrapping_add(a));
                        }
                    }
                    black_box((a, b));
                }
            }
        }
    }

    /// The mean and the median of one run's differences, one per pair.
    fn pair_statistics(mut differences: Vec<f64>) -> PairStatistics {
        let n = differences.len();
        let mean = differences.iter().sum::<f64>() / n as f64;
        differences.sort_by(f64::total_cmp);
        PairStatistics {
            mean,
            median: differences[n / 2],
        }
    }

    /// How many stack depths the DPoP and bare verification rows cycle through
    /// (see [`deeper`]).
    const STACK_SHIFTS: usize = 256;

    /// The stack depth for the next of a row's timed calls, counted by `calls`:
    /// 37 apart, so that consecutive calls land far apart among the
    /// [`STACK_SHIFTS`] depths.
    fn next_depth(calls: &mut usize) -> usize {
        let depth = depth_of(*calls);
        *calls += 1;
        depth
    }

    /// The `n`th depth of a row's sequence: 37 apart modulo [`STACK_SHIFTS`].
    fn depth_of(n: usize) -> usize {
        n * 37 % STACK_SHIFTS
    }

    /// Runs `f` at stack depth `depth` (below [`STACK_SHIFTS`]): `depth / 4`
    /// frames of at least 64 bytes deeper, then at one of four places 16 bytes
    /// apart within a cache line (`depth % 4`).
    ///
    /// Ed25519's verification keeps its tables on the stack, and where they
    /// fall against the static tables and the heap (modulo a 4 KiB page)
    /// moves it by microseconds: with address randomisation off, the same
    /// binary's paired EdDSA row gave +5.3 µs beyond, then −4.6 µs with 1000
    /// more bytes of environment above the stack. Each process drew one
    /// placement, so a batch's processes spread over 15 µs. Shifting both
    /// sides of each pair (and each call of the unpaired rows) through the
    /// depths averages the placements within every process.
    ///
    /// ES256's verification also moves with the place within a cache line:
    /// at the four 16-byte places, the bare check took 2.1, 6.0 and 2.3 µs
    /// longer at three of them than at the fourth (AMD EPYC Zen 3, medians
    /// of 8 processes, longer in 8, 8 and 7 of them). Frames alone step by
    /// their size, which a build may make a multiple of 32 bytes: the bare
    /// rows then ran at two of the four places, so each depth also picks
    /// one of the four.
    fn deeper<R>(depth: usize, f: impl FnOnce() -> R) -> R {
        frames(depth / 4, || in_line(depth % 4, f))
    }

    #[inline(never)]
    fn frames<R>(levels: usize, f: impl FnOnce() -> R) -> R {
        let pad = black_box([0u8; 64]);
        let answer = if levels == 0 {
            f()
        } else {
            frames(levels - 1, f)
        };
        black_box(&pad);
        answer
    }

    /// A cache line's worth of bytes, aligned to one: a frame holding one
    /// starts on a line.
    #[repr(C, align(64))]
    struct Line([u8; 64]);

    /// Runs `f` from a frame that starts on a cache line, through one of four
    /// pads (`place`, 0–3) whose frames differ by 16 bytes.
    #[inline(never)]
    fn in_line<R>(place: usize, f: impl FnOnce() -> R) -> R {
        let line = black_box(Line([0; 64]));
        let answer = match place {
            0 => padded::<0, R>(f),
            1 => padded::<16, R>(f),
            2 => padded::<32, R>(f),
            _ => padded::<48, R>(f),
        };
        black_box(&line);
        answer
    }

    #[inline(never)]
    fn padded<const N: usize, R>(f: impl FnOnce() -> R) -> R {
        let pad = black_box([0u8; N]);
        let answer = f();
        black_box(&pad);
        answer
    }

    /// One bare signature verification per iteration, of a fresh proof made as
    /// the `dpop_*` row's are (same key, same token, unique `jti`): ECDSA and
    /// Ed25519 verification are variable-time (their work depends on the
    /// signature and the message hash), so this row must average over as many,
    /// equally made signatures as the row it is subtracted from. A fixed set of
    /// 256 did not: ES256's bare row then differed from the proofs' average by
    /// about 8,000 instructions, a build-to-build swing counted as DPoP overhead.
    fn verify(name: &'static str, key: Key) -> Box<dyn Case> {
        Box::new(Verify {
            name,
            check: SignatureCheck::of(&key),
            checks: 0,
            // The dpop row's token is random; its hash, not its value, is signed.
            pool: Pool::new(name, Prover::new(key, Some(&random_token()))),
        })
    }

    /// The signature check the proof check runs, with the key decoded from a
    /// proof's `jwk` as the proof check decodes it: the crate's own code, not
    /// the bench's instance of p256's generic verification, which compiled
    /// differently and ran ~4,300 fewer instructions per ES256 signature (and
    /// p256 with the key its signing key computes, ~2,200 fewer again).
    struct SignatureCheck(Box<Verifies>);

    /// Whether a 64-byte signature signs an input.
    type Verifies = dyn Fn(&[u8], &[u8; 64]) -> bool;

    impl SignatureCheck {
        fn of(key: &Key) -> Self {
            let check = proof_key(key)
                .__signature_check()
                .expect("the proof check decoded this key");
            SignatureCheck(Box::new(check))
        }

        /// Whether `signature` signs `input`.
        fn check(&self, input: &[u8], signature: &[u8; 64]) -> bool {
            (self.0)(input, black_box(signature))
        }
    }

    /// The proof check's verdict on a proof by `key`: its `jwk` as read, and the
    /// thumbprint to bind a token to.
    fn verified(key: &Key) -> VerifiedProof {
        let uri = NormalizedUri::parse(&format!("{PUBLIC_URL}/users/me")).expect("a URL");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let proof = Prover::new(key.clone(), None).proof();
        verify_proof(
            proof.header.as_bytes(),
            &ProofCheck::new(&http::Method::GET, &uri, now),
        )
        .expect("the bench's proofs verify")
    }

    fn proof_key(key: &Key) -> PublicJwk {
        verified(key).key().clone()
    }

    struct Verify {
        name: &'static str,
        check: SignatureCheck,
        /// Checks timed so far, over every round: where the next one's stack
        /// depth comes from.
        checks: usize,
        pool: Pool,
    }

    impl Case for Verify {
        fn name(&self) -> &'static str {
            self.name
        }

        fn status(&mut self) -> StatusCode {
            let all = self
                .pool
                .take(1)
                .iter()
                .all(|proof| self.check.check(proof.input.as_bytes(), &proof.signature));
            if all {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            }
        }

        fn run(&mut self, iters: u64) -> Duration {
            let n = usize::try_from(iters).expect("iterations fit in memory");
            let proofs = self.pool.take(n);
            let mut refused = 0u64;
            let start = Instant::now();
            for proof in &proofs {
                let depth = next_depth(&mut self.checks);
                let valid = deeper(depth, || {
                    self.check
                        .check(black_box(proof.input.as_bytes()), &proof.signature)
                });
                refused += u64::from(!valid);
            }
            let took = start.elapsed();
            assert_eq!(refused, 0, "{}: {refused} signatures refused", self.name);
            took
        }
    }
}

/// The `redis` row: our layer with `RedisTokenStore` on `REDIS_URL` (default
/// `redis://127.0.0.1:6379`).
#[cfg(feature = "redis")]
fn redis() -> Box<dyn Case> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let store = tower_oauth2_password::token::redis::RedisTokenStore::new(&url)
        .expect("a Redis URL")
        .with_prefix("tower-oauth2-password-bench:");
    drive(store.ping()).expect("the redis row needs Redis at REDIS_URL");
    ours("redis", store)
}

#[allow(deprecated)] // "too basic to be useful in real applications": it is the floor.
fn tower_http_bearer(token: &str) -> Box<dyn Case> {
    let layer = tower_http::validate_request::ValidateRequestHeaderLayer::<
        tower_http::auth::require_authorization::Bearer<Full<Bytes>>,
    >::bearer(token);
    oneshot("tower_http_bearer", layer.layer(handler()), Some(token))
}

/// The floor, twice: with the user cloned as a `String` (what a hand-written guard
/// over a `HashMap<String, String>` does) and as an `Arc` (the cheapest clone
/// there is, as the layer's `CurrentUser` shares its user).
fn map_lookups(token: &str) -> [Box<dyn Case>; 2] {
    let user = "John Doe".to_owned();
    [
        oneshot(
            "map_lookup",
            MapLookupLayer::new(token, user.clone()).layer(handler()),
            Some(token),
        ),
        oneshot(
            "map_lookup_arc",
            MapLookupLayer::new(token, Arc::new(user)).layer(handler()),
            Some(token),
        ),
    ]
}

/// One benchmark case: a service and the request it gets.
trait Case {
    fn name(&self) -> &'static str;
    /// Sends one request; its status.
    fn status(&mut self) -> StatusCode;
    /// Sends `iters` requests; how long they took.
    fn run(&mut self, iters: u64) -> Duration;
    /// For a paired DPoP row: what the requests of the last [`Case::run`] took
    /// beyond a bare verification of each one's own proof signature.
    fn beyond_verification(&self) -> Option<Beyond> {
        None
    }
}

/// What a paired DPoP row's requests took beyond a bare verification of
/// another proof's signature and a Bearer request, in ns per request, two ways
/// (see `Dpop::run`).
#[derive(Debug, Clone, Copy, Default)]
struct Beyond {
    /// The verification and the Bearer request timed apart:
    /// `dpop − verification − (bearer − nothing)`.
    apart: PairStatistics,
    /// The verification and then the Bearer request, in one interval:
    /// `dpop − (verification; bearer)`.
    after_verification: PairStatistics,
}

/// Over one run's pairs: the mean counts every pair, including one that a pause
/// of this VM landed in (tens of µs on a request of 50 to 300 µs); the median
/// of the pairs does not, nor the rare requests that grow the replay store
/// (callgrind counts those).
#[derive(Debug, Clone, Copy, Default)]
struct PairStatistics {
    mean: f64,
    median: f64,
}

struct Oneshot<S> {
    name: &'static str,
    service: S,
    uri: Uri,
    authorization: Option<HeaderValue>,
}

fn oneshot<S, ResBody>(name: &'static str, service: S, token: Option<&str>) -> Box<dyn Case>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone + 'static,
    S::Error: std::fmt::Debug,
{
    Box::new(Oneshot {
        name,
        service,
        uri: Uri::from_static("/users/me"),
        authorization: token.map(|token| {
            HeaderValue::from_str(&format!("Bearer {token}")).expect("valid header value")
        }),
    })
}

impl<S> Oneshot<S> {
    /// A fresh request, as a server would hand it over.
    fn request(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::default());
        *request.uri_mut() = self.uri.clone();
        if let Some(value) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        request
    }
}

impl<S, ResBody> Case for Oneshot<S>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResBody>> + Clone,
    S::Error: std::fmt::Debug,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn status(&mut self) -> StatusCode {
        let response = drive(self.service.clone().oneshot(self.request())).expect("infallible");
        response.status()
    }

    fn run(&mut self, iters: u64) -> Duration {
        let start = Instant::now();
        for _ in 0..iters {
            let request = black_box(self.request());
            let response = drive(self.service.clone().oneshot(request)).expect("infallible");
            black_box(response);
        }
        start.elapsed()
    }
}

/// Polls `future` once in place (the memory stores never wait); a future that does
/// wait (a network store) is finished on a tokio runtime.
fn drive<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => runtime().block_on(future),
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

/// A token of the memory store's shape (43 base64url characters) for the other
/// cases; ours are issued by the store under test.
fn random_token() -> String {
    let store = MemoryTokenStore::new();
    let grant = Grant::new("nobody", Scopes::empty(), SystemTime::now());
    drive(store.issue(grant))
        .expect("token issued")
        .access_token
        .as_str()
        .to_owned()
}

fn main() {
    // The Redis store's deadlines are tokio timers, made at a request's first
    // poll, which `drive` does outside `block_on`: in the runtime's context.
    let _runtime = runtime().enter();
    let mut cases = cases();
    if std::env::var_os("BENCH_LIST").is_some() {
        for case in &cases {
            println!("{}", case.name());
        }
        return;
    }
    for case in &mut cases {
        let expected = match case.name() {
            "missing_header" | "invalid_token" => StatusCode::UNAUTHORIZED,
            _ => StatusCode::OK,
        };
        assert_eq!(case.status(), expected, "{}", case.name());
    }

    if let Some(name) = only_case() {
        let iters = std::env::var("BENCH_ITERS")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(10_000);
        let case = cases
            .iter_mut()
            .find(|case| case.name() == name)
            .unwrap_or_else(|| panic!("no case named {name:?}"));
        case.run(1_000); // warm-up: one-time initialisation is not per request
        case.run(iters);
        return;
    }

    let mode = Mode::from_env();
    if let (Some(processes), true) = (processes(), mode.interleaved) {
        across_processes(processes);
        return;
    }
    if mode.criterion {
        let mut criterion = Criterion::default().configure_from_args();
        let mut group = criterion.benchmark_group("guard");
        for case in &mut cases {
            group.bench_function(case.name(), |b| b.iter_custom(|iters| case.run(iters)));
        }
        group.finish();
        criterion.final_summary();
    }
    if mode.interleaved {
        interleaved(&mut cases);
    }
}

/// `BENCH_PROCESSES=N` (N ≥ 2): how many processes to run the interleaved rounds in.
fn processes() -> Option<usize> {
    let n: usize = std::env::var("BENCH_PROCESSES").ok()?.parse().ok()?;
    (n >= 2).then_some(n)
}

/// Runs the interleaved rounds in `n` fresh processes of this binary, one after
/// the other, and prints the median of their medians (and the range) per row. A
/// process's own figures move with where its code and data landed (on the VMs
/// measured here the guard's ratio went from 1.27x to 1.57x between consecutive
/// processes of one binary, a DPoP row by microseconds): across processes that
/// averages out, within one it cannot.
fn across_processes(n: usize) {
    let exe = std::env::current_exe().expect("the bench's own path");
    let mut rows: Vec<(String, Vec<f64>)> = Vec::new();
    for process in 1..=n {
        let tsv =
            std::env::temp_dir().join(format!("guard-bench-{}-{process}.tsv", std::process::id()));
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env_remove("BENCH_PROCESSES")
            .env("BENCH_INTERLEAVED_ONLY", "1")
            .env("BENCH_OUT", &tsv)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("start the bench");
        assert!(status.success(), "process {process} failed: {status}");
        let text = std::fs::read_to_string(&tsv).expect("read the process's figures");
        let _ = std::fs::remove_file(&tsv);
        for line in text.lines().skip(1) {
            let mut fields = line.split('\t');
            let (Some(name), Some(Ok(median))) = (fields.next(), fields.next().map(str::parse))
            else {
                continue;
            };
            match rows.iter_mut().find(|(row, _)| row == name) {
                Some((_, values)) => values.push(median),
                None => rows.push((name.to_owned(), vec![median])),
            }
        }
        eprintln!("process {process} of {n} done");
    }
    println!("\nacross {n} processes: median of the per-process medians (min, max)");
    let mut tsv = String::from("row\tmedian\tmin\tmax\n");
    for (name, values) in &rows {
        let (_, median, _) = quartiles(values);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        println!("{name:<44} {median:>11.2} ({min:.2}, {max:.2})");
        tsv += &format!("{name}\t{median:.3}\t{min:.3}\t{max:.3}\n");
    }
    if let Some(path) = std::env::var_os("BENCH_OUT") {
        std::fs::write(&path, tsv).expect("write BENCH_OUT");
    }
}

/// Times every case in rounds (each round runs each case for ~10 ms, in rotating
/// order), so that drift hits all cases alike; prints medians and ratios.
fn interleaved(cases: &mut [Box<dyn Case>]) {
    // This VM's noise comes in phases of seconds: enough rounds to span several
    // (about 8 s for eight cases), `BENCH_ROUNDS` to change it.
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(101);
    const SLICE: Duration = Duration::from_millis(10);
    // Iterations per slice, per case.
    let iters: Vec<u64> = cases
        .iter_mut()
        .map(|case| {
            let mut n = 64;
            loop {
                let took = case.run(n);
                if took >= SLICE / 4 {
                    break (n as f64 * SLICE.as_secs_f64() / took.as_secs_f64()).ceil() as u64;
                }
                n *= 2;
            }
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(rounds); cases.len()];
    // The paired DPoP rows': ns per request beyond its proof's bare verification.
    let mut beyond: Vec<Vec<Beyond>> = vec![Vec::with_capacity(rounds); cases.len()];
    for round in 0..=rounds {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let ns = cases[i].run(iters[i]).as_nanos() as f64 / iters[i] as f64;
            if round > 0 {
                samples[i].push(ns); // round 0 is a warm-up
                if let Some(extra) = cases[i].beyond_verification() {
                    beyond[i].push(extra);
                }
            }
        }
    }
    let bare = &samples[0];
    let index = |name: &str| cases.iter().position(|case| case.name() == name);
    // Added cost over `bare`, per round; the ratio is taken within each round.
    let added =
        |i: usize| -> Vec<f64> { samples[i].iter().zip(bare).map(|(c, b)| c - b).collect() };

    println!(
        "\ninterleaved: {rounds} rounds, ~{} ms per case per round; ns per request",
        SLICE.as_millis()
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>11}",
        "case", "median", "p25", "p75", "added(med)"
    );
    let mut tsv = String::from("case\tmedian_ns\tp25_ns\tp75_ns\tadded_ns\n");
    for (i, case) in cases.iter().enumerate() {
        let (p25, median, p75) = quartiles(&samples[i]);
        let (_, added_median, _) = quartiles(&added(i));
        println!(
            "{:<18} {median:>9.1} {p25:>9.1} {p75:>9.1} {added_median:>11.1}",
            case.name()
        );
        tsv += &format!(
            "{}\t{median:.1}\t{p25:.1}\t{p75:.1}\t{added_median:.1}\n",
            case.name()
        );
    }
    if let (Some(memory), Some(metrics)) = (index("memory"), index("memory_metrics")) {
        let extra: Vec<f64> = samples[metrics]
            .iter()
            .zip(&samples[memory])
            .map(|(with, without)| with - without)
            .collect();
        let (p25, extra_median, p75) = quartiles(&extra);
        println!(
            "memory_metrics - memory: {extra_median:.1} ns (p25 {p25:.1}, p75 {p75:.1}; target <= 30)"
        );
        tsv += &format!("delta:memory_metrics-memory\t{extra_median:.1}\t{p25:.1}\t{p75:.1}\t\n");
    }
    // What a DPoP request costs beyond a Bearer one and its proof's signature check.
    for (dpop, verify) in [
        ("dpop_es256", "verify_es256"),
        ("dpop_eddsa", "verify_eddsa"),
    ] {
        let (Some(memory), Some(d), Some(v)) = (index("memory"), index(dpop), index(verify)) else {
            continue;
        };
        let extra: Vec<f64> = (0..samples[d].len())
            .map(|round| samples[d][round] - samples[memory][round] - samples[v][round])
            .collect();
        let (p25, extra_median, p75) = quartiles(&extra);
        println!(
            "{dpop} - memory - {verify}: {extra_median:.1} ns (p25 {p25:.1}, p75 {p75:.1}; target <= 2000)"
        );
        tsv += &format!("delta:{dpop}-memory-{verify}\t{extra_median:.1}\t{p25:.1}\t{p75:.1}\t\n");
    }
    // The same, measured per request: each request's time minus that of a bare
    // verification and a Bearer request to the same layer, timed apart and in
    // one interval.
    for paired in ["dpop_es256_paired", "dpop_eddsa_paired"] {
        let Some(p) = index(paired) else {
            continue;
        };
        for (way, label, of) in [
            (
                "bearer",
                "a verification and a Bearer request, timed apart",
                (|b: &Beyond| b.apart) as fn(&Beyond) -> PairStatistics,
            ),
            (
                "verified_bearer",
                "a verification then a Bearer request, timed together",
                |b: &Beyond| b.after_verification,
            ),
        ] {
            for statistic in ["mean", "median"] {
                let extra: Vec<f64> = beyond[p]
                    .iter()
                    .map(|b| {
                        let pairs = of(b);
                        if statistic == "mean" {
                            pairs.mean
                        } else {
                            pairs.median
                        }
                    })
                    .collect();
                let (p25, extra_median, p75) = quartiles(&extra);
                println!(
                    "{paired}: beyond {label} ({statistic} of pairs): {extra_median:.1} ns (p25 {p25:.1}, p75 {p75:.1}; target <= 2000)"
                );
                tsv += &format!(
                    "delta:{paired}-{way}({statistic})\t{extra_median:.1}\t{p25:.1}\t{p75:.1}\t\n"
                );
            }
        }
    }
    for floor in ["map_lookup", "map_lookup_arc", "map_lookup2"] {
        let (Some(memory), Some(map)) = (index("memory"), index(floor)) else {
            continue;
        };
        let ratios: Vec<f64> = added(memory)
            .iter()
            .zip(added(map))
            .map(|(ours, floor)| ours / floor)
            .collect();
        let (p25, ratio, p75) = quartiles(&ratios);
        println!(
            "memory added cost / {floor} added cost: {ratio:.2}x (p25 {p25:.2}, p75 {p75:.2}; target <= 1.20)"
        );
        tsv += &format!("ratio:memory/{floor}\t{ratio:.3}\t{p25:.3}\t{p75:.3}\t\n");
    }
    if let Some(path) = std::env::var_os("BENCH_OUT") {
        std::fs::write(&path, tsv).expect("write BENCH_OUT");
    }
}
