//! The org-wide anomaly feed (issue 22): every stored anomaly of an organization, streams and
//! monitors alike, numbered in the order it was found (`ANOMALY_FEED`). The number is the
//! live feed's event id (`Last-Event-ID` resumes after it) and the org-wide list's cursor. An
//! entry points at the anomaly's record; entries whose anomaly has left its retention (or
//! whose stream or monitor was deleted) are skipped. At most [`MAX_FEED`] entries per org.

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::{
    codec::{self, Versioned},
    feedback::Judged,
    monitors::MonitorAnomaly,
    streams::StoredAnomaly,
    tables, OrgScope, StoreError,
};
use crate::core::{feedback::Source, triage::AnomalyStatus};

/// Feed entries kept per organization; older ones are dropped (their anomalies may remain).
const MAX_FEED: u64 = 100_000;

/// Where a stored anomaly is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEntry {
    pub source: Source,
    /// The stream or monitor id.
    pub parent: String,
    pub seq: u64,
    pub at_ms: i64,
}

impl Versioned for FeedEntry {
    const KIND: &'static str = "anomaly feed entry";
    const VERSION: u8 = 1;
}

/// A stored anomaly of either kind.
#[derive(Debug, Clone)]
pub enum AnyAnomaly {
    Stream(StoredAnomaly),
    Monitor(MonitorAnomaly),
}

impl AnyAnomaly {
    pub fn status(&self) -> AnomalyStatus {
        match self {
            AnyAnomaly::Stream(a) => a.triage.status,
            AnyAnomaly::Monitor(a) => a.triage.status,
        }
    }
}

/// One item of the feed: its number, where it is, and the anomaly as stored now.
#[derive(Debug, Clone)]
pub struct FeedItem {
    pub number: u64,
    pub entry: FeedEntry,
    pub anomaly: AnyAnomaly,
}

/// What the org-wide list keeps.
#[derive(Debug, Clone, Default)]
pub struct FeedFilter {
    pub status: Option<AnomalyStatus>,
    pub source: Option<Source>,
    /// Found at or after (ms).
    pub from_ms: Option<i64>,
    /// Found before (ms).
    pub to_ms: Option<i64>,
}

impl FeedFilter {
    /// Whether an entry's source and time pass (read without the anomaly itself).
    fn keeps_entry(&self, entry: &FeedEntry) -> bool {
        self.source.is_none_or(|s| entry.source == s)
            && self.from_ms.is_none_or(|f| entry.at_ms >= f)
            && self.to_ms.is_none_or(|t| entry.at_ms < t)
    }
}

/// The org's newest feed number (0 when it has none).
fn last_number(
    feed: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    org: &str,
) -> Result<u64, StoreError> {
    Ok(match feed.range((org, 0)..=(org, u64::MAX))?.next_back() {
        Some(last) => last?.0.value().1,
        None => 0,
    })
}

/// Appends `entries` to the org's feed inside a batch's transaction.
pub(super) fn append(
    tx: &WriteTransaction,
    org: &str,
    entries: impl IntoIterator<Item = FeedEntry>,
) -> Result<(), StoreError> {
    let mut feed = tx.open_table(tables::ANOMALY_FEED)?;
    let mut next = last_number(&feed, org)? + 1;
    for entry in entries {
        feed.insert((org, next), codec::encode(&entry).as_slice())?;
        next += 1;
    }
    let keep_from = next.saturating_sub(MAX_FEED);
    if keep_from > 1 {
        feed.retain_in((org, 0)..(org, keep_from), |_, _| false)?;
    }
    Ok(())
}

/// Every stored anomaly of kind `A`, as (org, found at, entry).
fn stored_entries<A: Judged>(
    tx: &WriteTransaction,
    found: &mut Vec<(String, i64, FeedEntry)>,
) -> Result<(), StoreError> {
    for entry in tx.open_table(A::ANOMALIES)?.iter()? {
        let (key, value) = entry?;
        let (org, parent, seq) = key.value();
        let at_ms = codec::decode::<A>(value.value())?.detected_at_ms();
        let e = FeedEntry {
            source: A::SOURCE,
            parent: parent.to_string(),
            seq,
            at_ms,
        };
        found.push((org.to_string(), at_ms, e));
    }
    Ok(())
}

/// Fills the feed with every stored anomaly, in the order they were found (schema step 12).
pub(super) fn backfill(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut found: Vec<(String, i64, FeedEntry)> = Vec::new();
    stored_entries::<StoredAnomaly>(tx, &mut found)?;
    stored_entries::<MonitorAnomaly>(tx, &mut found)?;
    found.sort_by(|a, b| {
        (&a.0, a.1, a.2.source.as_str(), &a.2.parent, a.2.seq).cmp(&(
            &b.0,
            b.1,
            b.2.source.as_str(),
            &b.2.parent,
            b.2.seq,
        ))
    });
    let mut i = 0;
    while i < found.len() {
        let org = found[i].0.clone();
        let mut j = i;
        while j < found.len() && found[j].0 == org {
            j += 1;
        }
        append(tx, &org, found[i..j].iter().map(|f| f.2.clone()))?;
        i = j;
    }
    Ok(())
}

fn resolve(
    streams: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    monitors: &impl ReadableTable<(&'static str, &'static str, u64), &'static [u8]>,
    org: &str,
    number: u64,
    entry: FeedEntry,
) -> Result<Option<FeedItem>, StoreError> {
    let key = (org, entry.parent.as_str(), entry.seq);
    let anomaly = match entry.source {
        Source::Stream => streams
            .get(key)?
            .map(|b| codec::decode(b.value()).map(AnyAnomaly::Stream))
            .transpose()?,
        Source::Monitor => monitors
            .get(key)?
            .map(|b| codec::decode(b.value()).map(AnyAnomaly::Monitor))
            .transpose()?,
    };
    Ok(anomaly.map(|anomaly| FeedItem {
        number,
        entry,
        anomaly,
    }))
}

impl OrgScope {
    /// The org's anomalies newest first, below feed number `before`, that `filter` keeps;
    /// answers them and the cursor of the next page.
    pub fn list_anomalies(
        &self,
        filter: &FeedFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<FeedItem>, Option<u64>), StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let feed = tx.open_table(tables::ANOMALY_FEED)?;
        let streams = tx.open_table(tables::STREAM_ANOMALIES)?;
        let monitors = tx.open_table(tables::MONITOR_ANOMALIES)?;
        let org = self.org_id.as_str();
        let mut items = Vec::new();
        let end = before.unwrap_or(u64::MAX);
        for row in feed.range((org, 0)..(org, end))?.rev() {
            let (key, value) = row?;
            let entry: FeedEntry = codec::decode(value.value())?;
            if filter.from_ms.is_some_and(|f| entry.at_ms < f) {
                // The feed is in the order anomalies were found: nothing older can match.
                break;
            }
            if !filter.keeps_entry(&entry) {
                continue;
            }
            let Some(item) = resolve(&streams, &monitors, org, key.value().1, entry)? else {
                continue;
            };
            if filter.status.is_some_and(|s| item.anomaly.status() != s) {
                continue;
            }
            if items.len() == limit {
                let next = items.last().map(|i: &FeedItem| i.number);
                return Ok((items, next));
            }
            items.push(item);
        }
        Ok((items, None))
    }

    /// The org's anomalies after feed number `after`, oldest first (the live feed), and the
    /// last feed number read (entries whose anomaly is gone are passed over).
    pub fn feed_after(&self, after: u64, limit: usize) -> Result<(Vec<FeedItem>, u64), StoreError> {
        let tx = self.store.db()?.begin_read()?;
        let feed = tx.open_table(tables::ANOMALY_FEED)?;
        let streams = tx.open_table(tables::STREAM_ANOMALIES)?;
        let monitors = tx.open_table(tables::MONITOR_ANOMALIES)?;
        let org = self.org_id.as_str();
        let mut items = Vec::new();
        let mut last = after;
        for row in feed.range((org, after.saturating_add(1))..=(org, u64::MAX))? {
            let (key, value) = row?;
            last = key.value().1;
            let entry: FeedEntry = codec::decode(value.value())?;
            if let Some(item) = resolve(&streams, &monitors, org, last, entry)? {
                items.push(item);
                if items.len() == limit {
                    break;
                }
            }
        }
        Ok((items, last))
    }

    /// The newest feed number of the org (0 when it has none).
    pub fn feed_head(&self) -> Result<u64, StoreError> {
        let tx = self.store.db()?.begin_read()?;
        last_number(&tx.open_table(tables::ANOMALY_FEED)?, &self.org_id)
    }
}
