//! The reference [`Document::parse`] is held to: `serde_json::from_str`, with a
//! visitor that refuses a duplicate member at any depth (names compared after
//! unescaping). The parser must accept exactly what the reference accepts, fail
//! with the same [`JsonError`], and read the same members and values (floats to
//! within [`FLOAT_ULPS`] units in the last place: serde_json's are not always
//! the nearest).
//!
//! Shared by the unit tests and the `dpop_json` fuzz target, which includes this
//! file and `json.rs` by path.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::{Document, Json, JsonError, Number, Object};

/// A JSON value as serde_json reads it, duplicates refused.
#[derive(Debug)]
pub(crate) enum Reference {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array,
    Object(Vec<(String, Reference)>),
}

/// What the reference makes of `bytes`: one object's members, or why not.
pub(crate) fn reference(bytes: &[u8]) -> Result<Vec<(String, Reference)>, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|_| JsonError::Malformed)?;
    match serde_json::from_str::<Reference>(text) {
        Ok(Reference::Object(members)) => Ok(members),
        Ok(_) => Err(JsonError::Malformed),
        Err(error) if error.classify() == serde_json::error::Category::Data => {
            Err(JsonError::DuplicateMember)
        }
        Err(_) => Err(JsonError::Malformed),
    }
}

/// Panics unless [`Document::parse`] and the reference agree on `bytes`.
pub(crate) fn check(bytes: &[u8]) {
    let ours = Document::from_bytes(bytes);
    let theirs = reference(bytes);
    let text = String::from_utf8_lossy(bytes);
    match (&ours, &theirs) {
        (Ok(document), Ok(members)) => assert!(
            object_agrees(document.object(), members),
            "different values for {text:?}: ours {document:?}, serde_json {members:?}"
        ),
        (Err(ours), Err(theirs)) => assert_eq!(ours, theirs, "different errors for {text:?}"),
        _ => panic!("disagreement on {text:?}: ours {ours:?}, serde_json {theirs:?}"),
    }
}

fn object_agrees(ours: Object<'_>, theirs: &[(String, Reference)]) -> bool {
    ours.members().count() == theirs.len()
        && ours
            .members()
            .zip(theirs)
            .all(|((name, value), (their_name, their_value))| {
                name == their_name && value_agrees(value, their_value)
            })
}

fn value_agrees(ours: Json<'_>, theirs: &Reference) -> bool {
    match (ours, theirs) {
        (Json::Null, Reference::Null) | (Json::Array, Reference::Array) => true,
        (Json::Bool(ours), Reference::Bool(theirs)) => ours == *theirs,
        (Json::String(ours), Reference::String(theirs)) => ours == theirs,
        (Json::Number(ours), Reference::Number(theirs)) => number_agrees(ours, *theirs),
        (Json::Object(ours), Reference::Object(theirs)) => object_agrees(ours, theirs),
        _ => false,
    }
}

/// How many units in the last place serde_json's float may be off by: ours is
/// the nearest `f64` (`str::parse`), serde_json's default parser multiplies by a
/// power of ten, a few units off for large exponents (`1.3172312159720733e45`
/// reads as `1.317231215972073e45`, two units lower). Below `f64::MIN_POSITIVE`
/// (subnormals) the difference is compared, not the units.
const FLOAT_ULPS: u64 = 8;

fn number_agrees(ours: Number, theirs: Number) -> bool {
    match (ours, theirs) {
        (Number::Float(ours), Number::Float(theirs)) => {
            ours == theirs
                || (ours.is_finite()
                    && theirs.is_finite()
                    && ours.is_sign_negative() == theirs.is_sign_negative()
                    && (ours.to_bits().abs_diff(theirs.to_bits()) <= FLOAT_ULPS
                        || (ours - theirs).abs() < f64::MIN_POSITIVE))
        }
        _ => ours == theirs,
    }
}

impl<'de> Deserialize<'de> for Reference {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ReferenceVisitor)
    }
}

struct ReferenceVisitor;

impl<'de> Visitor<'de> for ReferenceVisitor {
    type Value = Reference;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Reference, E> {
        Ok(Reference::Null)
    }

    fn visit_bool<E>(self, value: bool) -> Result<Reference, E> {
        Ok(Reference::Bool(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Reference, E> {
        Ok(Reference::Number(Number::Unsigned(value)))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Reference, E> {
        Ok(Reference::Number(match u64::try_from(value) {
            Ok(value) => Number::Unsigned(value),
            Err(_) => Number::Negative(value),
        }))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Reference, E> {
        Ok(Reference::Number(Number::Float(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<Reference, E> {
        Ok(Reference::String(value.to_owned()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reference, A::Error> {
        while seq.next_element::<Reference>()?.is_some() {}
        Ok(Reference::Array)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reference, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value()?;
            members.push((name, value));
        }
        let mut names = BTreeSet::new();
        if !members.iter().all(|(name, _)| names.insert(name.as_str())) {
            // serde_json files custom errors as `Category::Data`, which nothing
            // else here can produce.
            return Err(de::Error::custom("duplicate member"));
        }
        Ok(Reference::Object(members))
    }
}
