//! The Stream API: clients push batches of JSON events (a JSON array or NDJSON) and get a
//! verdict per event at once. A batch runs against the stream's persisted detector and is
//! committed with its anomalies, its metering and its idempotent answer in one transaction.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    param::{Header, Path, Query},
    payload::Json,
    ApiRequest, ApiResponse, Object, OpenApi,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    auth::OrgAuth,
    blocking_api,
    error::{ApiError, ApiResult},
    event_body::{JsonEvents, NdjsonEvents},
    explain::ExplanationView,
    feedback::FeedbackView,
    models::DateTime,
    models::{decode_cursor, encode_cursor, replayed, Answered, Tag},
    triage::{anomaly_id, TriageView},
    usage, AppState,
};
use crate::{
    clock,
    core::{
        billing::dunning::DunningPolicy,
        detect::{event_fields, EventDetector, EventSettings, EventVerdict},
        feedback::Source,
        metering::disclosure::disclosed_score,
        rules::{Rule, StreamMatch},
    },
    secrets,
    store::{
        page_limit, BatchCommitted, NewStreamAnomaly, OrgScope, Remembered, StoredAnomaly,
        StreamBatchCommit, StreamRecord,
    },
};

pub struct StreamsApi;

/// The body of `ingestStreamEvents`.
#[derive(ApiRequest)]
enum JsonBatch {
    /// A JSON array of event objects.
    Json(JsonEvents),
}

/// The body of `ingestStreamEventsNdjson`.
#[derive(ApiRequest)]
enum NdjsonBatch {
    /// NDJSON text: one JSON event object per line.
    Ndjson(NdjsonEvents),
}

/// The verdict on one event.
#[derive(Object, Serialize, Deserialize, Clone)]
#[oai(skip_serializing_if_is_none)]
struct EventResult {
    /// Position of the event in the batch, from 0.
    index: u32,
    anomaly: bool,
    /// Calibrated anomaly score, 0..1, of a detection. Absent when `anomaly` is false: only
    /// detections are billed, so only they disclose the detector's judgement.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score: Option<f64>,
    /// True while the stream's baseline is still being built (no verdict is guessed).
    warming_up: bool,
    /// Why, for anomalies.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    explanation: Option<ExplanationView>,
    /// The stream's rule (`sr_<n>`, made from feedback) that covered this event: the
    /// detector flagged it, the rule says it is expected, so it is not an anomaly and it is
    /// not counted.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    suppressed_by: Option<String>,
}

#[derive(Object, Serialize, Deserialize, Clone)]
#[oai(skip_serializing_if_is_none)]
struct BatchTotals {
    events: u32,
    anomalies: u32,
}

/// The answer to a batch: one result per event, in order.
#[derive(Object, Serialize, Deserialize, Clone)]
#[oai(skip_serializing_if_is_none)]
struct BatchResult {
    stream_id: String,
    /// `warming_up` until the baseline is built, then `ready`.
    status: String,
    /// Events still needed before verdicts start.
    warming_up_remaining: u32,
    results: Vec<EventResult>,
    totals: BatchTotals,
    /// Detections this batch added to the organization's usage (its anomalies).
    detections_counted: u64,
    /// Detections used this period after this batch.
    period_detections: u64,
}

/// Detector settings of a stream; absent fields take their defaults.
#[derive(Object, Serialize, Deserialize, Clone, Debug)]
#[oai(skip_serializing_if_is_none)]
struct StreamSettings {
    /// Recent events compared as a window against the baseline: 1 to half the baseline.
    #[oai(validator(minimum(value = "1"), maximum(value = "2048")))]
    window: Option<u32>,
    /// Recent events that form the baseline distribution.
    #[oai(validator(minimum(value = "16"), maximum(value = "4096")))]
    baseline: Option<u32>,
    /// 0 (fewest alarms) ..= 1 (most alarms).
    #[oai(validator(minimum(value = "0"), maximum(value = "1")))]
    sensitivity: Option<f64>,
    /// Events seen before verdicts start: 8 to four times the baseline.
    #[oai(validator(minimum(value = "8"), maximum(value = "16384")))]
    warmup: Option<u32>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct Stream {
    id: String,
    window: u32,
    baseline: u32,
    sensitivity: f64,
    warmup: u32,
    status: String,
    warming_up_remaining: u32,
    events_seen: u64,
    anomalies_seen: u64,
    created_at: DateTime,
    last_event_at: Option<DateTime>,
}

impl From<StreamRecord> for Stream {
    fn from(r: StreamRecord) -> Self {
        let remaining = r.warmup_remaining();
        Stream {
            id: r.id,
            window: r.settings.window,
            baseline: r.settings.baseline,
            sensitivity: r.settings.sensitivity,
            warmup: r.settings.warmup,
            status: if remaining > 0 { "warming_up" } else { "ready" }.into(),
            warming_up_remaining: remaining,
            events_seen: r.events_seen,
            anomalies_seen: r.anomalies_seen,
            created_at: DateTime::from_ms(r.created_at_ms),
            last_event_at: r.last_event_at_ms.map(DateTime::from_ms),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct StreamList {
    items: Vec<Stream>,
    next_cursor: Option<String>,
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub(super) struct StreamAnomaly {
    /// The anomaly's id within the stream (`sa_<seq>`), for its status and feedback.
    id: String,
    /// Sequence number within the stream.
    seq: u64,
    detected_at: DateTime,
    batch_index: u32,
    event: Value,
    score: f64,
    explanation: ExplanationView,
    #[oai(flatten)]
    triage: TriageView,
    #[oai(flatten)]
    feedback: FeedbackView,
}

impl From<StoredAnomaly> for StreamAnomaly {
    fn from(a: StoredAnomaly) -> Self {
        StreamAnomaly {
            id: anomaly_id("sa", a.seq),
            seq: a.seq,
            detected_at: DateTime::from_ms(a.at_ms),
            batch_index: a.batch_index,
            triage: TriageView::from(&a.triage),
            feedback: FeedbackView::of(a.feedback.as_ref(), Source::Stream),
            event: a.event,
            score: a.score,
            explanation: ExplanationView::from(a.explanation).with_findings(&a.findings),
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
struct StreamAnomalyList {
    items: Vec<StreamAnomaly>,
    next_cursor: Option<String>,
}

fn valid_stream_id(id: &str) -> ApiResult<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::validation(
            "stream_id",
            "must be 1 to 128 characters of letters, digits, '.', '_', ':' or '-'",
        ))
    }
}

/// The id of the first rule that covers a flagged event, if any.
fn suppressing_rule(
    rules: &[Rule<StreamMatch>],
    verdict: &EventVerdict,
    event: &Value,
) -> Option<String> {
    if !verdict.anomaly || rules.is_empty() {
        return None;
    }
    let fields = event_fields(event);
    rules
        .iter()
        .find(|r| r.matcher.suppresses(&verdict.findings, &fields))
        .map(|r| anomaly_id("sr", r.number))
}

/// Runs a batch against the stream and commits it; retried if another batch raced it.
fn process_batch(
    scope: &OrgScope,
    dunning: &DunningPolicy,
    stream_id: &str,
    events: &[Value],
    idempotency_key: Option<&str>,
    now_ms: i64,
) -> ApiResult<Answered<BatchResult>> {
    let scoped_key =
        idempotency_key.map(|k| super::models::scoped_idempotency_key("stream", stream_id, k));
    let fingerprint = secrets::hex(&sha_of(events));
    for _attempt in 0..8 {
        if let Some(key) = &scoped_key {
            match scope.remembered(key, &fingerprint, now_ms)? {
                Remembered::Nothing => {}
                Remembered::Answer(answer) => return replayed(answer),
                Remembered::KeyReused => return Err(ApiError::IdempotencyKeyReused),
            }
        }
        usage::admit(&scope.meter_snapshot(now_ms)?, dunning, now_ms)?;
        let snapshot = scope.stream_snapshot(stream_id)?;
        if events.is_empty() && snapshot.record.is_none() {
            return Err(ApiError::validation(
                "events",
                format!("stream {stream_id} does not exist, and an empty batch does not create it; send at least one event (or PUT the stream's settings)"),
            ));
        }
        let expected_version = snapshot.record.as_ref().map(|r| r.version);
        let rules = snapshot.rules;
        let mut record = snapshot.record.unwrap_or_else(|| StreamRecord {
            id: stream_id.to_string(),
            settings: EventSettings::default(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
            events_seen: 0,
            anomalies_seen: 0,
            last_event_at_ms: None,
            version: 0,
            baseline_from_event: 0,
        });
        let mut detector = super::resume_detector(
            &format!("stream {stream_id}"),
            snapshot.state.as_deref(),
            EventDetector::decode_state,
            || EventDetector::new(record.settings.clone()),
        )?;
        let mut results = Vec::with_capacity(events.len());
        let mut anomalies = Vec::new();
        let mut remaining = 0;
        for (i, event) in events.iter().enumerate() {
            let mut verdict = detector.observe(event);
            remaining = verdict.warming_up_remaining;
            let suppressed_by = suppressing_rule(&rules, &verdict, event);
            if suppressed_by.is_some() {
                verdict.anomaly = false;
            }
            if let Some(explanation) = verdict.explanation.clone().filter(|_| verdict.anomaly) {
                anomalies.push(NewStreamAnomaly {
                    batch_index: i as u32,
                    event: event.clone(),
                    score: verdict.score,
                    explanation,
                    findings: verdict.findings.clone(),
                });
            }
            results.push(EventResult {
                index: i as u32,
                anomaly: verdict.anomaly,
                score: disclosed_score(verdict.anomaly, verdict.score),
                warming_up: verdict.warming_up_remaining > 0,
                explanation: verdict
                    .explanation
                    .filter(|_| verdict.anomaly)
                    .map(|e| ExplanationView::from(e).with_findings(&verdict.findings)),
                suppressed_by,
            });
        }
        if events.is_empty() {
            remaining = record.warmup_remaining();
        }
        let found = anomalies.len() as u32;
        record.events_seen += events.len() as u64;
        record.anomalies_seen += u64::from(found);
        record.updated_at_ms = now_ms;
        if !events.is_empty() {
            record.last_event_at_ms = Some(now_ms);
        }
        record.version += 1;
        let commit = StreamBatchCommit {
            record,
            expected_version,
            state: detector.encode_state(),
            anomalies,
            idempotency: scoped_key.clone().map(|k| (k, fingerprint.clone())),
            now_ms,
        };
        let totals = BatchTotals {
            events: events.len() as u32,
            anomalies: found,
        };
        let committed = scope.commit_stream_batch(commit, |metered| BatchResult {
            stream_id: stream_id.to_string(),
            status: if remaining > 0 { "warming_up" } else { "ready" }.into(),
            warming_up_remaining: remaining,
            results,
            totals,
            detections_counted: u64::from(found),
            period_detections: metered.usage.total_calls,
        })?;
        match committed {
            BatchCommitted::Done(result) => return Ok(Answered::Fresh(result)),
            BatchCommitted::Replayed(answer) => return replayed(answer),
            BatchCommitted::Raced => continue,
        }
    }
    Err(ApiError::Conflict(format!(
        "stream {stream_id} is being written by other requests; retry"
    )))
}

/// Both ingest operations: checks, parses the body (`events`, given the batch limit), runs
/// the batch and answers.
async fn ingest_batch(
    req: &poem::Request,
    auth: OrgAuth,
    state: &Arc<AppState>,
    stream_id: String,
    events: impl FnOnce(usize) -> ApiResult<Vec<Value>>,
) -> ApiResult<BatchAnswer> {
    valid_stream_id(&stream_id)?;
    // Read from the request itself: a value that is not ASCII never reaches the typed
    // parameter, and must be refused rather than ignored.
    let key = super::models::idempotency_key_header(req)?;
    let org = auth.0.scope.org_id().to_string();
    state.rate_limiter.check(&org)?;
    let _in_flight = state.org_batches.enter(&org)?;
    let events = events(state.max_batch_events)?;
    let scope = auth.0.scope;
    let now = clock::now_ms();
    let dunning = state.dunning_policy;
    let result = blocking_api(move || {
        process_batch(&scope, &dunning, &stream_id, &events, key.as_deref(), now)
    })
    .await?;
    let replayed = result.is_replay().then_some(true);
    Ok(BatchAnswer::Ok(Json(result.into_inner()), replayed))
}

fn sha_of(events: &[Value]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for e in events {
        hasher.update(serde_json::to_vec(e).unwrap_or_default());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// The verdicts of a batch, and whether they are the stored answer to an earlier request.
#[derive(ApiResponse)]
enum BatchAnswer {
    /// One verdict per event. `Idempotent-Replayed: true` when this is the stored first
    /// answer to an earlier request with the same `Idempotency-Key` (nothing was counted).
    #[oai(status = 200)]
    Ok(
        Json<BatchResult>,
        #[oai(header = "Idempotent-Replayed")] Option<bool>,
    ),
}

fn settings_from(body: &StreamSettings) -> ApiResult<EventSettings> {
    let defaults = EventSettings::default();
    let settings = EventSettings {
        window: body.window.unwrap_or(defaults.window),
        baseline: body.baseline.unwrap_or(defaults.baseline),
        sensitivity: body.sensitivity.unwrap_or(defaults.sensitivity),
        warmup: body.warmup.unwrap_or(defaults.warmup),
        ..defaults
    };
    settings
        .validate()
        .map_err(|e| ApiError::validation("settings", e.to_string()))?;
    Ok(settings)
}

#[OpenApi(prefix_path = "/v1/streams", tag = "Tag::Streams")]
impl StreamsApi {
    /// Push a batch of events (a JSON array of event objects) and get a verdict per event, in
    /// order. The stream is created on first use. Each anomaly counts one detection; past the
    /// quota the call answers 429 before doing any work. For NDJSON use
    /// `ingestStreamEventsNdjson`; this operation also reads a body sent with
    /// `Content-Type: application/x-ndjson`, for senders configured before that one existed.
    #[oai(
        path = "/:stream_id/events",
        method = "post",
        operation_id = "ingestStreamEvents"
    )]
    async fn ingest(
        &self,
        req: &poem::Request,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        /// Retrying with the same key returns the first answer and counts nothing again (24 h).
        /// 1 to 255 visible ASCII characters; anything else is refused with 422.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        idempotency_key: Header<Option<String>>,
        body: JsonBatch,
    ) -> ApiResult<BatchAnswer> {
        let _ = idempotency_key;
        let JsonBatch::Json(body) = body;
        ingest_batch(req, auth, &state, stream_id.0, |max| body.events(max)).await
    }

    /// Push a batch of events as NDJSON (one JSON event object per line; blank lines are
    /// skipped), as log shippers send them, and get a verdict per event, in order. Declared as
    /// `application/octet-stream` so that every generator gives a text or bytes parameter;
    /// `application/x-ndjson` and `text/plain` are read the same. Otherwise exactly
    /// `ingestStreamEvents`.
    #[oai(
        path = "/:stream_id/events/ndjson",
        method = "post",
        operation_id = "ingestStreamEventsNdjson"
    )]
    async fn ingest_ndjson(
        &self,
        req: &poem::Request,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        /// Retrying with the same key returns the first answer and counts nothing again (24 h).
        /// 1 to 255 visible ASCII characters; anything else is refused with 422.
        #[oai(
            name = "Idempotency-Key",
            validator(min_length = 1, max_length = 255, pattern = r"^[!-~]+$")
        )]
        idempotency_key: Header<Option<String>>,
        body: NdjsonBatch,
    ) -> ApiResult<BatchAnswer> {
        let _ = idempotency_key;
        let NdjsonBatch::Ndjson(body) = body;
        ingest_batch(req, auth, &state, stream_id.0, |max| body.events(max)).await
    }

    /// Create a stream or change its detector settings. New settings restart its baseline.
    #[oai(path = "/:stream_id", method = "put", operation_id = "putStream")]
    async fn put(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        body: Json<StreamSettings>,
    ) -> ApiResult<Json<Stream>> {
        valid_stream_id(&stream_id)?;
        let settings = settings_from(&body)?;
        let scope = auth.0.scope;
        let now = clock::now_ms();
        let record =
            super::blocking(move || scope.put_stream_settings(&stream_id, settings, now)).await?;
        Ok(Json(record.into()))
    }

    /// A stream's settings and status.
    #[oai(path = "/:stream_id", method = "get", operation_id = "getStream")]
    async fn get(&self, auth: OrgAuth, stream_id: Path<String>) -> ApiResult<Json<Stream>> {
        Ok(Json(auth.0.scope.get_stream(&stream_id)?.into()))
    }

    /// The organization's streams, by id.
    #[oai(path = "/", method = "get", operation_id = "listStreams")]
    async fn list(
        &self,
        auth: OrgAuth,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<StreamList>> {
        Ok(Json(list_page(
            &auth.0.scope,
            limit.0,
            cursor.0.as_deref(),
        )?))
    }

    /// Delete a stream with its detector state and stored anomalies.
    #[oai(path = "/:stream_id", method = "delete", operation_id = "deleteStream")]
    async fn delete(&self, auth: OrgAuth, stream_id: Path<String>) -> ApiResult<Json<Stream>> {
        let scope = auth.0.scope;
        let record = scope.get_stream(&stream_id)?;
        super::blocking(move || scope.delete_stream(&stream_id)).await?;
        Ok(Json(record.into()))
    }

    /// Stored anomalies of a stream, oldest first, optionally within `[from, to)` (RFC 3339).
    #[oai(
        path = "/:stream_id/anomalies",
        method = "get",
        operation_id = "listStreamAnomalies"
    )]
    async fn anomalies(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<StreamAnomalyList>> {
        let after = decode_cursor(cursor.0.as_deref())?
            .map(|c| {
                c.parse::<u64>()
                    .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))
            })
            .transpose()?;
        let from_ms = super::models::parse_time_param("from", from.0.as_deref())?;
        let to_ms = super::models::parse_time_param("to", to.0.as_deref())?;
        let page = auth.0.scope.list_stream_anomalies(
            &stream_id,
            after,
            from_ms,
            to_ms,
            page_limit(limit.0),
        )?;
        Ok(Json(StreamAnomalyList {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: encode_cursor(page.next_after),
        }))
    }
}

/// A page of an org's streams (shared with the admin views).
pub(super) fn list_page(
    scope: &crate::store::OrgScope,
    limit: Option<u32>,
    cursor: Option<&str>,
) -> ApiResult<StreamList> {
    let after = decode_cursor(cursor)?;
    let page = scope.list_streams(after.as_deref(), page_limit(limit))?;
    Ok(StreamList {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: encode_cursor(page.next_after),
    })
}
