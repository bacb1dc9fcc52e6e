//! One test per refusal of [`verify_proof`], and RFC 9449's example proofs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use super::*;

const NOW: u64 = 1_700_000_000;
const URI: &str = "https://server.example.com/token";

/// A client key that signs proofs.
enum Key {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Key {
    fn ed25519(seed: u8) -> Self {
        Key::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
    }

    fn p256(seed: u8) -> Self {
        Key::P256(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Key::Ed25519(_) => "EdDSA",
            Key::P256(_) => "ES256",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            Key::Ed25519(key) => json!({
                "kty": "OKP", "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes()),
            }),
            Key::P256(key) => {
                let point = key.verifying_key().to_sec1_point(false);
                json!({
                    "kty": "EC", "crv": "P-256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
                })
            }
        }
    }

    fn header(&self) -> Value {
        json!({ "typ": "dpop+jwt", "alg": self.alg(), "jwk": self.jwk() })
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Key::Ed25519(key) => {
                use ed25519_dalek::Signer as _;
                key.sign(input).to_bytes().to_vec()
            }
            Key::P256(key) => {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = key.sign(input);
                signature.to_bytes().to_vec()
            }
        }
    }

    /// A proof with this header and these claims, JSON as written.
    fn proof_raw(&self, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = URL_SAFE_NO_PAD.encode(self.sign(input.as_bytes()));
        format!("{input}.{signature}")
    }

    fn proof(&self, header: &Value, claims: &Value) -> String {
        self.proof_raw(&header.to_string(), &claims.to_string())
    }

    /// A proof with the usual header and claims but header member `name` set to
    /// `value`.
    fn proof_with_header(&self, name: &str, value: Value) -> String {
        let header = header_with(self, |h| {
            h.insert(name.into(), value);
        });
        self.proof(&header, &claims())
    }

    /// A proof with the usual header and claims but claim `name` set to `value`.
    fn proof_with(&self, name: &str, value: Value) -> String {
        let claims = claims_with(|c| {
            c.insert(name.into(), value);
        });
        self.proof(&self.header(), &claims)
    }
}

fn claims() -> Value {
    json!({ "jti": "-BwC3ESc6acc2lTc", "htm": "POST", "htu": URI, "iat": NOW })
}

/// `claims()` with `edit` applied.
fn claims_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut claims = claims();
    edit(claims.as_object_mut().unwrap());
    claims
}

/// `key.header()` with `edit` applied.
fn header_with(key: &Key, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut header = key.header();
    edit(header.as_object_mut().unwrap());
    header
}

/// Verifies `proof` without a key cache, and checks that a cache shared by
/// every test (as the layer shares one by all requests) gives the same answer,
/// whether the proof's header is cached already (by another test's proof with
/// the same key) or not.
fn verify(proof: &str) -> Result<VerifiedProof, ProofError> {
    static SHARED: std::sync::OnceLock<KeyCache> = std::sync::OnceLock::new();
    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW);
    let result = verify_proof(proof.as_bytes(), &check);
    let cached = check.key_cache(SHARED.get_or_init(|| KeyCache::new(64)));
    for _ in 0..2 {
        assert_eq!(verify_proof(proof.as_bytes(), &cached), result);
    }
    result
}

fn keys() -> [Key; 2] {
    [Key::ed25519(1), Key::p256(1)]
}

#[test]
fn accepts_a_proof_of_either_algorithm() {
    for key in keys() {
        let verified = verify(&key.proof(&key.header(), &claims())).unwrap();
        assert_eq!(verified.jti(), "-BwC3ESc6acc2lTc");
        assert_eq!(verified.iat(), NOW);
        assert_eq!(verified.algorithm().as_str(), key.alg());
        assert_eq!(verified.thumbprint(), &verified.key().thumbprint());
    }
}

/// RFC 9449 §4.2 (Figure 2/4, the token request) and §7.1 (the resource request
/// with `ath`); the key's thumbprint is §6.1's `jkt` example.
#[test]
fn rfc9449_examples() {
    const HEADER: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19";
    let token_proof = format!("{HEADER}.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg");
    let resource_proof = format!("{HEADER}.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA");
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    const ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, 1_562_262_616);
    let verified = verify_proof(token_proof.as_bytes(), &check).unwrap();
    assert_eq!(verified.thumbprint().to_string(), JKT);
    assert_eq!(verified.jti(), "-BwC3ESc6acc2lTc");
    assert_eq!(verified.algorithm(), DpopAlgorithm::Es256);

    let uri = NormalizedUri::parse("https://resource.example.org/protectedresource").unwrap();
    let check = ProofCheck::new(&http::Method::GET, &uri, 1_562_262_618);
    let verified = verify_proof(
        resource_proof.as_bytes(),
        &check.clone().access_token(ACCESS_TOKEN),
    )
    .unwrap();
    assert_eq!(verified.thumbprint().to_string(), JKT);
    assert_eq!(
        verify_proof(
            resource_proof.as_bytes(),
            &check.access_token("another token")
        ),
        Err(ProofError::AccessTokenHashMismatch)
    );
}

#[test]
fn refuses_malformed_compact_serialisations() {
    let key = Key::ed25519(1);
    let good = key.proof(&key.header(), &claims());
    let (header, rest) = good.split_once('.').unwrap();
    let (claims_b64, signature) = rest.split_once('.').unwrap();

    assert_eq!(
        verify(&"a".repeat(MAX_PROOF_LEN + 1)),
        Err(ProofError::TooLong)
    );
    for proof in [
        String::new(),
        header.to_owned(),
        format!("{header}.{claims_b64}"),
        format!("{good}."),
        format!("{good}.{signature}"),
        format!(".{claims_b64}.{signature}"),
        format!("{header}..{signature}"),
        format!("{header}.{claims_b64}."),
    ] {
        assert_eq!(verify(&proof), Err(ProofError::NotCompact), "{proof}");
    }
    // Padding, the standard alphabet, whitespace, stray bits.
    for proof in [
        format!("{header}=.{claims_b64}.{signature}"),
        format!("{}.{claims_b64}.{signature}", header.replacen('e', "+", 1)),
        format!(" {good}"),
        format!(
            "{header}.{claims_b64}.{}",
            signature.replace(['_', '-'], "+")
        ),
    ] {
        assert_eq!(verify(&proof), Err(ProofError::Base64), "{proof}");
    }
    // 64 bytes in 86 characters: the last one carries 2 bits and 4 zero bits;
    // setting a zero bit is a non-canonical encoding of the same signature.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut tweaked = signature.as_bytes().to_vec();
    let last = tweaked.last_mut().unwrap();
    let index = ALPHABET.iter().position(|c| c == last).unwrap();
    assert_eq!(index & 0x0F, 0);
    *last = ALPHABET[index | 1];
    let proof = format!(
        "{header}.{claims_b64}.{}",
        String::from_utf8(tweaked).unwrap()
    );
    assert_eq!(verify(&proof), Err(ProofError::Base64));

    assert_eq!(
        verify(&key.proof_raw("[1]", &claims().to_string())),
        Err(ProofError::Json)
    );
    assert_eq!(
        verify(&key.proof_raw(&key.header().to_string(), "not json")),
        Err(ProofError::Json)
    );
}

#[test]
fn refuses_duplicate_members_anywhere() {
    let key = Key::ed25519(1);
    let header = key.header().to_string();
    let claims = claims().to_string();
    let dup_claim = claims.replacen('{', r#"{"htm":"GET","#, 1);
    let dup_header = header.replacen('{', r#"{"alg":"none","#, 1);
    let jwk = key.jwk().to_string();
    let dup_jwk = header.replace(&jwk, &jwk.replacen('{', r#"{"x":"AAAA","#, 1));
    for (header, claims) in [
        (&header, &dup_claim),
        (&dup_header, &claims),
        (&dup_jwk, &claims),
    ] {
        assert_eq!(
            verify(&key.proof_raw(header, claims)),
            Err(ProofError::DuplicateMember),
            "{header} {claims}"
        );
    }
}

#[test]
fn refuses_missing_and_mistyped_members() {
    let key = Key::p256(2);
    for name in ["typ", "alg", "jwk"] {
        let header = header_with(&key, |h| {
            h.remove(name);
        });
        assert_eq!(
            verify(&key.proof(&header, &claims())),
            Err(ProofError::MissingMember(name))
        );
    }
    for name in ["jti", "htm", "htu", "iat"] {
        let claims = claims_with(|c| {
            c.remove(name);
        });
        assert_eq!(
            verify(&key.proof(&key.header(), &claims)),
            Err(ProofError::MissingMember(name))
        );
    }
    for (name, value) in [("jwk", json!("a key")), ("typ", json!(7))] {
        let proof = key.proof_with_header(name, value);
        assert_eq!(verify(&proof), Err(ProofError::InvalidMember(name)));
    }
    for (name, value) in [
        ("jti", json!(1)),
        ("htm", json!(["POST"])),
        ("htu", json!(null)),
        ("iat", json!("1700000000")),
        ("iat", json!(-1)),
        ("iat", json!(1e300)),
        ("iat", json!(true)),
    ] {
        let proof = key.proof_with(name, value.clone());
        let expected = Err(ProofError::InvalidMember(name));
        assert_eq!(verify(&proof), expected, "{name}: {value}");
    }
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = Key::ed25519(3);
    for typ in [
        "JWT",
        "at+jwt",
        "dpop",
        "dpop+jwt ",
        "application/jwt",
        "text/dpop+jwt",
        "",
    ] {
        let proof = key.proof_with_header("typ", json!(typ));
        assert_eq!(verify(&proof), Err(ProofError::Type), "{typ}");
    }
    // RFC 7515 §4.1.9: media types are case-insensitive, `application/` optional.
    for typ in ["DPoP+JWT", "application/dpop+jwt", "Application/DPOP+jwt"] {
        assert!(
            verify(&key.proof_with_header("typ", json!(typ))).is_ok(),
            "{typ}"
        );
    }
}

#[test]
fn alg_must_be_allowed_and_fit_the_key() {
    let ed = Key::ed25519(4);
    let ec = Key::p256(4);
    for alg in [
        "none", "HS256", "RS256", "PS256", "ES384", "es256", "EDDSA", "ed25519", "Ed448", "",
    ] {
        let proof = ed.proof_with_header("alg", json!(alg));
        assert_eq!(
            verify(&proof),
            Err(ProofError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    // RFC 9864's fully-specified name for EdDSA with Ed25519 (npm `dpop` and
    // `oauth4webapi` send only this one) is the same algorithm.
    let proof = ed.proof_with_header("alg", json!("Ed25519"));
    assert_eq!(
        verify(&proof).map(|verified| verified.algorithm()),
        Ok(DpopAlgorithm::EdDsa)
    );
    // ES256 with an Ed25519 key, EdDSA with a P-256 key.
    for (key, alg) in [(&ed, "ES256"), (&ec, "EdDSA"), (&ec, "Ed25519")] {
        let proof = key.proof_with_header("alg", json!(alg));
        assert_eq!(verify(&proof), Err(ProofError::AlgorithmMismatch));
    }
    // The key's own `alg`: the same is fine, another is not.
    for (alg, expected) in [
        ("EdDSA", Ok(())),
        ("Ed25519", Ok(())),
        ("ES256", Err(ProofError::AlgorithmMismatch)),
    ] {
        let header = header_with(&ed, |h| {
            h["jwk"]
                .as_object_mut()
                .unwrap()
                .insert("alg".into(), json!(alg));
        });
        assert_eq!(
            verify(&ed.proof(&header, &claims())).map(|_| ()),
            expected,
            "{alg}"
        );
    }
}

#[test]
fn refuses_crit() {
    let key = Key::ed25519(5);
    for crit in [json!(["b64"]), json!([]), json!("exp")] {
        let proof = key.proof_with_header("crit", crit);
        assert_eq!(verify(&proof), Err(ProofError::CriticalHeader));
    }
}

#[test]
fn refuses_private_unsupported_and_invalid_keys() {
    let key = Key::p256(6);
    let with_jwk = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let header = header_with(&key, |h| edit(h["jwk"].as_object_mut().unwrap()));
        verify(&key.proof(&header, &claims()))
    };
    assert_eq!(
        with_jwk(&|jwk| {
            jwk.insert("d".into(), json!("AAAA"));
        }),
        Err(ProofError::PrivateKey)
    );
    assert_eq!(
        with_jwk(&|jwk| {
            jwk.insert("crv".into(), json!("P-384"));
        }),
        Err(ProofError::UnsupportedKey)
    );
    assert_eq!(
        with_jwk(&|jwk| {
            jwk.insert("kty".into(), json!("RSA"));
        }),
        Err(ProofError::UnsupportedKey)
    );
    // y of another point: (x, y') is not on the curve.
    let other = Key::p256(7).jwk();
    assert_eq!(
        with_jwk(&|jwk| {
            jwk.insert("y".into(), other["y"].clone());
        }),
        Err(ProofError::InvalidKey)
    );
    assert_eq!(
        with_jwk(&|jwk| {
            jwk.remove("y");
        }),
        Err(ProofError::InvalidKey)
    );
}

#[test]
fn the_signature_must_verify_with_the_proofs_key() {
    for (key, other) in [
        (Key::ed25519(8), Key::ed25519(9)),
        (Key::p256(8), Key::p256(9)),
    ] {
        let good = key.proof(&key.header(), &claims());
        // Signed by another key.
        let forged = other.proof(&key.header(), &claims());
        assert_eq!(verify(&forged), Err(ProofError::Signature));
        // Claims swapped after signing.
        let (input, signature) = good.rsplit_once('.').unwrap();
        let changed = other.proof(
            &key.header(),
            &claims_with(|c| {
                c.insert("jti".into(), json!("another"));
            }),
        );
        let (changed_input, _) = changed.rsplit_once('.').unwrap();
        assert_eq!(
            verify(&format!("{changed_input}.{signature}")),
            Err(ProofError::Signature)
        );
        // A bit flipped in the signature; a short one; zeros (r = s = 0).
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 1;
        let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(verify(&flipped), Err(ProofError::Signature));
        let short = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&bytes[..63]));
        assert_eq!(verify(&short), Err(ProofError::Signature));
        let zeros = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
        assert_eq!(verify(&zeros), Err(ProofError::Signature));
        // `alg: none` with an empty signature is not even a compact JWS here.
        assert_eq!(verify(&format!("{input}.")), Err(ProofError::NotCompact));
    }
}

#[test]
fn accepts_high_s_ecdsa_signatures() {
    use p256::elliptic_curve::ops::Neg as _;
    let key = Key::p256(10);
    let good = key.proof(&key.header(), &claims());
    let (input, signature) = good.rsplit_once('.').unwrap();
    let signature =
        p256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(signature).unwrap()).unwrap();
    let (r, s) = signature.split_scalars();
    let negated = p256::ecdsa::Signature::from_scalars(*r, (*s).neg()).unwrap();
    let other = format!("{input}.{}", URL_SAFE_NO_PAD.encode(negated.to_bytes()));
    assert!(verify(&good).is_ok());
    assert!(verify(&other).is_ok());
}

#[test]
fn jti_must_be_short_and_present() {
    let key = Key::ed25519(11);
    for (jti, expected) in [
        (String::new(), Err(ProofError::Jti)),
        ("j".repeat(MAX_JTI_LEN), Ok(())),
        ("j".repeat(MAX_JTI_LEN + 1), Err(ProofError::Jti)),
    ] {
        let result = verify(&key.proof_with("jti", json!(jti)));
        assert_eq!(result.map(|_| ()), expected);
    }
    // Kept inline up to `JTI_INLINE` bytes, on the heap beyond: the same `jti`
    // either way, escapes and all.
    for jti in [
        "j".to_owned(),
        "j".repeat(JTI_INLINE),
        "j".repeat(JTI_INLINE + 1),
        "é".repeat(MAX_JTI_LEN / 2),
        "\u{1F600}\n".repeat(20),
    ] {
        let verified = verify(&key.proof_with("jti", json!(jti))).unwrap();
        assert_eq!(verified.jti(), jti);
        assert_eq!(verified.clone(), verified);
    }
}

#[test]
fn htm_and_htu_must_name_the_request() {
    let key = Key::ed25519(12);
    let (method, uri, invalid) = (
        Err(ProofError::MethodMismatch),
        Err(ProofError::UriMismatch),
        Err(ProofError::InvalidUri),
    );
    let host = "https://server.example.com";
    for (name, value, expected) in [
        ("htm", "GET".to_owned(), method),
        ("htm", "post".to_owned(), method),
        ("htm", "POST ".to_owned(), method),
        ("htm", String::new(), method),
        ("htu", format!("{host}/token/"), uri),
        ("htu", format!("{host}/tokens"), uri),
        ("htu", format!("{host}/Token"), uri),
        ("htu", format!("{host}:8443/token"), uri),
        ("htu", "http://server.example.com/token".to_owned(), uri),
        ("htu", "https://other.example.com/token".to_owned(), uri),
        ("htu", "/token".to_owned(), invalid),
        ("htu", "server.example.com/token".to_owned(), invalid),
        (
            "htu",
            "https://u@server.example.com/token".to_owned(),
            invalid,
        ),
        ("htu", format!("{host}/%zz"), invalid),
        // Other spellings of the same URI.
        (
            "htu",
            "HTTPS://SERVER.example.com:443/token".to_owned(),
            Ok(()),
        ),
        ("htu", format!("{host}/token?query#fragment"), Ok(())),
        ("htu", format!("{host}/./%74oken"), Ok(())),
    ] {
        let result = verify(&key.proof_with(name, json!(value)));
        assert_eq!(result.map(|_| ()), expected, "{name}: {value}");
    }
}

#[test]
fn iat_must_be_within_the_window() {
    let key = Key::p256(13);
    let max_age = DEFAULT_MAX_AGE.as_secs();
    let leeway = DEFAULT_FUTURE_LEEWAY.as_secs();
    for (iat, expected) in [
        (json!(NOW - max_age), Ok(())),
        (json!(NOW - max_age - 1), Err(ProofError::Expired)),
        (json!(0), Err(ProofError::Expired)),
        (json!(NOW + leeway), Ok(())),
        (json!(NOW + leeway + 1), Err(ProofError::IssuedInFuture)),
        (json!(u64::MAX), Err(ProofError::IssuedInFuture)),
        (json!(NOW as f64 + 0.75), Ok(())),
    ] {
        let claims = claims_with(|c| {
            c.insert("iat".into(), iat.clone());
        });
        assert_eq!(
            verify(&key.proof(&key.header(), &claims)).map(|_| ()),
            expected,
            "{iat}"
        );
    }
    // A configured window.
    let uri = NormalizedUri::parse(URI).unwrap();
    let proof = key.proof(
        &key.header(),
        &claims_with(|c| {
            c.insert("iat".into(), json!(NOW - 20));
        }),
    );
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW).max_age(Duration::from_secs(10));
    assert_eq!(
        verify_proof(proof.as_bytes(), &check),
        Err(ProofError::Expired)
    );
    let check =
        ProofCheck::new(&http::Method::POST, &uri, NOW - 40).future_leeway(Duration::from_secs(30));
    assert!(verify_proof(proof.as_bytes(), &check).is_ok());
}

#[test]
fn ath_is_required_with_an_access_token() {
    let key = Key::ed25519(14);
    let token = "an-access-token";
    let ath = URL_SAFE_NO_PAD.encode(Sha256::digest(token));
    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW).access_token(token);
    let with_ath = |ath: Value| {
        key.proof(
            &key.header(),
            &claims_with(|c| {
                c.insert("ath".into(), ath);
            }),
        )
    };
    assert!(verify_proof(with_ath(json!(ath)).as_bytes(), &check).is_ok());
    assert_eq!(
        verify_proof(key.proof(&key.header(), &claims()).as_bytes(), &check),
        Err(ProofError::MissingAccessTokenHash)
    );
    for wrong in [
        json!(ath.to_uppercase()),
        json!(""),
        json!(format!("{ath}=")),
        json!(URL_SAFE_NO_PAD.encode(Sha256::digest("other"))),
        json!(stray_bits(&ath)),
        json!(ath[..42]),
        json!(format!("{ath}A")),
    ] {
        assert_eq!(
            verify_proof(with_ath(wrong).as_bytes(), &check),
            Err(ProofError::AccessTokenHashMismatch)
        );
    }
    assert_eq!(
        verify_proof(with_ath(json!(7)).as_bytes(), &check),
        Err(ProofError::InvalidMember("ath"))
    );
    // Without a token (the token endpoint), `ath` is not looked at.
    assert!(verify(&with_ath(json!("anything"))).is_ok());
}

#[test]
fn nonce_is_required_when_expected() {
    let key = Key::p256(15);
    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW).nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    let with_nonce = |nonce: &str| {
        key.proof(
            &key.header(),
            &claims_with(|c| {
                c.insert("nonce".into(), json!(nonce));
            }),
        )
    };
    assert!(verify_proof(with_nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v").as_bytes(), &check).is_ok());
    assert_eq!(
        verify_proof(key.proof(&key.header(), &claims()).as_bytes(), &check),
        Err(ProofError::MissingNonce)
    );
    assert_eq!(
        verify_proof(with_nonce("eyJ7S_zG.eyJH0-Z.HX4w-7w").as_bytes(), &check),
        Err(ProofError::NonceMismatch)
    );
    assert!(verify(&with_nonce("not expected, not looked at")).is_ok());
}

#[test]
fn debug_and_display_never_show_the_proof_or_the_token() {
    let key = Key::ed25519(16);
    let proof = key.proof(&key.header(), &claims());
    let verified = verify(&proof).unwrap();
    let debug = format!("{verified:?}");
    assert!(debug.contains(&verified.thumbprint().to_string()));
    assert!(!debug.contains(&proof[..20]));
    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW)
        .access_token("secret-token")
        .nonce("n0nce");
    let debug = format!("{check:?}");
    assert!(
        !debug.contains("secret-token") && !debug.contains("n0nce"),
        "{debug}"
    );
    let proof = key.proof(
        &key.header(),
        &claims_with(|c| {
            c.insert("htm".into(), json!("SECRET"));
        }),
    );
    let error = verify(&proof).unwrap_err();
    assert!(!error.to_string().contains("SECRET"));
}

/// `encoded` (43 characters, 32 bytes) with a stray bit set in its last
/// character: decoders that ignore those bits read the same bytes.
fn stray_bits(encoded: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = encoded.as_bytes()[42];
    let index = ALPHABET.iter().position(|&c| c == last).unwrap();
    assert_eq!(index & 3, 0, "a canonical last character has no stray bits");
    format!("{}{}", &encoded[..42], char::from(ALPHABET[index | 1]))
}

fn verify_cached(proof: &str, cache: &KeyCache) -> Result<VerifiedProof, ProofError> {
    let uri = NormalizedUri::parse(URI).unwrap();
    let check = ProofCheck::new(&http::Method::POST, &uri, NOW).key_cache(cache);
    verify_proof(proof.as_bytes(), &check)
}

#[test]
fn a_cached_key_verifies_as_a_decoded_one() {
    let cache = KeyCache::new(16);
    for key in keys() {
        let proof = key.proof(&key.header(), &claims());
        let header = proof.split('.').next().unwrap().as_bytes();
        let uncached = verify(&proof).unwrap();
        assert!(cache.get(header).is_none());
        assert_eq!(verify_cached(&proof, &cache), Ok(uncached.clone())); // miss
        let (jwk, _, thumbprint) = cache.get(header).expect("cached once verified");
        assert_eq!(&thumbprint, uncached.thumbprint());
        assert_eq!(&jwk, uncached.key());
        assert_eq!(verify_cached(&proof, &cache), Ok(uncached)); // hit
    }
    // Two slots of 16, or one if the two headers' hashes met (one in 16 runs).
    assert!((1..=2).contains(&cache.len()));
}

/// A cached header skips only the header's reading: the claims and the
/// signature are checked on every proof, and a header that differs in a
/// single byte (here: its members in another order) is read in full.
#[test]
fn a_cached_header_still_checks_claims_and_signature() {
    let cache = KeyCache::new(1);
    let key = Key::ed25519(23);
    let proof = key.proof(&key.header(), &claims());
    let verified = verify_cached(&proof, &cache).unwrap();
    assert_eq!(cache.len(), 1);
    // Signed by another key under the cached header; a claim refused; the
    // signature of another proof.
    let forged = Key::ed25519(24).proof(&key.header(), &claims());
    assert_eq!(verify_cached(&forged, &cache), Err(ProofError::Signature));
    assert_eq!(
        verify_cached(&key.proof_with("htm", json!("GET")), &cache),
        Err(ProofError::MethodMismatch)
    );
    let other = key.proof_with("jti", json!("another"));
    let (signed, _) = other.rsplit_once('.').unwrap();
    let (_, signature) = proof.rsplit_once('.').unwrap();
    assert_eq!(
        verify_cached(&format!("{signed}.{signature}"), &cache),
        Err(ProofError::Signature)
    );
    // The same key, its header written another way: read, verified, and the
    // same thumbprint.
    let reordered = format!(r#"{{"typ":"dpop+jwt","jwk":{},"alg":"EdDSA"}}"#, key.jwk());
    assert_ne!(reordered, key.header().to_string());
    let again = verify_cached(&key.proof_raw(&reordered, &claims().to_string()), &cache).unwrap();
    assert_eq!(again.thumbprint(), verified.thumbprint());
    assert_eq!(cache.len(), 1);
}

/// A header longer than [`MAX_CACHED_HEADER_LEN`] verifies, and is read in full
/// each time: the cache's memory stays bounded.
#[test]
fn long_headers_are_not_cached() {
    use crate::dpop::MAX_CACHED_HEADER_LEN;

    let cache = KeyCache::new(4);
    let key = Key::p256(25);
    let header = header_with(&key, |h| {
        h.insert("pad".into(), json!("x".repeat(MAX_CACHED_HEADER_LEN)));
    });
    let proof = key.proof(&header, &claims());
    for _ in 0..2 {
        assert!(verify_cached(&proof, &cache).is_ok());
        assert!(cache.is_empty());
    }
}

/// One slot: every header lands in it, so only the full comparison of the
/// header keeps one client's entry from answering for another's.
#[test]
fn two_keys_never_share_a_cache_entry() {
    let cache = KeyCache::new(1);
    assert_eq!(cache.capacity(), 1);
    let (a, b, c) = (Key::ed25519(20), Key::ed25519(21), Key::p256(20));
    let thumbprint = |key: &Key| {
        *verify(&key.proof(&key.header(), &claims()))
            .unwrap()
            .thumbprint()
    };
    for key in [&a, &b, &a, &c, &b, &c] {
        let verified = verify_cached(&key.proof(&key.header(), &claims()), &cache).unwrap();
        assert_eq!(verified.thumbprint(), &thumbprint(key));
        assert_eq!(cache.len(), 1);
    }
    // The cache holds c's key: a proof naming a's key (or c's) signed by another
    // key is still refused, and so are proofs whose key differs from the cached
    // one in a single coordinate byte.
    assert_eq!(
        verify_cached(&b.proof(&a.header(), &claims()), &cache),
        Err(ProofError::Signature)
    );
    let signed_by_b = Key::p256(21);
    assert_eq!(
        verify_cached(&signed_by_b.proof(&c.header(), &claims()), &cache),
        Err(ProofError::Signature)
    );
    let mut jwk = c.jwk();
    let y = jwk["y"].as_str().unwrap().to_owned();
    jwk["y"] = json!(stray_bits(&y));
    let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": jwk });
    assert_eq!(
        verify_cached(&c.proof(&header, &claims()), &cache),
        Err(ProofError::InvalidKey)
    );
}

/// Many clients at once through one slot: while threads overwrite each other's
/// entry, every proof still verifies under its own key's thumbprint, and a proof
/// naming another client's key but signed by the attacker's is always refused.
#[test]
fn concurrent_clients_sharing_one_slot_never_get_each_others_key() {
    let cache = KeyCache::new(1);
    let clients: Vec<Key> = (50..56)
        .map(|seed| {
            if seed % 2 == 0 {
                Key::ed25519(seed)
            } else {
                Key::p256(seed)
            }
        })
        .collect();
    let attacker = Key::ed25519(60);
    std::thread::scope(|scope| {
        for key in &clients {
            let (cache, attacker) = (&cache, &attacker);
            scope.spawn(move || {
                let own = *verify(&key.proof(&key.header(), &claims()))
                    .unwrap()
                    .thumbprint();
                for _ in 0..40 {
                    let verified = verify_cached(&key.proof(&key.header(), &claims()), cache);
                    assert_eq!(verified.unwrap().thumbprint(), &own);
                    let forged = attacker.proof(&key.header(), &claims());
                    assert_eq!(verify_cached(&forged, cache), Err(ProofError::Signature));
                }
            });
        }
    });
    assert_eq!(cache.len(), 1);
}

#[test]
fn invalid_keys_are_never_cached() {
    let cache = KeyCache::new(4);
    let signer = Key::ed25519(22);
    // The identity (small order), and a P-256 point off the curve.
    let weak = json!({ "typ": "dpop+jwt", "alg": "EdDSA", "jwk": {
        "kty": "OKP", "crv": "Ed25519", "x": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    }});
    let off_curve = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": {
        "kty": "EC", "crv": "P-256",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDE",
    }});
    for header in [&weak, &off_curve, &weak, &off_curve] {
        assert_eq!(
            verify_cached(&signer.proof(header, &claims()), &cache),
            Err(ProofError::InvalidKey)
        );
    }
    // A valid key whose proof does not verify is not cached either.
    let key = Key::p256(22);
    assert_eq!(
        verify_cached(&signer.proof(&key.header(), &claims()), &cache),
        Err(ProofError::Signature)
    );
    // Nor one whose proof fails a claim after the key was read.
    assert_eq!(
        verify_cached(&key.proof_with("htm", json!("GET")), &cache),
        Err(ProofError::MethodMismatch)
    );
    assert!(cache.is_empty());
}

#[test]
fn the_cache_holds_no_more_than_its_capacity() {
    let cache = KeyCache::new(5);
    assert_eq!(cache.capacity(), 8);
    for seed in 30..130 {
        let key = if seed % 2 == 0 {
            Key::ed25519(seed)
        } else {
            Key::p256(seed)
        };
        let proof = key.proof(&key.header(), &claims());
        let verified = verify_cached(&proof, &cache).unwrap();
        assert_eq!(verified.thumbprint(), &verified.key().thumbprint());
        assert!(cache.len() <= 8);
    }
    assert!(!cache.is_empty());
}

/// The longest proofs accepted still decode: the bulk in the header, or in the
/// claims (an ignored member), up to [`MAX_PROOF_LEN`] bytes.
#[test]
fn proofs_of_the_longest_length_decode() {
    let key = Key::ed25519(40);
    let padded_header = |n: usize| {
        let header = header_with(&key, |h| {
            h.insert("pad".into(), json!("x".repeat(n)));
        });
        key.proof(&header, &claims())
    };
    let padded_claims = |n: usize| key.proof_with("pad", json!("x".repeat(n)));
    for make in [&padded_header as &dyn Fn(usize) -> String, &padded_claims] {
        let longest = (5_000..7_000)
            .map(make)
            .take_while(|proof| proof.len() <= MAX_PROOF_LEN)
            .last()
            .unwrap();
        assert!(longest.len() > MAX_PROOF_LEN - 4, "{}", longest.len());
        assert!(verify(&longest).is_ok());
    }
}

#[test]
fn find_dot_finds_the_first_dot_anywhere() {
    assert_eq!(find_dot(b""), None);
    for len in 0..40 {
        assert_eq!(find_dot(&vec![b'a'; len]), None, "{len}");
        // Bytes one off a dot, and bytes with the high bit set, around it.
        let filler: Vec<u8> = (0..len).map(|i| [b'-', b'/', 0xae, 0x2d][i % 4]).collect();
        assert_eq!(find_dot(&filler), None, "{len}");
        for at in 0..len {
            let mut bytes = filler.clone();
            bytes[at] = b'.';
            if at + 1 < len {
                bytes[len - 1] = b'.';
            }
            assert_eq!(find_dot(&bytes), Some(at), "{len} {at}");
        }
    }
}
