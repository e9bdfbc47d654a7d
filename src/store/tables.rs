//! The only file that names redb tables. Every table of the store is defined here, with the
//! shape of its key and value; values are versioned byte strings decoded by `codec`.

use redb::TableDefinition;

/// Store-wide facts: the schema version and similar single values.
pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Key in `META` that holds the schema version the store was last migrated to.
pub const META_SCHEMA_VERSION: &str = "schema_version";
/// Key in `META` the store-health probe writes (epoch ms) to prove the disk takes writes.
pub const META_HEALTH_PROBE: &str = "health_probe_ms";

/// Organizations by id.
pub const ORGS: TableDefinition<&str, &[u8]> = TableDefinition::new("orgs");

/// API keys by key id (`key_` + the key's public prefix). Values hold the key's hash, never the key.
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api_keys");

/// Index of an organization's keys: (org id, key id) -> ().
pub const ORG_KEYS: TableDefinition<(&str, &str), ()> = TableDefinition::new("org_keys");

/// Audit log of key and organization changes, by a sequence number that only grows.
pub const AUDIT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");

// Schema version 2: metering, outboxes, streams and idempotency.

/// Usage counters: (org id, period start ms) -> `Usage`.
pub const USAGE: TableDefinition<(&str, i64), &[u8]> = TableDefinition::new("usage");

/// Quota policy per org; absent means the default policy.
pub const QUOTA_POLICIES: TableDefinition<&str, &[u8]> = TableDefinition::new("quota_policies");

/// Email outbox rows by sequence number.
pub const EMAIL_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("email_outbox");

/// Dedupe keys of email outbox rows: key -> row sequence number.
pub const EMAIL_DEDUPE: TableDefinition<&str, u64> = TableDefinition::new("email_dedupe");

/// Billing actions (the billing audit log and requests to the Stripe sync) by sequence.
pub const BILLING_ACTIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("billing_actions");

/// Streams: (org id, stream id) -> `StreamRecord`.
pub const STREAMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("streams");

/// Detector state of each stream: (org id, stream id) -> versioned detector bytes.
pub const STREAM_STATE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("stream_state");

/// Stored stream anomalies: (org id, stream id, sequence) -> `StoredAnomaly`.
pub const STREAM_ANOMALIES: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("stream_anomalies");

/// Idempotency records: (org id, scoped key) -> `IdempotentAnswer`.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("idempotency");

/// Expiry index of idempotency records: (created ms, org id, scoped key) -> ().
pub const IDEMPOTENCY_BY_TIME: TableDefinition<(i64, &str, &str), ()> =
    TableDefinition::new("idempotency_by_time");

/// Schema version 11: bytes of idempotency records each organization holds, org id -> bytes
/// (counted against the org's limit).
pub const IDEMPOTENCY_BYTES: TableDefinition<&str, u64> = TableDefinition::new("idempotency_bytes");

/// Schema version 11: monitor mail each organization queued per UTC hour,
/// (org id, hour start ms) -> (queued, held back past the budget).
pub const MAIL_BUDGET: TableDefinition<(&str, i64), (u64, u64)> =
    TableDefinition::new("mail_budget");

// Schema version 3: the plan catalog.

/// Plans by id: `Plan`, seeded from the runbook's catalog and editable by admins.
pub const PLANS: TableDefinition<&str, &[u8]> = TableDefinition::new("plans");

// Schema version 4: the delivery queue of the email outbox.

/// Pending email rows by when they are next due: (due ms, row id) -> ().
pub const EMAIL_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("email_due");

// Schema version 5: monitors, their notifications and the webhook outbox.

/// Monitors: (org id, monitor id) -> `MonitorRecord`.
pub const MONITORS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("monitors");

/// Detector state of each monitor: (org id, monitor id) -> versioned detector bytes.
pub const MONITOR_STATE: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("monitor_state");

/// Stored monitor anomalies: (org id, monitor id, sequence) -> `MonitorAnomaly`.
pub const MONITOR_ANOMALIES: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("monitor_anomalies");

/// Recent points of each monitor with their scores: (org, monitor, point timestamp s) -> `SeriesPoint`.
pub const MONITOR_SERIES: TableDefinition<(&str, &str, i64), &[u8]> =
    TableDefinition::new("monitor_series");

/// Webhook deliveries by sequence number.
pub const WEBHOOK_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("webhook_outbox");

/// Pending webhook deliveries by when they are next due: (due ms, delivery id) -> ().
pub const WEBHOOK_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("webhook_due");

/// Notifications of each monitor: (org, monitor, kind, outbox row id) -> ().
pub const MONITOR_NOTIFICATIONS: TableDefinition<(&str, &str, &str, u64), ()> =
    TableDefinition::new("monitor_notifications");

// Schema version 6: Stripe's side of billing.

/// Stripe events received, by event id: `StripeEventRecord` (makes webhooks idempotent).
pub const STRIPE_EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("stripe_events");

/// Each org's billing account (customer, subscription, dunning): org id -> `BillingAccount`.
pub const BILLING_ACCOUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("billing_accounts");

/// Stripe customer id -> org id.
pub const STRIPE_CUSTOMERS: TableDefinition<&str, &str> = TableDefinition::new("stripe_customers");

/// Mirror of Stripe invoices: (org id, invoice id) -> `InvoiceMirror`.
pub const INVOICES_MIRROR: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("invoices_mirror");

// Schema version 7: metered usage on its way to Stripe.

/// Versions 7 to 9 kept pending overage per org only (org id -> count); version 10 moved it
/// to `METER_PENDING` by period and dropped this table.
pub const METER_PENDING_V7: TableDefinition<&str, u64> = TableDefinition::new("meter_pending");

/// Batches of overage detections for Stripe's Billing Meter, by sequence: `MeterEventRow`.
pub const METER_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("meter_outbox");

/// Undelivered meter batches by when they are next due: (due ms, row id) -> ().
pub const METER_DUE: TableDefinition<(i64, u64), ()> = TableDefinition::new("meter_due");

// Schema version 8: promotion codes.

/// Promotion codes by code: `Promotion` (seeded with LAUNCH50).
pub const PROMOTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("promotions");

// Schema version 9: daily detection counts for the admin overview.

/// Detections counted per org and UTC day: (org id, day start ms) -> count.
pub const USAGE_DAILY: TableDefinition<(&str, i64), u64> = TableDefinition::new("usage_daily");

// Schema version 10: pending overage by billing period.

/// Overage detections counted but not yet batched for Stripe, by the period they were counted
/// in, so each batch is reported inside its own period: (org id, period start ms) -> count.
pub const METER_PENDING: TableDefinition<(&str, i64), u64> =
    TableDefinition::new("meter_pending_by_period");

// Schema version 12: feedback on anomalies (issue 22).

/// Disputes of billed detections, by id: `Dispute`.
pub const DISPUTES: TableDefinition<u64, &[u8]> = TableDefinition::new("disputes");

/// Overage detections credited by accepted disputes after they were batched for Stripe, per
/// org: netted from the org's next meter batches (never below zero).
pub const METER_CREDIT: TableDefinition<&str, u64> = TableDefinition::new("meter_credit");

/// Suppression rules of each stream, numbered: (org, stream, n) -> `Rule<StreamMatch>`.
pub const STREAM_RULES: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("stream_rules");

/// Suppression rules of each monitor, numbered: (org, monitor, n) -> `Rule<MonitorMatch>`.
pub const MONITOR_RULES: TableDefinition<(&str, &str, u64), &[u8]> =
    TableDefinition::new("monitor_rules");

/// Every stored anomaly of an org in the order it was found: (org, n) -> `FeedEntry`, for
/// the org-wide list and the live feed (`n` is the feed's event id).
pub const ANOMALY_FEED: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("anomaly_feed");

/// Calls `$apply!(TABLE)` for every table above; backup and restore use it so that a table
/// added here cannot be forgotten by them.
macro_rules! for_each_table {
    ($apply:ident) => {
        $apply!(tables::META);
        $apply!(tables::ORGS);
        $apply!(tables::API_KEYS);
        $apply!(tables::ORG_KEYS);
        $apply!(tables::AUDIT_LOG);
        $apply!(tables::USAGE);
        $apply!(tables::QUOTA_POLICIES);
        $apply!(tables::EMAIL_OUTBOX);
        $apply!(tables::EMAIL_DEDUPE);
        $apply!(tables::BILLING_ACTIONS);
        $apply!(tables::STREAMS);
        $apply!(tables::STREAM_STATE);
        $apply!(tables::STREAM_ANOMALIES);
        $apply!(tables::IDEMPOTENCY);
        $apply!(tables::IDEMPOTENCY_BY_TIME);
        $apply!(tables::IDEMPOTENCY_BYTES);
        $apply!(tables::MAIL_BUDGET);
        $apply!(tables::PLANS);
        $apply!(tables::EMAIL_DUE);
        $apply!(tables::MONITORS);
        $apply!(tables::MONITOR_STATE);
        $apply!(tables::MONITOR_ANOMALIES);
        $apply!(tables::MONITOR_SERIES);
        $apply!(tables::WEBHOOK_OUTBOX);
        $apply!(tables::WEBHOOK_DUE);
        $apply!(tables::MONITOR_NOTIFICATIONS);
        $apply!(tables::STRIPE_EVENTS);
        $apply!(tables::BILLING_ACCOUNTS);
        $apply!(tables::STRIPE_CUSTOMERS);
        $apply!(tables::INVOICES_MIRROR);
        $apply!(tables::METER_OUTBOX);
        $apply!(tables::METER_DUE);
        $apply!(tables::PROMOTIONS);
        $apply!(tables::USAGE_DAILY);
        $apply!(tables::METER_PENDING);
        $apply!(tables::DISPUTES);
        $apply!(tables::METER_CREDIT);
        $apply!(tables::STREAM_RULES);
        $apply!(tables::MONITOR_RULES);
        $apply!(tables::ANOMALY_FEED);
    };
}
pub(crate) use for_each_table;
