//! The DPoP proofs' JSON parser against serde_json: on any bytes, it accepts
//! exactly what `serde_json::from_str` parses to one object without a duplicate
//! member at any depth, fails with the same error kind, and reads the same
//! members and values (see `src/dpop/json/differential.rs`). The parser is a
//! private module: this target includes its source, and the reference's.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../src/dpop/json.rs"]
#[allow(dead_code)]
mod json;

#[path = "../../src/dpop/json/differential.rs"]
mod differential;

use json::{Document, Json, JsonError, Number, Object};

fuzz_target!(|bytes: &[u8]| {
    differential::check(bytes);
});
