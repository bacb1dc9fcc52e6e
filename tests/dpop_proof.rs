//! DPoP proofs (feature `dpop`) made by an implementation no one here wrote:
//! jsonwebtoken signs ES256 and EdDSA proofs with random keys and puts its own
//! `jwk` in the header; `dpop::verify_proof` must accept them, agree with
//! jsonwebtoken on the key's RFC 7638 thumbprint, and refuse each mutation
//! (a flipped byte, swapped claims, another method, URI, token, time) exactly
//! when a model of RFC 9449 §4.3 says it should.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::pkcs8::EncodePrivateKey as _;
use proptest::prelude::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use tower_oauth2_password::dpop::{
    verify_proof, DpopAlgorithm, NormalizedUri, ProofCheck, ProofError, DEFAULT_FUTURE_LEEWAY,
    DEFAULT_MAX_AGE, MAX_JTI_LEN,
};

const NOW: u64 = 1_765_000_000;

/// A client's key as jsonwebtoken holds it, and the `jwk` it derives for it.
struct ClientKey {
    algorithm: Algorithm,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl ClientKey {
    /// An ES256 key from 32 random bytes; `None` when they are not a scalar.
    fn es256(secret: [u8; 32]) -> Option<Self> {
        let key = p256::ecdsa::SigningKey::from_slice(&secret).ok()?;
        let der = key.to_pkcs8_der().expect("PKCS#8 export");
        Some(Self::new(
            Algorithm::ES256,
            EncodingKey::from_ec_der(der.as_bytes()),
        ))
    }

    /// An EdDSA key from a 32-byte seed: RFC 8410's PKCS#8 v1 encoding (the one
    /// jsonwebtoken derives a `jwk` from).
    fn ed25519(seed: [u8; 32]) -> Self {
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        Self::new(Algorithm::EdDSA, EncodingKey::from_ed_der(&der))
    }

    fn new(algorithm: Algorithm, encoding: EncodingKey) -> Self {
        let jwk = Jwk::from_encoding_key(&encoding, algorithm).expect("public JWK");
        ClientKey {
            algorithm,
            encoding,
            jwk,
        }
    }

    /// A proof with these claims, signed by jsonwebtoken.
    fn proof(&self, claims: &Value) -> String {
        let mut header = Header::new(self.algorithm);
        header.typ = Some("dpop+jwt".to_owned());
        header.jwk = Some(self.jwk.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("signed proof")
    }

    /// jsonwebtoken's RFC 7638 thumbprint of the key.
    fn thumbprint(&self) -> String {
        self.jwk
            .thumbprint(ThumbprintHash::SHA256)
            .expect("thumbprint")
    }
}

fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

#[test]
fn jsonwebtoken_proofs_are_accepted_with_its_thumbprint() {
    let keys = [
        ClientKey::es256([7; 32]).expect("a scalar"),
        ClientKey::ed25519([7; 32]),
    ];
    let uri = NormalizedUri::parse("https://api.example.com/users/me").unwrap();
    for key in keys {
        let claims = json!({
            "jti": "4b5f3f2e-0d5c-4a8e-9a53-2b4a3a1f5a10", "htm": "GET",
            "htu": "https://api.example.com/users/me", "iat": NOW, "ath": ath("token"),
        });
        let proof = key.proof(&claims);
        let check = ProofCheck::new(&http::Method::GET, &uri, NOW).access_token("token");
        let verified = verify_proof(proof.as_bytes(), &check).expect("accepted");
        assert_eq!(verified.thumbprint().to_string(), key.thumbprint());
        let expected = match key.algorithm {
            Algorithm::ES256 => DpopAlgorithm::Es256,
            _ => DpopAlgorithm::EdDsa,
        };
        assert_eq!(verified.algorithm(), expected);
    }
}

/// What the test does to a good proof, or to the request it is checked against.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    /// XOR a byte of the proof with a non-zero mask.
    FlipByte(prop::sample::Index, u8),
    /// The claims of another proof by the same key, with this proof's signature.
    SwapClaims,
    /// The request's method is another one.
    OtherMethod,
    /// The request's URI is another one.
    OtherUri,
    /// The request presents another access token (when it presents one).
    OtherToken,
    /// The request presents a token the proof has no `ath` for.
    TokenWithoutAth,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => Just(Mutation::None),
        4 => (any::<prop::sample::Index>(), 1..=255u8).prop_map(|(i, m)| Mutation::FlipByte(i, m)),
        1 => Just(Mutation::SwapClaims),
        1 => Just(Mutation::OtherMethod),
        1 => Just(Mutation::OtherUri),
        1 => Just(Mutation::OtherToken),
        1 => Just(Mutation::TokenWithoutAth),
    ]
}

/// An `htu` for `https://api.example.com/v1/orders` in one of the spellings that
/// normalise to it.
fn htu_spelling() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "https://api.example.com/v1/orders",
        "HTTPS://API.Example.com/v1/orders",
        "https://api.example.com:443/v1/orders",
        "https://api.example.com/v1/orders?page=2",
        "https://api.example.com/v1/orders#top",
        "https://api.example.com/v1/./orders",
        "https://api.example.com/v1/%6Frders",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// jsonwebtoken's proofs, mutated or not: ours accepts exactly the unmutated
    /// ones whose `jti` and `iat` are within bounds, and refuses the others with the
    /// reason the model expects.
    #[test]
    fn ours_refuses_exactly_when_it_should(
        es256 in any::<bool>(),
        secret in any::<[u8; 32]>(),
        jti in "[A-Za-z0-9_-]{1,140}",
        iat_offset in -90i64..=30,
        method in prop::sample::select(vec!["GET", "POST", "DELETE", "PATCH"]),
        htu in htu_spelling(),
        token in prop::option::of("[A-Za-z0-9._~-]{1,60}"),
        mutation in mutation(),
    ) {
        let key = if es256 {
            ClientKey::es256(secret)
        } else {
            Some(ClientKey::ed25519(secret))
        };
        let Some(key) = key else { return Ok(()) }; // not a P-256 scalar: ~2^-32
        let iat = NOW.checked_add_signed(iat_offset).unwrap();
        let mut claims = json!({ "jti": jti, "htm": method, "htu": htu, "iat": iat });
        if let (Some(token), false) = (&token, matches!(mutation, Mutation::TokenWithoutAth)) {
            claims["ath"] = json!(ath(token));
        }
        let mut proof = key.proof(&claims).into_bytes();

        let mut request_method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request_uri = NormalizedUri::parse("https://api.example.com/v1/orders").unwrap();
        let mut request_token = token.clone();
        match &mutation {
            Mutation::None | Mutation::TokenWithoutAth => {}
            Mutation::FlipByte(index, mask) => {
                let at = index.index(proof.len());
                proof[at] ^= mask;
            }
            Mutation::SwapClaims => {
                claims["jti"] = json!(format!("{jti}-other"));
                let other = key.proof(&claims);
                let other_claims = other.split('.').nth(1).unwrap().to_owned();
                let text = String::from_utf8(proof.clone()).unwrap();
                let parts: Vec<&str> = text.split('.').collect();
                proof = format!("{}.{other_claims}.{}", parts[0], parts[2]).into_bytes();
            }
            Mutation::OtherMethod => {
                request_method = if method == "GET" { http::Method::HEAD } else { http::Method::GET };
            }
            Mutation::OtherUri => {
                request_uri = NormalizedUri::parse("https://api.example.com/v1/orders/").unwrap();
            }
            Mutation::OtherToken => {
                if let Some(token) = &mut request_token {
                    token.push('!');
                }
            }
        }

        // The model: RFC 9449 §4.3's checks in verify_proof's order, the first
        // failure wins. (A swapped-in `jti` is longer by 6 bytes.)
        let jti_len = jti.len() + if matches!(mutation, Mutation::SwapClaims) { 6 } else { 0 };
        let expected: Result<(), ProofError> = if jti_len > MAX_JTI_LEN {
            Err(ProofError::Jti)
        } else if matches!(mutation, Mutation::OtherMethod) {
            Err(ProofError::MethodMismatch)
        } else if matches!(mutation, Mutation::OtherUri) {
            Err(ProofError::UriMismatch)
        } else if iat_offset < -i64::try_from(DEFAULT_MAX_AGE.as_secs()).unwrap() {
            Err(ProofError::Expired)
        } else if iat_offset > i64::try_from(DEFAULT_FUTURE_LEEWAY.as_secs()).unwrap() {
            Err(ProofError::IssuedInFuture)
        } else if token.is_some() && matches!(mutation, Mutation::TokenWithoutAth) {
            Err(ProofError::MissingAccessTokenHash)
        } else if token.is_some() && matches!(mutation, Mutation::OtherToken) {
            Err(ProofError::AccessTokenHashMismatch)
        } else if matches!(mutation, Mutation::SwapClaims) {
            Err(ProofError::Signature)
        } else {
            Ok(())
        };

        let mut check = ProofCheck::new(&request_method, &request_uri, NOW);
        if let Some(token) = &request_token {
            check = check.access_token(token);
        }
        let result = verify_proof(&proof, &check);
        match (&expected, &result) {
            (Ok(()), Ok(verified)) => {
                prop_assert_eq!(verified.thumbprint().to_string(), key.thumbprint());
                prop_assert_eq!(verified.jti(), jti.as_str());
                prop_assert_eq!(verified.iat(), iat);
            }
            // A flipped byte changes what was signed or breaks the syntax (base64url
            // is canonical): refused, for whichever reason comes first.
            (_, result) if matches!(mutation, Mutation::FlipByte(..)) => {
                prop_assert!(result.is_err(), "a flipped byte was accepted");
            }
            (expected, result) => {
                prop_assert_eq!(*expected, result.as_ref().map(|_| ()).map_err(|error| *error));
            }
        }
    }
}
