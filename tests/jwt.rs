//! JWT access tokens (feature `jwt`): the token-store conformance suite, the
//! tutorial app over a real socket with each forged or stale token the issue names,
//! and a differential property test against jsonwebtoken, a maintained JWT crate.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::Server;
use ed25519_dalek::{Signer as _, SigningKey};
use futures_util::FutureExt as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Validation};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::store::{Lookup, StoreError};
use tower_oauth2_password::testing::TokenStoreSuite;
use tower_oauth2_password::token::jwt::{
    JtiDenylist, JwtConfigError, JwtKey, JwtTokenStore, MemoryJtiDenylist,
};
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
use tower_oauth2_password::token::{BearerToken, FamilyId, Grant, JwkThumbprint, TokenStore};
use tower_oauth2_password::{
    Argon2Hasher, MemoryUserStore, OAuth2PasswordLayer, PasswordHasher, StoredUser,
};

const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const OTHER_SECRET: &[u8; 32] = b"fedcba9876543210fedcba9876543210";
const ED_SEED: [u8; 32] = [42; 32];
const ISSUER: &str = "https://auth.example.com";

fn hs256(kid: &str, secret: &[u8]) -> JwtKey {
    JwtKey::hs256(kid, secret).expect("valid key")
}

fn ed25519(kid: &str) -> JwtKey {
    JwtKey::ed25519(kid, &ED_SEED).expect("valid key")
}

fn store(key: JwtKey) -> JwtTokenStore {
    JwtTokenStore::signing_with(key)
        .issuer(ISSUER)
        .build()
        .expect("valid store")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The header our store issues for `kid` and `alg`.
fn header(alg: &str, kid: &str) -> String {
    b64(format!(r#"{{"typ":"at+jwt","alg":"{alg}","kid":"{kid}"}}"#))
}

/// How a test signs tokens of its own making: jsonwebtoken for HS256, ed25519-dalek
/// for EdDSA.
#[derive(Clone)]
enum Signer {
    Hs256(Vec<u8>),
    Ed25519(SigningKey),
}

impl Signer {
    /// `header.payload.signature` for a header segment and a payload (any bytes).
    fn sign(&self, header: &str, payload: &[u8]) -> String {
        let input = format!("{header}.{}", b64(payload));
        let signature = match self {
            Self::Hs256(secret) => jsonwebtoken::crypto::sign(
                input.as_bytes(),
                &EncodingKey::from_secret(secret).expect("key"),
                Algorithm::HS256,
            )
            .expect("signed"),
            Self::Ed25519(key) => b64(key.sign(input.as_bytes()).to_bytes()),
        };
        format!("{input}.{signature}")
    }
}

/// The claims of one of our tokens, as JSON.
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON")
}

// ---------------------------------------------------------------------------
// The store on its own

#[tokio::test]
async fn hs256_store_passes_the_conformance_suite() {
    let store = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .leeway(Duration::from_secs(1))
        .build()
        .unwrap();
    TokenStoreSuite::new()
        .expiry_leeway(Duration::from_secs(1))
        .run(&store)
        .await;
}

#[tokio::test]
async fn ed25519_store_passes_the_conformance_suite() {
    // A leeway of at least a second: `exp` is whole seconds, rounded down, and the
    // guard's clock runs up to a tick ahead, so with none a token the suite asks
    // to live one second may have less than a tick left when it is resolved.
    let store = JwtTokenStore::signing_with(ed25519("ed-1"))
        .issuer(ISSUER)
        .leeway(Duration::from_secs(1))
        .build()
        .unwrap();
    TokenStoreSuite::new()
        .expiry_leeway(Duration::from_secs(1))
        .run(&store)
        .await;
}

#[test]
fn short_secrets_and_bad_configurations_are_refused_at_construction() {
    let short = JwtKey::hs256("k1", &SECRET[..31]).unwrap_err();
    assert_eq!(short, JwtConfigError::SecretTooShort { len: 31 });
    assert!(short.to_string().contains("at least 32"));
    assert_eq!(
        JwtKey::hs256("", SECRET).unwrap_err(),
        JwtConfigError::InvalidKid
    );
    assert_eq!(
        JwtKey::hs256("a\"b", SECRET).unwrap_err(),
        JwtConfigError::InvalidKid
    );
    let duplicate = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .also_accepting(hs256("k1", OTHER_SECRET))
        .build()
        .unwrap_err();
    assert_eq!(duplicate, JwtConfigError::DuplicateKid { kid: "k1".into() });
    let public = ed25519("ed-1").public_key().unwrap();
    let verify_only = JwtKey::ed25519_public("ed-1", &public).unwrap();
    assert!(matches!(
        JwtTokenStore::signing_with(verify_only)
            .issuer(ISSUER)
            .build(),
        Err(JwtConfigError::CannotSign { .. })
    ));
    // The identity point: weak, refused.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(matches!(
        JwtKey::ed25519_public("weak", &identity),
        Err(JwtConfigError::InvalidPublicKey { .. })
    ));
    assert_eq!(
        JwtTokenStore::signing_with(hs256("k1", SECRET))
            .issuer(ISSUER)
            .leeway(Duration::from_secs(301))
            .build()
            .unwrap_err(),
        JwtConfigError::LeewayTooLong
    );
    // Without an issuer, two deployments sharing a key would share tokens.
    for builder in [
        JwtTokenStore::signing_with(hs256("k1", SECRET)),
        JwtTokenStore::signing_with(hs256("k1", SECRET)).issuer(""),
        JwtTokenStore::signing_with(hs256("k1", SECRET))
            .issuer(ISSUER)
            .audience(""),
    ] {
        let refused = builder.build().unwrap_err();
        assert_eq!(refused, JwtConfigError::NoIssuer);
        assert!(refused.to_string().contains("issuer"), "{refused}");
    }
}

#[tokio::test]
async fn debug_output_shows_no_key_and_no_token() {
    let store = store(hs256("k1", SECRET));
    let grant = Grant::new(
        "johndoe",
        Scopes::empty(),
        SystemTime::now() + Duration::from_secs(60),
    );
    let issued = store.issue(grant).await.unwrap();
    let debug = format!("{store:?} {:?} {issued:?}", hs256("k1", SECRET));
    let secret = std::str::from_utf8(SECRET).unwrap();
    assert!(debug.contains("k1"), "{debug}");
    for shown in [secret, issued.access_token.as_str()] {
        assert!(!debug.contains(shown), "{debug}");
    }
    let ed = format!("{:?}", ed25519("ed-1"));
    assert!(!ed.contains("42"), "{ed}");
}

#[tokio::test]
async fn tokens_carry_the_documented_claims_and_header() {
    let store = store(hs256("k1", SECRET));
    let scopes: Scopes = ["me", "items"].into_iter().collect();
    let expires_at = SystemTime::now() + Duration::from_secs(600);
    let grant = Grant::new("johndoe", scopes.clone(), expires_at).with_stamp(u64::MAX);
    let token = store.issue(grant).await.unwrap().access_token;
    let token = token.as_str();
    assert!(token.starts_with(&format!("{}.", header("HS256", "k1"))));
    let claims = claims_of(token);
    let issued_at = now();
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], "johndoe");
    assert_eq!(claims["aud"], ISSUER);
    assert_eq!(claims["scope"], "me items");
    assert_eq!(claims["stamp"], u64::MAX);
    assert!(claims["exp"].as_u64().unwrap().abs_diff(issued_at + 600) <= 2);
    assert!(claims["iat"].as_u64().unwrap().abs_diff(issued_at) <= 2);
    assert_eq!(claims["nbf"], claims["iat"]);
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(
        URL_SAFE_NO_PAD.decode(jti).unwrap().len(),
        16,
        "128-bit jti"
    );
    let resolved = store.resolve(token.into()).await.unwrap().unwrap();
    assert_eq!(resolved.scopes, scopes);
    assert_eq!(resolved.stamp, u64::MAX);
    // And jsonwebtoken reads it as a valid JWT.
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
    validation.set_audience(&[ISSUER]);
    let decoded = jsonwebtoken::decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET).unwrap(),
        &validation,
    )
    .expect("jsonwebtoken accepts our token");
    assert_eq!(decoded.header.kid.as_deref(), Some("k1"));
    assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
}

#[tokio::test]
async fn long_claims_round_trip() {
    // Claims too long for the verifier's stack buffer take the heap path.
    let store = store(hs256("k1", SECRET));
    let scopes: Scopes = (0..60).map(|i| format!("scope-{i}")).collect();
    let subject = "ü".repeat(100);
    let grant = Grant::new(
        subject.as_str(),
        scopes.clone(),
        SystemTime::now() + Duration::from_secs(60),
    );
    let issued = store.issue(grant).await.unwrap();
    let token = issued.access_token.as_str();
    assert!(token.len() > 1000, "{} bytes", token.len());
    let resolved = store.resolve(token.into()).await.unwrap().unwrap();
    assert_eq!(resolved.subject, subject.as_str());
    assert_eq!(resolved.scopes, scopes);
    let mut tampered = token.as_bytes().to_vec();
    let middle = token.find('.').unwrap() + 500;
    tampered[middle] = if tampered[middle] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        store.resolve(BearerToken::new(&tampered)).await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_scope_the_claim_cannot_carry_is_not_issued() {
    // "a b" would come back as two scopes: refused rather than changed.
    let store = store(hs256("k1", SECRET));
    let scopes: Scopes = ["me", "a b"].into_iter().collect();
    let grant = Grant::new(
        "johndoe",
        scopes,
        SystemTime::now() + Duration::from_secs(60),
    );
    assert!(store.issue(grant).await.is_err());
}

#[tokio::test]
async fn an_eddsa_public_key_verifies_what_its_secret_key_signed() {
    let signing = store(ed25519("ed-1"));
    let public = ed25519("ed-1").public_key().unwrap();
    let verifying = JwtTokenStore::signing_with(hs256("local", SECRET))
        .issuer(ISSUER)
        .also_accepting(JwtKey::ed25519_public("ed-1", &public).unwrap())
        .build()
        .unwrap();
    let grant = Grant::new(
        "johndoe",
        Scopes::empty(),
        SystemTime::now() + Duration::from_secs(60),
    );
    let token = signing.issue(grant).await.unwrap().access_token;
    let resolved = verifying.resolve(token.as_str().into()).await.unwrap();
    assert_eq!(resolved.unwrap().subject, "johndoe");
    // Another Ed25519 key under the same kid is refused.
    let other_public = JwtKey::ed25519("x", &[9; 32])
        .unwrap()
        .public_key()
        .unwrap();
    let other = JwtTokenStore::signing_with(hs256("local", SECRET))
        .issuer(ISSUER)
        .also_accepting(JwtKey::ed25519_public("ed-1", &other_public).unwrap())
        .build()
        .unwrap();
    assert_eq!(other.resolve(token.as_str().into()).await.unwrap(), None);
}

#[tokio::test]
async fn revocation_lasts_until_expiry_then_is_forgotten() {
    let store = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let soon = SystemTime::now() + Duration::from_secs(2);
    let issued = store
        .issue(Grant::new("johndoe", Scopes::empty(), soon))
        .await
        .unwrap();
    let token = BearerToken::from(issued.access_token.as_str());
    let kept = store
        .issue(Grant::new("johndoe", Scopes::empty(), soon))
        .await
        .unwrap();
    store.revoke(token, None).await.unwrap();
    assert_eq!(store.resolve(token).await.unwrap(), None);
    assert!(store
        .resolve(kept.access_token.as_str().into())
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.denylist().len(), 1);
    // Revoking garbage or an unknown token is not an error, and lists nothing.
    store
        .revoke(BearerToken::new(b"\xff."), None)
        .await
        .unwrap();
    let foreign = self::store(hs256("k1", OTHER_SECRET));
    let other = foreign
        .issue(Grant::new("johndoe", Scopes::empty(), soon))
        .await
        .unwrap();
    store
        .revoke(other.access_token.as_str().into(), None)
        .await
        .unwrap();
    assert_eq!(store.denylist().len(), 1);
    // Once the token has expired, there is nothing left to deny: a revocation
    // lists nothing.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fresh = store
        .issue(Grant::new(
            "johndoe",
            Scopes::empty(),
            SystemTime::now() + Duration::from_secs(60),
        ))
        .await
        .unwrap();
    let list = MemoryJtiDenylist::new();
    let store = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .leeway(Duration::ZERO)
        .with_denylist(list.clone())
        .build()
        .unwrap();
    store.revoke(token, None).await.unwrap();
    assert!(list.is_empty(), "an expired token is not listed");
    store
        .revoke(fresh.access_token.as_str().into(), None)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
}

// ---------------------------------------------------------------------------
// End to end: the tutorial app with JWTs, over a real socket

async fn serve(store: JwtTokenStore) -> Server {
    Server::start_with(common::tutorial::layer_builder().token_store(store).build()).await
}

#[tokio::test]
async fn login_then_the_token_works_hs256_and_eddsa() {
    for key in [hs256("k1", SECRET), ed25519("ed-1")] {
        let server = serve(store(key)).await;
        let token = server.login("johndoe", "secret").await;
        assert_eq!(token.split('.').count(), 3);
        let reply = server.me(&token).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.json()["username"], "johndoe");
        server.stop().await;
    }
}

/// A server, a token it issued, and a way to sign modified copies of it with the
/// server's own key: every refusal below is for the one thing changed.
struct Forge {
    server: Server,
    store: JwtTokenStore,
    token: String,
    signer: Signer,
    header: String,
}

impl Forge {
    async fn hs256() -> Self {
        Self::start(hs256("k1", SECRET), Signer::Hs256(SECRET.to_vec())).await
    }

    async fn start(key: JwtKey, signer: Signer) -> Self {
        let header = header(key.algorithm(), key.kid());
        let store = store(key);
        let server = serve(store.clone()).await;
        let token = server.login("johndoe", "secret").await;
        Self {
            server,
            store,
            token,
            signer,
            header,
        }
    }

    /// The token's claims, changed by `edit`, signed with the server's key.
    fn resigned(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
        let mut claims = claims_of(&self.token);
        edit(claims.as_object_mut().unwrap());
        self.signer
            .sign(&self.header, &serde_json::to_vec(&claims).unwrap())
    }

    async fn assert_accepted(&self, token: &str) {
        let reply = self.server.me(token).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
    }

    async fn assert_refused(&self, token: &str) {
        self.server.me(token).await.assert_invalid_token();
    }
}

#[tokio::test]
async fn a_token_resigned_unchanged_is_accepted() {
    // The control for the refusals below: the forging itself is sound.
    let forge = Forge::hs256().await;
    forge.assert_accepted(&forge.token).await;
    forge.assert_accepted(&forge.resigned(|_| {})).await;
    forge
        .assert_accepted(&forge.resigned(|c| {
            c.insert("unknown".into(), json!({"nested": [1, 2]}));
        }))
        .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    let forge = Forge::hs256().await;
    let payload = forge.token.split('.').nth(1).unwrap().to_owned();
    for header in [
        b64(r#"{"alg":"none"}"#),
        b64(r#"{"typ":"at+jwt","alg":"none","kid":"k1"}"#),
        b64(r#"{"typ":"JWT","alg":"none"}"#),
    ] {
        forge.assert_refused(&format!("{header}.{payload}.")).await;
        let signature = forge.token.rsplit('.').next().unwrap();
        forge
            .assert_refused(&format!("{header}.{payload}.{signature}"))
            .await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_eddsa_public_key_is_refused() {
    let key = ed25519("ed-1");
    let public = key.public_key().unwrap();
    let forge = Forge::start(key, Signer::Ed25519(SigningKey::from_bytes(&ED_SEED))).await;
    forge.assert_accepted(&forge.resigned(|_| {})).await;
    let confused = Signer::Hs256(public.to_vec());
    let claims = serde_json::to_vec(&claims_of(&forge.token)).unwrap();
    for header in [
        header("HS256", "ed-1"),
        b64(r#"{"alg":"HS256","kid":"ed-1"}"#),
    ] {
        forge.assert_refused(&confused.sign(&header, &claims)).await;
    }
}

#[tokio::test]
async fn a_string_or_missing_exp_is_refused() {
    let forge = Forge::hs256().await;
    let far = json!((now() + 3600).to_string());
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("exp".into(), far);
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.remove("exp");
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("exp".into(), json!((now() + 3600) as f64 + 0.5));
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("nbf".into(), json!("0"));
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("sub".into(), json!(["johndoe"]));
        }))
        .await;
}

#[tokio::test]
async fn an_edited_payload_is_refused() {
    let forge = Forge::hs256().await;
    let mut segments: Vec<String> = forge.token.split('.').map(str::to_owned).collect();
    let mut claims = claims_of(&forge.token);
    claims["sub"] = json!("alice");
    segments[1] = b64(serde_json::to_vec(&claims).unwrap());
    forge.assert_refused(&segments.join(".")).await;
    // A longer life, unsigned.
    claims["sub"] = json!("johndoe");
    claims["exp"] = json!(now() + 365 * 24 * 3600);
    segments[1] = b64(serde_json::to_vec(&claims).unwrap());
    forge.assert_refused(&segments.join(".")).await;
}

#[tokio::test]
async fn a_token_of_another_key_is_refused() {
    let forge = Forge::hs256().await;
    let other = Signer::Hs256(OTHER_SECRET.to_vec());
    let claims = serde_json::to_vec(&claims_of(&forge.token)).unwrap();
    forge
        .assert_refused(&other.sign(&forge.header, &claims))
        .await;
    // The same key under another kid is another key too.
    let elsewhere = Signer::Hs256(SECRET.to_vec());
    forge
        .assert_refused(&elsewhere.sign(&header("HS256", "k2"), &claims))
        .await;
}

/// RFC 8725 §3.8–3.9: a deployment that shares the secret and the `kid` but has
/// another issuer or audience issues tokens this one refuses, and so are tokens
/// re-signed with the right key whose `iss` or `aud` is edited, missing, or an
/// array.
#[tokio::test]
async fn another_deployments_tokens_are_refused_though_it_shares_the_key() {
    let ours = serve(store(hs256("k1", SECRET))).await;
    for other in [
        JwtTokenStore::signing_with(hs256("k1", SECRET)).issuer("https://staging.example.com"),
        JwtTokenStore::signing_with(hs256("k1", SECRET))
            .issuer(ISSUER)
            .audience("https://api.example.com"),
    ] {
        let other = serve(other.build().expect("valid store")).await;
        let token = other.login("johndoe", "secret").await;
        assert_eq!(other.me(&token).await.status, 200);
        ours.me(&token).await.assert_invalid_token();
    }
    let forge = Forge::hs256().await;
    for (claim, value) in [
        ("iss", json!("https://evil.example.com")),
        ("aud", json!("https://evil.example.com")),
        ("aud", json!([ISSUER])),
        ("iss", Value::Null),
    ] {
        forge
            .assert_refused(&forge.resigned(|c| {
                c.insert(claim.into(), value.clone());
            }))
            .await;
    }
    for claim in ["iss", "aud"] {
        forge
            .assert_refused(&forge.resigned(|c| {
                c.remove(claim);
            }))
            .await;
    }
}

#[tokio::test]
async fn a_stale_stamp_is_refused() {
    let forge = Forge::hs256().await;
    forge
        .assert_refused(&forge.resigned(|c| {
            let stamp = c["stamp"].as_u64().unwrap();
            c.insert("stamp".into(), json!(stamp.wrapping_add(1)));
        }))
        .await;
}

/// A replica restarted with a user whose password was changed in the
/// configuration it loads (here: johndoe inserted first, with a new hash) must not
/// take the tokens the change ended, although its store has made as many changes
/// as the old process had when it issued them. Replicas loading the same users do
/// take each other's tokens.
#[tokio::test]
async fn a_restart_with_a_changed_password_does_not_revive_old_tokens() {
    let old = serve(store(hs256("k1", SECRET)))
        .await
        .login("johndoe", "secret")
        .await;
    let replica = serve(store(hs256("k1", SECRET))).await;
    assert_eq!(replica.me(&old).await.status, 200);

    let new_hash = Argon2Hasher::with_params(64, 1, 1)
        .expect("valid parameters")
        .hash("n3w-secret")
        .expect("hashed");
    let johndoe = common::tutorial::User {
        username: "johndoe".into(),
        email: "johndoe@example.com".into(),
        full_name: "John Doe".into(),
        disabled: false,
    };
    let users = MemoryUserStore::new().with_user(
        "johndoe",
        StoredUser::new(johndoe, new_hash).with_scopes(["me", "items"]),
    );
    let restarted = Server::start_with(
        OAuth2PasswordLayer::builder(users)
            .token_store(store(hs256("k1", SECRET)))
            .build(),
    )
    .await;
    restarted.me(&old).await.assert_invalid_token();
    assert_eq!(
        restarted
            .me(&restarted.login("johndoe", "n3w-secret").await)
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let forge = Forge::hs256().await;
    let leeway = 5; // the default
    let t = now();
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("exp".into(), json!(t - leeway - 2));
        }))
        .await;
    forge
        .assert_accepted(&forge.resigned(|c| {
            c.insert("exp".into(), json!(t - 1)); // within the leeway
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("nbf".into(), json!(t + leeway + 10));
        }))
        .await;
    forge
        .assert_refused(&forge.resigned(|c| {
            c.insert("iat".into(), json!(t + leeway + 10));
        }))
        .await;
    forge
        .assert_accepted(&forge.resigned(|c| {
            c.insert("nbf".into(), json!(t + 1)); // within the leeway
        }))
        .await;
}

#[tokio::test]
async fn an_expired_token_issued_by_the_store_is_refused() {
    let store = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let server = Server::start_with(
        common::tutorial::layer_builder()
            .token_store(store)
            .token_lifetime(Duration::from_secs(2))
            .build(),
    )
    .await;
    let token = server.login("johndoe", "secret").await;
    // `exp` is rounded down to the second: at least one second left.
    assert_eq!(server.me(&token).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2200)).await;
    server.me(&token).await.assert_invalid_token();
}

#[tokio::test]
async fn a_revoked_token_is_refused() {
    let forge = Forge::hs256().await;
    let other = forge.server.login("johndoe", "secret").await;
    forge.assert_accepted(&forge.token).await;
    forge
        .store
        .revoke(forge.token.as_str().into(), None)
        .await
        .unwrap();
    forge.assert_refused(&forge.token).await;
    forge.assert_accepted(&other).await;
}

/// A denylist as a network store answers: every lookup awaited, or failing.
#[derive(Clone)]
struct Remote {
    list: MemoryJtiDenylist,
    down: Arc<AtomicBool>,
}

impl JtiDenylist for Remote {
    fn deny(
        &self,
        jti: &str,
        until: SystemTime,
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send {
        self.list.deny(jti, until)
    }

    fn is_denied(&self, jti: &str) -> Lookup<bool> {
        let answer = self.list.is_denied(jti);
        let down = self.down.load(Ordering::SeqCst);
        Lookup::pending(async move {
            tokio::task::yield_now().await;
            if down {
                return Err(StoreError::new("denylist unreachable"));
            }
            answer.await
        })
    }
}

#[tokio::test]
async fn an_awaited_denylist_is_asked_and_its_failure_is_a_503() {
    let remote = Remote {
        list: MemoryJtiDenylist::new(),
        down: Arc::new(AtomicBool::new(false)),
    };
    let store = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .with_denylist(remote.clone())
        .build()
        .unwrap();
    let server = Server::start_with(
        common::tutorial::layer_builder()
            .token_store(store.clone())
            .build(),
    )
    .await;
    let token = server.login("johndoe", "secret").await;
    let kept = server.login("johndoe", "secret").await;
    assert_eq!(server.me(&token).await.status, 200);
    store.revoke(token.as_str().into(), None).await.unwrap();
    server.me(&token).await.assert_invalid_token();
    assert_eq!(server.me(&kept).await.status, 200);

    remote.down.store(true, Ordering::SeqCst);
    let reply = server.me(&kept).await;
    assert_eq!(reply.status, 503, "never let through: {:?}", reply.body);
}

#[tokio::test]
async fn key_rotation_accepts_the_old_key_until_it_is_removed() {
    let old = serve(store(hs256("2026-11", SECRET))).await;
    let token = old.login("johndoe", "secret").await;

    let rotated = JwtTokenStore::signing_with(hs256("2026-12", OTHER_SECRET))
        .issuer(ISSUER)
        .also_accepting(hs256("2026-11", SECRET))
        .build()
        .unwrap();
    let rotating = serve(rotated).await;
    assert_eq!(
        rotating.me(&token).await.status,
        200,
        "old key still accepted"
    );
    let new_token = rotating.login("johndoe", "secret").await;
    assert!(new_token.starts_with(&header("HS256", "2026-12")));
    assert_eq!(rotating.me(&new_token).await.status, 200);

    let removed = serve(store(hs256("2026-12", OTHER_SECRET))).await;
    removed.me(&token).await.assert_invalid_token();
    assert_eq!(removed.me(&new_token).await.status, 200);
}

#[tokio::test]
async fn hostile_tokens_are_refused_without_a_panic() {
    let forge = Forge::hs256().await;
    let long = "A".repeat(3000);
    for token in [
        format!("{}.{long}.{long}", forge.header),
        format!("{}..", forge.header),
        format!("{}.{}", forge.token, "x"),
        format!("{}.", forge.token),
        format!("{}=", forge.token),
        forge.token.replacen('.', "..", 1),
        "a.b.c".to_owned(),
        "...".to_owned(),
    ] {
        forge.assert_refused(&token).await;
    }
}

// ---------------------------------------------------------------------------
// Differential test: our verifier and jsonwebtoken agree

/// What a verifier is configured with, for both sides.
struct Setup {
    store: JwtTokenStore,
    leeway: u64,
    kid: &'static str,
    alg: Algorithm,
    signer: Signer,
    decoding: DecodingKey,
    ed_public: Option<[u8; 32]>,
}

fn setups() -> [Setup; 2] {
    let leeway = 5;
    let ed = SigningKey::from_bytes(&ED_SEED);
    let ed_public = ed.verifying_key().to_bytes();
    let configured = |key| {
        JwtTokenStore::signing_with(key)
            .issuer(ISSUER)
            .leeway(Duration::from_secs(leeway))
            .build()
            .unwrap()
    };
    [
        Setup {
            store: configured(hs256("k1", SECRET)),
            leeway,
            kid: "k1",
            alg: Algorithm::HS256,
            signer: Signer::Hs256(SECRET.to_vec()),
            decoding: DecodingKey::from_secret(SECRET).unwrap(),
            ed_public: None,
        },
        Setup {
            store: configured(ed25519("ed-1")),
            leeway,
            kid: "ed-1",
            alg: Algorithm::EdDSA,
            signer: Signer::Ed25519(ed),
            decoding: DecodingKey::from_ed_components(&b64(ed_public)).unwrap(),
            ed_public: Some(ed_public),
        },
    ]
}

/// The claims we issue, with strict types, as jsonwebtoken deserialises them.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // read by serde: its types are the check
struct StrictClaims {
    iss: String,
    sub: String,
    // We issue one audience, a string; jsonwebtoken also takes an array.
    aud: String,
    exp: u64,
    iat: u64,
    nbf: u64,
    jti: String,
    scope: Option<String>,
    stamp: u64,
}

impl Setup {
    fn alg_name(&self) -> &'static str {
        match self.alg {
            Algorithm::HS256 => "HS256",
            _ => "EdDSA",
        }
    }

    fn ours(&self, token: &[u8]) -> bool {
        match self.store.resolve(BearerToken::new(token)).now_or_never() {
            Some(Ok(found)) => found.is_some(),
            other => panic!("the memory denylist answers at once: {other:?}"),
        }
    }

    /// jsonwebtoken's verdict, with the same key, leeway and required claims, and
    /// our two rules it has no setting for: the header must be the one we issue
    /// (byte for byte), and `iat` must not be in the future.
    fn reference(&self, token: &[u8]) -> bool {
        let canonical = header(self.alg_name(), self.kid);
        if token.split(|&b| b == b'.').next() != Some(canonical.as_bytes()) {
            return false;
        }
        let mut validation = Validation::new(self.alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "sub", "iss", "aud"]);
        match jsonwebtoken::decode::<StrictClaims>(token, &self.decoding, &validation) {
            Ok(data) => data.claims.iat <= now() + self.leeway,
            Err(_) => false,
        }
    }

    fn valid_token(&self, sub: &str, scopes: &[&str], stamp: u64, lifetime: u64) -> String {
        let grant = Grant::new(
            sub,
            scopes.iter().collect(),
            SystemTime::now() + Duration::from_secs(lifetime),
        )
        .with_stamp(stamp);
        let issued = self.store.issue(grant).now_or_never().unwrap().unwrap();
        issued.access_token.as_str().to_owned()
    }
}

/// A time offset from now, in seconds, at least 3 s away from the leeway's edges
/// (on the edge, "on or after exp" and jsonwebtoken's "after exp" differ by design,
/// and the two verdicts are a few microseconds apart).
fn offset() -> impl Strategy<Value = i64> {
    prop_oneof![-100_000i64..-20, -2i64..=2, 20i64..100_000,]
}

/// What to do to a valid token.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    FlipBit {
        at: usize,
        bit: u8,
    },
    SwapSegments {
        a: usize,
        b: usize,
    },
    Truncate {
        at: usize,
    },
    ReencodedHeader {
        variant: u8,
        resign: bool,
    },
    AlgNone {
        keep_signature: bool,
    },
    HsWithPublicKey,
    SetClaim {
        name: &'static str,
        value: ClaimValue,
    },
    RemoveClaim(&'static str),
    EditPayloadUnsigned,
    OtherKey,
    Times {
        exp: i64,
        nbf: i64,
        iat: i64,
    },
    RandomBytes(Vec<u8>),
    HugeSegment {
        segment: usize,
        len: usize,
    },
    BadBase64 {
        at: usize,
        with: u8,
    },
    ExtraDots {
        at: usize,
    },
    PayloadText {
        variant: u8,
    },
}

#[derive(Debug, Clone)]
enum ClaimValue {
    Str(String),
    Int(i64),
    Float(f64),
    Null,
    Bool,
    Array,
}

impl ClaimValue {
    fn json(&self) -> Value {
        match self {
            Self::Str(s) => json!(s),
            Self::Int(n) => json!(n),
            Self::Float(f) => json!(f),
            Self::Null => Value::Null,
            Self::Bool => json!(true),
            Self::Array => json!([1]),
        }
    }
}

fn claim_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "sub", "exp", "iat", "nbf", "jti", "scope", "stamp", "aud", "iss", "extra",
    ])
}

fn claim_value() -> impl Strategy<Value = ClaimValue> {
    prop_oneof![
        "[a-z0-9 ]{0,12}".prop_map(ClaimValue::Str),
        near_now().prop_map(|n| ClaimValue::Str(n.to_string())),
        near_now().prop_map(ClaimValue::Int),
        any::<i64>().prop_map(ClaimValue::Int),
        near_now().prop_map(|n| ClaimValue::Float(n as f64 + 0.5)),
        Just(ClaimValue::Null),
        Just(ClaimValue::Bool),
        Just(ClaimValue::Array),
    ]
}

/// A time within a day of now, well clear of the leeway's edges (see [`offset`]).
fn near_now() -> impl Strategy<Value = i64> {
    let now = now() as i64;
    prop_oneof![now - 100_000..now - 20, now + 20..now + 100_000]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::None),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (0usize..3, 0usize..3).prop_map(|(a, b)| Mutation::SwapSegments { a, b }),
        any::<usize>().prop_map(|at| Mutation::Truncate { at }),
        (0u8..6, any::<bool>())
            .prop_map(|(variant, resign)| Mutation::ReencodedHeader { variant, resign }),
        any::<bool>().prop_map(|keep_signature| Mutation::AlgNone { keep_signature }),
        Just(Mutation::HsWithPublicKey),
        (claim_name(), claim_value()).prop_map(|(name, value)| Mutation::SetClaim { name, value }),
        claim_name().prop_map(Mutation::RemoveClaim),
        Just(Mutation::EditPayloadUnsigned),
        Just(Mutation::OtherKey),
        (offset(), offset(), offset()).prop_map(|(exp, nbf, iat)| Mutation::Times {
            exp,
            nbf,
            iat
        }),
        prop::collection::vec(any::<u8>(), 0..200).prop_map(Mutation::RandomBytes),
        (0usize..3, 1000usize..5000)
            .prop_map(|(segment, len)| Mutation::HugeSegment { segment, len }),
        (
            any::<usize>(),
            prop::sample::select(b"=+/ !\"%*.\\".to_vec())
        )
            .prop_map(|(at, with)| Mutation::BadBase64 { at, with }),
        any::<usize>().prop_map(|at| Mutation::ExtraDots { at }),
        (0u8..6).prop_map(|variant| Mutation::PayloadText { variant }),
    ]
}

impl Setup {
    fn apply(&self, token: &str, mutation: &Mutation) -> Vec<u8> {
        let segments: Vec<&str> = token.split('.').collect();
        let (header, payload, signature) = (segments[0], segments[1], segments[2]);
        let claims = claims_of(token);
        let resign = |claims: &Value| -> Vec<u8> {
            self.signer
                .sign(header, &serde_json::to_vec(claims).unwrap())
                .into_bytes()
        };
        let mut bytes = token.as_bytes().to_vec();
        match mutation {
            Mutation::None => bytes,
            Mutation::FlipBit { at, bit } => {
                let at = at % bytes.len();
                bytes[at] ^= 1 << bit;
                bytes
            }
            Mutation::SwapSegments { a, b } => {
                let mut swapped = segments.clone();
                swapped.swap(*a, *b);
                swapped.join(".").into_bytes()
            }
            Mutation::Truncate { at } => {
                bytes.truncate(at % bytes.len());
                bytes
            }
            Mutation::ReencodedHeader { variant, resign } => {
                let (alg, kid) = (self.alg_name(), self.kid);
                let header = match variant {
                    0 => format!(r#"{{"alg":"{alg}","typ":"at+jwt","kid":"{kid}"}}"#),
                    1 => format!(r#"{{"typ":"JWT","alg":"{alg}","kid":"{kid}"}}"#),
                    2 => format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
                    3 => format!(
                        r#"{{"typ":"at+jwt","alg":"{alg}","kid":"{kid}","jku":"https://evil"}}"#
                    ),
                    4 => format!(r#"{{"typ":"at+jwt","alg":"{alg}","kid":"{kid}" }}"#),
                    _ => format!(r#"{{"typ":"at+jwt","alg":"{alg}"}}"#),
                };
                let header = b64(header);
                if *resign {
                    let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
                    self.signer.sign(&header, &payload).into_bytes()
                } else {
                    format!("{header}.{payload}.{signature}").into_bytes()
                }
            }
            Mutation::AlgNone { keep_signature } => {
                let header = b64(format!(
                    r#"{{"typ":"at+jwt","alg":"none","kid":"{}"}}"#,
                    self.kid
                ));
                let signature = if *keep_signature { signature } else { "" };
                format!("{header}.{payload}.{signature}").into_bytes()
            }
            Mutation::HsWithPublicKey => {
                let secret = self
                    .ed_public
                    .map_or_else(|| OTHER_SECRET.to_vec(), |k| k.to_vec());
                let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
                Signer::Hs256(secret)
                    .sign(&self::header("HS256", self.kid), &payload)
                    .into_bytes()
            }
            Mutation::SetClaim { name, value } => {
                let mut claims = claims;
                claims[*name] = value.json();
                resign(&claims)
            }
            Mutation::RemoveClaim(name) => {
                let mut claims = claims;
                claims.as_object_mut().unwrap().remove(*name);
                resign(&claims)
            }
            Mutation::EditPayloadUnsigned => {
                let mut claims = claims;
                claims["sub"] = json!("alice");
                let payload = b64(serde_json::to_vec(&claims).unwrap());
                format!("{header}.{payload}.{signature}").into_bytes()
            }
            Mutation::OtherKey => {
                let other = match self.signer {
                    Signer::Hs256(_) => Signer::Hs256(OTHER_SECRET.to_vec()),
                    Signer::Ed25519(_) => Signer::Ed25519(SigningKey::from_bytes(&[7; 32])),
                };
                let payload = URL_SAFE_NO_PAD.decode(payload).unwrap();
                other.sign(header, &payload).into_bytes()
            }
            Mutation::Times { exp, nbf, iat } => {
                let at = |offset: i64| json!(now().saturating_add_signed(offset));
                let mut claims = claims;
                // Far offsets move past the leeway; near ones (-2..=2) stay within it.
                let leeway = self.leeway as i64;
                claims["exp"] = at(*exp - if *exp < -2 { leeway } else { 0 });
                claims["nbf"] = at(*nbf + if *nbf > 2 { leeway } else { 0 });
                claims["iat"] = at(*iat + if *iat > 2 { leeway } else { 0 });
                resign(&claims)
            }
            Mutation::RandomBytes(random) => random.clone(),
            Mutation::HugeSegment { segment, len } => {
                let mut grown: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
                grown[*segment] += &"A".repeat(*len);
                grown.join(".").into_bytes()
            }
            Mutation::BadBase64 { at, with } => {
                let at = at % bytes.len();
                bytes[at] = *with;
                bytes
            }
            Mutation::ExtraDots { at } => {
                bytes.insert(at % (bytes.len() + 1), b'.');
                bytes
            }
            Mutation::PayloadText { variant } => {
                let text = serde_json::to_string(&claims).unwrap();
                let sub = claims["sub"].as_str().unwrap();
                let text = match variant {
                    0 => format!(" {text} "),
                    1 => text.replacen(
                        &format!("\"sub\":\"{sub}\""),
                        &format!("\"sub\":\"{}\"", escape_all(sub)),
                        1,
                    ),
                    2 => text.replacen('{', "{\"exp\":1,", 1), // a duplicate claim
                    3 => format!("{text}x"),
                    4 => text[..text.len() - 1].to_owned(),
                    _ => format!("[{text}]"),
                };
                self.signer.sign(header, text.as_bytes()).into_bytes()
            }
        }
    }
}

/// `s` with every character as a JSON `\u` escape.
fn escape_all(s: &str) -> String {
    s.encode_utf16().map(|u| format!("\\u{u:04x}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// For valid, mutated and hostile tokens, HS256 and EdDSA: our verifier accepts
    /// exactly what jsonwebtoken (configured alike, plus our two stricter rules)
    /// accepts.
    #[test]
    fn our_verifier_agrees_with_jsonwebtoken(
        ed in any::<bool>(),
        sub in "[a-zA-Z0-9@.é]{0,30}",
        scopes in prop::collection::vec(prop::sample::select(vec!["me", "items", "admin"]), 0..3),
        stamp in any::<u64>(),
        lifetime in 60u64..100_000,
        mutation in mutation(),
    ) {
        let setups = setups_once();
        let setup = &setups[usize::from(ed)];
        let token = setup.valid_token(&sub, &scopes, stamp, lifetime);
        let mutated = setup.apply(&token, &mutation);
        let ours = setup.ours(&mutated);
        let reference = setup.reference(&mutated);
        prop_assert_eq!(ours, reference, "{:?} on {:?}", mutation, String::from_utf8_lossy(&mutated));
        if matches!(mutation, Mutation::None) {
            prop_assert!(ours, "a valid token is accepted");
        }
    }
}

#[test]
fn non_canonical_base64_is_refused_by_both() {
    // The last character of a signature carries unused low bits: setting them
    // decodes to the same bytes in a lenient decoder. Both verifiers refuse it.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for setup in setups_once() {
        let token = setup.valid_token("johndoe", &[], 1, 600);
        let mut bytes = token.into_bytes();
        let last = bytes.len() - 1;
        let sextet = ALPHABET.iter().position(|&c| c == bytes[last]).unwrap();
        let unused = if setup.alg == Algorithm::HS256 {
            0b11
        } else {
            0b1111
        };
        bytes[last] = ALPHABET[sextet ^ (unused & 1)];
        assert!(!setup.ours(&bytes));
        assert!(!setup.reference(&bytes));
    }
}

fn setups_once() -> &'static [Setup; 2] {
    static SETUPS: std::sync::OnceLock<[Setup; 2]> = std::sync::OnceLock::new();
    SETUPS.get_or_init(setups)
}

// ---------------------------------------------------------------------------
// Refresh families (issue 17 rows 4 and 7)

/// The tutorial app with JWTs revoked in `denylist`, and refresh tokens in
/// memory with no retry grace.
async fn serve_with_refresh(denylist: MemoryJtiDenylist) -> Server {
    let tokens = JwtTokenStore::signing_with(hs256("k1", SECRET))
        .issuer(ISSUER)
        .with_denylist(denylist)
        .build()
        .unwrap();
    let layer = common::tutorial::layer_builder()
        .token_store(tokens)
        .refresh_tokens(MemoryRefreshTokenStore::with_retry_grace(Duration::ZERO))
        .build();
    Server::start_with(layer).await
}

#[tokio::test]
async fn a_token_of_a_family_names_it_in_fam_and_a_forged_fam_is_refused() {
    let store = store(hs256("k1", SECRET));
    let family = FamilyId::from_bytes([9; 16]);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    let grant = Grant::new("johndoe", Scopes::empty(), in_an_hour).with_family(family);
    let token = store.issue(grant).await.unwrap().access_token;
    assert_eq!(claims_of(token.as_str())["fam"], b64([9; 16]));
    let resolved = store.resolve(token.as_str().into()).await.unwrap();
    assert_eq!(resolved.unwrap().family, Some(family));
    let alone = Grant::new("johndoe", Scopes::empty(), in_an_hour);
    let token = store.issue(alone).await.unwrap().access_token;
    assert!(claims_of(token.as_str()).get("fam").is_none());

    let forge = Forge::hs256().await;
    for fam in [json!("not a family"), json!(7), json!(b64([1; 15]))] {
        let forged = forge.resigned(|claims| {
            claims.insert("fam".into(), fam.clone());
        });
        forge.assert_refused(&forged).await;
    }
    let named = forge.resigned(|claims| {
        claims.insert("fam".into(), json!(b64([1; 16])));
    });
    forge.assert_accepted(&named).await;
}

#[tokio::test]
async fn ending_a_family_ends_its_jwts_with_the_memory_denylist() {
    let server = serve_with_refresh(MemoryJtiDenylist::new()).await;
    common::ending_a_family_ends_its_access_tokens(&server, &server).await;
}

/// One account refreshing without end, then revoking every token it minted,
/// fills no bounded denylist: the tokens of a login share one entry, so a
/// denylist of 2 takes two logins' logouts, and only a third login's is refused
/// (503, rather than forget an entry).
#[tokio::test]
async fn one_login_fills_one_denylist_entry_however_many_tokens_it_minted() {
    let denylist = MemoryJtiDenylist::with_capacity(2);
    let server = serve_with_refresh(denylist.clone()).await;
    let (access, mut refresh_token) = server.login_with_refresh().await;
    let mut minted = vec![access];
    for _ in 0..20 {
        let (access, next) = server.refresh(&refresh_token).await.tokens();
        minted.push(access);
        refresh_token = next;
    }
    for token in &minted {
        let reply = server.revoke(&format!("token={token}")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        server.me(token).await.assert_invalid_token();
    }
    assert_eq!(denylist.len(), 1, "one entry for the login");
    let (second_login, _) = server.login_with_refresh().await;
    assert_eq!(
        server.revoke(&format!("token={second_login}")).await.status,
        200
    );
    assert_eq!(denylist.len(), 2);
    let (third_login, _) = server.login_with_refresh().await;
    let reply = server.revoke(&format!("token={third_login}")).await;
    reply.assert_error(
        503,
        "Service temporarily unavailable, try again later",
        Some("temporarily_unavailable"),
    );
}

/// RFC 7638 §3.1's example thumbprint: a client key a DPoP token is bound to.
const THUMBPRINT: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

fn bound_grant() -> Grant {
    let key = JwkThumbprint::from_encoded(THUMBPRINT).unwrap();
    Grant::new(
        "johndoe",
        Scopes::empty(),
        SystemTime::now() + Duration::from_secs(600),
    )
    .with_key_binding(key)
}

#[tokio::test]
async fn a_bound_token_carries_cnf_jkt_and_an_unbound_one_no_cnf() {
    let store = store(hs256("k1", SECRET));
    let key = JwkThumbprint::from_encoded(THUMBPRINT).unwrap();
    for grant in [
        bound_grant(),
        bound_grant().with_family(FamilyId::random().unwrap()),
    ] {
        let token = store.issue(grant).await.unwrap().access_token;
        let claims = claims_of(token.as_str());
        assert_eq!(claims["cnf"], json!({ "jkt": THUMBPRINT }), "RFC 9449 §6.1");
        let resolved = store.resolve(token.as_str().into()).await.unwrap().unwrap();
        assert_eq!(resolved.key_binding, Some(key));
    }
    let unbound = Grant::new(
        "johndoe",
        Scopes::empty(),
        SystemTime::now() + Duration::from_secs(600),
    );
    let token = store.issue(unbound).await.unwrap().access_token;
    assert!(claims_of(token.as_str()).get("cnf").is_none());
    let resolved = store.resolve(token.as_str().into()).await.unwrap().unwrap();
    assert_eq!(resolved.key_binding, None);
}

/// Signed with the store's own key, so that each refusal is for the `cnf`
/// alone: a `cnf` this store would not write makes the token invalid, never a
/// bearer token (the thumbprint's last character: `s` is canonical, `t` the same
/// bytes with a trailing bit set).
#[tokio::test]
async fn a_malformed_cnf_makes_the_token_invalid_not_unbound() {
    let store = store(hs256("k1", SECRET));
    let signer = Signer::Hs256(SECRET.to_vec());
    let token = store.issue(bound_grant()).await.unwrap().access_token;
    let claims = claims_of(token.as_str());
    let resigned = |cnf: Option<Value>| {
        let mut claims = claims.clone();
        match cnf {
            Some(cnf) => claims["cnf"] = cnf,
            None => {
                claims.as_object_mut().unwrap().remove("cnf");
            }
        }
        signer.sign(
            &header("HS256", "k1"),
            &serde_json::to_vec(&claims).unwrap(),
        )
    };
    let resolve = |token: String| {
        store
            .resolve(BearerToken::new(token.as_bytes()))
            .now_or_never()
            .expect("ready")
            .unwrap()
    };
    // The controls: resigned as issued, bound; without `cnf`, unbound.
    let control = resolve(resigned(Some(json!({ "jkt": THUMBPRINT })))).unwrap();
    assert!(control.key_binding.is_some());
    assert_eq!(resolve(resigned(None)).unwrap().key_binding, None);
    let non_canonical = format!("{}t", &THUMBPRINT[..42]);
    let standard_alphabet = THUMBPRINT.replace('-', "+").replace('_', "/");
    for cnf in [
        Value::Null,
        json!(THUMBPRINT),
        json!([{ "jkt": THUMBPRINT }]),
        json!({}),
        json!({ "jkt": null }),
        json!({ "jkt": 7 }),
        json!({ "jkt": "" }),
        json!({ "jkt": &THUMBPRINT[..42] }),
        json!({ "jkt": format!("{THUMBPRINT}=") }),
        json!({ "jkt": format!("{THUMBPRINT}A") }),
        json!({ "jkt": non_canonical }),
        json!({ "jkt": standard_alphabet }),
        json!({ "jkt": THUMBPRINT, "x5t#S256": THUMBPRINT }),
        json!({ "x5t#S256": THUMBPRINT }),
        json!({ "jwk": { "kty": "OKP" } }),
    ] {
        assert_eq!(resolve(resigned(Some(cnf.clone()))), None, "cnf {cnf}");
    }
    // A second `jkt`, or a second `cnf`: JSON that serde_json would not write.
    let payload = serde_json::to_string(&claims).unwrap();
    let body = payload.trim_end_matches('}');
    for duplicated in [
        format!(r#"{body},"cnf":{{"jkt":"{THUMBPRINT}"}}}}"#),
        payload.replace(
            &format!(r#""jkt":"{THUMBPRINT}""#),
            &format!(r#""jkt":"{THUMBPRINT}","jkt":"{THUMBPRINT}""#),
        ),
    ] {
        let token = signer.sign(&header("HS256", "k1"), duplicated.as_bytes());
        assert_eq!(resolve(token), None, "{duplicated}");
    }
}
