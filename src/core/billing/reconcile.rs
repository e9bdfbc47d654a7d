//! Reconciliation of metered usage: what Driftlock delivered to Stripe's Billing Meter against
//! what Stripe reports having. Pure: the caller gathers both sides.

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

    #[test]
    fn differences_name_the_side_that_is_short() {
        assert_eq!(compare(10, 10), Finding::Match);
        assert_eq!(compare(10, 4), Finding::StripeMissing(6));
        assert_eq!(compare(4, 10), Finding::StripeExtra(6));
    }
}
