//! The DPoP proof verifier (feature `dpop`) and the `htu` normaliser: arbitrary
//! proofs (raw bytes; three arbitrary segments base64url-encoded, so the JSON
//! parser is reached; or a header and claims built from members that are either
//! arbitrary or one of the values a real proof has, so the key and claim checks
//! are reached), request method and URI, token, nonce and clock. Nothing may
//! panic; a normalised URI normalises to itself; an accepted proof keeps the
//! promises of `VerifiedProof`; a shared `KeyCache` changes no answer.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use tower_oauth2_password::dpop::{
    verify_proof, KeyCache, NormalizedUri, ProofCheck, MAX_JTI_LEN,
};

/// Values real proofs hold, which random bytes would seldom hit.
const KNOWN: [&str; 16] = [
    "dpop+jwt",
    "ES256",
    "EdDSA",
    "EC",
    "P-256",
    "OKP",
    "Ed25519",
    // RFC 9449's example P-256 key and RFC 8037's Ed25519 key.
    "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
    "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
    "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
    "POST",
    "GET",
    "https://server.example.com/token",
    "HTTPS://Server.Example.com:443/./token?q#f",
    "-BwC3ESc6acc2lTc",
    "application/dpop+jwt",
];

/// A JSON member's value: absent, a known string, any string, or a number.
#[derive(Arbitrary, Debug)]
enum Member<'a> {
    Absent,
    Known(u8),
    Text(&'a str),
    Integer(i64),
    Float(f64),
}

impl Member<'_> {
    fn insert(&self, object: &mut serde_json::Map<String, Value>, name: &str) {
        let value = match *self {
            Member::Absent => return,
            Member::Known(i) => json!(KNOWN[usize::from(i) % KNOWN.len()]),
            Member::Text(text) => json!(text),
            Member::Integer(n) => json!(n),
            Member::Float(f) => json!(f),
        };
        object.insert(name.to_owned(), value);
    }
}

#[derive(Arbitrary, Debug)]
enum Proof<'a> {
    Raw(&'a [u8]),
    Segments {
        header: &'a [u8],
        claims: &'a [u8],
        signature: &'a [u8],
    },
    /// `[typ, alg, kty, crv, x, y, jti, htm, htu, iat, ath, nonce, d]`, then the
    /// signature.
    Members([Member<'a>; 13], &'a [u8]),
}

impl Proof<'_> {
    fn to_bytes(&self) -> Vec<u8> {
        let [header, claims, signature] = match self {
            Proof::Raw(bytes) => return bytes.to_vec(),
            Proof::Segments {
                header,
                claims,
                signature,
            } => [header.to_vec(), claims.to_vec(), signature.to_vec()],
            Proof::Members(members, signature) => {
                let [typ, alg, kty, crv, x, y, jti, htm, htu, iat, ath, nonce, d] = members;
                let mut jwk = serde_json::Map::new();
                for (member, name) in [(kty, "kty"), (crv, "crv"), (x, "x"), (y, "y"), (d, "d")] {
                    member.insert(&mut jwk, name);
                }
                let mut header = serde_json::Map::new();
                typ.insert(&mut header, "typ");
                alg.insert(&mut header, "alg");
                header.insert("jwk".to_owned(), Value::Object(jwk));
                let mut claims = serde_json::Map::new();
                for (member, name) in [
                    (jti, "jti"),
                    (htm, "htm"),
                    (htu, "htu"),
                    (iat, "iat"),
                    (ath, "ath"),
                    (nonce, "nonce"),
                ] {
                    member.insert(&mut claims, name);
                }
                [
                    Value::Object(header).to_string().into_bytes(),
                    Value::Object(claims).to_string().into_bytes(),
                    signature.to_vec(),
                ]
            }
        };
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims),
            URL_SAFE_NO_PAD.encode(signature)
        )
        .into_bytes()
    }
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

    let proof = input.proof.to_bytes();
    // A request that cannot be one still exercises the proof's checks.
    let method = http::Method::from_bytes(input.method.as_bytes()).unwrap_or(http::Method::POST);
    let uri = NormalizedUri::parse(input.uri)
        .unwrap_or_else(|_| NormalizedUri::parse(KNOWN[12]).expect("a valid URI"));
    let mut check = ProofCheck::new(&method, &uri, input.now)
        .max_age(Duration::from_secs(input.max_age.into()))
        .future_leeway(Duration::from_secs(input.leeway.into()));
    if let Some(token) = input.token {
        check = check.access_token(token);
    }
    if let Some(nonce) = input.nonce {
        check = check.nonce(nonce);
    }
    // A small cache shared by every run, as the layer shares one by all requests.
    static KEYS: OnceLock<KeyCache> = OnceLock::new();
    let result = verify_proof(&proof, &check);
    let cached = check.clone().key_cache(KEYS.get_or_init(|| KeyCache::new(4)));
    assert_eq!(verify_proof(&proof, &cached), result);
    match result {
        Ok(verified) => {
            assert!(!verified.jti().is_empty() && verified.jti().len() <= MAX_JTI_LEN);
            assert_eq!(verified.thumbprint().to_string().len(), 43);
            assert_eq!(verified.thumbprint(), &verified.key().thumbprint());
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
