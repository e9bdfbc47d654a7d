//! A display name or note in a request (an organization's, a key's, a monitor's name; the
//! note of a billing action): a JSON string that is not blank (surrounding white space is
//! trimmed off), has no control characters and is at most 200 characters long. Owns the
//! [`Name`] type and its rule, which the OpenAPI document states as the `Name` schema and
//! [`valid_name`] enforces with a message naming the field.

use std::borrow::Cow;

use poem_openapi::{
    registry::{MetaSchema, MetaSchemaRef, Registry},
    types::{ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use super::{error::ApiError, models::json_string};

/// The longest name, in characters (as JSON Schema's `maxLength` counts them).
pub const MAX_NAME_CHARS: usize = 200;

/// ECMA-262 and Python agree on it: no C0/C1 control character, and one character that is
/// neither white space nor a control character.
const NAME_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$";

/// A name as sent; [`valid_name`] gives the stored, trimmed form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Name(pub String);

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        Name(s.to_string())
    }
}

impl Type for Name {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "Name".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |_| MetaSchema {
            description: Some(
                "A name: not blank (surrounding white space is trimmed off), no control \
                 characters, at most 200 characters.",
            ),
            min_length: Some(1),
            max_length: Some(MAX_NAME_CHARS),
            pattern: Some(NAME_PATTERN.to_string()),
            ..MetaSchema::new("string")
        })
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Name {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        json_string(value).map(Name)
    }
}

impl ToJSON for Name {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// The trimmed name, or 422 naming `field` and the rule it breaks.
pub fn valid_name(field: &str, name: &str) -> Result<String, ApiError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            field,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            "must not contain control characters",
        ));
    }
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(ApiError::validation(field, "must not be empty"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_refused_as_the_schema_says() {
        assert_eq!(valid_name("name", "  Acme ").unwrap(), "Acme");
        for bad in ["", "   ", "a\u{7}b", "\t", "a\u{85}"] {
            assert!(valid_name("name", bad).is_err(), "{bad:?}");
        }
        assert!(valid_name("name", &"x".repeat(200)).is_ok());
        assert!(valid_name("name", &"x".repeat(201)).is_err());
        assert!(valid_name("name", &format!(" {} ", "x".repeat(199))).is_err());
    }
}
