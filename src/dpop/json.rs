//! A JSON value that refuses duplicate object members at every depth.
//!
//! `serde_json::Value` (and serde's derived structs for members they ignore) keep
//! the last of two members with the same name, silently. A proof whose header says
//! `"alg":"none"` to one parser and `"alg":"ES256"` to another is the classic
//! confusion attack between a verifier and whatever logs or forwards the proof, so
//! the proof's header, key and claims are read through this type: a second member
//! of the same name (after unescaping: `"a"` and `"\u0061"` are the same name) fails
//! the parse.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value without duplicate members.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A JSON number, as serde_json hands it over.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Number {
    Unsigned(u64),
    Negative(i64),
    Float(f64),
}

/// A JSON object: its members by name, each name once.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Object(BTreeMap<String, Json>);

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

impl Object {
    /// Parses `bytes` as exactly one JSON object.
    pub(super) fn parse(bytes: &[u8]) -> Result<Self, JsonError> {
        match serde_json::from_slice::<Json>(bytes) {
            Ok(Json::Object(object)) => Ok(object),
            Ok(_) => Err(JsonError::Malformed),
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                Err(JsonError::DuplicateMember)
            }
            Err(_) => Err(JsonError::Malformed),
        }
    }

    /// The member named `name`.
    pub(super) fn get(&self, name: &str) -> Option<&Json> {
        self.0.get(name)
    }

    /// Whether a member named `name` is present (whatever its value).
    pub(super) fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Json, E> {
        Ok(Json::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Json, E> {
        Ok(Json::Number(Number::Unsigned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Json, E> {
        Ok(Json::Number(if value < 0 {
            Number::Negative(value)
        } else {
            Number::Unsigned(value.unsigned_abs())
        }))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Json, E> {
        Ok(Json::Number(Number::Float(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Json, E> {
        Ok(Json::String(value.to_owned()))
    }

    fn visit_string<E>(self, value: String) -> Result<Json, E> {
        Ok(Json::String(value))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut members = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value()?;
            if members.insert(name, value).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(Json::Object(Object(members)))
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
    }
}
