//! Request and response objects shared by several resources, the OpenAPI tags, paging
//! cursors and input validation helpers.

use poem_openapi::{Enum, Object, Tags};
use serde_json::Value;

use super::error::ApiError;
use crate::{
    clock::format_rfc3339,
    secrets::hex,
    store::{KeyRecord, KeyScope, OrgRecord},
};

#[derive(Tags)]
pub enum Tag {
    /// Health, readiness and metrics.
    System,
    /// Operator routes (admin token or admin-scoped key).
    Admin,
    /// An organization's own data (organization key).
    Organization,
    /// Stream API: push events, get verdicts (organization key).
    Streams,
    /// Monitor API: named monitors over metrics (organization key).
    Monitors,
    /// Stored anomalies of streams and monitors: one by id, its status (organization key).
    Anomalies,
    /// Usage and metering.
    Usage,
    /// Billing with Stripe: webhooks, status, invoices.
    Billing,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub billing_email: Option<String>,
    /// Plan id: `developer`, `standard` or `growth`.
    pub plan: String,
    /// RFC 3339.
    pub created_at: DateTime,
}

impl From<OrgRecord> for Organization {
    fn from(o: OrgRecord) -> Self {
        Organization {
            id: o.id,
            name: o.name,
            billing_email: o.billing_email,
            plan: o.plan,
            created_at: DateTime::from_ms(o.created_at_ms),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrganizationList {
    pub items: Vec<Organization>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum Scope {
    /// Reaches one organization's own data.
    Org,
    /// Reaches service routes (e.g. meter-usage) for every organization.
    Service,
    /// Reaches the admin API.
    Admin,
}

impl From<KeyScope> for Scope {
    fn from(s: KeyScope) -> Self {
        match s {
            KeyScope::Org => Scope::Org,
            KeyScope::Service => Scope::Service,
            KeyScope::Admin => Scope::Admin,
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKey {
    /// `key_` followed by the key's public prefix (the 12 characters after `dl_`).
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// The owning organization, for `org` keys.
    pub organization_id: Option<String>,
    pub created_at: DateTime,
    pub revoked_at: Option<DateTime>,
    pub active: bool,
}

impl From<KeyRecord> for ApiKey {
    fn from(k: KeyRecord) -> Self {
        ApiKey {
            active: k.is_active(),
            id: k.id,
            name: k.name,
            scope: k.scope.into(),
            organization_id: k.org_id,
            created_at: DateTime::from_ms(k.created_at_ms),
            revoked_at: k.revoked_at_ms.map(DateTime::from_ms),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct ApiKeyList {
    pub items: Vec<ApiKey>,
    pub next_cursor: Option<String>,
}

/// A key just made. `secret` is shown this once and cannot be retrieved again.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    /// The key itself, for `Authorization: Bearer <secret>`.
    pub secret: String,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct CreateKeyRequest {
    /// A label to recognise the key by, e.g. `ci-pipeline`.
    pub name: Name,
}

/// Cursor text for the key a page ended on.
pub fn encode_cursor(last_key: Option<String>) -> Option<String> {
    last_key.map(|k| format!("c1{}", hex(k.as_bytes())))
}

/// The key a cursor names; a cursor not made by `encode_cursor` is a bad request.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(cursor) = cursor else {
        return Ok(None);
    };
    let bad = || ApiError::BadRequest(format!("cursor {cursor:?} is not one this server gave out"));
    let digits = cursor.strip_prefix("c1").ok_or_else(bad)?;
    if digits.len() % 2 != 0 || digits.len() > 512 {
        return Err(bad());
    }
    let bytes: Option<Vec<u8>> = (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(digits.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes.ok_or_else(bad)?)
        .map(Some)
        .map_err(|_| bad())
}

/// A time filter given as RFC 3339 or epoch seconds, in epoch milliseconds.
pub fn parse_time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            crate::score::parse_timestamp(v)
                .map(|secs| secs.saturating_mul(1000))
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "{name}: {v:?} is not an RFC 3339 time or epoch seconds"
                    ))
                })
        })
        .transpose()
}

pub use super::name::{valid_name, Name};

/// A plausible email address: one `@`, a dot in the domain, no spaces, at most 254 bytes.
pub fn valid_email(field: &str, email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    let plausible = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(email.split_once('@'), Some((local, domain))
            if !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
               && !domain.ends_with('.') && !domain.contains('@'));
    if plausible {
        Ok(email.to_string())
    } else {
        Err(ApiError::validation(
            field,
            format!("{email:?} is not an email address"),
        ))
    }
}

/// The rule for idempotency keys, on every route that takes one: 1 to 255 visible ASCII
/// characters (`!` to `~`). Stated in the spec as the header's pattern.
pub const IDEMPOTENCY_KEY_RULE: &str = "must be 1 to 255 visible ASCII characters (! to ~)";

/// The `Idempotency-Key` header as sent: `None` when absent, an error naming the rule when
/// present but not a valid key (a value that is not ASCII is refused, never ignored).
pub fn idempotency_key_header(req: &poem::Request) -> super::error::ApiResult<Option<String>> {
    match req.headers().get("idempotency-key") {
        None => Ok(None),
        Some(raw) => valid_idempotency_key(raw.as_bytes()).map(Some),
    }
}

/// Checks a key against [`IDEMPOTENCY_KEY_RULE`].
pub fn valid_idempotency_key(key: &[u8]) -> super::error::ApiResult<String> {
    if key.is_empty() || key.len() > 255 || !key.iter().all(|b| b.is_ascii_graphic()) {
        return Err(super::error::ApiError::validation(
            "Idempotency-Key",
            IDEMPOTENCY_KEY_RULE,
        ));
    }
    Ok(String::from_utf8_lossy(key).into_owned())
}

/// The store's key for an idempotency key used on one resource: the resource id carries its
/// length, so no (resource, key) pair can spell another's (`a` + `b:c` is not `a:b` + `c`).
pub fn scoped_idempotency_key(kind: &str, resource_id: &str, key: &str) -> String {
    format!("{kind}:{}:{resource_id}:{key}", resource_id.len())
}

/// An answer to a request that may carry an `Idempotency-Key`: made now, or the stored first
/// answer to an earlier request with the same key.
pub enum Answered<T> {
    Fresh(T),
    Replayed(T),
}

/// The stored first answer to an earlier request with the same `Idempotency-Key`.
pub fn replayed<T: serde::de::DeserializeOwned>(answer: Value) -> Result<Answered<T>, ApiError> {
    let result = serde_json::from_value(answer)
        .map_err(|e| ApiError::Internal(format!("stored answer: {e}")))?;
    Ok(Answered::Replayed(result))
}

impl<T> Answered<T> {
    pub fn is_replay(&self) -> bool {
        matches!(self, Answered::Replayed(_))
    }

    pub fn into_inner(self) -> T {
        match self {
            Answered::Fresh(t) | Answered::Replayed(t) => t,
        }
    }
}

/// An instant in an answer: RFC 3339 in UTC with milliseconds (`2027-06-15T12:00:00.000Z`),
/// declared `format: date-time` so generated clients can type it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct DateTime(pub String);

impl DateTime {
    pub fn from_ms(ms: i64) -> DateTime {
        DateTime(format_rfc3339(ms))
    }

    pub fn from_secs(secs: i64) -> DateTime {
        DateTime(format_rfc3339(secs.saturating_mul(1000)))
    }
}

impl poem_openapi::types::Type for DateTime {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> std::borrow::Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema::new_with_format("string", "date-time"),
        ))
    }

    fn as_raw_value(&self) -> Option<&String> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
        Box::new(std::iter::once(&self.0))
    }
}

impl poem_openapi::types::ParseFromJSON for DateTime {
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(DateTime(s)),
            other => Err(poem_openapi::types::ParseError::custom(format!(
                "expected an RFC 3339 time, found {}",
                json_kind(&other)
            ))),
        }
    }
}

impl poem_openapi::types::ToJSON for DateTime {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// A JSON string in a request, and nothing else: the framework's own `String` also takes a
/// number or a boolean (`{"name": false}` made an organization named "false"); this refuses
/// them with `validation_failed` naming the field. Same schema as a string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

impl std::ops::Deref for Text {
    type Target = String;
    fn deref(&self) -> &String {
        &self.0
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Text> for String {
    fn from(t: Text) -> String {
        t.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(s.to_string())
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl poem_openapi::types::Type for Text {
    const IS_REQUIRED: bool = true;
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> std::borrow::Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        <String as poem_openapi::types::Type>::schema_ref()
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

impl poem_openapi::types::ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> poem_openapi::types::ParseResult<Self> {
        json_string(value).map(Text)
    }
}

/// A JSON string and nothing else (not a number or a boolean read as one).
pub(super) fn json_string<T: poem_openapi::types::Type>(
    value: Option<Value>,
) -> Result<String, poem_openapi::types::ParseError<T>> {
    match value.unwrap_or_default() {
        Value::String(s) => Ok(s),
        other => Err(poem_openapi::types::ParseError::custom(format!(
            "expected a string, found {}",
            json_kind(&other)
        ))),
    }
}

impl poem_openapi::types::ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

/// What a JSON value is, in a message.
pub(super) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_forgeries() {
        let c = encode_cursor(Some("org_0001".into())).unwrap();
        assert_eq!(
            decode_cursor(Some(&c)).unwrap().as_deref(),
            Some("org_0001")
        );
        assert_eq!(decode_cursor(None).unwrap(), None);
        for bad in ["", "xyz", "c1zz", "c1abc", "c1ff"] {
            assert!(decode_cursor(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_and_emails() {
        assert!(valid_email("e", "ops@acme.example").is_ok());
        for bad in ["", "a", "a@b", "@b.c", "a b@c.d", "a@.c", "a@b.c."] {
            assert!(valid_email("e", bad).is_err(), "{bad}");
        }
    }
}
