//! Monitors of one organization: definition and counters, detector state, recent points with
//! their scores, stored anomalies, and the commit of a batch of points with everything it
//! causes (metering, notifications, idempotent answer) in one transaction.

use crate::core::feedback::Source;
use crate::core::rules::{MonitorMatch, Rule};
use crate::core::triage::{AnomalyStatus, Triage};
use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    codec::{self, Versioned},
    feed::{self, FeedEntry},
    idempotency,
    metering::{meter_in_tx, Metered},
    org_limits,
    outbox::{self, NewEmail},
    scoped,
    streams::BatchCommitted,
    tables,
    webhooks::{self, NewDelivery, WebhookDelivery},
    OrgScope, Page, StoreError,
};
use crate::core::detect::{Explanation, MetricSettings};

/// Anomalies and series points kept per monitor; older ones are dropped.
pub const MAX_STORED_ANOMALIES: u64 = 10_000;
pub const MAX_SERIES_POINTS: usize = 20_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookChannel {
    pub id: String,
    pub url: String,
    pub secret: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorRecord {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub settings: MetricSettings,
    pub emails: Vec<String>,
    pub webhooks: Vec<WebhookChannel>,
    pub paused: bool,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub points_seen: u64,
    pub points_rejected: u64,
    pub anomalies_seen: u64,
    /// Epoch seconds of the last accepted point and the last anomaly.
    pub last_point_ts: Option<i64>,
    pub last_anomaly_ts: Option<i64>,
    /// `points_seen` when the last anomaly was found, to group anomalies into episodes.
    pub last_anomaly_point: Option<u64>,
    pub episodes: u64,
    pub version: u64,
    /// `points_seen` when an `expected` verdict last restarted the baseline (issue 22): the
    /// warm-up counts from here.
    #[serde(default)]
    pub baseline_from_point: u64,
}

impl MonitorRecord {
    /// Points still to learn before the detector judges (counted from the last baseline
    /// restart).
    pub fn warmup_remaining(&self) -> u32 {
        let learned = self.points_seen.saturating_sub(self.baseline_from_point);
        u64::from(self.settings.warmup).saturating_sub(learned) as u32
    }
}

impl Versioned for MonitorRecord {
    const KIND: &'static str = "monitor";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorAnomaly {
    pub seq: u64,
    /// The point's own time (epoch seconds) and value.
    pub ts: i64,
    pub value: f64,
    pub score: f64,
    pub explanation: Explanation,
    pub detected_at_ms: i64,
    pub episode: u64,
    /// Open, acknowledged or resolved (records from before it read as open).
    #[serde(default)]
    pub triage: Triage,
    /// A person's verdict, once given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<crate::core::feedback::Feedback>,
}

impl Versioned for MonitorAnomaly {
    const KIND: &'static str = "monitor anomaly";
    const VERSION: u8 = 1;
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeriesPoint {
    pub ts: i64,
    pub value: f64,
    pub score: f64,
    pub anomaly: bool,
}

impl Versioned for SeriesPoint {
    const KIND: &'static str = "series point";
    const VERSION: u8 = 1;
}

/// A monitor as a batch starts from.
pub struct MonitorSnapshot {
    pub record: MonitorRecord,
    pub state: Option<Vec<u8>>,
    /// The monitor's suppression rules (issue 22), applied to this batch's verdicts.
    pub rules: Vec<Rule<MonitorMatch>>,
}

/// A notification an episode's first anomaly asks for.
pub struct EpisodeStart {
    pub episode: u64,
    pub anomaly: MonitorAnomaly,
}

/// A processed batch of points, ready to commit.
pub struct MonitorBatchCommit {
    pub record: MonitorRecord,
    pub expected_version: u64,
    pub state: Vec<u8>,
    pub points: Vec<SeriesPoint>,
    /// Anomalies without their sequence numbers (assigned at commit).
    pub anomalies: Vec<MonitorAnomaly>,
    pub episode_starts: Vec<EpisodeStart>,
    pub idempotency: Option<(String, String)>,
    pub now_ms: i64,
}

fn read<T: Versioned>(
    bytes: Option<redb::AccessGuard<'_, &'static [u8]>>,
) -> Result<Option<T>, StoreError> {
    bytes.map(|b| codec::decode(b.value())).transpose()
}

impl OrgScope {
    pub fn create_monitor(&self, record: &MonitorRecord) -> Result<(), StoreError> {
        let tx = self.store.db()?.begin_write()?;
        {
            let mut monitors = tx.open_table(tables::MONITORS)?;
            if monitors
                .get((self.org_id.as_str(), record.id.as_str()))?
                .is_some()
            {
                return Err(StoreError::Conflict(format!(
                    "monitor {} already exists",
                    record.id
                )));
            }
            org_limits::room_for_one(
                org_limits::rows_of_org(&monitors, &self.org_id)?,
                self.store.org_limits().monitors,
                "monitors",
                "--max-monitors-per-org",
            )?;
            monitors.insert(
                (self.org_id.as_str(), record.id.as_str()),
                codec::encode(record).as_slice(),
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn get_monitor(&self, id: &str) -> Result<MonitorRecord, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let monitors = tx.open_table(tables::MONITORS)?;
        read(monitors.get((self.org_id.as_str(), id))?)?
            .ok_or_else(|| StoreError::not_found("monitor", id))
    }

    /// A monitor as a batch starts from: its record, detector state and suppression rules.
    pub fn monitor_snapshot(&self, id: &str) -> Result<MonitorSnapshot, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let key = (self.org_id.as_str(), id);
        let record = read(tx.open_table(tables::MONITORS)?.get(key)?)?
            .ok_or_else(|| StoreError::not_found("monitor", id))?;
        let state = tx
            .open_table(tables::MONITOR_STATE)?
            .get(key)?
            .map(|b| b.value().to_vec());
        let rules = super::feedback::rules_of(&tx, tables::MONITOR_RULES, &self.org_id, id)?;
        Ok(MonitorSnapshot {
            record,
            state,
            rules,
        })
    }

    pub fn list_monitors(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<MonitorRecord>, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let monitors = tx.open_table(tables::MONITORS)?;
        scoped::page_in_org(
            &monitors,
            &self.org_id,
            after,
            limit,
            |m: &MonitorRecord| m.id.clone(),
        )
    }

    /// Changes a monitor with `change`; when `reset_state` the detector starts afresh.
    pub fn update_monitor(
        &self,
        id: &str,
        reset_state: bool,
        now_ms: i64,
        change: impl FnOnce(&mut MonitorRecord),
    ) -> Result<MonitorRecord, StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), id);
        let record = {
            let mut monitors = tx.open_table(tables::MONITORS)?;
            let mut record: MonitorRecord =
                read(monitors.get(key)?)?.ok_or_else(|| StoreError::not_found("monitor", id))?;
            change(&mut record);
            record.updated_at_ms = now_ms;
            record.version += 1;
            monitors.insert(key, codec::encode(&record).as_slice())?;
            if reset_state {
                tx.open_table(tables::MONITOR_STATE)?.remove(key)?;
            }
            record
        };
        tx.commit()?;
        Ok(record)
    }

    /// Removes a monitor with its state, points and anomalies (its deliveries stay listed).
    pub fn delete_monitor(&self, id: &str) -> Result<(), StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let org = self.org_id.as_str();
        {
            if tx
                .open_table(tables::MONITORS)?
                .remove((org, id))?
                .is_none()
            {
                return Err(StoreError::not_found("monitor", id));
            }
            tx.open_table(tables::MONITOR_STATE)?.remove((org, id))?;
            tx.open_table(tables::MONITOR_ANOMALIES)?
                .retain_in((org, id, 0)..=(org, id, u64::MAX), |_, _| false)?;
            tx.open_table(tables::MONITOR_SERIES)?
                .retain_in((org, id, i64::MIN)..=(org, id, i64::MAX), |_, _| false)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stored anomalies, oldest first, after `after`, with point times in `[from, to)`.
    pub fn list_monitor_anomalies(
        &self,
        id: &str,
        after: Option<u64>,
        from_ts: Option<i64>,
        to_ts: Option<i64>,
        limit: usize,
    ) -> Result<Page<MonitorAnomaly>, StoreError> {
        self.get_monitor(id)?;
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::MONITOR_ANOMALIES)?;
        let in_range = |a: &MonitorAnomaly| {
            from_ts.is_none_or(|f| a.ts >= f) && to_ts.is_none_or(|t| a.ts < t)
        };
        scoped::page_numbered(&table, &self.org_id, id, after, limit, in_range, |a| a.seq)
    }

    /// Sets the status of stored anomaly `seq` of a monitor (`id` is its name in answers).
    pub fn set_monitor_anomaly_status(
        &self,
        monitor_id: &str,
        (seq, id): (u64, &str),
        status: AnomalyStatus,
        note: Option<String>,
        actor: &str,
        now_ms: i64,
    ) -> Result<MonitorAnomaly, StoreError> {
        self.get_monitor(monitor_id)?;
        let tx = self.store.db()?.begin_write()?;
        let key = (self.org_id.as_str(), monitor_id, seq);
        let anomaly = scoped::update_numbered(
            &tx,
            tables::MONITOR_ANOMALIES,
            key,
            ("anomaly", id),
            |a: &MonitorAnomaly| {
                let triage = a.triage.changed(status, note, actor, now_ms)?;
                Some(MonitorAnomaly {
                    triage,
                    ..a.clone()
                })
            },
        )?;
        tx.commit()?;
        Ok(anomaly)
    }

    /// Stored anomaly `seq` of a monitor (`id` is its name in answers).
    pub fn get_monitor_anomaly(
        &self,
        monitor_id: &str,
        (seq, id): (u64, &str),
    ) -> Result<MonitorAnomaly, StoreError> {
        self.get_monitor(monitor_id)?;
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::MONITOR_ANOMALIES)?;
        scoped::get_numbered(
            &table,
            (self.org_id.as_str(), monitor_id, seq),
            ("anomaly", id),
        )
    }

    /// Recent points with scores, oldest first, with times in `[from, to)`, at most `limit`
    /// (the newest ones).
    pub fn monitor_series(
        &self,
        id: &str,
        from_ts: Option<i64>,
        to_ts: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        self.get_monitor(id)?;
        let tx = self.store.db()?.begin_read()?;
        let table = tx.open_table(tables::MONITOR_SERIES)?;
        let org = self.org_id.as_str();
        let lo = (org, id, from_ts.unwrap_or(i64::MIN));
        let hi = (org, id, to_ts.unwrap_or(i64::MAX));
        let mut points = Vec::new();
        for entry in table.range(lo..hi)?.rev().take(limit) {
            points.push(codec::decode::<SeriesPoint>(entry?.1.value())?);
        }
        points.reverse();
        Ok(points)
    }

    /// Webhook deliveries of a monitor, newest first.
    /// The monitor's webhook deliveries, newest first, after the listing key `after`.
    pub fn monitor_deliveries(
        &self,
        id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<super::Page<WebhookDelivery>, StoreError> {
        self.get_monitor(id)?;
        let tx = self.store.db()?.begin_read()?;
        let index = tx.open_table(tables::MONITOR_NOTIFICATIONS)?;
        let outbox = tx.open_table(tables::WEBHOOK_OUTBOX)?;
        let org = self.org_id.as_str();
        let rows = index
            .range((org, id, "webhook", 0)..=(org, id, "webhook", u64::MAX))?
            .rev()
            .filter_map(|entry| {
                let delivery = match entry {
                    Ok(e) => e.0.value().3,
                    Err(e) => return Some(Err(e.into())),
                };
                match webhooks::read_delivery(&outbox, delivery) {
                    Ok(Some(row)) => Some(Ok((super::listing_key(delivery), row))),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                }
            });
        super::page_newest_first(rows, after, limit)
    }

    /// Commits a processed batch of points, all or nothing.
    pub fn commit_monitor_batch<T: Serialize>(
        &self,
        batch: MonitorBatchCommit,
        answer: impl FnOnce(&Metered) -> T,
    ) -> Result<BatchCommitted<T>, StoreError> {
        let tx = self.store.db()?.begin_write()?;
        let org = self.org_id.as_str();
        let id = batch.record.id.as_str();
        if let Some(answer) =
            idempotency::replay_in_tx(&tx, org, batch.idempotency.as_ref(), batch.now_ms)?
        {
            return Ok(BatchCommitted::Replayed(answer));
        }
        {
            let mut monitors = tx.open_table(tables::MONITORS)?;
            let current: Option<MonitorRecord> = read(monitors.get((org, id))?)?;
            match current {
                None => return Err(StoreError::not_found("monitor", id)),
                Some(c) if c.version != batch.expected_version => return Ok(BatchCommitted::Raced),
                Some(_) => {}
            }
            monitors.insert((org, id), codec::encode(&batch.record).as_slice())?;
            tx.open_table(tables::MONITOR_STATE)?
                .insert((org, id), batch.state.as_slice())?;
        }
        {
            let mut series = tx.open_table(tables::MONITOR_SERIES)?;
            for p in &batch.points {
                series.insert((org, id, p.ts), codec::encode(p).as_slice())?;
            }
            let held = series
                .range((org, id, i64::MIN)..=(org, id, i64::MAX))?
                .count();
            if held > MAX_SERIES_POINTS {
                let cut = series
                    .range((org, id, i64::MIN)..=(org, id, i64::MAX))?
                    .nth(held - MAX_SERIES_POINTS)
                    .transpose()?
                    .map(|(k, _)| k.value().2);
                if let Some(cut) = cut {
                    series.retain_in((org, id, i64::MIN)..(org, id, cut), |_, _| false)?;
                }
            }
        }
        let first = {
            let mut table = tx.open_table(tables::MONITOR_ANOMALIES)?;
            let numbered = |a: MonitorAnomaly, seq| MonitorAnomaly { seq, ..a };
            scoped::append_numbered(
                &mut table,
                org,
                id,
                batch.anomalies.iter().cloned(),
                numbered,
                MAX_STORED_ANOMALIES,
            )?
        };
        let entries = batch.anomalies.iter().enumerate().map(|(i, a)| FeedEntry {
            source: Source::Monitor,
            parent: id.to_string(),
            seq: first + i as u64,
            at_ms: a.detected_at_ms,
        });
        feed::append(&tx, org, entries)?;
        for start in &batch.episode_starts {
            // The episode's first anomaly is one of this batch's, numbered from `first`.
            let position = batch.anomalies.iter().position(|a| *a == start.anomaly);
            let anomaly_id = position.map(|i| format!("ma_{}", first + i as u64));
            let body = json!({
                "type": "monitor.anomaly",
                "organization_id": org,
                "monitor": {"id": id, "name": batch.record.name},
                "anomaly_id": anomaly_id,
                "anomaly_path": anomaly_id.as_ref().map(|a| format!("/v1/monitors/{id}/anomalies/{a}")),
                "feedback_path": anomaly_id.as_ref().map(|a| format!("/v1/monitors/{id}/anomalies/{a}/feedback")),
                "episode": start.episode,
                "timestamp": start.anomaly.ts,
                "value": start.anomaly.value,
                "score": start.anomaly.score,
                "explanation": start.anomaly.explanation,
            });
            for channel in &batch.record.webhooks {
                webhooks::enqueue(
                    &tx,
                    NewDelivery {
                        org_id: org,
                        monitor_id: id,
                        url: &channel.url,
                        secret: &channel.secret,
                        event: "monitor.anomaly",
                        body: body.clone(),
                    },
                    batch.now_ms,
                )?;
            }
            for email in &batch.record.emails {
                let per_hour = self.store.org_limits().mails_per_hour;
                if !org_limits::take_mail(&tx, org, per_hour, batch.now_ms)? {
                    continue;
                }
                outbox::enqueue_email(
                    &tx,
                    NewEmail {
                        dedupe_key: format!("monitor:{org}:{id}:{}:{email}", start.episode),
                        org_id: Some(org),
                        to: Some(email),
                        kind: "monitor_anomaly",
                        params: body.clone(),
                    },
                    batch.now_ms,
                )?;
            }
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
