//! The org-wide anomaly routes (issue 22): `GET /v1/anomalies` lists every stored anomaly of
//! the organization, streams and monitors alike, newest first, filtered by status, source and
//! time and paged with a cursor; `GET /v1/anomalies/live` sends each new one as it is stored,
//! as server-sent events, for dashboards and chat bots.
//!
//! The live feed: each anomaly is an `anomaly` event whose `id` is its number in the org's
//! feed; a `heartbeat` event follows every `heartbeat_seconds` without one, so a client can
//! tell a quiet feed from a dead connection. A client that reconnects with `Last-Event-ID`
//! (browsers' `EventSource` does this by itself) or `?after=` gets every anomaly after that
//! id first, then the live ones; without either it starts with the next new anomaly. A
//! browser's `EventSource` cannot send an `Authorization` header, so it connects with
//! `?ticket=` instead: a ticket from `POST /v1/anomalies/live/tickets`, valid for
//! [`TICKET_TTL_MS`] and for this feed only (see [`LiveTickets`]). The feed polls the store
//! every [`POLL`] and ends when the server shuts down.

use std::{
    collections::{HashMap, VecDeque},
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use futures_util::stream::{self, BoxStream, StreamExt};
use poem::{web::sse::Event, web::Data, Request};
use poem_openapi::{
    auth::ApiKey,
    param::{Header, Query},
    payload::{EventStream, Json},
    Object, OpenApi, SecurityScheme,
};

use super::{
    auth::{OrgAuth, OrgCaller},
    error::{ApiError, ApiResult},
    feedback::{FeedbackView, SourceKind},
    models::{parse_time_param, DateTime, Tag},
    triage::{anomaly_id, Status, TriageView},
    AppState,
};
use crate::{
    clock,
    core::feedback::Source,
    secrets,
    store::{page_limit, AnyAnomaly, FeedFilter, FeedItem, OrgScope},
};

/// How long a live-feed ticket admits new connections.
pub const TICKET_TTL_MS: i64 = 10 * 60_000;
/// Tickets held at once; the oldest go first past this.
const MAX_TICKETS: usize = 10_000;
/// How often an open feed looks for new anomalies.
const POLL: Duration = Duration::from_millis(250);
/// Anomalies read from the store per look.
const BATCH: usize = 100;

/// One stored anomaly of the organization.
#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct OrgAnomaly {
    /// Its number in the organization's feed: the live feed's event id, and the order
    /// anomalies were found in.
    pub feed_id: u64,
    /// The anomaly's id within its stream or monitor (`sa_<n>`, `ma_<n>`).
    pub id: String,
    pub source: SourceKind,
    /// The stream or monitor id.
    pub parent_id: String,
    /// The anomaly's own route (its status, and `/feedback` below it).
    pub path: String,
    pub detected_at: DateTime,
    pub score: f64,
    /// The explanation's sentence: what was observed against what was expected.
    pub summary: String,
    #[oai(flatten)]
    pub triage: TriageView,
    #[oai(flatten)]
    pub feedback: FeedbackView,
}

impl From<FeedItem> for OrgAnomaly {
    fn from(item: FeedItem) -> Self {
        let FeedItem {
            number,
            entry,
            anomaly,
        } = item;
        let id = anomaly_id(entry.source.anomaly_prefix(), entry.seq);
        let collection = match entry.source {
            Source::Stream => "streams",
            Source::Monitor => "monitors",
        };
        let path = format!("/v1/{collection}/{}/anomalies/{id}", entry.parent);
        let (score, summary, triage, feedback) = match &anomaly {
            AnyAnomaly::Stream(a) => (
                a.score,
                a.explanation.summary.clone(),
                TriageView::from(&a.triage),
                FeedbackView::of(a.feedback.as_ref(), Source::Stream),
            ),
            AnyAnomaly::Monitor(a) => (
                a.score,
                a.explanation.summary.clone(),
                TriageView::from(&a.triage),
                FeedbackView::of(a.feedback.as_ref(), Source::Monitor),
            ),
        };
        OrgAnomaly {
            feed_id: number,
            id,
            source: entry.source.into(),
            parent_id: entry.parent,
            path,
            detected_at: DateTime::from_ms(entry.at_ms),
            score,
            summary,
            triage,
            feedback,
        }
    }
}

#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct OrgAnomalyList {
    /// Newest first.
    pub items: Vec<OrgAnomaly>,
    pub next_cursor: Option<String>,
}

/// One event of the live feed: an anomaly, or a heartbeat.
#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct LiveEvent {
    /// `anomaly` or `heartbeat` (also the SSE event's type).
    pub kind: String,
    /// The server's time when the event was sent.
    pub at: DateTime,
    /// For `anomaly`.
    pub anomaly: Option<OrgAnomaly>,
}

/// A ticket for the live feed.
#[derive(Object)]
pub struct LiveTicket {
    /// Pass as `?ticket=` to `GET /v1/anomalies/live`.
    pub ticket: String,
    /// New connections are refused after this; an open one keeps running.
    pub expires_at: DateTime,
}

#[derive(Clone)]
struct Ticket {
    org_id: String,
    actor: String,
    expires_ms: i64,
}

/// Live-feed tickets, in memory only (a restart ends them, like admin sessions): a random
/// token for one org, which opens that org's live feed and nothing else.
#[derive(Default)]
pub struct LiveTickets {
    held: Mutex<(HashMap<String, Ticket>, VecDeque<String>)>,
}

impl LiveTickets {
    fn issue(&self, org_id: &str, actor: &str, now_ms: i64) -> (String, i64) {
        let token = format!("lt_{}", secrets::random_token(32));
        let expires_ms = now_ms + TICKET_TTL_MS;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (tickets, order) = &mut *held;
        tickets.retain(|_, t| t.expires_ms > now_ms);
        order.retain(|k| tickets.contains_key(k));
        while tickets.len() >= MAX_TICKETS {
            match order.pop_front() {
                Some(oldest) => tickets.remove(&oldest),
                None => break,
            };
        }
        let ticket = Ticket {
            org_id: org_id.to_string(),
            actor: actor.to_string(),
            expires_ms,
        };
        tickets.insert(token.clone(), ticket);
        order.push_back(token.clone());
        (token, expires_ms)
    }

    fn check(&self, token: &str, now_ms: i64) -> Option<Ticket> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        held.0.get(token).filter(|t| t.expires_ms > now_ms).cloned()
    }
}

/// A live-feed ticket in the query (`?ticket=`), for browsers.
#[derive(SecurityScheme)]
#[oai(
    rename = "LiveTicket",
    ty = "api_key",
    key_name = "ticket",
    key_in = "query",
    checker = "check_ticket"
)]
pub struct TicketAuth(OrgCaller);

async fn check_ticket(req: &Request, key: ApiKey) -> poem::Result<OrgCaller> {
    let state = req
        .data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))?;
    let ticket = state
        .live_tickets
        .check(&key.key, clock::now_ms())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "the live-feed ticket is not valid or has expired; get a new one from POST /v1/anomalies/live/tickets".into(),
            )
        })?;
    Ok(OrgCaller {
        scope: state.store.org(&ticket.org_id),
        actor: ticket.actor,
    })
}

/// An organization key, or a live-feed ticket.
#[derive(SecurityScheme)]
pub enum LiveAuth {
    Key(OrgAuth),
    Ticket(TicketAuth),
}

impl LiveAuth {
    fn caller(self) -> OrgCaller {
        match self {
            LiveAuth::Key(k) => k.0,
            LiveAuth::Ticket(t) => t.0,
        }
    }
}

fn parse_cursor(cursor: Option<&str>) -> ApiResult<Option<u64>> {
    super::models::decode_cursor(cursor)?
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::BadRequest("cursor is not valid".into()))
        })
        .transpose()
}

struct Feed {
    scope: OrgScope,
    state: Arc<AppState>,
    last: u64,
    ready: VecDeque<LiveEvent>,
    heartbeat: Duration,
    quiet: Duration,
}

impl Feed {
    /// The next event: queued anomalies first, then a look at the store every [`POLL`], a
    /// heartbeat after `heartbeat` of quiet; None once the server shuts down.
    async fn next(mut self) -> Option<(LiveEvent, Feed)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some((event, self));
            }
            if self.state.shutting_down.load(Ordering::Relaxed) {
                return None;
            }
            let scope = self.scope.clone();
            let after = self.last;
            let looked = super::blocking(move || scope.feed_after(after, BATCH)).await;
            let (items, last) = match looked {
                Ok(found) => found,
                // A store that cannot be read ends the feed; the client reconnects with
                // its Last-Event-ID and loses nothing.
                Err(_) => return None,
            };
            self.last = last;
            let now = DateTime::from_ms(clock::now_ms());
            for item in items {
                self.ready.push_back(LiveEvent {
                    kind: "anomaly".into(),
                    at: now.clone(),
                    anomaly: Some(item.into()),
                });
            }
            if !self.ready.is_empty() {
                self.quiet = Duration::ZERO;
                continue;
            }
            if self.quiet >= self.heartbeat {
                self.quiet = Duration::ZERO;
                let beat = LiveEvent {
                    kind: "heartbeat".into(),
                    at: now,
                    anomaly: None,
                };
                return Some((beat, self));
            }
            tokio::time::sleep(POLL).await;
            self.quiet += POLL;
        }
    }
}

fn to_sse(event: LiveEvent) -> Event {
    let id = event.anomaly.as_ref().map(|a| a.feed_id);
    let kind = event.kind.clone();
    let data =
        serde_json::to_string(&poem_openapi::types::ToJSON::to_json(&event)).unwrap_or_default();
    let sse = Event::message(data).event_type(kind);
    match id {
        Some(id) => sse.id(id.to_string()),
        None => sse,
    }
}

pub struct AnomalyFeedApi;

#[OpenApi(prefix_path = "/v1/anomalies", tag = "Tag::Anomalies")]
impl AnomalyFeedApi {
    /// Every stored anomaly of the organization, streams and monitors alike, newest first.
    /// Filters: `status`, `source` (`stream` or `monitor`), and `[from, to)` on the time it
    /// was found (RFC 3339 or epoch seconds).
    #[oai(path = "/", method = "get", operation_id = "listAnomalies")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: OrgAuth,
        status: Query<Option<Status>>,
        source: Query<Option<SourceKind>>,
        from: Query<Option<String>>,
        to: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))] limit: Query<Option<u32>>,
        cursor: Query<Option<String>>,
    ) -> ApiResult<Json<OrgAnomalyList>> {
        let filter = FeedFilter {
            status: status.0.map(Into::into),
            source: source.0.map(Into::into),
            from_ms: parse_time_param("from", from.0.as_deref())?,
            to_ms: parse_time_param("to", to.0.as_deref())?,
        };
        let before = parse_cursor(cursor.0.as_deref())?;
        let scope = auth.0.scope;
        let limit = page_limit(limit.0);
        let (items, next) =
            super::blocking(move || scope.list_anomalies(&filter, before, limit)).await?;
        Ok(Json(OrgAnomalyList {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor: super::models::encode_cursor(next.map(|n| n.to_string())),
        }))
    }

    /// A ticket that opens the live feed from a browser (`EventSource` cannot send an
    /// `Authorization` header): pass it as `?ticket=`. It admits connections for 10 minutes
    /// and opens nothing else.
    #[oai(
        path = "/live/tickets",
        method = "post",
        operation_id = "createLiveTicket"
    )]
    async fn ticket(
        &self,
        auth: OrgAuth,
        state: Data<&Arc<AppState>>,
    ) -> ApiResult<Json<LiveTicket>> {
        let OrgCaller { scope, actor } = auth.0;
        let (ticket, expires_ms) =
            state
                .live_tickets
                .issue(scope.org_id(), &actor, clock::now_ms());
        Ok(Json(LiveTicket {
            ticket,
            expires_at: DateTime::from_ms(expires_ms),
        }))
    }

    /// New anomalies as they are stored, as server-sent events (`text/event-stream`): an
    /// `anomaly` event (its `id` is the anomaly's `feed_id`) for each, and a `heartbeat`
    /// event after `heartbeat_seconds` (default 15) without one. Resume with the
    /// `Last-Event-ID` header or `?after=<feed_id>`: every anomaly after it comes first.
    #[oai(path = "/live", method = "get", operation_id = "streamAnomalies")]
    async fn live(
        &self,
        auth: LiveAuth,
        state: Data<&Arc<AppState>>,
        #[oai(name = "Last-Event-ID")] last_event_id: Header<Option<String>>,
        /// Resume after this feed id (as `Last-Event-ID` does; the header wins).
        after: Query<Option<u64>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "300")))] heartbeat_seconds: Query<
            Option<u32>,
        >,
    ) -> ApiResult<EventStream<BoxStream<'static, LiveEvent>>> {
        let OrgCaller { scope, .. } = auth.caller();
        let resume = match last_event_id.0.as_deref().map(str::trim) {
            Some(id) if !id.is_empty() => Some(id.parse::<u64>().map_err(|_| {
                ApiError::validation("Last-Event-ID", "must be a feed_id (a whole number)")
            })?),
            _ => after.0,
        };
        let last = match resume {
            Some(id) => id,
            None => {
                let head_scope = scope.clone();
                super::blocking(move || head_scope.feed_head()).await?
            }
        };
        let feed = Feed {
            scope,
            state: state.0.clone(),
            last,
            ready: VecDeque::new(),
            heartbeat: Duration::from_secs(u64::from(heartbeat_seconds.0.unwrap_or(15))),
            quiet: Duration::ZERO,
        };
        let events = stream::unfold(feed, Feed::next).boxed();
        Ok(EventStream::new(events).to_event(to_sse))
    }
}
