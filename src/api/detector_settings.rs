//! A monitor's detector settings as JSON, with a schema made from the detector's own
//! defaults: one property per field of [`MetricSettings`] (an integer or a number, its default
//! beside it), and no other (`additionalProperties: false`, added by `spec::finish`). Owns [`DetectorSettings`], the `detector` of a monitor in
//! requests (absent fields keep their values) and answers (every field). The ranges are
//! checked by `MetricSettings::validate`, whose message names the field and the range.

use std::{borrow::Cow, sync::OnceLock};

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use super::models::json_kind;
use crate::core::detect::MetricSettings;

/// Detector settings: an object of some or all of the fields of [`MetricSettings`].
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorSettings(pub Value);

/// (field, its default) of every detector setting, named once for the life of the process.
fn fields() -> &'static [(&'static str, Value)] {
    static FIELDS: OnceLock<Vec<(&'static str, Value)>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let defaults = serde_json::to_value(MetricSettings::default()).unwrap_or_default();
        defaults
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (&*Box::leak(k.clone().into_boxed_str()), v.clone()))
            .collect()
    })
}

impl Type for DetectorSettings {
    const IS_REQUIRED: bool = true;
    type RawValueType = Value;
    type RawElementValueType = Value;

    fn name() -> Cow<'static, str> {
        "DetectorSettings".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
            description: Some(
                "Advanced settings of the metric detector (those of `driftlock score`); in a \
                 request, absent fields keep their values. Each property's `default` is a new \
                 monitor's.",
            ),
            properties: fields()
                .iter()
                .map(|(name, default)| {
                    let schema = if default.is_u64() {
                        MetaSchema {
                            minimum: Some(0.0),
                            maximum: Some(f64::from(u32::MAX)),
                            ..MetaSchema::new_with_format("integer", "uint32")
                        }
                    } else {
                        MetaSchema::new_with_format("number", "double")
                    };
                    let schema = MetaSchema {
                        default: Some(default.clone()),
                        ..schema
                    };
                    (*name, MetaSchemaRef::Inline(Box::new(schema)))
                })
                .collect(),
            ..MetaSchema::new("object")
        })
    }

    fn as_raw_value(&self) -> Option<&Value> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Value> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl ParseFromJSON for DetectorSettings {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::Object(object) => {
                for (key, v) in &object {
                    let Some((_, default)) = fields().iter().find(|(name, _)| name == key) else {
                        return Err(ParseError::custom(format!("unknown setting `{key}`")));
                    };
                    let fits = if default.is_u64() {
                        v.is_u64() && v.as_u64().is_some_and(|n| n <= u64::from(u32::MAX))
                    } else {
                        v.is_number()
                    };
                    if !fits {
                        return Err(ParseError::custom(format!(
                            "{key}: expected {}, found {}",
                            if default.is_u64() {
                                "a whole number"
                            } else {
                                "a number"
                            },
                            json_kind(v)
                        )));
                    }
                }
                Ok(DetectorSettings(Value::Object(object)))
            }
            other => Err(ParseError::custom(format!(
                "expected an object of detector settings, found {}",
                json_kind(&other)
            ))),
        }
    }
}

impl ToJSON for DetectorSettings {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.clone())
    }
}
