//! The password-grant form (RFC 6749 §4.3.2): `application/x-www-form-urlencoded`
//! or, as FastAPI also accepts it, `multipart/form-data`.

use std::convert::Infallible;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::HeaderMap;

use zeroize::{Zeroize, Zeroizing};

use crate::http::rejection::Rejection;
use crate::scope::dedup_in_order;
use crate::token::grant::TokenTypeHint;
use crate::token::grant::MAX_TOKEN_LEN;

/// Longest accepted `username`, in bytes.
pub(crate) const MAX_USERNAME_LEN: usize = 256;
/// Longest accepted `password`, in bytes. Generous for passphrases and password
/// managers, and bounds the work handed to the password hasher.
pub(crate) const MAX_PASSWORD_LEN: usize = 1024;
/// Most scopes one token request may name (repeats included).
pub(crate) const MAX_SCOPES: usize = 64;
/// Longest accepted scope, in bytes.
pub(crate) const MAX_SCOPE_LEN: usize = 128;

/// A password as the token endpoint holds it: wiped from memory when dropped.
pub(crate) type Password = Zeroizing<String>;

/// A validated token request. Deliberately not `Debug`: it holds a secret.
pub(crate) enum TokenRequest {
    /// `grant_type=password` (or absent, unless strict).
    Password(PasswordForm),
    /// `grant_type=refresh_token` (RFC 6749 §6).
    Refresh {
        refresh_token: String,
        /// `scope`, as for a password grant: a narrower set than the login's.
        scopes: Vec<String>,
    },
}

/// A validated revocation request (RFC 7009 §2.1). Not `Debug`: it holds a token.
pub(crate) struct RevocationForm {
    pub(crate) token: String,
    /// `None` for an absent or unknown hint (the RFC lets servers ignore those).
    pub(crate) hint: Option<TokenTypeHint>,
}

/// A validated password-grant request. Deliberately not `Debug`: it holds a password.
pub(crate) struct PasswordForm {
    pub(crate) username: String,
    pub(crate) password: Password,
    /// `scope`, split on whitespace, in request order, without repeats.
    pub(crate) scopes: Vec<String>,
}

/// Which `grant_type`s the token endpoint takes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct GrantTypes {
    /// `grant_type` must be present (RFC 6749); else a form without one is a
    /// password grant (FastAPI's tutorial form has no `grant_type`).
    pub(crate) required: bool,
    /// `refresh_token` is served.
    pub(crate) refresh: bool,
}

/// The two body encodings the token endpoint understands.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Encoding {
    UrlEncoded,
    Multipart {
        boundary: String,
    },
    /// No `Content-Type`: an empty body is read as an empty form, so that the
    /// answer names the missing field (a 400, not a 415); anything else is
    /// `UnsupportedMediaType`.
    Unstated,
}

impl Encoding {
    /// Reads `Content-Type`; anything but a form (or none) is
    /// `UnsupportedMediaType`.
    pub(crate) fn of(headers: &HeaderMap) -> Result<Self, Rejection> {
        let Some(content_type) = headers.get(CONTENT_TYPE) else {
            return Ok(Self::Unstated);
        };
        let content_type = content_type
            .to_str()
            .map_err(|_| Rejection::UnsupportedMediaType)?;
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
            Ok(Self::UrlEncoded)
        } else if media_type.eq_ignore_ascii_case("multipart/form-data") {
            let boundary = multer::parse_boundary(content_type).map_err(|_| {
                Rejection::InvalidRequest("multipart/form-data without a valid boundary".into())
            })?;
            Ok(Self::Multipart { boundary })
        } else {
            Err(Rejection::UnsupportedMediaType)
        }
    }

    /// Parses a complete body into a token request.
    pub(crate) async fn parse(
        self,
        body: Bytes,
        grants: GrantTypes,
    ) -> Result<TokenRequest, Rejection> {
        self.fields(body).await?.finish(grants)
    }

    /// Parses a complete body into a revocation request.
    pub(crate) async fn parse_revocation(self, body: Bytes) -> Result<RevocationForm, Rejection> {
        self.fields(body).await?.finish_revocation()
    }

    async fn fields(self, body: Bytes) -> Result<Fields, Rejection> {
        match self {
            Self::UrlEncoded => parse_urlencoded(&body),
            Self::Multipart { boundary } => parse_multipart(body, boundary).await,
            Self::Unstated if body.is_empty() => parse_urlencoded(&body),
            Self::Unstated => Err(Rejection::UnsupportedMediaType),
        }
    }
}

/// The fields we read, as they arrived. Unknown fields are ignored (RFC 6749 §3.2).
#[derive(Default)]
struct Fields {
    username: Option<String>,
    password: Option<String>,
    scope: Option<String>,
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
    token_type_hint: Option<String>,
}

impl Fields {
    /// The field called `name` and its name as a `'static` string (what details
    /// show: never the client's text), or `None` for a field we do not read.
    fn slot(&mut self, name: &str) -> Option<(&'static str, &mut Option<String>)> {
        Some(match name {
            "username" => ("username", &mut self.username),
            "password" => ("password", &mut self.password),
            "scope" => ("scope", &mut self.scope),
            "grant_type" => ("grant_type", &mut self.grant_type),
            "client_id" => ("client_id", &mut self.client_id),
            "client_secret" => ("client_secret", &mut self.client_secret),
            "refresh_token" => ("refresh_token", &mut self.refresh_token),
            "token" => ("token", &mut self.token),
            "token_type_hint" => ("token_type_hint", &mut self.token_type_hint),
            _ => return None,
        })
    }

    /// Fills a known field once; RFC 6749 §3.2: parameters must not be included
    /// more than once.
    fn fill(name: &'static str, slot: &mut Option<String>, value: String) -> Result<(), Rejection> {
        if slot.is_some() {
            return Err(Rejection::InvalidRequest(
                format!("Duplicate form field: {name}").into(),
            ));
        }
        *slot = Some(value);
        Ok(())
    }

    fn finish(self, grants: GrantTypes) -> Result<TokenRequest, Rejection> {
        let unsupported = Rejection::UnsupportedGrantType {
            refresh: grants.refresh,
        };
        // An empty optional field is the same as an absent one (HTML forms send them).
        match self.grant_type.as_deref().filter(|g| !g.is_empty()) {
            Some("password") => {}
            Some("refresh_token") if grants.refresh => {
                return Ok(TokenRequest::Refresh {
                    refresh_token: required(self.refresh_token, "refresh_token", MAX_TOKEN_LEN)?,
                    scopes: scopes(self.scope.as_deref().unwrap_or_default())?,
                })
            }
            Some(_) => return Err(unsupported),
            None if grants.required => {
                return Err(Rejection::InvalidRequest(
                    "Missing form field: grant_type (must be \"password\")".into(),
                ))
            }
            None => {}
        }
        let username = required(self.username, "username", MAX_USERNAME_LEN)?;
        // Before any store is asked: PostgreSQL refuses NUL in text (a 503 and an
        // error log per request), and no store should see line breaks or escapes.
        if username.chars().any(char::is_control) {
            return Err(Rejection::InvalidRequest(
                "Form field username must not contain control characters".into(),
            ));
        }
        let password = Zeroizing::new(required(self.password, "password", MAX_PASSWORD_LEN)?);
        let scopes = scopes(self.scope.as_deref().unwrap_or_default())?;
        // `client_id` / `client_secret` are accepted (FastAPI's form has them) but
        // this crate does not authenticate clients: it serves first-party apps.
        Ok(TokenRequest::Password(PasswordForm {
            username,
            password,
            scopes,
        }))
    }

    fn finish_revocation(self) -> Result<RevocationForm, Rejection> {
        let hint = match self.token_type_hint.as_deref() {
            Some("access_token") => Some(TokenTypeHint::AccessToken),
            Some("refresh_token") => Some(TokenTypeHint::RefreshToken),
            _ => None,
        };
        Ok(RevocationForm {
            token: required(self.token, "token", MAX_TOKEN_LEN)?,
            hint,
        })
    }
}

/// `scope`, split on whitespace, without repeats. Bounded before anything else
/// happens: this runs before the password is checked, for anyone.
fn scopes(scope: &str) -> Result<Vec<String>, Rejection> {
    let mut requested: Vec<&str> = Vec::new();
    for scope in scope.split_whitespace() {
        // Neither error shows the scope: it is the client's text.
        if requested.len() == MAX_SCOPES {
            return Err(Rejection::InvalidScope(
                format!("Too many scopes requested (at most {MAX_SCOPES})").into(),
            ));
        }
        if scope.len() > MAX_SCOPE_LEN {
            return Err(Rejection::InvalidScope(
                format!("Scope too long (at most {MAX_SCOPE_LEN} bytes)").into(),
            ));
        }
        requested.push(scope);
    }
    Ok(dedup_in_order(requested)
        .into_iter()
        .map(str::to_owned)
        .collect())
}

fn required(
    value: Option<String>,
    name: &'static str,
    max_len: usize,
) -> Result<String, Rejection> {
    match value {
        Some(value) if value.len() > max_len => Err(Rejection::InvalidRequest(
            format!("Form field too long: {name} (at most {max_len} bytes)").into(),
        )),
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(Rejection::InvalidRequest(
            format!("Missing form field: {name}").into(),
        )),
    }
}

/// `application/x-www-form-urlencoded`, strictly: a field that does not decode to
/// UTF-8 is rejected rather than silently altered (two different passwords must never
/// decode to the same string).
fn parse_urlencoded(body: &[u8]) -> Result<Fields, Rejection> {
    let mut fields = Fields::default();
    for pair in body.split(|&b| b == b'&').filter(|pair| !pair.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (&pair[..eq], &pair[eq + 1..]),
            None => (pair, &b""[..]),
        };
        // Unknown fields are skipped undecoded: their values may be anything.
        if let Some((name, slot)) = fields.slot(&decode(name)?) {
            Fields::fill(name, slot, decode(value)?)?;
        }
    }
    Ok(fields)
}

/// Decodes a field; the copies it makes on the way (of a password, perhaps) are
/// wiped, and the result is the last one.
fn decode(raw: &[u8]) -> Result<String, Rejection> {
    let plus_as_space: Zeroizing<Vec<u8>> = Zeroizing::new(
        raw.iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect(),
    );
    let bytes: Vec<u8> = percent_encoding::percent_decode(&plus_as_space).collect();
    String::from_utf8(bytes).map_err(|error| {
        error.into_bytes().zeroize();
        not_utf8()
    })
}

fn not_utf8() -> Rejection {
    Rejection::InvalidRequest("Form field is not valid UTF-8".into())
}

async fn parse_multipart(body: Bytes, boundary: String) -> Result<Fields, Rejection> {
    let malformed = |_| Rejection::InvalidRequest("Malformed multipart/form-data body".into());
    let stream = futures_util::stream::iter([Ok::<_, Infallible>(body)]);
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Fields::default();
    while let Some(field) = multipart.next_field().await.map_err(malformed)? {
        // Parts we do not read (unnamed, unknown, files or text) are skipped
        // unread, as unknown urlencoded fields are.
        let Some((name, slot)) = field.name().and_then(|name| fields.slot(name)) else {
            continue;
        };
        if field.file_name().is_some() {
            return Err(Rejection::InvalidRequest(
                format!("Form field {name} must be text, not a file").into(),
            ));
        }
        let data = field.bytes().await.map_err(malformed)?;
        let value = String::from_utf8(data.into()).map_err(|_| not_utf8())?;
        Fields::fill(name, slot, value)?;
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urlencoded(body: &[u8]) -> Result<PasswordForm, Rejection> {
        parse_urlencoded(body)?
            .finish(GrantTypes::default())
            .map(password_grant)
    }

    fn password_grant(request: TokenRequest) -> PasswordForm {
        match request {
            TokenRequest::Password(form) => form,
            TokenRequest::Refresh { .. } => panic!("expected a password grant"),
        }
    }

    #[test]
    fn refresh_grant() {
        let grants = GrantTypes {
            required: true,
            refresh: true,
        };
        let form = b"grant_type=refresh_token&refresh_token=abc&scope=a+b+a";
        assert_eq!(
            parse_urlencoded(form)
                .unwrap()
                .finish(GrantTypes::default())
                .err(),
            Some(Rejection::UnsupportedGrantType { refresh: false })
        );
        let request = parse_urlencoded(form).unwrap().finish(grants).unwrap();
        let TokenRequest::Refresh {
            refresh_token,
            scopes,
        } = request
        else {
            panic!("expected a refresh grant");
        };
        assert_eq!(
            (refresh_token.as_str(), scopes),
            ("abc", vec!["a".into(), "b".into()])
        );
        let missing = parse_urlencoded(b"grant_type=refresh_token&username=a&password=b")
            .unwrap()
            .finish(grants);
        assert!(detail(missing.err().unwrap()).contains("refresh_token"));
    }

    #[test]
    fn revocation_form() {
        let form = parse_urlencoded(b"token=abc&token_type_hint=refresh_token")
            .unwrap()
            .finish_revocation()
            .unwrap();
        assert_eq!(form.token, "abc");
        assert_eq!(form.hint, Some(TokenTypeHint::RefreshToken));
        // Unknown hints are ignored (RFC 7009 §2.1 lets the server search anyway).
        let form = parse_urlencoded(b"token=abc&token_type_hint=id_token")
            .unwrap()
            .finish_revocation()
            .unwrap();
        assert_eq!(form.hint, None);
        let missing = parse_urlencoded(b"token_type_hint=access_token").unwrap();
        assert!(detail(missing.finish_revocation().err().unwrap()).contains("token"));
        let long = format!("token={}", "a".repeat(MAX_TOKEN_LEN + 1));
        let long = parse_urlencoded(long.as_bytes()).unwrap();
        assert!(detail(long.finish_revocation().err().unwrap()).contains("too long"));
    }

    fn detail(rejection: Rejection) -> String {
        match rejection {
            Rejection::InvalidRequest(detail) => detail.into_owned(),
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn minimal_form() {
        let form = urlencoded(b"username=johndoe&password=secret").unwrap();
        assert_eq!(
            (form.username.as_str(), form.password.as_str()),
            ("johndoe", "secret")
        );
        assert!(form.scopes.is_empty());
    }

    #[test]
    fn percent_encoding_and_plus_as_space() {
        let form = urlencoded(b"username=j%C3%B6hn+doe&password=a%2Bb%26c%3Dd+%25").unwrap();
        assert_eq!(form.username, "jöhn doe");
        assert_eq!(*form.password, "a+b&c=d %");
    }

    #[test]
    fn encoded_field_names_are_decoded() {
        let form = urlencoded(b"user%6Eame=a&pass+word=x&password=b").unwrap();
        assert_eq!((form.username.as_str(), form.password.as_str()), ("a", "b"));
    }

    #[test]
    fn duplicate_fields_are_rejected() {
        for body in [
            &b"username=a&username=a&password=b"[..],
            b"username=a&password=b&password=c",
            b"username=a&password=b&grant_type=password&grant_type=password",
            b"username=a&password=b&scope=x&scope=y",
            b"username=a&password=b&user%6Eame=c",
        ] {
            let detail = detail(urlencoded(body).err().unwrap());
            assert!(detail.starts_with("Duplicate form field"), "{detail}");
        }
    }

    #[test]
    fn missing_or_empty_required_fields_name_the_field() {
        assert_eq!(
            detail(urlencoded(b"password=b").err().unwrap()),
            "Missing form field: username"
        );
        assert_eq!(
            detail(urlencoded(b"username=&password=b").err().unwrap()),
            "Missing form field: username"
        );
        assert_eq!(
            detail(urlencoded(b"username=a").err().unwrap()),
            "Missing form field: password"
        );
        assert_eq!(
            detail(urlencoded(b"username=a&password").err().unwrap()),
            "Missing form field: password"
        );
        assert_eq!(
            detail(urlencoded(b"").err().unwrap()),
            "Missing form field: username"
        );
        assert_eq!(
            detail(urlencoded(b"&&&").err().unwrap()),
            "Missing form field: username"
        );
    }

    #[test]
    fn non_utf8_is_rejected_not_replaced() {
        assert_eq!(
            detail(urlencoded(b"username=a&password=%FF%FE").err().unwrap()),
            "Form field is not valid UTF-8"
        );
        assert!(urlencoded(b"username=\xff&password=b").is_err());
    }

    #[test]
    fn very_long_values_are_rejected_with_the_limit() {
        let body = format!("username={}&password=b", "u".repeat(MAX_USERNAME_LEN + 1));
        assert_eq!(
            detail(urlencoded(body.as_bytes()).err().unwrap()),
            "Form field too long: username (at most 256 bytes)"
        );
        let body = format!("username=a&password={}", "p".repeat(MAX_PASSWORD_LEN + 1));
        assert!(detail(urlencoded(body.as_bytes()).err().unwrap()).contains("password"));
        let body = format!("username=a&password={}", "p".repeat(MAX_PASSWORD_LEN));
        assert!(urlencoded(body.as_bytes()).is_ok());
    }

    #[test]
    fn control_characters_in_a_username_are_rejected() {
        for body in [
            &b"username=a%00b&password=c"[..],
            b"username=a%0Ab&password=c",
            b"username=a%1Bb&password=c",
            b"username=a%7Fb&password=c",
            b"username=a%C2%85b&password=c",
        ] {
            let detail = detail(urlencoded(body).err().unwrap());
            assert_eq!(
                detail, "Form field username must not contain control characters",
                "{body:?}"
            );
        }
        // Passwords are the hasher's business; a space is a name's own.
        assert!(urlencoded(b"username=a+b&password=%00%0A").is_ok());
    }

    #[test]
    fn grant_type() {
        assert!(urlencoded(b"grant_type=password&username=a&password=b").is_ok());
        assert!(urlencoded(b"grant_type=&username=a&password=b").is_ok());
        assert_eq!(
            urlencoded(b"grant_type=client_credentials&username=a&password=b").err(),
            Some(Rejection::UnsupportedGrantType { refresh: false })
        );
        // Checked before the other fields, as RFC 6749 §5.2 orders them.
        assert_eq!(
            urlencoded(b"grant_type=PASSWORD").err(),
            Some(Rejection::UnsupportedGrantType { refresh: false })
        );
    }

    #[test]
    fn strict_mode_requires_grant_type() {
        let strict = |body: &[u8]| {
            let grants = GrantTypes {
                required: true,
                refresh: false,
            };
            parse_urlencoded(body)
                .unwrap()
                .finish(grants)
                .map(password_grant)
        };
        assert!(strict(b"grant_type=password&username=a&password=b").is_ok());
        assert!(detail(strict(b"username=a&password=b").err().unwrap()).contains("grant_type"));
        assert!(
            detail(strict(b"grant_type=&username=a&password=b").err().unwrap())
                .contains("grant_type")
        );
    }

    #[test]
    fn scope_is_split_on_whitespace_without_repeats() {
        let form = urlencoded(b"username=a&password=b&scope=+me%09items++me%0A").unwrap();
        assert_eq!(form.scopes, ["me", "items"]);
        let form = urlencoded(b"username=a&password=b&scope=").unwrap();
        assert!(form.scopes.is_empty());
    }

    fn invalid_scope(rejection: Option<Rejection>) -> String {
        match rejection {
            Some(Rejection::InvalidScope(detail)) => detail.into_owned(),
            other => panic!("expected invalid_scope, got {other:?}"),
        }
    }

    #[test]
    fn scopes_are_capped_in_number_and_length_and_not_echoed() {
        let with_scope = |scope: &str| format!("username=a&password=b&scope={scope}");
        let names: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("scope{i}")).collect();
        let at_cap = urlencoded(with_scope(&names[..MAX_SCOPES].join("+")).as_bytes());
        assert_eq!(at_cap.unwrap().scopes.len(), MAX_SCOPES);
        let over = invalid_scope(urlencoded(with_scope(&names.join("+")).as_bytes()).err());
        assert_eq!(over, "Too many scopes requested (at most 64)");
        // Repeats count: the cap bounds the work, not the result.
        let repeated = vec!["me"; MAX_SCOPES + 1].join("+");
        assert!(urlencoded(with_scope(&repeated).as_bytes()).is_err());

        let longest = "L".repeat(MAX_SCOPE_LEN);
        assert_eq!(
            urlencoded(with_scope(&longest).as_bytes()).unwrap().scopes,
            std::slice::from_ref(&longest)
        );
        let too_long = format!("{longest}L");
        let detail = invalid_scope(urlencoded(with_scope(&too_long).as_bytes()).err());
        assert_eq!(detail, "Scope too long (at most 128 bytes)");
    }

    #[test]
    fn client_credentials_fields_are_accepted() {
        assert!(urlencoded(b"username=a&password=b&client_id=cli&client_secret=s").is_ok());
    }

    fn headers(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::of(&headers("application/x-www-form-urlencoded")),
            Ok(Encoding::UrlEncoded)
        );
        assert_eq!(
            Encoding::of(&headers("Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
            Ok(Encoding::UrlEncoded)
        );
        assert_eq!(
            Encoding::of(&headers("multipart/form-data; boundary=XyZ")),
            Ok(Encoding::Multipart {
                boundary: "XyZ".into()
            })
        );
        assert!(matches!(
            Encoding::of(&headers("multipart/form-data")),
            Err(Rejection::InvalidRequest(_))
        ));
        for other in ["application/json", "text/plain", ""] {
            assert_eq!(
                Encoding::of(&headers(other)),
                Err(Rejection::UnsupportedMediaType)
            );
        }
        assert_eq!(Encoding::of(&HeaderMap::new()), Ok(Encoding::Unstated));
    }

    #[tokio::test]
    async fn without_a_content_type_only_an_empty_body_is_read() {
        let empty = Encoding::Unstated
            .parse_revocation(Bytes::new())
            .await
            .err();
        assert!(
            matches!(&empty, Some(Rejection::InvalidRequest(message)) if message.contains("token")),
            "{empty:?}"
        );
        let body = Bytes::from_static(b"token=abc");
        assert_eq!(
            Encoding::Unstated.parse_revocation(body).await.err(),
            Some(Rejection::UnsupportedMediaType)
        );
    }

    fn multipart(parts: &[(&str, &str, Option<&str>)]) -> Bytes {
        let mut body = String::new();
        for (name, value, file) in parts {
            body.push_str("--B\r\nContent-Disposition: form-data; name=\"");
            body.push_str(name);
            body.push('"');
            if let Some(file) = file {
                body.push_str("; filename=\"");
                body.push_str(file);
                body.push('"');
            }
            body.push_str("\r\n\r\n");
            body.push_str(value);
            body.push_str("\r\n");
        }
        body.push_str("--B--\r\n");
        Bytes::from(body)
    }

    fn parse_multipart_now(body: Bytes) -> Result<PasswordForm, Rejection> {
        let encoding = Encoding::Multipart {
            boundary: "B".into(),
        };
        futures_util::FutureExt::now_or_never(encoding.parse(body, GrantTypes::default()))
            .expect("in-memory body")
            .map(password_grant)
    }

    #[test]
    fn multipart_form() {
        let form = parse_multipart_now(multipart(&[
            ("username", "johndoe", None),
            ("password", "sec ret+%", None),
            ("scope", "me items", None),
            ("other", "ignored", None),
        ]))
        .unwrap();
        assert_eq!(
            (form.username.as_str(), form.password.as_str()),
            ("johndoe", "sec ret+%")
        );
        assert_eq!(form.scopes, ["me", "items"]);
    }

    #[test]
    fn multipart_duplicates_files_and_garbage_are_rejected() {
        let dup = parse_multipart_now(multipart(&[
            ("username", "a", None),
            ("username", "b", None),
            ("password", "c", None),
        ]));
        assert!(detail(dup.err().unwrap()).starts_with("Duplicate form field"));
        let file = parse_multipart_now(multipart(&[
            ("username", "a", Some("u.txt")),
            ("password", "c", None),
        ]));
        assert!(detail(file.err().unwrap()).contains("not a file"));
        let garbage = parse_multipart_now(Bytes::from_static(b"--B\r\nno headers end"));
        assert!(matches!(garbage, Err(Rejection::InvalidRequest(_))));
    }

    #[test]
    fn multipart_files_and_non_utf8_in_unknown_fields_are_skipped() {
        let form = parse_multipart_now(multipart(&[
            ("avatar", "PNG...", Some("me.png")),
            ("username", "a", None),
            ("<b>MARKER</b>", "x", Some("MARKER.txt")),
            ("password", "c", None),
        ]))
        .unwrap();
        assert_eq!((form.username.as_str(), form.password.as_str()), ("a", "c"));
        let mut body = multipart(&[("username", "a", None), ("password", "c", None)]).to_vec();
        let tail = body.split_off(body.len() - b"--B--\r\n".len());
        body.extend_from_slice(
            b"--B\r\nContent-Disposition: form-data; name=\"bin\"\r\n\r\n\xff\xfe\r\n",
        );
        body.extend_from_slice(&tail);
        assert!(parse_multipart_now(Bytes::from(body)).is_ok());
    }

    #[test]
    fn multipart_file_for_a_known_field_is_rejected_by_its_name() {
        for field in ["username", "password", "scope", "grant_type", "client_id"] {
            let file = parse_multipart_now(multipart(&[
                ("username", "a", None),
                ("password", "c", None),
                (field, "x", Some("MARKER.txt")),
            ]));
            let detail = detail(file.err().unwrap());
            assert_eq!(
                detail,
                format!("Form field {field} must be text, not a file")
            );
        }
    }

    mod properties {
        use super::*;
        use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_parse_or_fail_cleanly(body in proptest::collection::vec(any::<u8>(), 0..512)) {
                match parse_urlencoded(&body).and_then(|fields| fields.finish(GrantTypes::default())) {
                    Ok(TokenRequest::Password(form)) => {
                        prop_assert!(!form.username.is_empty() && form.username.len() <= MAX_USERNAME_LEN);
                        prop_assert!(!form.password.is_empty() && form.password.len() <= MAX_PASSWORD_LEN);
                    }
                    Ok(TokenRequest::Refresh { .. }) => {
                        prop_assert!(false, "refresh grants are off by default");
                    }
                    Err(rejection) => {
                        let expected = matches!(
                            rejection,
                            Rejection::InvalidRequest(_)
                                | Rejection::InvalidScope(_)
                                | Rejection::UnsupportedGrantType { .. }
                        );
                        prop_assert!(expected, "unexpected rejection {:?}", rejection);
                    }
                }
            }

            #[test]
            fn no_detail_echoes_the_client(
                parts in proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("username"), Just("password"), Just("scope"),
                            Just("grant_type"), Just("MARKER"), Just("user%MARKER"),
                        ],
                        prop_oneof![
                            Just(String::new()),
                            Just("MARKER".to_owned()),
                            "MARKER[a-z ]{0,8}",
                            Just(format!("MARKER{}", "m".repeat(1100))),
                        ],
                        any::<bool>(),
                    ),
                    0..6,
                ),
            ) {
                let urlencoded_body: Vec<String> =
                    parts.iter().map(|(name, value, _)| format!("{name}={value}")).collect();
                let as_multipart: Vec<(&str, &str, Option<&str>)> = parts
                    .iter()
                    .map(|(name, value, file)| (*name, value.as_str(), file.then_some("MARKER.bin")))
                    .collect();
                for result in [
                    urlencoded(urlencoded_body.join("&").as_bytes()),
                    parse_multipart_now(multipart(&as_multipart)),
                ] {
                    if let Err(Rejection::InvalidRequest(detail) | Rejection::InvalidScope(detail)) = result {
                        prop_assert!(!detail.contains("MARKER"), "{}", detail);
                    }
                }
            }

            #[test]
            fn encoded_credentials_round_trip(username in "\\PC{1,40}", password in "\\PC{1,80}") {
                let body = format!(
                    "username={}&password={}",
                    utf8_percent_encode(&username, NON_ALPHANUMERIC),
                    utf8_percent_encode(&password, NON_ALPHANUMERIC),
                );
                let form = urlencoded(body.as_bytes()).unwrap();
                prop_assert_eq!(form.username, username);
                prop_assert_eq!(&*form.password, &password);
            }
        }
    }
}
