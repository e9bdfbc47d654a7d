//! Reconciliation of metered usage: what Driftlock delivered to Stripe's Billing Meter against
//! what Stripe reports having. Pure: the caller gathers both sides.
//!
//! Stripe aggregates meter events per minute and processes them asynchronously, so its meter
//! event summaries show an event only a while after it arrived, and it accepts summary
//! windows on minute boundaries only. Reconciliation therefore compares what is settled: the
//! batches stamped before [`settled_until`] (the last minute boundary at least
//! [`SETTLE_SECS`] ago) against Stripe's summary of `[0, settled_until)`. Newer batches are
//! reported as settling, and no correction is queued while an earlier correction for the
//! customer is still queued or unsettled, so a correction is never sent twice for one loss.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "finding", content = "detections")]
pub enum Finding {
    /// Both sides agree.
    Match,
    /// Stripe has fewer detections than were delivered: a correction can be sent.
    StripeMissing(u64),
    /// Stripe has more than Driftlock delivered: needs a person (meter events are not undone
    /// by sending more).
    StripeExtra(u64),
}

/// How long after a meter event Stripe's summaries are trusted to include it.
pub const SETTLE_SECS: i64 = 3600;

/// End (exclusive, epoch seconds, on a minute boundary) of the summary window a
/// reconciliation at `now_secs` compares: the window starts at 0, also a minute boundary.
pub fn settled_until(now_secs: i64) -> i64 {
    (now_secs - SETTLE_SECS).div_euclid(60) * 60
}

/// One meter batch of a customer, as reconciliation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub value: u64,
    /// The meter event's timestamp (epoch seconds).
    pub timestamp: i64,
    /// Delivered to Stripe (else still queued or failed).
    pub delivered: bool,
    /// A correction queued by an earlier reconciliation.
    pub correction: bool,
}

/// The comparison for one customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustomerReconciliation {
    /// Settled detections delivered (corrections aside: they replace what Stripe lost).
    pub delivered: u64,
    /// Delivered detections too recent for Stripe's summaries, left out of the comparison.
    pub settling: u64,
    pub finding: Finding,
    /// A correction may be queued now: Stripe is short and no earlier correction is still
    /// queued or unsettled.
    pub may_correct: bool,
}

/// Compares one customer's settled batches with Stripe's summary of the same window.
pub fn reconcile_customer(
    batches: &[Sent],
    stripe_settled: u64,
    until: i64,
) -> CustomerReconciliation {
    let settled = |b: &&Sent| b.timestamp < until;
    let delivered = batches
        .iter()
        .filter(|b| b.delivered && !b.correction)
        .filter(settled)
        .map(|b| b.value)
        .sum();
    let settling = batches
        .iter()
        .filter(|b| b.delivered && !b.correction && b.timestamp >= until)
        .map(|b| b.value)
        .sum();
    let correction_open = batches
        .iter()
        .any(|b| b.correction && (!b.delivered || b.timestamp >= until));
    let finding = compare(delivered, stripe_settled);
    CustomerReconciliation {
        delivered,
        settling,
        finding,
        may_correct: matches!(finding, Finding::StripeMissing(_)) && !correction_open,
    }
}

/// Compares the detections Driftlock delivered with Stripe's total for one customer.
pub fn compare(delivered: u64, stripe_total: u64) -> Finding {
    match delivered.cmp(&stripe_total) {
        std::cmp::Ordering::Equal => Finding::Match,
        std::cmp::Ordering::Greater => Finding::StripeMissing(delivered - stripe_total),
        std::cmp::Ordering::Less => Finding::StripeExtra(stripe_total - delivered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(value: u64, timestamp: i64, delivered: bool, correction: bool) -> Sent {
        Sent {
            value,
            timestamp,
            delivered,
            correction,
        }
    }

    #[test]
    fn the_window_ends_on_a_minute_boundary_an_hour_back() {
        assert_eq!(settled_until(1_800_003_659), 1_800_000_000);
        for now in [1_800_000_000, 1_800_000_001, 1_800_000_059, 1_800_003_599] {
            let until = settled_until(now);
            assert_eq!(until % 60, 0, "{now}");
            assert!(now - until >= SETTLE_SECS && now - until < SETTLE_SECS + 60);
        }
    }

    #[test]
    fn recent_batches_settle_before_they_are_compared() {
        let until = 1_000_000 * 60;
        let batches = [
            sent(300, until - 600, true, false),
            sent(200, until, true, false),
            sent(50, until + 10, false, false),
        ];
        // Stripe's summary cannot show the newest delivery yet: that is no loss.
        let r = reconcile_customer(&batches, 300, until);
        assert_eq!(
            (r.delivered, r.settling, r.finding),
            (300, 200, Finding::Match)
        );
        assert!(!r.may_correct);
        let r = reconcile_customer(&batches, 100, until);
        assert_eq!(r.finding, Finding::StripeMissing(200));
        assert!(r.may_correct);
    }

    #[test]
    fn a_loss_is_corrected_once_while_its_correction_settles() {
        let until = 1_000_000 * 60;
        let lost = sent(500, until - 7200, true, false);
        for correction in [
            sent(500, until - 60, false, true),
            sent(500, until + 30, true, true),
        ] {
            let r = reconcile_customer(&[lost, correction], 0, until);
            assert_eq!(r.finding, Finding::StripeMissing(500));
            assert!(!r.may_correct, "{correction:?} is still on its way");
        }
        // Settled: Stripe's window holds the correction, and the two sides agree.
        let settled = sent(500, until - 60, true, true);
        let r = reconcile_customer(&[lost, settled], 500, until);
        assert_eq!(r.finding, Finding::Match);
    }

    #[test]
    fn differences_name_the_side_that_is_short() {
        assert_eq!(compare(10, 10), Finding::Match);
        assert_eq!(compare(10, 4), Finding::StripeMissing(6));
        assert_eq!(compare(4, 10), Finding::StripeExtra(6));
    }
}
