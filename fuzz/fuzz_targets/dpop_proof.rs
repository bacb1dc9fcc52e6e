//! The DPoP proof verifier (feature `dpop`) and the `htu` normaliser: arbitrary
//! proofs (raw bytes, or three arbitrary segments base64url-encoded so that the
//! JSON, key and claim checks are reached), request method and URI, token, nonce
//! and clock. Nothing may panic; a normalised URI normalises to itself; an
//! accepted proof keeps the promises of `VerifiedProof`.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use tower_oauth2_password::dpop::{verify_proof, NormalizedUri, ProofCheck, MAX_JTI_LEN};

#[derive(Arbitrary, Debug)]
enum Proof<'a> {
    Raw(&'a [u8]),
    Segments {
        header: &'a [u8],
        claims: &'a [u8],
        signature: &'a [u8],
    },
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    proof: Proof<'a>,
    method: &'a str,
    uri: &'a str,
    htu: &'a str,
    token: Option<&'a str>,
    nonce: Option<&'a str>,
    now: u64,
    max_age: u32,
    leeway: u32,
}

fuzz_target!(|input: Input<'_>| {
    // The normaliser alone, on a second string: idempotent when it accepts.
    if let Ok(uri) = NormalizedUri::parse(input.htu) {
        let again = NormalizedUri::parse(uri.as_str()).expect("a normalised URI parses");
        assert_eq!(again, uri);
    }

    let proof = match input.proof {
        Proof::Raw(bytes) => bytes.to_vec(),
        Proof::Segments {
            header,
            claims,
            signature,
        } => format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
        .into_bytes(),
    };
    let Ok(method) = http::Method::from_bytes(input.method.as_bytes()) else {
        return;
    };
    let Ok(uri) = NormalizedUri::parse(input.uri) else {
        return;
    };
    let mut check = ProofCheck::new(&method, &uri, input.now)
        .max_age(Duration::from_secs(input.max_age.into()))
        .future_leeway(Duration::from_secs(input.leeway.into()));
    if let Some(token) = input.token {
        check = check.access_token(token);
    }
    if let Some(nonce) = input.nonce {
        check = check.nonce(nonce);
    }
    match verify_proof(&proof, &check) {
        Ok(verified) => {
            assert!(!verified.jti().is_empty() && verified.jti().len() <= MAX_JTI_LEN);
            assert_eq!(verified.thumbprint().as_str().len(), 43);
            assert_eq!(verified.thumbprint(), &verified.key().thumbprint());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
