//! Streams of one organization: settings and counters, the detector's state, stored
//! anomalies, and the commit of a processed batch. A batch's detector state, its anomalies,
//! the detections it counts and its idempotent answer are written in one transaction, so a
//! crash can neither count forgotten work nor forget counted work.

use crate::core::feedback::Source;
use crate::core::triage::{AnomalyStatus, Triage};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    feed::{self, FeedEntry},
    idempotency::{self, Prior},
    metering::{meter_in_tx, Metered},
    org_limits, scoped, tables, OrgScope, Page, StoreError,
};
use crate::core::detect::{EventSettings, Explanation, Finding};
use crate::core::feedback::Feedback;
use crate::core::rules::{Rule, StreamMatch};

/// Anomalies kept per stream; older ones are dropped as new ones arrive.
pub const MAX_STORED_ANOMALIES: u64 = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamRecord {
    pub id: String,
    pub settings: EventSettings,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub events_seen: u64,
    pub anomalies_seen: u64,
    pub last_event_at_ms: Option<i64>,
    /// Bumped on every write; a batch commits only over the version it started from.
    pub version: u64,
    /// `events_seen` when an `expected` verdict last restarted the baseline (issue 22): the
    /// warm-up counts from here.
    #[serde(default)]
    pub baseline_from_event: u64,
}

impl StreamRecord {
    /// Events still to learn before the detector judges (counted from the last baseline
    /// restart).
    pub fn warmup_remaining(&self) -> u32 {
        let learned = self.events_seen.saturating_sub(self.baseline_from_event);
        u64::from(self.settings.warmup).saturating_sub(learned) as u32
    }
}

impl Versioned for StreamRecord {
    const KIND: &'static str = "stream";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAnomaly {
    pub seq: u64,
    pub at_ms: i64,
    /// Position of the event in its batch.
    pub batch_index: u32,
    pub event: serde_json::Value,
    pub score: f64,
    pub explanation: Explanation,
    /// Open, acknowledged or resolved (records from before it read as open).
    #[serde(default)]
    pub triage: Triage,
    /// The fields that made the event odd (records from before issue 22 have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// A person's verdict, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<Feedback>,
}

/// An anomaly of a batch, before it is numbered.
#[derive(Debug, Clone)]
pub struct NewStreamAnomaly {
    /// Position of the event in its batch.
    pub batch_index: u32,
    pub event: serde_json::Value,
    pub score: f64,
    pub explanation: Explanation,
    pub findings: Vec<Finding>,
}

impl Versioned for StoredAnomaly {
    const KIND: &'static str = "stream anomaly";
    const VERSION: u8 = 1;
}

/// A stream as a batch starts from: its record and detector state, if it exists yet.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub record: Option<StreamRecord>,
    pub state: Option<Vec<u8>>,
    /// The stream's suppression rules (issue 22), applied to this batch's verdicts.
    pub rules: Vec<Rule<StreamMatch>>,
}

/// A processed batch, ready to commit.
pub struct StreamBatchCommit {
    pub record: StreamRecord,
    /// The version the batch started from; `None` for a stream created by this batch.
    pub expected_version: Option<u64>,
    pub state: Vec<u8>,
    pub anomalies: Vec<NewStreamAnomaly>,
    pub idempotency: Option<(String, String)>,
    pub now_ms: i64,
}

#[derive(Debug)]
pub enum BatchCommitted<T> {
    /// Committed; the answer built from the metering result.
    Done(T),
    /// Another request with the same idempotency key committed first: its answer.
    Replayed(serde_json::Value),
    /// The stream changed since the snapshot; process the batch again.
    Raced,
}

/// What an idempotency key already answered, if anything.
pub enum Remembered {
    Nothing,
    Answer(serde_json::Value),
    KeyReused,
}

impl OrgScope {
    /// Refuses a new stream when the organization holds its limit of streams.
    fn room_for_a_stream(
        &self,
        streams: &impl redb::ReadableTable<(&'static str, &'static str), &'static [u8]>,
    ) -> Result<(), StoreError> {
        org_limits::room_for_one(
            org_limits::rows_of_org(streams, &self.org_id)?,
            self.store.org_limits().streams,
            "streams",
            "--max-streams-per-org",
        )
    }

    pub fn stream_snapshot(&self, stream_id: &str) -> Result<StreamSnapshot, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let key = (self.org_id.as_str(), stream_id);
        let record = match tx.open_table(tables::STREAMS)?.get(key)? {
            Some(bytes) => Some(codec::decode::<StreamRecord>(bytes.value())?),
            None => None,
        };
        let state = tx
            .open_table(tables::STREAM_STATE)?
            .get(key)?
            .map(|b| b.value().to_vec());
        let rules = super::feedback::rules_of(&tx, tables::STREAM_RULES, &self.org_id, stream_id)?;
        Ok(StreamSnapshot {
            record,
            state,
            rules,
        })
    }

    pub fn get_stream(&self, stream_id: &str) -> Result<StreamRecord, StoreError> {
        self.stream_snapshot(stream_id)?
            .record
            .ok_or_else(|| StoreError::not_found("stream", stream_id))
    }

    /// The answer remembered for `key` (scoped by the caller, e.g. per stream).
    pub fn remembered(
        &self,
        key: &str,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<Remembered, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::IDEMPOTENCY)?;
        Ok(
            match idempotency::lookup(&table, &self.org_id, key, fingerprint, now_ms)? {
                Prior::None => Remembered::Nothing,
                Prior::Answered(a) => Remembered::Answer(a),
                Prior::Mismatch => Remembered::KeyReused,
            },
        )
    }

    pub fn list_streams(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<StreamRecord>, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let streams = tx.open_table(tables::STREAMS)?;
        scoped::page_in_org(&streams, &self.org_id, after, limit, |s: &StreamRecord| {
            s.id.clone()
        })
    }

    /// Creates a stream or replaces its settings. New settings restart its baseline: the
    /// detector state is dropped (stored anomalies and counters are kept).
    pub fn put_stream_settings(
        &self,
        stream_id: &str,
        settings: EventSettings,
        now_ms: i64,
    ) -> Result<StreamRecord, StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), stream_id);
        let record = {
            let mut streams = tx.open_table(tables::STREAMS)?;
            let existing = match streams.get(key)? {
                Some(bytes) => Some(codec::decode::<StreamRecord>(bytes.value())?),
                None => None,
            };
            if existing.is_none() {
                self.room_for_a_stream(&streams)?;
            }
            let record = match existing {
                Some(mut r) => {
                    r.settings = settings;
                    r.updated_at_ms = now_ms;
                    r.version += 1;
                    r
                }
                None => StreamRecord {
                    id: stream_id.to_string(),
                    settings,
                    created_at_ms: now_ms,
                    updated_at_ms: now_ms,
                    events_seen: 0,
                    anomalies_seen: 0,
                    last_event_at_ms: None,
                    version: 1,
                    baseline_from_event: 0,
                },
            };
            streams.insert(key, codec::encode(&record).as_slice())?;
            tx.open_table(tables::STREAM_STATE)?.remove(key)?;
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Removes a stream, its detector state and its stored anomalies.
    pub fn delete_stream(&self, stream_id: &str) -> Result<(), StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let org = self.org_id.as_str();
        {
            let key = (org, stream_id);
            if tx.open_table(tables::STREAMS)?.remove(key)?.is_none() {
                return Err(StoreError::not_found("stream", stream_id));
            }
            tx.open_table(tables::STREAM_STATE)?.remove(key)?;
            let mut anomalies = tx.open_table(tables::STREAM_ANOMALIES)?;
            anomalies.retain_in((org, stream_id, 0)..=(org, stream_id, u64::MAX), |_, _| {
                false
            })?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stored anomalies of a stream, oldest first, after sequence `after`, within
    /// `[from_ms, to_ms)` when given.
    pub fn list_stream_anomalies(
        &self,
        stream_id: &str,
        after: Option<u64>,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
        limit: usize,
    ) -> Result<Page<StoredAnomaly>, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::STREAM_ANOMALIES)?;
        let in_range = |a: &StoredAnomaly| {
            from_ms.is_none_or(|f| a.at_ms >= f) && to_ms.is_none_or(|t| a.at_ms < t)
        };
        scoped::page_numbered(
            &table,
            &self.org_id,
            stream_id,
            after,
            limit,
            in_range,
            |a| a.seq,
        )
    }

    /// Sets the status of stored anomaly `seq` of a stream (`id` is its name in answers).
    pub fn set_stream_anomaly_status(
        &self,
        stream_id: &str,
        (seq, id): (u64, &str),
        status: AnomalyStatus,
        note: Option<String>,
        actor: &str,
        now_ms: i64,
    ) -> Result<StoredAnomaly, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), stream_id, seq);
        let anomaly = scoped::update_numbered(
            &tx,
            tables::STREAM_ANOMALIES,
            key,
            ("anomaly", id),
            |a: &StoredAnomaly| {
                let triage = a.triage.changed(status, note, actor, now_ms)?;
                Some(StoredAnomaly {
                    triage,
                    ..a.clone()
                })
            },
        )?;
        tx.commit()?;
        Ok(anomaly)
    }

    /// Stored anomaly `seq` of a stream (`id` is its name in answers).
    pub fn get_stream_anomaly(
        &self,
        stream_id: &str,
        (seq, id): (u64, &str),
    ) -> Result<StoredAnomaly, StoreError> {
        self.get_stream(stream_id)?;
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::STREAM_ANOMALIES)?;
        scoped::get_numbered(
            &table,
            (self.org_id.as_str(), stream_id, seq),
            ("anomaly", id),
        )
    }

    /// Commits a processed batch: state, counters, anomalies, metering and the idempotent
    /// answer, all or nothing. `answer` builds the answer from the metering result.
    pub fn commit_stream_batch<T: Serialize>(
        &self,
        batch: StreamBatchCommit,
        answer: impl FnOnce(&Metered) -> T,
    ) -> Result<BatchCommitted<T>, StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let org = self.org_id.as_str();
        let stream_id = batch.record.id.as_str();
        let key = (org, stream_id);
        if let Some(answer) =
            idempotency::replay_in_tx(&tx, org, batch.idempotency.as_ref(), batch.now_ms)?
        {
            return Ok(BatchCommitted::Replayed(answer));
        }
        {
            let mut streams = tx.open_table(tables::STREAMS)?;
            let current = match streams.get(key)? {
                Some(bytes) => Some(codec::decode::<StreamRecord>(bytes.value())?.version),
                None => None,
            };
            if current != batch.expected_version {
                return Ok(BatchCommitted::Raced);
            }
            if current.is_none() {
                self.room_for_a_stream(&streams)?;
            }
            streams.insert(key, codec::encode(&batch.record).as_slice())?;
            tx.open_table(tables::STREAM_STATE)?
                .insert(key, batch.state.as_slice())?;
        }
        {
            let mut table = tx.open_table(tables::STREAM_ANOMALIES)?;
            let stored = batch.anomalies.iter().cloned().map(|a| StoredAnomaly {
                seq: 0,
                at_ms: batch.now_ms,
                batch_index: a.batch_index,
                event: a.event,
                score: a.score,
                explanation: a.explanation,
                triage: Triage::default(),
                findings: a.findings,
                feedback: None,
            });
            let first = scoped::append_numbered(
                &mut table,
                org,
                stream_id,
                stored,
                |a, seq| StoredAnomaly { seq, ..a },
                MAX_STORED_ANOMALIES,
            )?;
            let entries = (0..batch.anomalies.len() as u64).map(|i| FeedEntry {
                source: Source::Stream,
                parent: stream_id.to_string(),
                seq: first + i,
                at_ms: batch.now_ms,
            });
            feed::append(&tx, org, entries)?;
        }
        let metered = meter_in_tx(&tx, org, batch.anomalies.len() as u64, batch.now_ms)?;
        let answer = answer(&metered);
        idempotency::remember_answer(
            &tx,
            org,
            batch.idempotency.as_ref(),
            &answer,
            batch.now_ms,
            self.store.org_limits().idempotency_bytes,
        )?;
        tx.commit()?;
        Ok(BatchCommitted::Done(answer))
    }
}
