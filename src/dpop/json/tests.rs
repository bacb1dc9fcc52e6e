use proptest::prelude::*;

use super::differential::check;
use super::*;

fn parse(text: &str) -> Result<Document<'_>, JsonError> {
    Document::from_bytes(text.as_bytes())
}

#[test]
fn parses_one_object() {
    let document = parse(r#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5,"e":{"f":-3}}}"#).unwrap();
    let object = document.object();
    assert!(matches!(
        object.get("a"),
        Some(Json::Number(Number::Unsigned(1)))
    ));
    assert!(matches!(object.get("b"), Some(Json::Array)));
    let Some(Json::Object(c)) = object.get("c") else {
        panic!("c is an object")
    };
    assert!(matches!(c.get("d"), Some(Json::Number(Number::Float(d))) if d == -2.5));
    let Some(Json::Object(e)) = c.get("e") else {
        panic!("e is an object")
    };
    assert!(matches!(
        e.get("f"),
        Some(Json::Number(Number::Negative(-3)))
    ));
    assert!(object.get("d").is_none() && !object.contains("f"));
    for text in [
        r#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5,"e":{"f":-3}}}"#,
        " {\t\"a\" :\r\n1 } \n",
        "{}",
        r#"{"a":{},"b":[],"c":[{}],"d":{"e":[{"f":{}}]}}"#,
        r#"{"n":[0,-0,1e3,1E+3,-1.5e-3,18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]}"#,
    ] {
        check(text.as_bytes());
    }
}

#[test]
fn refuses_duplicates_at_every_depth_and_after_unescaping() {
    for text in [
        r#"{"alg":"ES256","alg":"none"}"#,
        r#"{"alg":"ES256","\u0061lg":"none"}"#,
        r#"{"jwk":{"x":"a","x":"b"}}"#,
        r#"{"a":[{"b":1,"b":1}]}"#,
        r#"{"a":{"b":{"c":[[{"d":1,"d":2}]]}}}"#,
        r#"[{"b":1,"b":1}]"#,
        r#"{"a":1,"a":2} x"#,
    ] {
        assert_eq!(
            parse(text).err(),
            Some(JsonError::DuplicateMember),
            "{text}"
        );
        check(text.as_bytes());
    }
}

#[test]
fn reads_escaped_names_and_values() {
    let document =
        parse(r#"{"\u0061lg":"ES\u0032\u00356","typ":"a\/b","e":"\ud83d\ude00\n\"\\"}"#).unwrap();
    let object = document.object();
    assert!(matches!(object.get("alg"), Some(Json::String("ES256"))));
    assert!(matches!(object.get("typ"), Some(Json::String("a/b"))));
    assert!(matches!(object.get("e"), Some(Json::String("😀\n\"\\"))));
}

/// Past [`PAIRWISE_MAX`] members the names are sorted before comparing: the
/// same answers, at every position and after unescaping; and past the inline
/// room, members spill to the heap.
#[test]
fn refuses_duplicates_among_many_members() {
    let many = |extra: &str| {
        let members: Vec<String> = (0..100).map(|i| format!(r#""m{i}":{i}"#)).collect();
        format!("{{{},{extra}}}", members.join(","))
    };
    let text = many(r#""last":{"a":1,"b":2}"#);
    let document = parse(&text).unwrap();
    assert!(matches!(
        document.object().get("m99"),
        Some(Json::Number(Number::Unsigned(99)))
    ));
    check(text.as_bytes());
    for extra in [
        r#""m0":0"#,
        r#""m99":0"#,
        r#""\u006d50":0"#,
        r#""x":{"m0":1,"m0":2}"#,
    ] {
        let text = many(extra);
        assert_eq!(
            parse(&text).err(),
            Some(JsonError::DuplicateMember),
            "{extra}"
        );
    }
    let nested: Vec<String> = (0..40).map(|i| format!(r#""n{i}":[]"#)).collect();
    let text = format!(r#"{{"a":[1,{{{},"n7":null}}]}}"#, nested.join(","));
    assert_eq!(parse(&text).err(), Some(JsonError::DuplicateMember));
    let nested = format!(r#"{{"k":{{{}}},"z":1}}"#, nested.join(","));
    check(nested.as_bytes());
    assert!(parse(&nested).is_ok());
}

#[test]
fn refuses_what_is_not_one_object() {
    for text in [
        "",
        " ",
        "[]",
        "\"a\"",
        "1",
        "{} {}",
        "{",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "{,}",
        "{\"a\":[1,]}",
        "{\"a\":01}",
        "{\"a\":-}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":1e}",
        "{\"a\":+1}",
        "{\"a\":1e400}",
        "{\"a\":-1e400}",
        "{\"a\":tru}",
        "{\"a\":nul}",
        "{\"a\":True}",
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00"}"#,
        r#"{"a":"\ud800\u0041"}"#,
        r#"{"a":"\x"}"#,
        r#"{"a":"\u00g0"}"#,
        "{\"a\":\"\u{0}\"}",
        "{\"a\":\"\t\"}",
        "{\u{b}}",
        "{\u{c}}",
        "{\u{a0}}",
        "{'a':1}",
    ] {
        assert_eq!(parse(text).err(), Some(JsonError::Malformed), "{text:?}");
        check(text.as_bytes());
    }
    for bytes in [
        &b"{\"a\":\"\xff\"}"[..],
        b"{\"a\":1}\xff",
        b"\xef\xbb\xbf{}",
        b"{\"\xc3\":1}",
    ] {
        assert_eq!(
            Document::from_bytes(bytes).err(),
            Some(JsonError::Malformed),
            "{bytes:?}"
        );
        check(bytes);
    }
}

/// serde_json's recursion limit, matched: 127 nested arrays or objects, not 128;
/// and no recursion here, so far deeper input costs no stack.
#[test]
fn nesting_is_limited_as_serde_json_limits_it() {
    for (depth, ok) in [(126, true), (127, true), (128, false), (100_000, false)] {
        for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
            let text = format!(
                "{}{}1{}{}",
                "{\"a\":",
                open.repeat(depth - 1),
                close.repeat(depth - 1),
                "}"
            );
            assert_eq!(parse(&text).is_ok(), ok, "{depth} {open}");
            check(text.as_bytes());
        }
    }
}

/// Proof headers and claims as clients send them: the texts the mutations below
/// start from.
const PROOF_PARTS: [&str; 4] = [
    r#"{"typ":"dpop+jwt","alg":"ES256","jwk":{"kty":"EC","x":"l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs","y":"9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA","crv":"P-256"}}"#,
    r#"{"typ":"dpop+jwt","alg":"EdDSA","jwk":{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}"#,
    r#"{"jti":"-BwC3ESc6acc2lTc","htm":"POST","htu":"https://server.example.com/token","iat":1562262616}"#,
    r#"{"jti":"e1j3V_bKic8-LAEB","htm":"GET","htu":"https://resource.example.org/protectedresource","iat":1562262618.5,"ath":"fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo","nonce":"eyJ7S_zG.eyJH0-Z.HX4w-7v"}"#,
];

/// Pieces of JSON, valid and not, for the token soup below.
const TOKENS: [&str; 40] = [
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    " ",
    "\t",
    "\n",
    "\r",
    "\u{b}",
    "\"a\"",
    "\"b\"",
    "\"\\u0061\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud800\"",
    "\"\u{1}\"",
    "\"é\"",
    "\"\\/\\\"\"",
    "\"\\q\"",
    "0",
    "-0",
    "1",
    "01",
    "-1",
    "1.5",
    "1.",
    "2e-3",
    "1E+2",
    "1e309",
    "18446744073709551616",
    "-9223372036854775809",
    "true",
    "fals",
    "null",
    "\"",
    "\\",
    "x",
    "\u{0}",
    "1e-400",
];

/// A JSON value of a few levels, written with names from a small set (so that
/// duplicates happen), some escaped, and random whitespace.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| format!("{f:e}")),
        "[ -~]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "a",
                        "b",
                        "\\u0061",
                        "c\\n",
                        "d\\ud83d\\ude00",
                        "typ",
                        "alg"
                    ]),
                    prop::sample::select(vec!["", " ", "\n\t"]),
                    inner
                ),
                0..6
            )
            .prop_map(|members| {
                let members: Vec<String> = members
                    .into_iter()
                    .map(|(name, space, value)| format!("{space}\"{name}\"{space}:{space}{value}"))
                    .collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("JSON_DIFF_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(4096),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Generated values, as an object's member or alone.
    #[test]
    fn agrees_with_serde_json_on_generated_values(value in value(), wrap in any::<bool>()) {
        let text = if wrap { format!("{{\"v\":{value}}}") } else { value };
        check(text.as_bytes());
    }

    /// Any sequence of JSON pieces, valid or not.
    #[test]
    fn agrees_with_serde_json_on_token_soup(tokens in prop::collection::vec(prop::sample::select(TOKENS.to_vec()), 0..24)) {
        check(tokens.concat().as_bytes());
    }

    /// One byte of a real proof's header or claims replaced, inserted or removed.
    #[test]
    fn agrees_with_serde_json_on_mutated_proofs(
        part in prop::sample::select(PROOF_PARTS.to_vec()),
        at in any::<prop::sample::Index>(),
        byte in prop_oneof![any::<u8>(), prop::sample::select(b"{}[],:\"\\ 0-.eE".to_vec())],
        how in 0..3u8,
    ) {
        let mut bytes = part.as_bytes().to_vec();
        let at = at.index(bytes.len());
        match how {
            0 => bytes[at] = byte,
            1 => bytes.insert(at, byte),
            _ => { bytes.remove(at); }
        }
        check(&bytes);
    }
}
