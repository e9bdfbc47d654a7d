//! One HTTP exchange as the load tool sees it: the status (or the transport failure), the
//! JSON body whatever the status, and the time from sending to the last byte read. Nothing
//! here retries: a silent retry would hide a failure from the report and could make the tool
//! count one detection twice.

use std::time::{Duration, Instant};

use serde_json::Value;

/// What a request carries.
pub enum Payload<'a> {
    Empty,
    Json(&'a Value),
    Ndjson(&'a str),
}

/// What came back.
pub struct Answer {
    /// `None` when the request failed below HTTP (refused, reset, timed out).
    pub status: Option<u16>,
    /// The JSON body; `Null` when there was none or it was not JSON.
    pub body: Value,
    pub latency: Duration,
    /// The transport failure, when there was one.
    pub failure: Option<String>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        matches!(self.status, Some(200..=299))
    }

    /// The error code of an error body (`quota_exceeded`, `rate_limited`, ...), if any.
    pub fn error_code(&self) -> Option<&str> {
        self.body.get("code").and_then(Value::as_str)
    }

    /// How the report files this answer: `200`, `429 quota_exceeded`, or `transport error`.
    pub fn outcome(&self) -> String {
        match (self.status, self.error_code()) {
            (None, _) => "transport error".to_string(),
            (Some(s), Some(code)) if s >= 300 => format!("{s} {code}"),
            (Some(s), _) => s.to_string(),
        }
    }
}

/// Sends `request` once and reads the whole answer.
pub fn exchange(request: ureq::Request, payload: Payload) -> Answer {
    let started = Instant::now();
    let result = match payload {
        Payload::Empty => request.call(),
        Payload::Json(value) => request.send_json(value),
        Payload::Ndjson(text) => request
            .set("Content-Type", "application/x-ndjson")
            .send_string(text),
    };
    let (status, text, failure) = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => {
            let status = response.status();
            match response.into_string() {
                Ok(text) => (Some(status), text, None),
                Err(e) => (None, String::new(), Some(format!("reading the body: {e}"))),
            }
        }
        Err(e) => (None, String::new(), Some(e.to_string())),
    };
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        latency: started.elapsed(),
        failure,
    }
}

/// A POST to `url` with `authorization`, and an `Idempotency-Key` when given.
pub fn keyed_post(
    agent: &ureq::Agent,
    url: &str,
    authorization: &str,
    idempotency_key: Option<&str>,
) -> ureq::Request {
    let request = agent.post(url).set("Authorization", authorization);
    match idempotency_key {
        Some(k) => request.set("Idempotency-Key", k),
        None => request,
    }
}

/// An `Authorization: Bearer` header value.
pub fn bearer(secret: &str) -> String {
    format!("Bearer {secret}")
}
