//! The `Authorization` parser: each line of the input is one header value.
#![no_main]

mod common;

use http::{HeaderValue, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut request = Request::get("/users/me").body(Default::default()).expect("request");
    for line in data.split(|&b| b == b'\n') {
        // Values HTTP cannot carry never reach the layer.
        let Ok(value) = HeaderValue::from_bytes(line) else {
            return;
        };
        request.headers_mut().append("authorization", value);
    }
    common::check(request);
});
