//! A JSON value that refuses duplicate object members at every depth.
//!
//! `serde_json::Value` (and serde's derived structs for members they ignore) keep
//! the last of two members with the same name, silently. A proof whose header says
//! `"alg":"none"` to one parser and `"alg":"ES256"` to another is the classic
//! confusion attack between a verifier and whatever logs or forwards the proof, so
//! the proof's header, key and claims are read through this type: a second member
//! of the same name (after unescaping: `"a"` and `"\u0061"` are the same name) fails
//! the parse.
//!
//! The values borrow from the decoded segment: a string without escapes is a slice
//! of it, so a proof's header, key and claims cost three small vectors of members,
//! not a map and a `String` per member. Arrays are checked (for duplicates in the
//! objects they hold) and then dropped: no member a proof is read for is an array.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value without duplicate members, borrowing its strings where it can.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'a> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'a, str>),
    /// An array: checked, its items not kept.
    Array,
    Object(Object<'a>),
}

/// A JSON number, as serde_json hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

/// A JSON object: its members in the order written, each name once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

/// Why a segment is not a JSON object we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum JsonError {
    /// Not JSON, not one object, or text after it.
    Malformed,
    /// A name appears twice in one object.
    DuplicateMember,
}

/// The message our visitor fails with on a duplicate; serde_json files custom
/// errors as `Category::Data`, which nothing else in [`Json`] can produce.
const DUPLICATE: &str = "duplicate member";

/// Up to this many members, an object's names are compared pairwise; beyond, they
/// are sorted first, so that an 8 KiB object of one-letter names costs
/// `n log n` comparisons, not `n²`.
const PAIRWISE_MAX: usize = 16;

impl<'a> Object<'a> {
    /// Parses `bytes` as exactly one JSON object.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Self, JsonError> {
        // UTF-8 checked once for the whole text (JSON is UTF-8, RFC 8259 §8.1),
        // not string by string as `from_slice` does.
        let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Malformed)?;
        match serde_json::from_str::<Json<'a>>(text) {
            Ok(Json::Object(object)) => Ok(object),
            Ok(_) => Err(JsonError::Malformed),
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                Err(JsonError::DuplicateMember)
            }
            Err(_) => Err(JsonError::Malformed),
        }
    }

    /// The member named `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Json<'a>> {
        self.0
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value)
    }

    /// Whether a member named `name` is present (whatever its value).
    pub(super) fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether two members have the same name (after unescaping: names are
    /// compared as the strings they denote).
    fn has_duplicates(&self) -> bool {
        let members = &self.0;
        if members.len() <= PAIRWISE_MAX {
            members
                .iter()
                .enumerate()
                .any(|(i, (name, _))| members[..i].iter().any(|(other, _)| other == name))
        } else {
            let mut names: Vec<&str> = members.iter().map(|(name, _)| name.as_ref()).collect();
            names.sort_unstable();
            names.windows(2).any(|pair| pair[0] == pair[1])
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

/// A member name: borrowed from the input unless it had escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Name<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Name<'de>, E> {
        Ok(Name(Cow::Owned(value)))
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json<'de>, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json<'de>, E> {
        Ok(Json::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Number::Unsigned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json<'de>, E> {
        Ok(Json::Number(if value < 0 {
            Number::Negative(value)
        } else {
            Number::Unsigned(value.unsigned_abs())
        }))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json<'de>, E> {
        Ok(Json::Number(Number::Float(value)))
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Borrowed(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E>(self, value: String) -> Result<Json<'de>, E> {
        Ok(Json::String(Cow::Owned(value)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'de>, A::Error> {
        // Each item is parsed (an object in it is checked for duplicates) and dropped.
        while seq.next_element::<Json<'de>>()?.is_some() {}
        Ok(Json::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'de>, A::Error> {
        let mut members = Vec::with_capacity(8);
        while let Some(Name(name)) = map.next_key::<Name<'de>>()? {
            let value = map.next_value()?;
            members.push((name, value));
        }
        let object = Object(members);
        if object.has_duplicates() {
            return Err(de::Error::custom(DUPLICATE));
        }
        Ok(Json::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_one_object() {
        let object = Object::parse(br#"{"a":1,"b":[true,null,"x"],"c":{"d":-2.5}}"#).unwrap();
        assert_eq!(object.get("a"), Some(&Json::Number(Number::Unsigned(1))));
        assert!(object.contains("b"));
        assert!(matches!(object.get("c"), Some(Json::Object(_))));
    }

    #[test]
    fn refuses_duplicates_at_every_depth_and_after_unescaping() {
        for text in [
            r#"{"alg":"ES256","alg":"none"}"#,
            r#"{"alg":"ES256","\u0061lg":"none"}"#,
            r#"{"jwk":{"x":"a","x":"b"}}"#,
            r#"{"a":[{"b":1,"b":1}]}"#,
        ] {
            assert_eq!(
                Object::parse(text.as_bytes()),
                Err(JsonError::DuplicateMember),
                "{text}"
            );
        }
    }

    #[test]
    fn reads_escaped_names_and_values() {
        let object = Object::parse(br#"{"\u0061lg":"ES\u0032\u00356","typ":"a\/b"}"#).unwrap();
        assert_eq!(object.get("alg"), Some(&Json::String("ES256".into())));
        assert_eq!(object.get("typ"), Some(&Json::String("a/b".into())));
    }

    /// Past [`PAIRWISE_MAX`] members the names are sorted before comparing: the
    /// same answers, at every position and after unescaping.
    #[test]
    fn refuses_duplicates_among_many_members() {
        let many = |extra: &str| {
            let members: Vec<String> = (0..100).map(|i| format!(r#""m{i}":{i}"#)).collect();
            format!("{{{},{extra}}}", members.join(","))
        };
        assert!(Object::parse(many(r#""last":0"#).as_bytes()).is_ok());
        for extra in [
            r#""m0":0"#,
            r#""m99":0"#,
            r#""\u006d50":0"#,
            r#""x":{"m0":1,"m0":2}"#,
        ] {
            let text = many(extra);
            assert_eq!(
                Object::parse(text.as_bytes()),
                Err(JsonError::DuplicateMember),
                "{extra}"
            );
        }
        let nested: Vec<String> = (0..40).map(|i| format!(r#""n{i}":[]"#)).collect();
        let text = format!(r#"{{"a":[1,{{{},"n7":null}}]}}"#, nested.join(","));
        assert_eq!(
            Object::parse(text.as_bytes()),
            Err(JsonError::DuplicateMember)
        );
    }

    #[test]
    fn refuses_what_is_not_one_object() {
        for text in [
            "",
            "[]",
            "\"a\"",
            "{} {}",
            "{",
            r#"{"a":"\ud800"}"#,
            "{\"a\":\"\u{0}\"}",
        ] {
            assert_eq!(
                Object::parse(text.as_bytes()),
                Err(JsonError::Malformed),
                "{text:?}"
            );
        }
        assert_eq!(
            Object::parse(b"{\"a\":\"\xff\"}"),
            Err(JsonError::Malformed)
        );
        for bytes in [&b"{\"a\":1}\xff"[..], b"\xef\xbb\xbf{}", b"{\"\xc3\":1}"] {
            assert_eq!(Object::parse(bytes), Err(JsonError::Malformed), "{bytes:?}");
        }
    }
}
