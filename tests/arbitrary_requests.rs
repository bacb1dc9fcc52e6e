//! Property tests over a real socket: whatever form, `Authorization` header,
//! method or path a client sends, the answer is a well-formed JSON 4xx (or a
//! token), never a 5xx, and the server keeps serving. Bounded cases, so they run
//! in every `cargo test`; `fuzz/` runs the same surfaces unbounded.

mod common;

use std::sync::OnceLock;

use bytes::Bytes;
use common::{tutorial, Reply, Server};
use http::{HeaderValue, Method, Request};
use http_body_util::Full;
use proptest::prelude::*;
use tower_oauth2_password::Argon2Hasher;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// One server for all cases: state left by earlier cases (tokens, counts) is
/// part of what later ones meet. Cheap hashing, and no login policy, so that
/// forms reach the password check rather than a 429.
fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        runtime().block_on(async {
            let layer = tutorial::layer_builder()
                .password_hasher(Argon2Hasher::with_params(1024, 1, 1).unwrap())
                .no_login_policy()
                .build();
            Server::start_with(layer).await
        })
    })
}

/// A rejection by the layer: a 4xx with a JSON body holding a string `detail`.
fn assert_json_4xx(reply: &Reply) -> Result<(), TestCaseError> {
    let status = reply.status.as_u16();
    prop_assert!(
        (400..500).contains(&status),
        "status {status}: {:?}",
        reply.body
    );
    prop_assert_eq!(reply.header("cache-control"), Some("no-store"));
    prop_assert_eq!(reply.header("content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&reply.body)
        .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {:?}", reply.body)))?;
    prop_assert!(json["detail"].is_string(), "{json}");
    Ok(())
}

/// Form-ish text: the field names the endpoint reads, `=`, `&`, `%` escapes
/// (good and broken), `+`, and arbitrary bytes.
fn form() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"username=".to_vec()),
        Just(b"password=".to_vec()),
        Just(b"scope=".to_vec()),
        Just(b"grant_type=password".to_vec()),
        Just(b"grant_type=".to_vec()),
        Just(b"client_id=".to_vec()),
        Just(b"johndoe".to_vec()),
        Just(b"secret".to_vec()),
        Just(b"&".to_vec()),
        Just(b"=".to_vec()),
        Just(b"+".to_vec()),
        Just(b"%".to_vec()),
        Just(b"%FF".to_vec()),
        Just(b"%C3%A9".to_vec()),
        Just(b"%2".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..16),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

fn content_type() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("application/x-www-form-urlencoded".to_owned()),
        Just("application/x-www-form-urlencoded; charset=utf-8".to_owned()),
        Just("multipart/form-data; boundary=XyZ".to_owned()),
        Just("multipart/form-data".to_owned()),
        Just("application/json".to_owned()),
        "[ -~]{0,40}",
    ]
}

/// Bytes a header value may hold: visible ASCII, space, tab, obs-text.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![0x20u8..0x7F, Just(b'\t'), 0x80u8..=0xFF,];
    let value = prop_oneof![
        proptest::collection::vec(byte, 0..80),
        "(Bearer|bearer|BEARER|Basic|Bearer ) {0,3}[A-Za-z0-9._~+/=-]{0,60}"
            .prop_map(String::into_bytes),
    ];
    // No leading or trailing whitespace: not a valid field value.
    value.prop_map(|value| {
        let text = value.as_slice();
        let start = text
            .iter()
            .position(|b| !b" \t".contains(b))
            .unwrap_or(text.len());
        let end = text
            .iter()
            .rposition(|b| !b" \t".contains(b))
            .map_or(start, |i| i + 1);
        text[start..end.max(start)].to_vec()
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_token_request_gets_a_json_4xx_or_a_token(
        body in form(),
        content_type in content_type(),
        method in prop_oneof![Just(Method::POST), Just(Method::GET), Just(Method::PUT)],
    ) {
        let server = server();
        let reply = runtime().block_on(async {
            let request = Request::builder()
                .method(method)
                .uri(server.url("/token"))
                .header("content-type", content_type)
                .body(Full::<Bytes>::from(body))
                .unwrap();
            server.send(request).await
        });
        // A form that happens to be johndoe's login gets its token.
        if reply.status != 200 {
            assert_json_4xx(&reply)?;
        }
    }

    #[test]
    fn any_authorization_header_and_path_get_a_json_4xx(
        values in proptest::collection::vec(header_value(), 0..3),
        path in "/[a-z/.;]{0,20}(%2[Ff]|%61|%00)?",
    ) {
        let server = server();
        let reply = runtime().block_on(async {
            let mut request = Request::get(server.url(&path)).body(Full::<Bytes>::default()).unwrap();
            for value in &values {
                request
                    .headers_mut()
                    .append("authorization", HeaderValue::from_bytes(value).unwrap());
            }
            server.send(request).await
        });
        // No token here is valid: every request is turned away, by the layer.
        assert_json_4xx(&reply)?;
    }
}
