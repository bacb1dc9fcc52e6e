//! The documents the layer publishes: authorization server metadata (RFC 8414)
//! and, with feature `jwt`, the JSON Web Key Set (RFC 7517 / RFC 8037), over a
//! real socket.

mod common;

use axum::routing::get;
use axum::Router;
use common::{tutorial, Reply, Server};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;
use tokio::net::TcpListener;
use tower_oauth2_password::token::memory::MemoryRefreshTokenStore;
use tower_oauth2_password::OAuth2PasswordLayer;

const ISSUER: &str = "https://auth.example.com";
const METADATA: &str = "/.well-known/oauth-authorization-server";

/// Asserts what RFC 8414 §2 requires of any metadata, and what every client
/// relies on: 200 JSON, cacheable, `issuer` as configured, `response_types_supported`
/// present, every `*_endpoint` and `jwks_uri` an absolute URL under the issuer.
#[track_caller]
fn assert_metadata(reply: &Reply, issuer: &str) -> Value {
    assert_eq!(reply.status, StatusCode::OK, "body: {:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=3600"));
    let json = reply.json();
    assert_eq!(json["issuer"], issuer);
    assert!(json["response_types_supported"].is_array(), "{json}");
    let object = json.as_object().expect("an object");
    for (name, value) in object {
        if name.ends_with("_endpoint") || name == "jwks_uri" {
            let url = value.as_str().expect("a URL string");
            let below = url.strip_prefix(issuer.trim_end_matches('/'));
            assert!(
                below.is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
                "{name} = {url} is not under {issuer}"
            );
        }
    }
    // RFC 8414 §2: no query or fragment in the issuer.
    assert!(!issuer.contains(['?', '#']));
    json
}

#[tokio::test]
async fn metadata_names_the_issuer_and_every_endpoint() {
    let layer = tutorial::layer_builder()
        .issuer(ISSUER)
        .refresh_tokens(MemoryRefreshTokenStore::new())
        .scope("me", "Read your own profile")
        .scope("items", "Read items")
        .build();
    assert_eq!(layer.metadata_url(), Some(METADATA));
    assert_eq!(layer.jwks_url(), None);
    let server = Server::start_with(layer).await;
    // No token needed: the document is public.
    let reply = server.get(METADATA, &[]).await;
    let json = assert_metadata(&reply, ISSUER);
    assert_eq!(
        json,
        serde_json::json!({
            "issuer": ISSUER,
            "token_endpoint": "https://auth.example.com/token",
            "response_types_supported": [],
            "grant_types_supported": ["password", "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"],
            "scopes_supported": ["me", "items"],
            "revocation_endpoint": "https://auth.example.com/revoke",
            "revocation_endpoint_auth_methods_supported": ["none"],
        })
    );
    assert!(json.get("jwks_uri").is_none(), "no key set is served");
    // HEAD: the headers without the body.
    let request = Request::head(server.url(METADATA))
        .body(Full::default())
        .unwrap();
    let head = server.send(request).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("cache-control"), Some("public, max-age=3600"));
    assert!(head.body.is_empty());
    server.stop().await;
}

#[tokio::test]
async fn metadata_is_read_only() {
    let server = Server::start_with(tutorial::layer_builder().issuer(ISSUER).build()).await;
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let request = Request::builder()
            .method(method.clone())
            .uri(server.url(METADATA))
            .body(Full::default())
            .unwrap();
        let reply = server.send(request).await;
        reply.assert_error(405, "Method Not Allowed", None);
        assert_eq!(reply.header("allow"), Some("GET, HEAD"), "{method}");
        assert_eq!(reply.header("cache-control"), Some("no-store"));
    }
    server.stop().await;
}

#[tokio::test]
async fn without_an_issuer_no_metadata_is_served() {
    let layer = tutorial::layer_builder().build();
    assert_eq!(layer.metadata_url(), None);
    let server = Server::start_with(layer).await;
    // The URL is the inner service's, guarded like any other path.
    let reply = server.get(METADATA, &[]).await;
    reply.assert_error(401, "Not authenticated", None);
    // And so is it with an issuer but the URL turned off.
    let layer = tutorial::layer_builder()
        .issuer(ISSUER)
        .without_metadata_url()
        .build();
    assert_eq!(layer.metadata_url(), None);
    let server = Server::start_with(layer).await;
    server
        .get(METADATA, &[])
        .await
        .assert_error(401, "Not authenticated", None);
}

#[tokio::test]
async fn custom_urls_and_an_issuer_with_a_path_are_honoured() {
    let issuer = "http://127.0.0.1:8000/auth";
    let layer = tutorial::layer_builder()
        .issuer(issuer)
        .token_url("/auth/oauth/token")
        .revocation_url("auth/oauth/revoke")
        .metadata_url("/auth/.well-known/oauth-authorization-server")
        .build();
    let server = Server::start_with(layer).await;
    let reply = server
        .get("/auth/.well-known/oauth-authorization-server", &[])
        .await;
    let json = assert_metadata(&reply, issuer);
    assert_eq!(
        json["token_endpoint"],
        "http://127.0.0.1:8000/auth/oauth/token"
    );
    assert_eq!(
        json["revocation_endpoint"],
        "http://127.0.0.1:8000/auth/oauth/revoke"
    );
    assert_eq!(
        json["grant_types_supported"],
        serde_json::json!(["password"])
    );
    assert_eq!(json["scopes_supported"], serde_json::json!([]));
    // The default URL is no longer the layer's.
    server
        .get(METADATA, &[])
        .await
        .assert_error(401, "Not authenticated", None);
    server.stop().await;
}

#[tokio::test]
async fn metadata_inside_an_axum_nest_has_the_prefix() {
    let layer = OAuth2PasswordLayer::builder(tutorial::users())
        .issuer("https://example.com/api")
        .token_url("/api/token")
        .revocation_url("/api/revoke")
        .metadata_url(format!("/api{METADATA}"))
        .build();
    // The endpoint mounted as routes inside the nest: it reads the client's path.
    let api = Router::new()
        .route("/users/me", get(|| async { "me" }))
        .route_layer(layer.guard())
        .route_service("/token", layer.token_endpoint())
        .route_service("/revoke", layer.token_endpoint())
        .route_service(METADATA, layer.token_endpoint());
    let app = Router::new().nest("/api", api);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let server = Server::client_for(addr);
    let reply = server.get(&format!("/api{METADATA}"), &[]).await;
    let json = assert_metadata(&reply, "https://example.com/api");
    assert_eq!(json["token_endpoint"], "https://example.com/api/token");
    assert_eq!(
        json["revocation_endpoint"],
        "https://example.com/api/revoke"
    );
    // The URL the metadata names is the one that answers.
    let reply = server
        .post(
            "/api/token",
            "application/x-www-form-urlencoded",
            b"username=johndoe&password=secret".to_vec(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[test]
#[should_panic(expected = "is not an https:// (or http://) URL")]
fn an_issuer_that_is_no_url_is_refused_when_configured() {
    let _ = tutorial::layer_builder().issuer("urn:tower-oauth2-password:tutorial");
}

#[cfg(feature = "jwt")]
mod jwks {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use tower_oauth2_password::endpoint::Jwks;
    use tower_oauth2_password::token::jwt::{JwtKey, JwtTokenStore};

    const JWKS: &str = "/.well-known/jwks.json";

    fn x(seed: u8) -> String {
        let key = JwtKey::ed25519("x", &[seed; 32]).unwrap();
        URL_SAFE_NO_PAD.encode(key.public_key().unwrap())
    }

    #[tokio::test]
    async fn every_public_key_of_the_rotation_set_and_no_secret() {
        let old = JwtKey::ed25519("2026-11", &[2; 32]).unwrap();
        let tokens = JwtTokenStore::signing_with(JwtKey::ed25519("2026-12", &[1; 32]).unwrap())
            .also_accepting(JwtKey::ed25519_public("2026-11", &old.public_key().unwrap()).unwrap())
            .also_accepting(JwtKey::hs256("shared", &[3; 32]).unwrap())
            .issuer(ISSUER)
            .build()
            .unwrap();
        let layer = tutorial::layer_builder()
            .issuer(ISSUER)
            .jwks(Jwks::of(&tokens))
            .token_store(tokens)
            .build();
        assert_eq!(layer.jwks_url(), Some(JWKS));
        let server = Server::start_with(layer).await;

        let reply = server.get(JWKS, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
        let key = |kid: &str, x: String| {
            serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"
            })
        };
        assert_eq!(
            reply.json(),
            serde_json::json!({"keys": [key("2026-12", x(1)), key("2026-11", x(2))]})
        );

        // The metadata points at it.
        let metadata = assert_metadata(&server.get(METADATA, &[]).await, ISSUER);
        assert_eq!(
            metadata["jwks_uri"],
            "https://auth.example.com/.well-known/jwks.json"
        );

        // A token's `kid` is in the set, and its key verifies it (jsonwebtoken
        // reading our JWK, as resource servers do).
        let token = server.login("johndoe", "secret").await;
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some("2026-12"));
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&reply.body).unwrap();
        let jwk = set.find("2026-12").expect("the token's kid is published");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[ISSUER]);
        let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "johndoe");

        // Read-only, like the metadata.
        let reply = server.post(JWKS, "application/json", b"{}".to_vec()).await;
        reply.assert_error(405, "Method Not Allowed", None);
        server.stop().await;
    }

    #[tokio::test]
    async fn an_hs256_store_publishes_an_empty_set() {
        let tokens = JwtTokenStore::signing_with(JwtKey::hs256("1", &[3; 32]).unwrap())
            .issuer(ISSUER)
            .build()
            .unwrap();
        let jwks = Jwks::of(&tokens);
        assert!(jwks.is_empty());
        let server = Server::start_with(
            tutorial::layer_builder()
                .jwks(jwks)
                .jwks_url("/keys")
                .token_store(tokens)
                .build(),
        )
        .await;
        let reply = server.get("/keys", &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(&reply.body[..], br#"{"keys":[]}"#);
        assert_eq!(reply.header("cache-control"), Some("public, max-age=300"));
        // No issuer: the key set is served, the metadata is not.
        server
            .get(METADATA, &[])
            .await
            .assert_error(401, "Not authenticated", None);
        server.stop().await;
    }
}
