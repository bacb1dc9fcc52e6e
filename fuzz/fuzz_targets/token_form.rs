//! The token endpoint's form parsers (urlencoded and multipart): the first byte
//! picks the content type, the rest is the body.
#![no_main]

mod common;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 4] = [
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=utf-8",
    "multipart/form-data; boundary=B",
    "multipart/form-data; boundary=\"a b\"",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let request = Request::post("/token")
        .header("content-type", CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()])
        .body(Full::new(Bytes::copy_from_slice(body)))
        .expect("request");
    common::check(request);
});
