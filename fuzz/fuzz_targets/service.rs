//! The whole service on arbitrary requests: method, path and query, version,
//! headers and body.
#![no_main]

mod common;

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, Version};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    method: Vec<u8>,
    /// Often the token URL or a guarded or public path, then anything.
    path: (u8, String),
    http2: bool,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let Ok(method) = Method::from_bytes(&input.method) else {
        return;
    };
    let prefix = ["/token", "/users/me", "/static/", ""][usize::from(input.path.0) % 4];
    let mut request = match Request::builder()
        .method(method)
        .uri(format!("{prefix}{}", input.path.1))
        .version(if input.http2 { Version::HTTP_2 } else { Version::HTTP_11 })
        .body(Full::new(Bytes::from(input.body)))
    {
        Ok(request) => request,
        Err(_) => return,
    };
    for (name, value) in input.headers {
        let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::from_bytes(&value)) else {
            return;
        };
        request.headers_mut().append(name, value);
    }
    common::check(request);
});
