//! The schema version and the migration ladder. Each step moves the store up by exactly one
//! version in one write transaction, so a crash mid-upgrade leaves the store at a version it
//! can resume from. A store written by a newer binary is refused, never touched.

use redb::{Database, ReadableDatabase, ReadableTable, TableError, WriteTransaction};

use super::{tables, StoreError};

/// The schema version this binary writes.
pub const CURRENT_SCHEMA_VERSION: u64 = 12;

/// One rung of the ladder: it moves a store from `version - 1` to `version`.
struct Step {
    version: u64,
    what: &'static str,
    apply: fn(&WriteTransaction) -> Result<(), StoreError>,
}

const LADDER: &[Step] = &[
    Step {
        version: 1,
        what: "create organizations, API keys, their index and the audit log",
        apply: create_v1_tables,
    },
    Step {
        version: 2,
        what: "create usage, quota policies, outboxes, billing actions, streams and idempotency",
        apply: create_v2_tables,
    },
    Step {
        version: 3,
        what: "create the plan catalog and seed it with developer, standard and growth",
        apply: seed_plan_catalog,
    },
    Step {
        version: 4,
        what: "index pending outbox emails by due time",
        apply: index_pending_emails,
    },
    Step {
        version: 5,
        what:
            "create monitors, their state, anomalies, series, notifications and the webhook outbox",
        apply: create_v5_tables,
    },
    Step {
        version: 6,
        what: "create Stripe events, billing accounts, the customer index and the invoice mirror",
        apply: create_v6_tables,
    },
    Step {
        version: 7,
        what: "create the outbox of metered usage for Stripe",
        apply: create_v7_tables,
    },
    Step {
        version: 8,
        what: "create promotion codes and seed LAUNCH50",
        apply: seed_promotions,
    },
    Step {
        version: 9,
        what:
            "create daily detection counts (they start from this version; older days stay unknown)",
        apply: create_v9_tables,
    },
    Step {
        version: 10,
        what: "keep pending Stripe usage by billing period (pending counts go to the org's newest period)",
        apply: pending_usage_by_period,
    },
    Step {
        version: 11,
        what: "count the bytes of idempotency records each organization holds, and create the hourly mail budget",
        apply: count_idempotency_bytes,
    },
    Step {
        version: 12,
        what: "create disputes, meter credits, suppression rules and the org-wide anomaly feed (filled with the stored anomalies)",
        apply: create_feedback_tables,
    },
];

/// Creates the tables of issue 22 and fills the feed with every stored anomaly, oldest first.
fn create_feedback_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::DISPUTES)?;
    tx.open_table(tables::METER_CREDIT)?;
    tx.open_table(tables::STREAM_RULES)?;
    tx.open_table(tables::MONITOR_RULES)?;
    tx.open_table(tables::ANOMALY_FEED)?;
    super::feed::backfill(tx)
}

fn count_idempotency_bytes(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut held: std::collections::BTreeMap<String, u64> = Default::default();
    for entry in tx.open_table(tables::IDEMPOTENCY)?.iter()? {
        let (key, value) = entry?;
        let (org, scoped) = key.value();
        *held.entry(org.to_string()).or_default() +=
            super::idempotency::record_bytes(org, scoped, value.value().len());
    }
    let mut bytes = tx.open_table(tables::IDEMPOTENCY_BYTES)?;
    for (org, n) in held {
        bytes.insert(org.as_str(), n)?;
    }
    tx.open_table(tables::MAIL_BUDGET)?;
    Ok(())
}

fn create_v1_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::ORGS)?;
    tx.open_table(tables::API_KEYS)?;
    tx.open_table(tables::ORG_KEYS)?;
    tx.open_table(tables::AUDIT_LOG)?;
    Ok(())
}

fn create_v2_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::USAGE)?;
    tx.open_table(tables::QUOTA_POLICIES)?;
    tx.open_table(tables::EMAIL_OUTBOX)?;
    tx.open_table(tables::EMAIL_DEDUPE)?;
    tx.open_table(tables::BILLING_ACTIONS)?;
    tx.open_table(tables::STREAMS)?;
    tx.open_table(tables::STREAM_STATE)?;
    tx.open_table(tables::STREAM_ANOMALIES)?;
    tx.open_table(tables::IDEMPOTENCY)?;
    tx.open_table(tables::IDEMPOTENCY_BY_TIME)?;
    Ok(())
}

fn seed_plan_catalog(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut plans = tx.open_table(tables::PLANS)?;
    for plan in crate::core::metering::plans::seed_catalog() {
        if plans.get(plan.id.as_str())?.is_none() {
            plans.insert(plan.id.as_str(), super::codec::encode(&plan).as_slice())?;
        }
    }
    Ok(())
}

fn index_pending_emails(tx: &WriteTransaction) -> Result<(), StoreError> {
    let outbox = tx.open_table(tables::EMAIL_OUTBOX)?;
    let mut due = tx.open_table(tables::EMAIL_DUE)?;
    for entry in outbox.iter()? {
        let (id, bytes) = entry?;
        let row: super::OutboxEmail = super::codec::decode(bytes.value())?;
        if row.status == super::EmailStatus::Pending {
            due.insert((row.next_attempt_at_ms, id.value()), ())?;
        }
    }
    Ok(())
}

fn create_v5_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::MONITORS)?;
    tx.open_table(tables::MONITOR_STATE)?;
    tx.open_table(tables::MONITOR_ANOMALIES)?;
    tx.open_table(tables::MONITOR_SERIES)?;
    tx.open_table(tables::WEBHOOK_OUTBOX)?;
    tx.open_table(tables::WEBHOOK_DUE)?;
    tx.open_table(tables::MONITOR_NOTIFICATIONS)?;
    Ok(())
}

fn create_v6_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::STRIPE_EVENTS)?;
    tx.open_table(tables::BILLING_ACCOUNTS)?;
    tx.open_table(tables::STRIPE_CUSTOMERS)?;
    tx.open_table(tables::INVOICES_MIRROR)?;
    Ok(())
}

fn create_v7_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::METER_PENDING_V7)?;
    tx.open_table(tables::METER_OUTBOX)?;
    tx.open_table(tables::METER_DUE)?;
    Ok(())
}

fn seed_promotions(tx: &WriteTransaction) -> Result<(), StoreError> {
    let mut promotions = tx.open_table(tables::PROMOTIONS)?;
    for promotion in crate::core::metering::promotions::seed() {
        if promotions.get(promotion.code.as_str())?.is_none() {
            promotions.insert(
                promotion.code.as_str(),
                super::codec::encode(&promotion).as_slice(),
            )?;
        }
    }
    Ok(())
}

fn create_v9_tables(tx: &WriteTransaction) -> Result<(), StoreError> {
    tx.open_table(tables::USAGE_DAILY)?;
    Ok(())
}

/// Moves each org's pending overage to the newest period it has usage in (where the overage
/// was counted, unless the store sat offline across a month end, which version 9 could not
/// tell), then drops the per-org table.
fn pending_usage_by_period(tx: &WriteTransaction) -> Result<(), StoreError> {
    let waiting: Vec<(String, u64)> = {
        let legacy = tx.open_table(tables::METER_PENDING_V7)?;
        legacy
            .iter()?
            .map(|e| e.map(|(k, v)| (k.value().to_string(), v.value())))
            .collect::<Result<_, _>>()?
    };
    let usage = tx.open_table(tables::USAGE)?;
    let mut pending = tx.open_table(tables::METER_PENDING)?;
    for (org, count) in waiting {
        let newest = usage
            .range((org.as_str(), i64::MIN)..=(org.as_str(), i64::MAX))?
            .next_back()
            .transpose()?
            .map(|(k, _)| k.value().1);
        let start = newest.unwrap_or_else(|| {
            crate::core::metering::period::Period::containing(crate::clock::now_ms()).start_ms
        });
        pending.insert((org.as_str(), start), count)?;
    }
    drop((usage, pending));
    tx.delete_table(tables::METER_PENDING_V7)?;
    Ok(())
}

/// The version recorded in the store; 0 for a store that was never migrated.
pub fn stored_version(db: &Database) -> Result<u64, StoreError> {
    let tx = db.begin_read()?;
    let meta = match tx.open_table(tables::META) {
        Ok(meta) => meta,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    Ok(meta
        .get(tables::META_SCHEMA_VERSION)?
        .map(|v| v.value())
        .unwrap_or(0))
}

/// Brings the store up to `CURRENT_SCHEMA_VERSION`, one step per transaction. Returns the
/// version found before migrating.
pub fn migrate(db: &Database) -> Result<u64, StoreError> {
    migrate_to(db, CURRENT_SCHEMA_VERSION)
}

fn migrate_to(db: &Database, target: u64) -> Result<u64, StoreError> {
    let found = stored_version(db)?;
    if found > CURRENT_SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found,
            supported: CURRENT_SCHEMA_VERSION,
        });
    }
    for step in LADDER
        .iter()
        .filter(|s| s.version > found && s.version <= target)
    {
        let tx = db.begin_write()?;
        (step.apply)(&tx)?;
        write_version(&tx, step.version)?;
        tx.commit()?;
        tracing::info!(version = step.version, what = step.what, "store migrated");
    }
    Ok(found)
}

fn write_version(tx: &WriteTransaction, version: u64) -> Result<(), StoreError> {
    let mut meta = tx.open_table(tables::META)?;
    meta.insert(tables::META_SCHEMA_VERSION, version)?;
    Ok(())
}

/// Overwrites the recorded schema version without migrating. Only for tests that need a store
/// "written by a newer binary".
#[doc(hidden)]
pub fn force_version(db: &Database, version: u64) -> Result<(), StoreError> {
    let tx = db.begin_write()?;
    write_version(&tx, version)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{ReadableTableMetadata, TableHandle};

    fn fresh() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::create(dir.path().join("s.redb")).unwrap();
        (dir, db)
    }

    #[test]
    fn ladder_is_ordered_and_ends_at_the_current_version() {
        for (i, step) in LADDER.iter().enumerate() {
            assert_eq!(step.version, i as u64 + 1);
        }
        assert_eq!(LADDER.last().unwrap().version, CURRENT_SCHEMA_VERSION);
    }

    #[test]
    fn step_1_creates_the_v1_tables() {
        let (_dir, db) = fresh();
        assert_eq!(migrate_to(&db, 1).unwrap(), 0);
        assert_eq!(stored_version(&db).unwrap(), 1);
        let tx = db.begin_read().unwrap();
        let names: Vec<String> = tx
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        for table in ["orgs", "api_keys", "org_keys", "audit_log", "meta"] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
    }

    fn table_names(db: &Database) -> Vec<String> {
        let tx = db.begin_read().unwrap();
        tx.list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect()
    }

    #[test]
    fn step_2_adds_metering_outbox_and_stream_tables_to_a_v1_store() {
        let (_dir, db) = fresh();
        migrate_to(&db, 1).unwrap();
        assert!(!table_names(&db).iter().any(|n| n == "usage"));
        assert_eq!(migrate_to(&db, 2).unwrap(), 1);
        assert_eq!(stored_version(&db).unwrap(), 2);
        let names = table_names(&db);
        for table in [
            "usage",
            "quota_policies",
            "email_outbox",
            "email_dedupe",
            "billing_actions",
            "streams",
            "stream_state",
            "stream_anomalies",
            "idempotency",
            "idempotency_by_time",
        ] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
    }

    #[test]
    fn step_3_seeds_the_plan_catalog_once() {
        let (_dir, db) = fresh();
        migrate_to(&db, 2).unwrap();
        assert_eq!(migrate_to(&db, 3).unwrap(), 2);
        let tx = db.begin_read().unwrap();
        let plans = tx.open_table(tables::PLANS).unwrap();
        let standard: crate::core::metering::plans::Plan =
            super::super::codec::decode(plans.get("standard").unwrap().unwrap().value()).unwrap();
        assert_eq!(standard, crate::core::metering::plans::standard());
        assert_eq!(plans.len().unwrap(), 3);
    }

    #[test]
    fn step_4_indexes_mail_that_was_pending_before_it() {
        let (_dir, db) = fresh();
        migrate_to(&db, 3).unwrap();
        let tx = db.begin_write().unwrap();
        for (id, to) in [(1u64, Some("a@example.com")), (2, None)] {
            let row = super::super::OutboxEmail {
                id,
                dedupe_key: format!("k{id}"),
                org_id: None,
                to: to.map(str::to_string),
                kind: "test".into(),
                params: serde_json::json!({}),
                status: if to.is_some() {
                    super::super::EmailStatus::Pending
                } else {
                    super::super::EmailStatus::NoRecipient
                },
                attempts: 0,
                last_error: None,
                created_at_ms: 5,
                next_attempt_at_ms: 5,
                sent_at_ms: None,
            };
            tx.open_table(tables::EMAIL_OUTBOX)
                .unwrap()
                .insert(id, super::super::codec::encode(&row).as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        migrate_to(&db, 4).unwrap();
        let tx = db.begin_read().unwrap();
        let due: Vec<(i64, u64)> = tx
            .open_table(tables::EMAIL_DUE)
            .unwrap()
            .iter()
            .unwrap()
            .map(|e| e.unwrap().0.value())
            .collect();
        assert_eq!(due, vec![(5, 1)], "only the pending row is queued");
    }

    #[test]
    fn step_5_adds_monitor_and_webhook_tables() {
        let (_dir, db) = fresh();
        migrate_to(&db, 4).unwrap();
        assert_eq!(migrate_to(&db, 5).unwrap(), 4);
        let names = table_names(&db);
        for table in [
            "monitors",
            "monitor_state",
            "monitor_anomalies",
            "monitor_series",
            "webhook_outbox",
            "webhook_due",
            "monitor_notifications",
        ] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
    }

    #[test]
    fn step_6_adds_stripe_billing_tables() {
        let (_dir, db) = fresh();
        migrate_to(&db, 5).unwrap();
        assert_eq!(migrate_to(&db, 6).unwrap(), 5);
        let names = table_names(&db);
        for table in [
            "stripe_events",
            "billing_accounts",
            "stripe_customers",
            "invoices_mirror",
        ] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
    }

    #[test]
    fn step_7_adds_the_meter_outbox() {
        let (_dir, db) = fresh();
        migrate_to(&db, 6).unwrap();
        assert_eq!(migrate_to(&db, 7).unwrap(), 6);
        let names = table_names(&db);
        for table in ["meter_pending", "meter_outbox", "meter_due"] {
            assert!(
                names.iter().any(|n| n == table),
                "{table} missing from {names:?}"
            );
        }
    }

    #[test]
    fn step_8_seeds_launch50() {
        let (_dir, db) = fresh();
        migrate_to(&db, 7).unwrap();
        assert_eq!(migrate_to(&db, 8).unwrap(), 7);
        let tx = db.begin_read().unwrap();
        let promotions = tx.open_table(tables::PROMOTIONS).unwrap();
        let launch: crate::core::metering::promotions::Promotion =
            super::super::codec::decode(promotions.get("LAUNCH50").unwrap().unwrap().value())
                .unwrap();
        assert_eq!(launch.percent_off, 50);
    }

    #[test]
    fn step_9_adds_daily_counts() {
        let (_dir, db) = fresh();
        migrate_to(&db, 8).unwrap();
        assert_eq!(migrate_to(&db, 9).unwrap(), 8);
        assert!(table_names(&db).iter().any(|n| n == "usage_daily"));
    }

    #[test]
    fn step_11_counts_the_idempotency_bytes_each_org_holds() {
        let (_dir, db) = fresh();
        migrate_to(&db, 10).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut records = tx.open_table(tables::IDEMPOTENCY).unwrap();
            records
                .insert(("org_a", "k1"), [0_u8; 100].as_slice())
                .unwrap();
            records
                .insert(("org_a", "k22"), [0_u8; 50].as_slice())
                .unwrap();
            records
                .insert(("org_b", "k"), [0_u8; 7].as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(migrate_to(&db, 11).unwrap(), 10);
        let tx = db.begin_read().unwrap();
        let held = tx.open_table(tables::IDEMPOTENCY_BYTES).unwrap();
        let of = |org: &str| held.get(org).unwrap().map(|v| v.value());
        assert_eq!(of("org_a"), Some((5 + 2 + 100) + (5 + 3 + 50)));
        assert_eq!(of("org_b"), Some(5 + 1 + 7));
        assert_eq!(of("org_c"), None);
    }

    #[test]
    fn step_12_lists_every_earlier_anomaly_in_its_orgs_feed_in_time_order() {
        use crate::store::{monitors::MonitorAnomaly, streams::StoredAnomaly};
        let (_dir, db) = fresh();
        migrate_to(&db, 11).unwrap();
        let stream = |seq: u64, at_ms: i64| StoredAnomaly {
            seq,
            at_ms,
            batch_index: 0,
            event: serde_json::json!({"user": "x"}),
            score: 1.0,
            explanation: Default::default(),
            triage: Default::default(),
            findings: Vec::new(),
            feedback: None,
        };
        let monitor = MonitorAnomaly {
            seq: 1,
            ts: 1,
            value: 9.0,
            score: 1.0,
            explanation: Default::default(),
            detected_at_ms: 2_000,
            episode: 1,
            triage: Default::default(),
            feedback: None,
        };
        let tx = db.begin_write().unwrap();
        {
            let mut streams = tx.open_table(tables::STREAM_ANOMALIES).unwrap();
            for (org, seq, at) in [("org_a", 1, 3_000), ("org_a", 2, 1_000), ("org_b", 1, 5)] {
                let a = super::super::codec::encode(&stream(seq, at));
                streams.insert((org, "web", seq), a.as_slice()).unwrap();
            }
            let mut monitors = tx.open_table(tables::MONITOR_ANOMALIES).unwrap();
            let a = super::super::codec::encode(&monitor);
            monitors
                .insert(("org_a", "mon_1", 1), a.as_slice())
                .unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(migrate_to(&db, 12).unwrap(), 11);
        let tx = db.begin_read().unwrap();
        let feed = tx.open_table(tables::ANOMALY_FEED).unwrap();
        let rows: Vec<(String, u64, String, u64)> = feed
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let entry: crate::store::FeedEntry =
                    super::super::codec::decode(v.value()).unwrap();
                (
                    k.value().0.to_string(),
                    k.value().1,
                    entry.parent,
                    entry.seq,
                )
            })
            .collect();
        let want = [
            ("org_a", 1, "web", 2),
            ("org_a", 2, "mon_1", 1),
            ("org_a", 3, "web", 1),
            ("org_b", 1, "web", 1),
        ];
        let want: Vec<(String, u64, String, u64)> = want
            .iter()
            .map(|(o, n, p, s)| (o.to_string(), *n, p.to_string(), *s))
            .collect();
        assert_eq!(rows, want);
    }

    #[test]
    fn step_10_moves_pending_usage_to_the_newest_period_of_each_org() {
        let (_dir, db) = fresh();
        migrate_to(&db, 9).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut usage = tx.open_table(tables::USAGE).unwrap();
            for start in [1_000_i64, 5_000, 3_000] {
                usage.insert(("org_a", start), [1_u8].as_slice()).unwrap();
            }
            let mut legacy = tx.open_table(tables::METER_PENDING_V7).unwrap();
            legacy.insert("org_a", 42).unwrap();
        }
        tx.commit().unwrap();
        assert_eq!(migrate_to(&db, 10).unwrap(), 9);
        assert!(!table_names(&db).iter().any(|n| n == "meter_pending"));
        let tx = db.begin_read().unwrap();
        let pending = tx.open_table(tables::METER_PENDING).unwrap();
        let rows: Vec<((String, i64), u64)> = pending
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                ((k.value().0.to_string(), k.value().1), v.value())
            })
            .collect();
        assert_eq!(rows, vec![(("org_a".to_string(), 5_000), 42)]);
    }

    #[test]
    fn a_fresh_store_has_every_table_the_code_reads() {
        let (_dir, db) = fresh();
        migrate(&db).unwrap();
        let tx = db.begin_read().unwrap();
        let mut missing = Vec::new();
        macro_rules! check {
            ($t:path) => {
                if tx.open_table($t).is_err() {
                    missing.push($t.name().to_string());
                }
            };
        }
        tables::for_each_table!(check);
        assert!(missing.is_empty(), "tables no step creates: {missing:?}");
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let (_dir, db) = fresh();
        migrate(&db).unwrap();
        assert_eq!(migrate(&db).unwrap(), CURRENT_SCHEMA_VERSION);
        assert_eq!(stored_version(&db).unwrap(), CURRENT_SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_store_is_refused_and_left_untouched() {
        let (_dir, db) = fresh();
        force_version(&db, CURRENT_SCHEMA_VERSION + 5).unwrap();
        let err = migrate(&db).unwrap_err();
        assert!(
            matches!(err, StoreError::TooNew { found, .. } if found == CURRENT_SCHEMA_VERSION + 5)
        );
        assert_eq!(stored_version(&db).unwrap(), CURRENT_SCHEMA_VERSION + 5);
    }
}
