//! The request URI a proof's `htu` must name, normalised as RFC 9449 §4.3 asks:
//! without query and fragment, after RFC 3986's syntax-based (§6.2.2) and
//! scheme-based (§6.2.3) normalisation, so that a client writing
//! `HTTPS://Example.COM:443/a/%7euser` and a server seeing `https://example.com/a/~user`
//! agree.

use std::borrow::Cow;
use std::fmt::{self, Write as _};

/// Why a URI cannot be a DPoP `htu` (or the request URI it is compared with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidUri {
    /// Not `http` or `https` (a DPoP proof is for HTTP requests), or no scheme.
    Scheme,
    /// No `//` authority, an empty host, a user-info part (`user@`), or a host
    /// with characters a host cannot have.
    Authority,
    /// A port that is not a number from 0 to 65535.
    Port,
    /// A `%` not followed by two hexadecimal digits.
    PercentEncoding,
}

impl fmt::Display for InvalidUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidUri::Scheme => "the URI's scheme is not http or https",
            InvalidUri::Authority => "the URI has no valid host, or has user information",
            InvalidUri::Port => "the URI's port is not a number from 0 to 65535",
            InvalidUri::PercentEncoding => "the URI has a % not followed by two hexadecimal digits",
        })
    }
}

impl std::error::Error for InvalidUri {}

/// An absolute `http`/`https` URI without query or fragment, normalised: the form
/// in which a proof's `htu` and the request's URI are compared.
///
/// Normalisation (RFC 3986 §6.2.2 and §6.2.3, as RFC 9449 §4.3 recommends):
/// scheme and host in lower case; the default port (80 for `http`, 443 for
/// `https`) and an empty port dropped, other ports without leading zeros; an empty
/// path is `/`; percent-encoded unreserved characters (`%7E`) decoded, other
/// percent-encodings with upper-case hexadecimal digits; dot segments (`/./`,
/// `/../`) removed; the query and fragment dropped. Path bytes that a URI cannot
/// hold literally (a space, `|`, non-ASCII) are percent-encoded, so a server that
/// sees them raw still matches a client that encoded them.
///
/// ```
/// use tower_oauth2_password::dpop::NormalizedUri;
///
/// let uri = NormalizedUri::parse("HTTPS://Server.Example.COM:443/%7ealice/./token?x=1#f")?;
/// assert_eq!(uri.as_str(), "https://server.example.com/~alice/token");
/// # Ok::<(), tower_oauth2_password::dpop::InvalidUri>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct NormalizedUri(String);

impl NormalizedUri {
    /// Normalises `uri`: an absolute `http` or `https` URI (query and fragment
    /// allowed, and dropped).
    pub fn parse(uri: &str) -> Result<Self, InvalidUri> {
        normalize(uri).map(NormalizedUri)
    }

    /// The normalised URI.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `uri` normalises to `normal`, a URI in normal form (one that
/// [`is_normal`] or [`NormalizedUri::parse`] vouches for).
///
/// The fast path: a `uri` whose bytes before its query or fragment are `normal`
/// normalises to it, as normalising is idempotent (tested below), so it is not
/// normalised. Any other `uri` is normalised and compared, and refused exactly
/// as [`NormalizedUri::parse`] refuses it.
pub(crate) fn matches(normal: &str, uri: &str) -> Result<bool, InvalidUri> {
    if cut_query(uri).as_bytes() == normal.as_bytes() {
        return Ok(true);
    }
    Ok(normalize(uri)? == normal)
}

/// Whether `uri` is certainly its own normal form (`normalize(uri) == Ok(uri)`,
/// tested below): lower-case `http`/`https`, a lower-case host of unreserved and
/// sub-delimiter characters only, no port or a non-default one without leading
/// zeros, a non-empty path of literal characters without dot segments, no
/// query or fragment. Conservative: `false` only means "normalise it", as an
/// IP literal, a `%`, an upper-case host or a default port do.
pub(crate) fn is_normal(uri: &str) -> bool {
    let (rest, default_port) = if let Some(rest) = uri.strip_prefix("https://") {
        (rest, "443")
    } else if let Some(rest) = uri.strip_prefix("http://") {
        (rest, "80")
    } else {
        return false;
    };
    let Some(slash) = rest.bytes().position(|b| b == b'/') else {
        return false;
    };
    let (authority, path) = rest.split_at(slash);
    let (host, port) = match split_once_byte(authority, b':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if host.is_empty() || !host.bytes().all(|b| NORMAL[usize::from(b)] & HOST != 0) {
        return false;
    }
    if let Some(port) = port {
        let digits = port.as_bytes();
        if digits.is_empty()
            || digits.len() > 5
            || digits[0] == b'0'
            || !digits.iter().all(u8::is_ascii_digit)
            || port.parse::<u16>().is_err()
            || port == default_port
        {
            return false;
        }
    }
    // One pass over the path's bytes; only a `/.` makes its segments worth
    // splitting to look for `.` and `..`.
    let (mut literal, mut dot_after_slash, mut after_slash) = (true, false, false);
    for b in path.bytes() {
        literal &= NORMAL[usize::from(b)] & PATH != 0;
        dot_after_slash |= after_slash && b == b'.';
        after_slash = b == b'/';
    }
    literal
        && !(dot_after_slash
            && path[1..]
                .split('/')
                .any(|segment| segment == "." || segment == ".."))
}

/// [`NORMAL`]'s bit for a byte a host in normal form may hold: lower-case
/// unreserved characters and sub-delimiters.
const HOST: u8 = 1;
/// [`NORMAL`]'s bit for a byte a path holds literally (RFC 3986 `pchar` without
/// `%`, and `/`).
const PATH: u8 = 2;

/// What each byte may be in a URI that [`is_normal`] vouches for: one lookup per
/// byte (the classifying closures took ~20 instructions per byte of every
/// request's URL).
const NORMAL: [u8; 256] = {
    let mut classes = [0; 256];
    let mut b = 0u8;
    loop {
        let host = (is_unreserved(b) && !b.is_ascii_uppercase()) || is_sub_delim(b);
        let path = is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/');
        classes[b as usize] = if host { HOST } else { 0 } | if path { PATH } else { 0 };
        if b == u8::MAX {
            break classes;
        }
        b += 1;
    }
};

/// `uri` without its query and fragment (RFC 9449 §4.3, check 9: not compared).
#[inline]
fn cut_query(uri: &str) -> &str {
    let end = uri
        .bytes()
        .position(|b| b == b'?' || b == b'#')
        .unwrap_or(uri.len());
    &uri[..end]
}

impl fmt::Display for NormalizedUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NormalizedUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NormalizedUri({})", self.0)
    }
}

fn normalize(uri: &str) -> Result<String, InvalidUri> {
    // The query and fragment are not compared (RFC 9449 §4.3, check 9).
    let uri = cut_query(uri);

    let (scheme, rest) = split_once_byte(uri, b':').ok_or(InvalidUri::Scheme)?;
    let (scheme, default_port) = if scheme.eq_ignore_ascii_case("https") {
        ("https", 443)
    } else if scheme.eq_ignore_ascii_case("http") {
        ("http", 80)
    } else {
        return Err(InvalidUri::Scheme);
    };
    let rest = rest.strip_prefix("//").ok_or(InvalidUri::Authority)?;
    let (authority, path) =
        rest.split_at(rest.bytes().position(|b| b == b'/').unwrap_or(rest.len()));
    if authority.bytes().any(|b| b == b'@') {
        return Err(InvalidUri::Authority);
    }

    let mut out = String::with_capacity(uri.len() + 1);
    out.push_str(scheme);
    out.push_str("://");

    // host [ ":" port ]; an IP literal is bracketed and may hold colons.
    let port = if authority.starts_with('[') {
        let close = authority.find(']').ok_or(InvalidUri::Authority)?;
        let (literal, after) = authority.split_at(close + 1);
        let inner = &literal[1..literal.len() - 1];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.'))
        {
            return Err(InvalidUri::Authority);
        }
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(InvalidUri::Authority)?),
        };
        out.push('[');
        out.push_str(&inner.to_ascii_lowercase());
        out.push(']');
        port
    } else {
        let (host, port) = match split_once_byte(authority, b':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err(InvalidUri::Authority);
        }
        let start = out.len();
        // A host of such characters only (the usual one) is copied in lower case.
        let literal = |b: u8| is_unreserved(b) || is_sub_delim(b);
        if host.bytes().all(literal) {
            out.push_str(host);
            out[start..].make_ascii_lowercase();
        } else {
            for part in percent_parts(host) {
                match part? {
                    Part::Byte(b) if literal(b) => out.push(char::from(b.to_ascii_lowercase())),
                    Part::Byte(_) => return Err(InvalidUri::Authority),
                    Part::Encoded(b) => push_encoded(&mut out, b, true),
                }
            }
        }
        if out.len() == start {
            return Err(InvalidUri::Authority);
        }
        port
    };

    match port {
        None | Some("") => {}
        Some(digits) => {
            if !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidUri::Port);
            }
            let trimmed = digits.trim_start_matches('0');
            let number: u16 = match trimmed {
                "" => 0,
                _ if trimmed.len() > 5 => return Err(InvalidUri::Port),
                _ => trimmed.parse().map_err(|_| InvalidUri::Port)?,
            };
            if number != default_port {
                // Writing to a String cannot fail.
                let _ = write!(out, ":{number}");
            }
        }
    }

    // The path: percent-encoding normalised first, so that `%2E%2E` is a dot
    // segment like `..`, then dot segments removed (RFC 3986 §5.2.4).
    // A path of such characters only (the usual one) is its own normal form.
    let literal = |b: u8| is_unreserved(b) || is_sub_delim(b) || matches!(b, b':' | b'@' | b'/');
    let normal = if path.bytes().all(literal) {
        Cow::Borrowed(path)
    } else {
        let mut normal = String::with_capacity(path.len() + 1);
        for part in percent_parts(path) {
            match part? {
                Part::Byte(b) if literal(b) => normal.push(char::from(b)),
                Part::Byte(b) | Part::Encoded(b) => push_encoded(&mut normal, b, false),
            }
        }
        Cow::Owned(normal)
    };
    let path = remove_dot_segments(&normal);
    if path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&path);
    }
    Ok(out)
}

/// `text` before and after the first `byte` (ASCII): `str::split_once` without
/// its pattern machinery, for the few bytes of a scheme or an authority.
fn split_once_byte(text: &str, byte: u8) -> Option<(&str, &str)> {
    let at = text.bytes().position(|b| b == byte)?;
    Some((&text[..at], &text[at + 1..]))
}

/// One byte of a URI component: literal, or decoded from `%XX`.
enum Part {
    Byte(u8),
    Encoded(u8),
}

/// The bytes of `text`, with `%XX` decoded (and marked as such).
fn percent_parts(text: &str) -> impl Iterator<Item = Result<Part, InvalidUri>> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        if b != b'%' {
            i += 1;
            return Some(Ok(Part::Byte(b)));
        }
        let hex = |at: usize| bytes.get(at).and_then(|&h| char::from(h).to_digit(16));
        let decoded = match (hex(i + 1), hex(i + 2)) {
            (Some(high), Some(low)) => Ok(Part::Encoded((high * 16 + low) as u8)),
            _ => Err(InvalidUri::PercentEncoding),
        };
        // After an error the caller stops; skip to the end so no more is read.
        i = if decoded.is_ok() { i + 3 } else { bytes.len() };
        Some(decoded)
    })
}

/// Appends a decoded byte: itself when unreserved (RFC 3986 §6.2.2.2), `%XX` with
/// upper-case digits otherwise (§6.2.2.1). A host's letters are lower case.
fn push_encoded(out: &mut String, b: u8, host: bool) {
    if is_unreserved(b) {
        out.push(char::from(if host { b.to_ascii_lowercase() } else { b }));
    } else {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// RFC 3986 §5.2.4 on an absolute path (or an empty one).
fn remove_dot_segments(path: &str) -> Cow<'_, str> {
    let mut segments: Vec<&str> = Vec::new();
    // Split after the leading slash: "/a/b/" is ["a", "b", ""].
    let Some(rest) = path.strip_prefix('/') else {
        return Cow::Borrowed(path);
    };
    // Without a dot segment the path is rebuilt as it was: skip the work.
    if !rest
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Cow::Borrowed(path);
    }
    let parts: Vec<&str> = rest.split('/').collect();
    let last = parts.len() - 1;
    for (i, segment) in parts.into_iter().enumerate() {
        match segment {
            "." => {
                if i == last {
                    segments.push("");
                }
            }
            ".." => {
                segments.pop();
                if i == last {
                    segments.push("");
                }
            }
            _ => segments.push(segment),
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in segments {
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(uri: &str) -> Result<String, InvalidUri> {
        NormalizedUri::parse(uri).map(|uri| uri.0)
    }

    fn assert_normalises(cases: &[(&str, &str)]) {
        for (input, expected) in cases {
            assert_eq!(norm(input).as_deref(), Ok(*expected), "{input}");
        }
    }

    #[test]
    fn normalises_case_ports_empty_path_query_and_fragment() {
        assert_normalises(&[
            (
                "https://server.example.com/token",
                "https://server.example.com/token",
            ),
            (
                "HTTPS://Server.Example.COM/token",
                "https://server.example.com/token",
            ),
            (
                "https://server.example.com:443/token",
                "https://server.example.com/token",
            ),
            (
                "http://server.example.com:80/token",
                "http://server.example.com/token",
            ),
            (
                "http://server.example.com:443/token",
                "http://server.example.com:443/token",
            ),
            (
                "https://server.example.com:/token",
                "https://server.example.com/token",
            ),
            (
                "https://server.example.com:08443/token",
                "https://server.example.com:8443/token",
            ),
            ("https://server.example.com", "https://server.example.com/"),
            (
                "https://server.example.com?q",
                "https://server.example.com/",
            ),
            (
                "https://server.example.com/token?a=b#c",
                "https://server.example.com/token",
            ),
            (
                "https://server.example.com/token#c?d",
                "https://server.example.com/token",
            ),
            ("https://[2001:DB8::1]:443/x", "https://[2001:db8::1]/x"),
            ("https://[::1]:8443/x", "https://[::1]:8443/x"),
            ("https://127.0.0.1:8080", "https://127.0.0.1:8080/"),
        ]);
    }

    #[test]
    fn normalises_percent_encoding_and_dot_segments() {
        assert_normalises(&[
            ("https://a.example/%7euser", "https://a.example/~user"),
            ("https://a.example/%7Euser", "https://a.example/~user"),
            ("https://a.example/a%2fb", "https://a.example/a%2Fb"),
            ("https://a.example/%41%42", "https://a.example/AB"),
            ("https://a.example/%e2%82%ac", "https://a.example/%E2%82%AC"),
            ("https://a.example/a b|c", "https://a.example/a%20b%7Cc"),
            ("https://a.example/é", "https://a.example/%C3%A9"),
            ("https://a.example/a/b/c/./../../g", "https://a.example/a/g"),
            ("https://a.example/a/%2E%2E/b", "https://a.example/b"),
            ("https://a.example/..", "https://a.example/"),
            ("https://a.example/a/..", "https://a.example/"),
            ("https://a.example/a/.", "https://a.example/a/"),
            ("https://a.example/a/b/", "https://a.example/a/b/"),
            ("https://a.example//a", "https://a.example//a"),
            ("https://%61.EXAMPLE/", "https://a.example/"),
            ("https://a%2dB.example/", "https://a-b.example/"),
        ]);
    }

    #[test]
    fn refuses_what_is_not_an_absolute_http_uri() {
        for (input, error) in [
            ("/token", InvalidUri::Scheme),
            ("server.example.com/token", InvalidUri::Scheme),
            ("ftp://server.example.com/token", InvalidUri::Scheme),
            ("javascript:alert(1)", InvalidUri::Scheme),
            ("https:/server.example.com/token", InvalidUri::Authority),
            ("https:///token", InvalidUri::Authority),
            ("https://:443/token", InvalidUri::Authority),
            (
                "https://user@server.example.com/token",
                InvalidUri::Authority,
            ),
            ("https://user:pw@server.example.com/", InvalidUri::Authority),
            ("https://a b.example/", InvalidUri::Authority),
            ("https://[zz]/", InvalidUri::Authority),
            ("https://[::1/", InvalidUri::Authority),
            ("https://[::1]x/", InvalidUri::Authority),
            ("https://a.example:x/", InvalidUri::Port),
            ("https://a.example:65536/", InvalidUri::Port),
            ("https://a.example:+1/", InvalidUri::Port),
            ("https://a.example:1:2/", InvalidUri::Port),
            ("https://a.example/%", InvalidUri::PercentEncoding),
            ("https://a.example/%4", InvalidUri::PercentEncoding),
            ("https://a.example/%G1", InvalidUri::PercentEncoding),
            ("https://a%zz.example/", InvalidUri::PercentEncoding),
        ] {
            assert_eq!(norm(input), Err(error), "{input}");
        }
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for input in [
            "HTTPS://A.example:443/%7e/a%2fb/./c/../d?x",
            "http://[::1]:80/é%20",
            "https://a.example:0/",
        ] {
            let once = norm(input).unwrap();
            assert_eq!(norm(&once).unwrap(), once, "{input}");
        }
    }

    /// The fast path of `matches` answers as normalising both would, and refuses
    /// what `parse` refuses (an `htu` that is not an absolute http(s) URI).
    #[test]
    fn matches_is_parse_then_compare() {
        for normal in [
            "https://a.example/",
            "http://a.example:8080/x/y;a=b",
            "https://a-b.example/A/~b//c/",
            "https://a.example/.well-known/x/..y/.z",
        ] {
            assert!(is_normal(normal), "{normal}");
            assert_eq!(norm(normal).as_deref(), Ok(normal));
        }
        for not_normal in [
            "https://a.example",
            "https://A.example/",
            "HTTPS://a.example/",
            "https://a.example:443/",
            "http://a.example:80/",
            "https://a.example:08080/",
            "https://a.example:/",
            "https://a.example:65536/",
            "https://[::1]/",
            "https://a.example/%7e",
            "https://a.example/a/../b",
            "https://a.example/.",
            "https://a.example/a/..",
            "https://a.example/./a",
            "https://a.example/a b",
            "https://a.example/?q",
            "https://u@a.example/",
            "ftp://a.example/",
        ] {
            assert!(!is_normal(not_normal), "{not_normal}");
        }
        let target = NormalizedUri::parse("https://api.example/a/b").unwrap();
        for (htu, want) in [
            ("https://api.example/a/b", Ok(true)),
            ("https://api.example/a/b?q=1#f", Ok(true)),
            ("https://api.example/a/b#", Ok(true)),
            ("HTTPS://API.example:443/a/./b", Ok(true)),
            ("https://api.example/a/b/", Ok(false)),
            ("https://api.example/a", Ok(false)),
            ("https://api.example/a/b/c", Ok(false)),
            ("http://api.example/a/b", Ok(false)),
            ("ftp://api.example/a/b", Err(InvalidUri::Scheme)),
            ("https:/api.example/a/b", Err(InvalidUri::Authority)),
            ("https://u@api.example/a/b", Err(InvalidUri::Authority)),
            ("https://api.example:x/a/b", Err(InvalidUri::Port)),
            (
                "https://api.example/a/%zz",
                Err(InvalidUri::PercentEncoding),
            ),
            ("", Err(InvalidUri::Scheme)),
            ("?https://api.example/a/b", Err(InvalidUri::Scheme)),
        ] {
            assert_eq!(matches(target.as_str(), htu), want, "{htu}");
            let slow = NormalizedUri::parse(htu).map(|uri| uri == target);
            assert_eq!(slow, want, "{htu}");
        }
    }

    mod properties {
        use proptest::prelude::*;

        use super::{norm, NormalizedUri};

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2048, failure_persistence: None, ..ProptestConfig::default() })]

            /// The guard normalises the request's URI and the proof's `htu` alike:
            /// a normalised URI must normalise to itself, or two spellings of one
            /// URI could compare unequal.
            #[test]
            fn normalising_is_idempotent(
                scheme in prop::sample::select(vec!["https", "HTTP", "Https"]),
                host in prop::sample::select(vec!["a.example", "A.EXAMPLE", "%61.Example", "x%2d%2E", "[::1]", "[2001:DB8::a]", "127.0.0.1"]),
                port in prop::sample::select(vec!["", ":", ":443", ":80", ":0080", ":8443", ":00"]),
                path in prop::collection::vec(
                    prop::sample::select(vec!["/", ".", "..", "%2e", "%2E", "%7e", "%41", "%2f", "%25", "a", "B", "~", " ", "|", "é", ":", "@", ";="]),
                    0..12,
                ),
                rest in prop::sample::select(vec!["", "?", "?q=/../", "#", "#f/."]),
            ) {
                // An empty path, or one that starts with `/` (else it is the authority's).
                let path = match path.concat() {
                    path if path.is_empty() => path,
                    path => format!("/{path}"),
                };
                let uri = format!("{scheme}://{host}{port}{path}{rest}");
                let once = norm(&uri);
                prop_assert!(once.is_ok(), "{uri}: {once:?}");
                let once = once.unwrap();
                prop_assert_eq!(norm(&once), Ok(once.clone()), "{}", uri);
            }

            /// What `is_normal` vouches for is its own normal form, for any text
            /// and for URIs that are nearly normal.
            #[test]
            fn is_normal_only_for_normal_forms(
                scheme in prop::sample::select(vec!["https://", "http://", "HTTP://", "https:/", "ftp://"]),
                host in prop::sample::select(vec!["a.example", "A.example", "%61", "x-y_z~!$&'()*+,;=", "", "[::1]", "u@h", "h?"]),
                port in prop::sample::select(vec!["", ":", ":443", ":80", ":0", ":08443", ":8443", ":65535", ":65536", ":123456", ":x"]),
                path in prop::collection::vec(
                    prop::sample::select(vec!["/", ".", "..", "%2e", "%7e", "a", "B", "~", " ", "|", "é", ":", "@", "?", "#", ";="]),
                    0..8,
                ),
                other in "[a-zA-Z:/.%?#@\\[\\]0-9]{0,30}",
            ) {
                let uri = format!("{scheme}{host}{port}{}", path.concat());
                for uri in [uri.as_str(), other.as_str()] {
                    if super::super::is_normal(uri) {
                        prop_assert_eq!(norm(uri), Ok(uri.to_owned()), "{}", uri);
                    }
                }
            }

            /// `matches` (with its byte-for-byte fast path) agrees with parsing
            /// the `htu` and comparing, for any text, including the target's own
            /// bytes with a byte changed, cut or appended.
            #[test]
            fn matches_agrees_with_parse(
                target in prop::sample::select(vec!["https://a.example/", "http://a.example:8080/x/y", "https://[::1]/%7Cb", "https://a.example/a%20b"]),
                edit in prop::sample::select(vec![0usize, 1, 2, 3]),
                at in 0usize..40,
                byte in prop::sample::select(b"/.%:?#@[]aA0 ~".to_vec()),
                other in "[a-zA-Z:/.%?#@\\[\\]0-9]{0,30}",
            ) {
                let target = NormalizedUri::parse(target).unwrap();
                let mut htu = target.as_str().to_owned();
                let at = at.min(htu.len());
                match edit {
                    0 => htu.insert(at, char::from(byte)),
                    1 => { htu.truncate(at); }
                    2 => { htu.remove(at.min(htu.len() - 1)); }
                    _ => htu = other,
                }
                let slow = NormalizedUri::parse(&htu).map(|uri| uri == target);
                prop_assert_eq!(super::super::matches(target.as_str(), &htu), slow, "{}", htu);
            }
        }
    }
}
