//! jwt-authorizer, the crate resource servers put in front of their routes,
//! configured with `from_jwks_url` against a running layer: it reads our key set
//! and accepts exactly the tokens we would.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use jwt_authorizer::{Authorizer, AuthorizerBuilder, RegisteredClaims, Validation};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_oauth2_password::endpoint::Jwks;
use tower_oauth2_password::password::HashedPassword;
use tower_oauth2_password::scope::Scopes;
use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};
use tower_oauth2_password::token::{Grant, TokenStore};
use tower_oauth2_password::{MemoryUserStore, OAuth2PasswordLayer, StoredUser};

const ISSUER: &str = "https://auth.example.com";
/// Argon2id of `secret` (the tutorial's johndoe).
const SECRET_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$QlGICJv0VkLd2pqAa9i9+Q$8jVAeYmJi0SJhtpkUv7OIxBaTEMmu/PL5yjLUR5dcQ8";

fn store(kid: &str, seed: u8) -> JwtTokenStore {
    JwtTokenStore::signing_with(JwtKey::ed25519(kid, &[seed; 32]).expect("key"))
        .issuer(ISSUER)
        .build()
        .expect("store")
}

/// The layer (with `tokens`, publishing their key set) on a real socket.
async fn serve(tokens: JwtTokenStore) -> SocketAddr {
    let users = MemoryUserStore::new();
    let hash = HashedPassword::parse(SECRET_HASH).expect("hash");
    users.insert("johndoe", StoredUser::new("johndoe".to_owned(), hash));
    let layer = OAuth2PasswordLayer::builder(users)
        .issuer(ISSUER)
        .jwks(Jwks::of(&tokens))
        .token_store(tokens)
        .build();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"inner"))))
        });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(app.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// A resource server's check, as jwt-authorizer's docs set it up, plus our
/// issuer and audience (jsonwebtoken refuses a token with an `aud` it was not
/// told to expect).
async fn authorizer(addr: SocketAddr) -> Authorizer<RegisteredClaims> {
    let url = format!("http://{addr}/.well-known/jwks.json");
    AuthorizerBuilder::<RegisteredClaims>::from_jwks_url(&url)
        .validation(Validation::new().iss(&[ISSUER]).aud(&[ISSUER]))
        .build()
        .await
        .expect("authorizer")
}

async fn login(addr: SocketAddr) -> String {
    let reply = reqwest::Client::new()
        .post(format!("http://{addr}/token"))
        .form(&[("username", "johndoe"), ("password", "secret")])
        .send()
        .await
        .expect("token request");
    assert_eq!(reply.status(), 200);
    let json: serde_json::Value = reply.json().await.expect("JSON");
    json["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned()
}

#[tokio::test]
async fn jwt_authorizer_accepts_a_token_we_issued() {
    let addr = serve(store("2026-12", 7)).await;
    let token = login(addr).await;
    let checked = authorizer(addr).await.check_auth(&token).await;
    let claims = checked.expect("accepted").claims;
    assert_eq!(claims.sub.as_deref(), Some("johndoe"));
    assert_eq!(claims.iss.as_deref(), Some(ISSUER));
}

#[tokio::test]
async fn jwt_authorizer_refuses_an_expired_token() {
    let tokens = store("2026-12", 7);
    // Past jwt-authorizer's default leeway of 60 s.
    let grant = Grant::new(
        "johndoe",
        Scopes::empty(),
        SystemTime::now() - Duration::from_secs(300),
    );
    let expired = tokens.issue(grant).await.expect("issued").access_token;
    let addr = serve(tokens).await;
    let authorizer = authorizer(addr).await;
    let error = authorizer
        .check_auth(expired.as_str())
        .await
        .expect_err("an expired token is refused");
    assert!(format!("{error:?}").contains("Expired"), "{error:?}");
    // The same check passes a fresh token: the refusal is the expiry.
    assert!(authorizer.check_auth(&login(addr).await).await.is_ok());
}

#[tokio::test]
async fn jwt_authorizer_refuses_a_token_signed_by_a_key_we_never_published() {
    let addr = serve(store("2026-12", 7)).await;
    let authorizer = authorizer(addr).await;
    let soon = SystemTime::now() + Duration::from_secs(600);
    // Our kid with another key: the signature fails; another kid: no such key.
    for (forger, why) in [
        (store("2026-12", 8), "InvalidSignature"),
        (store("elsewhere", 8), "InvalidKid"),
    ] {
        let grant = Grant::new("johndoe", Scopes::empty(), soon);
        let forged = forger.issue(grant).await.expect("issued").access_token;
        let error = authorizer
            .check_auth(forged.as_str())
            .await
            .expect_err("a forged token is refused");
        assert!(format!("{error:?}").contains(why), "{why}: {error:?}");
    }
}

#[tokio::test]
async fn an_hs256_store_publishes_no_key_and_jwt_authorizer_accepts_nothing() {
    let tokens = JwtTokenStore::signing_with(JwtKey::hs256("1", &[9; 32]).expect("key"))
        .issuer(ISSUER)
        .build()
        .expect("store");
    let addr = serve(tokens).await;
    let jwks: serde_json::Value = reqwest::get(format!("http://{addr}/.well-known/jwks.json"))
        .await
        .expect("JWKS")
        .json()
        .await
        .expect("JSON");
    assert_eq!(jwks, serde_json::json!({"keys": []}));
    let token = login(addr).await;
    let error = authorizer(addr)
        .await
        .check_auth(&token)
        .await
        .expect_err("no key");
    assert!(format!("{error:?}").contains("No valid keys"), "{error:?}");
}
