//! A JSON request body kept as the exact bytes that were sent, for routes that check a
//! signature over them before parsing (the Stripe webhook). Owns [`RawJson`]: it accepts any
//! `application/json` media type, with or without parameters (Stripe sends
//! `application/json; charset=utf-8`), as the typed JSON routes do.

use poem::{FromRequest, Request, RequestBody, Result};
use poem_openapi::{
    payload::{Binary, ParsePayload, Payload},
    registry::MetaSchemaRef,
};

/// The raw bytes of a JSON body.
pub struct RawJson(pub Vec<u8>);

/// True for `application/json` with any parameters (`; charset=utf-8`), case-insensitively.
pub(crate) fn is_json_media_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

impl Payload for RawJson {
    const CONTENT_TYPE: &'static str = "application/json";

    fn check_content_type(content_type: &str) -> bool {
        is_json_media_type(content_type)
    }

    fn schema_ref() -> MetaSchemaRef {
        <Binary<Vec<u8>> as Payload>::schema_ref()
    }
}

impl ParsePayload for RawJson {
    const IS_REQUIRED: bool = true;

    async fn from_request(request: &Request, body: &mut RequestBody) -> Result<Self> {
        Ok(Self(Vec::<u8>::from_request(request, body).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::is_json_media_type;

    #[test]
    fn json_with_parameters_is_json_and_other_types_are_not() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON;charset=UTF-8",
            " application/json ; charset=utf-8",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "text/json",
            "application/jsonx",
            "application/x-ndjson",
            "",
            "text/plain",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
