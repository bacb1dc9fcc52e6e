//! `Authorization: Bearer <token>` parsing (RFC 6750 §2.1, RFC 9110 §11.6.2).

use http::header::AUTHORIZATION;
use http::{HeaderMap, Uri};

use crate::http::rejection::Rejection;
use crate::token::grant::MAX_TOKEN_LEN;

/// The bearer token of a request, or why there is none.
///
/// - no `Authorization`, another scheme, or an empty token: `MissingCredentials`
///   (401 "Not authenticated"), as FastAPI's `OAuth2PasswordBearer` answers;
/// - several `Authorization` headers: ambiguous, `invalid_request`;
/// - a token longer than [`MAX_TOKEN_LEN`]: `InvalidToken`.
///
/// The scheme is case-insensitive; one or more spaces separate it from the token,
/// and trailing spaces or tabs (optional whitespace) are ignored.
///
/// The token's bytes are left to [`BearerToken::to_str`](crate::token::BearerToken::to_str): a store that answers at once
/// rejects a malformed token by not finding it, more cheaply than the check would,
/// so only tokens on their way to a store that must be awaited are checked first.
pub(crate) fn token(headers: &HeaderMap) -> Result<&[u8], Rejection> {
    scheme_token(headers, strip_bearer_scheme)
}

/// The token of `Authorization: DPoP <token>` (RFC 9449 §7.1), with the rules of
/// [`token`]: another scheme is `MissingCredentials`.
#[cfg(feature = "dpop")]
pub(crate) fn dpop_token(headers: &HeaderMap) -> Result<&[u8], Rejection> {
    scheme_token(headers, |value| {
        let (scheme, rest) = value.split_first_chunk::<5>()?;
        scheme.eq_ignore_ascii_case(b"dpop ").then_some(rest)
    })
}

/// The token after the scheme `strip` recognises.
#[inline(always)]
fn scheme_token(
    headers: &HeaderMap,
    strip: impl Fn(&[u8]) -> Option<&[u8]>,
) -> Result<&[u8], Rejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(Rejection::MissingCredentials)?;
    if values.next().is_some() {
        return Err(Rejection::InvalidBearerRequest(
            "Several Authorization headers: send exactly one",
        ));
    }
    // Anything but `Bearer` and a space (`Basic …`, `Bearer` alone, `Bearertok`)
    // is no bearer credentials.
    let Some(rest) = strip(value.as_bytes()) else {
        return Err(Rejection::MissingCredentials);
    };
    let token = trim_trailing_ows(trim_leading_spaces(rest));
    if token.is_empty() {
        return Err(Rejection::MissingCredentials);
    }
    // A store must never hash, decode or look up megabytes chosen by a client.
    if token.len() > MAX_TOKEN_LEN {
        return Err(Rejection::InvalidToken);
    }
    Ok(token)
}

/// Whether the URL carries RFC 6750 §2.3's `access_token` query parameter.
///
/// That way of sending a token is not supported (URLs end up in logs, proxies and
/// browser history), and a request using it is rejected rather than treated as
/// anonymous: the client is told what to fix, and a token in both the URL and the
/// header is never ambiguous.
///
/// Inlined: most guarded URLs have no query, and that answer is one comparison.
#[inline(always)]
pub(crate) fn token_in_query(uri: &Uri) -> bool {
    uri.query().is_some_and(names_access_token)
}

/// Whether a query has a parameter named `access_token`.
fn names_access_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

/// What follows `Bearer ` (scheme in any case), if the value starts with it.
fn strip_bearer_scheme(value: &[u8]) -> Option<&[u8]> {
    let (scheme, rest) = value.split_first_chunk::<7>()?;
    // `eq_ignore_ascii_case` as one word operation, for every request: setting bit
    // 0x20 lowercases the letters and leaves the space a space; it could only make
    // a space of NUL, which header values cannot contain.
    let mut word = [0u8; 8];
    word[..7].copy_from_slice(scheme);
    let lowered = u64::from_le_bytes(word) | 0x0020_2020_2020_2020;
    (lowered == u64::from_le_bytes(*b"bearer \0")).then_some(rest)
}

fn trim_leading_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim_trailing_ows(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |last| last + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    use crate::token::grant::is_b64token;

    /// What a store does with a token: RFC 6750 `b64token` text, or no token.
    fn b64token(token: &[u8]) -> Result<&str, Rejection> {
        if !is_b64token(token) {
            return Err(Rejection::InvalidToken);
        }
        // b64token is ASCII, so this never fails.
        std::str::from_utf8(token).map_err(|_| Rejection::InvalidToken)
    }

    fn parse(values: &[&[u8]]) -> Result<String, Rejection> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        token(&headers).and_then(b64token).map(str::to_owned)
    }

    #[test]
    fn plain_bearer_token() {
        assert_eq!(
            parse(&[b"Bearer abc-DEF_123.~+/=="]).unwrap(),
            "abc-DEF_123.~+/=="
        );
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for scheme in ["bearer", "BEARER", "bEaReR"] {
            let value = format!("{scheme} tok");
            assert_eq!(parse(&[value.as_bytes()]).unwrap(), "tok");
        }
    }

    #[test]
    fn several_spaces_before_and_trailing_whitespace_after_the_token() {
        assert_eq!(parse(&[b"Bearer    tok"]).unwrap(), "tok");
        assert_eq!(parse(&[b"Bearer tok  "]).unwrap(), "tok");
        assert_eq!(parse(&[b"Bearer tok\t"]).unwrap(), "tok");
        assert_eq!(parse(&[b"Bearer tok \t "]).unwrap(), "tok");
    }

    #[test]
    fn missing_other_scheme_or_empty_token_is_not_authenticated() {
        assert_eq!(parse(&[]), Err(Rejection::MissingCredentials));
        for value in [
            &b"Basic am9objpzZWNyZXQ="[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer   ",
            b"Bearer \t",
            b"Bearer\ttok",
            b"Bearertok",
            b"",
            b"Token tok",
        ] {
            assert_eq!(
                parse(&[value]),
                Err(Rejection::MissingCredentials),
                "{value:?}"
            );
        }
    }

    #[test]
    fn malformed_token_is_invalid() {
        for value in [
            &b"Bearer a b"[..],
            b"Bearer a\tb",
            b"Bearer ==",
            b"Bearer a=b",
            b"Bearer \"tok\"",
            b"Bearer t\xc3\xa9",
            b"Bearer \xff\xfe",
            b"Bearer tok,",
        ] {
            assert_eq!(parse(&[value]), Err(Rejection::InvalidToken), "{value:?}");
        }
    }

    #[test]
    fn syntax_is_checked_apart_from_parsing() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer a b"));
        assert_eq!(token(&headers), Ok(&b"a b"[..]));
        assert_eq!(b64token(b"a b"), Err(Rejection::InvalidToken));
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
        );
        assert_eq!(token(&headers), Ok(&b"\xff"[..]));
        assert_eq!(b64token(b"\xff"), Err(Rejection::InvalidToken));
    }

    #[cfg(feature = "dpop")]
    #[test]
    fn dpop_scheme_tokens() {
        let dpop = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            dpop_token(&headers).map(<[u8]>::to_vec)
        };
        assert_eq!(dpop("DPoP tok"), Ok(b"tok".to_vec()));
        assert_eq!(dpop("dpop   tok \t"), Ok(b"tok".to_vec()));
        for other in ["Bearer tok", "DPoP", "DPoP ", "DPoPtok", "DPo tok"] {
            assert_eq!(dpop(other), Err(Rejection::MissingCredentials), "{other}");
        }
        // And `Bearer` parsing does not take `DPoP`.
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("DPoP tok"));
        assert_eq!(token(&headers), Err(Rejection::MissingCredentials));
    }

    #[test]
    fn several_authorization_headers_are_ambiguous() {
        assert!(matches!(
            parse(&[b"Bearer a", b"Bearer a"]),
            Err(Rejection::InvalidBearerRequest(_))
        ));
        assert!(matches!(
            parse(&[b"Basic x", b"Bearer a"]),
            Err(Rejection::InvalidBearerRequest(_))
        ));
    }

    #[test]
    fn access_token_in_the_query_is_detected() {
        let uri = |s: &str| s.parse::<Uri>().unwrap();
        assert!(token_in_query(&uri("/users/me?access_token=abc")));
        assert!(token_in_query(&uri("/users/me?x=1&access_token")));
        assert!(!token_in_query(&uri("/users/me?x=access_token")));
        assert!(!token_in_query(&uri("/users/me?my_access_token=1")));
        assert!(!token_in_query(&uri("/users/me")));
    }

    #[test]
    fn tokens_over_the_cap_are_invalid() {
        let at_cap = format!("Bearer {}", "a".repeat(MAX_TOKEN_LEN));
        assert_eq!(parse(&[at_cap.as_bytes()]).unwrap().len(), MAX_TOKEN_LEN);
        for len in [MAX_TOKEN_LEN + 1, 64 * 1024] {
            let value = format!("Bearer {}", "a".repeat(len));
            assert_eq!(parse(&[value.as_bytes()]), Err(Rejection::InvalidToken));
        }
        // Trailing whitespace does not count.
        let padded = format!("Bearer {}   ", "a".repeat(MAX_TOKEN_LEN));
        assert!(parse(&[padded.as_bytes()]).is_ok());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_header_value_parses_or_fails_cleanly(value in proptest::collection::vec(any::<u8>(), 0..128)) {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    let mut headers = HeaderMap::new();
                    headers.insert(AUTHORIZATION, value);
                    if let Ok(token) = token(&headers).and_then(b64token) {
                        prop_assert!(is_b64token(token.as_bytes()));
                    }
                }
            }

            #[test]
            fn scheme_check_is_eq_ignore_ascii_case(value in prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..10),
                "[bB@][eE%][aA!][rR2][eE][rR][ \t@`\u{7f}]?[a-z ]{0,3}".prop_map(String::into_bytes),
            ]) {
                // Header values never contain NUL, the one byte the word trick
                // would confuse with a space.
                prop_assume!(!value.contains(&0));
                let expected = value.len() >= 7 && value[..7].eq_ignore_ascii_case(b"bearer ");
                prop_assert_eq!(strip_bearer_scheme(&value).is_some(), expected);
            }

            #[test]
            fn b64tokens_come_back_unchanged(token in "[A-Za-z0-9._~+/-]{1,64}={0,2}", spaces in 1usize..4) {
                let value = format!("Bearer{}{token}", " ".repeat(spaces));
                prop_assert_eq!(parse(&[value.as_bytes()]).unwrap(), token);
            }
        }
    }
}
