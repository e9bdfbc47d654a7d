//! Whether a metered-usage batch may be sent to Stripe again under its identifier.
//!
//! Stripe recognises a Billing Meter event's `identifier` for (at least) 24 hours: a resend
//! within that time of an event it already holds is refused as a duplicate, so a retry after
//! a lost answer is safe. Past it, the same identifier counts again. A batch whose attempt
//! ended without a clear answer (no answer, or a server error: Stripe may have recorded it)
//! is therefore resent only within [`IDENTIFIER_MEMORY_MS`] less [`RESEND_MARGIN_MS`] of that
//! first unclear attempt. After that its fate is settled by comparing with Stripe's own
//! totals (`driftlock billing reconcile`), which queues a correction only for what Stripe
//! does not have.

/// How long Stripe recognises a meter event identifier.
pub const IDENTIFIER_MEMORY_MS: i64 = 24 * 3_600_000;

/// Kept from the end of that window: clocks differ, and an attempt takes time.
pub const RESEND_MARGIN_MS: i64 = 3_600_000;

/// True when a batch may be sent again at `now_ms`: no attempt has ended unclearly, or the
/// first unclear attempt (`unclear_since_ms`) is recent enough for Stripe to recognise the
/// identifier.
pub fn may_resend(unclear_since_ms: Option<i64>, now_ms: i64) -> bool {
    match unclear_since_ms {
        None => true,
        Some(since) => now_ms - since < IDENTIFIER_MEMORY_MS - RESEND_MARGIN_MS,
    }
}

/// Why a batch is no longer resent, for its error and for an operator's refused retry.
pub fn refusal(unclear_since_ms: i64) -> String {
    format!(
        "an attempt at {} got no clear answer, so Stripe may hold this batch, and it recognises \
         a meter event identifier for 24 hours only: the batch is not resent; run `driftlock \
         billing reconcile --fix`, which compares with Stripe's totals and corrects only what \
         Stripe lacks",
        crate::clock::format_rfc3339(unclear_since_ms)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_resent_only_while_stripe_recognises_its_identifier() {
        let t = 1_800_000_000_000;
        assert!(may_resend(None, t + 10 * IDENTIFIER_MEMORY_MS));
        assert!(may_resend(Some(t), t));
        assert!(may_resend(Some(t), t + 22 * 3_600_000));
        assert!(!may_resend(Some(t), t + 23 * 3_600_000));
        assert!(!may_resend(Some(t), t + 3 * IDENTIFIER_MEMORY_MS));
    }
}
