//! The request bodies of the two event-ingest operations, declared so that generated clients
//! send them as the server reads them. Owns [`JsonEvents`] and [`NdjsonEvents`] and their
//! parsing into event objects.
//!
//! - `ingestStreamEvents` declares one media type, a JSON array of event objects. It also
//!   reads NDJSON sent with `Content-Type: application/x-ndjson`, for senders configured
//!   before the NDJSON operation existed (the operation's description says so).
//! - `ingestStreamEventsNdjson` declares `application/octet-stream` (text, one event object
//!   per line): the one raw-body media type that progenitor, openapi-typescript with
//!   openapi-fetch and openapi-python-client all generate a plain text or bytes parameter for
//!   (progenitor refuses `application/x-ndjson` and two media types on one operation). It reads
//!   `application/x-ndjson` and `text/plain` as well, which log shippers send.
//!
//! Nothing is applied when any event is bad: parsing finishes before the batch runs.

use poem::{FromRequest, Request, RequestBody, Result};
use poem_openapi::{
    payload::{ParsePayload, Payload},
    registry::{MetaSchema, MetaSchemaRef},
};
use serde_json::Value;

use super::{
    error::{ApiError, ApiResult},
    models::json_kind as kind,
    raw_json::is_json_media_type,
};

/// The media type's essence (before any `;` parameters), lowercased.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

const NDJSON: &str = "application/x-ndjson";

/// The body of `ingestStreamEvents`: a JSON array (or, undeclared, NDJSON) as sent.
pub struct JsonEvents {
    bytes: Vec<u8>,
    ndjson: bool,
}

/// The body of `ingestStreamEventsNdjson`: NDJSON text as sent.
pub struct NdjsonEvents(Vec<u8>);

impl Payload for JsonEvents {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn check_content_type(content_type: &str) -> bool {
        is_json_media_type(content_type) || essence(content_type) == NDJSON
    }

    fn schema_ref() -> MetaSchemaRef {
        let event = MetaSchema {
            description: Some("An event: any JSON object."),
            additional_properties: Some(Box::new(MetaSchemaRef::Inline(Box::new(MetaSchema::ANY)))),
            ..MetaSchema::new("object")
        };
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            items: Some(Box::new(MetaSchemaRef::Inline(Box::new(event)))),
            ..MetaSchema::new("array")
        }))
    }
}

impl Payload for NdjsonEvents {
    const CONTENT_TYPE: &'static str = "application/octet-stream";

    fn check_content_type(content_type: &str) -> bool {
        matches!(
            essence(content_type).as_str(),
            "application/octet-stream" | NDJSON | "text/plain"
        )
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            format: Some("binary"),
            description: Some(
                "UTF-8 text, one JSON event object per line (blank lines are skipped).",
            ),
            ..MetaSchema::new("string")
        }))
    }
}

impl ParsePayload for JsonEvents {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        let ndjson = request.content_type().is_some_and(|t| essence(t) == NDJSON);
        let bytes = Vec::<u8>::from_request(request, body).await?;
        Ok(Self { bytes, ndjson })
    }
}

impl ParsePayload for NdjsonEvents {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        Ok(Self(Vec::<u8>::from_request(request, body).await?))
    }
}

impl JsonEvents {
    /// The event objects, at most `max_events` of them.
    pub fn events(&self, max_events: usize) -> ApiResult<Vec<Value>> {
        if self.ndjson {
            return parse_ndjson(&self.bytes, max_events);
        }
        let value: Value = serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::InvalidJson(format!("the body is not JSON: {e}")))?;
        let Value::Array(events) = value else {
            return Err(ApiError::validation(
                "body",
                format!("expected an array of event objects, found {}", kind(&value)),
            ));
        };
        if events.len() > max_events {
            return Err(ApiError::BatchTooLarge {
                got: events.len(),
                max: max_events,
            });
        }
        if let Some((i, e)) = events.iter().enumerate().find(|(_, e)| !e.is_object()) {
            return Err(ApiError::InvalidEvent(format!(
                "event at index {i} is {}, not a JSON object",
                kind(e)
            )));
        }
        Ok(events)
    }
}

impl NdjsonEvents {
    /// The event objects, at most `max_events` of them.
    pub fn events(&self, max_events: usize) -> ApiResult<Vec<Value>> {
        parse_ndjson(&self.0, max_events)
    }
}

/// One event object per line; blank lines are skipped.
fn parse_ndjson(bytes: &[u8], max_events: usize) -> ApiResult<Vec<Value>> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        ApiError::InvalidEncoding(format!(
            "the body is not UTF-8 text (byte {})",
            e.valid_up_to()
        ))
    })?;
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if events.len() == max_events {
            let got = text.lines().filter(|l| !l.trim().is_empty()).count();
            return Err(ApiError::BatchTooLarge {
                got,
                max: max_events,
            });
        }
        let event: Value = serde_json::from_str(line)
            .map_err(|e| ApiError::InvalidJson(format!("line {}: {e}", n + 1)))?;
        if !event.is_object() {
            return Err(ApiError::InvalidEvent(format!(
                "line {} is {}, not a JSON object",
                n + 1,
                kind(&event)
            )));
        }
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any NDJSON text is parsed whole or refused whole with a line-numbered error.
        #[test]
        fn ndjson_parsing_never_panics(text in "(\\{\"a\":[0-9]{1,3}\\}|[^\\n]{0,20}|\n){0,30}") {
            match parse_ndjson(text.as_bytes(), 1000) {
                Ok(events) => prop_assert!(events.iter().all(Value::is_object)),
                Err(ApiError::InvalidJson(m) | ApiError::InvalidEvent(m)) => prop_assert!(m.contains("line")),
                Err(ApiError::BatchTooLarge { .. }) => {}
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn deep_nesting_and_huge_numbers_are_plain_events() {
        let deep = format!("{}1{}", "{\"a\":".repeat(64), "}".repeat(64));
        let huge = "{\"n\": 1e308, \"m\": -123456789012345678901234567890}".to_string();
        let events = parse_ndjson(format!("{deep}\n{huge}\n").as_bytes(), 10).unwrap();
        assert_eq!(events.len(), 2);
        let too_deep = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
        assert!(matches!(
            parse_ndjson(too_deep.as_bytes(), 10),
            Err(ApiError::InvalidJson(_))
        ));
    }

    fn json(body: &str) -> ApiResult<Vec<Value>> {
        JsonEvents {
            bytes: body.as_bytes().to_vec(),
            ndjson: false,
        }
        .events(3)
    }

    #[test]
    fn a_json_body_must_be_an_array_of_objects() {
        assert_eq!(json(r#"[{"a":1},{"b":2}]"#).unwrap().len(), 2);
        assert!(matches!(
            json(r#"{"a":1}"#),
            Err(ApiError::Validation { .. })
        ));
        assert!(matches!(json("[1]"), Err(ApiError::InvalidEvent(_))));
        assert!(matches!(json("[{}"), Err(ApiError::InvalidJson(_))));
        assert!(matches!(
            json("[{},{},{},{}]"),
            Err(ApiError::BatchTooLarge { got: 4, max: 3 })
        ));
    }

    #[test]
    fn ndjson_skips_blank_lines_and_names_the_bad_line() {
        let ok = NdjsonEvents(b"{\"a\":1}\n\n{\"a\":2}\r\n".to_vec());
        assert_eq!(ok.events(3).unwrap().len(), 2);
        let bad = NdjsonEvents(b"{\"a\":1}\n[2]\n".to_vec());
        match bad.events(3) {
            Err(ApiError::InvalidEvent(m)) => assert!(m.starts_with("line 2 "), "{m}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        assert!(matches!(
            NdjsonEvents(vec![0xff, b'\n']).events(3),
            Err(ApiError::InvalidEncoding(_))
        ));
    }

    #[test]
    fn media_types_are_read_by_their_essence() {
        assert!(JsonEvents::check_content_type(
            "application/json; charset=utf-8"
        ));
        assert!(JsonEvents::check_content_type("Application/X-NDJSON"));
        assert!(!JsonEvents::check_content_type("text/plain"));
        for t in [
            "application/octet-stream",
            "application/x-ndjson; charset=utf-8",
            "text/plain",
        ] {
            assert!(NdjsonEvents::check_content_type(t), "{t}");
        }
        assert!(!NdjsonEvents::check_content_type("application/json"));
    }
}
