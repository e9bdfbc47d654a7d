//! The time of a monitor point as a request gives it: an RFC 3339 string (or
//! `YYYY-MM-DD HH:MM:SS`, UTC) or a number of epoch seconds. Owns [`PointTime`], its schema
//! (`oneOf` a string and a number) and its reading into epoch seconds.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::models::json_kind;

/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in epoch seconds: the instants RFC 3339's
/// four-digit years can write (a point at epoch 999999999999 was stored, and answered in
/// `last_point_at` as year 33658, which no date-time parser reads).
const FIRST_SECOND: f64 = -62_167_219_200.0;
const PAST_LAST_SECOND: f64 = 253_402_300_800.0;

/// A point's timestamp, as sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PointTime(pub Value);

impl PointTime {
    /// Epoch seconds, or None when the text is not a time or the number is out of range.
    pub fn epoch_secs(&self) -> Option<i64> {
        let secs = match &self.0 {
            Value::Number(n) => n
                .as_f64()
                .filter(|f| (FIRST_SECOND..PAST_LAST_SECOND).contains(f))
                .map(|f| f.floor() as i64),
            Value::String(s) => crate::score::parse_timestamp(s),
            _ => None,
        }?;
        ((FIRST_SECOND as i64)..(PAST_LAST_SECOND as i64))
            .contains(&secs)
            .then_some(secs)
    }
}

impl std::fmt::Display for PointTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Type for PointTime {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        "point_time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        let text = MetaSchema {
            description: Some(
                "RFC 3339 (`2027-06-15T12:00:00Z`), or `YYYY-MM-DD HH:MM:SS` in UTC.",
            ),
            ..MetaSchema::new("string")
        };
        let epoch = MetaSchema {
            description: Some("Seconds since 1970-01-01T00:00:00Z (a fraction is dropped)."),
            minimum: Some(FIRST_SECOND),
            maximum: Some(PAST_LAST_SECOND),
            exclusive_maximum: Some(true),
            ..MetaSchema::new_with_format("number", "double")
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            one_of: vec![
                MetaSchemaRef::Inline(Box::new(text)),
                MetaSchemaRef::Inline(Box::new(epoch)),
            ],
            ..MetaSchema::ANY
        }))
    }

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for PointTime {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            v @ (Value::String(_) | Value::Number(_)) => Ok(PointTime(v)),
            other => Err(ParseError::custom(format!(
                "expected an RFC 3339 string or epoch seconds, found {}",
                json_kind(&other)
            ))),
        }
    }
}

impl ToJSON for PointTime {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_and_numbers_are_times_and_nothing_else_parses() {
        let t = |v: Value| PointTime::parse_from_json(Some(v)).ok();
        assert_eq!(
            t(json!(1_800_000_000.7)).unwrap().epoch_secs(),
            Some(1_800_000_000)
        );
        assert_eq!(
            t(json!("1970-01-01T00:01:00Z")).unwrap().epoch_secs(),
            Some(60)
        );
        assert_eq!(t(json!("yesterday")).unwrap().epoch_secs(), None);
        assert_eq!(t(json!("999999999999")).unwrap().epoch_secs(), None);
        assert_eq!(t(json!(1e13)).unwrap().epoch_secs(), None);
        assert_eq!(t(json!(999_999_999_998.9)).unwrap().epoch_secs(), None);
        assert_eq!(
            t(json!(253_402_300_799_i64)).unwrap().epoch_secs(),
            Some(253_402_300_799)
        );
        assert!(t(json!(true)).is_none() && t(json!(null)).is_none() && t(json!([1])).is_none());
    }
}
