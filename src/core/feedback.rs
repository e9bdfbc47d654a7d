//! Feedback on a stored anomaly (issue 22): a person's verdict (`confirmed`, `false_positive`
//! or `expected`) and what it sets in motion. Owns [`Feedback`], the rule for a change of
//! verdict ([`Feedback::changed`]), the dispute a `false_positive` files ([`Dispute`]) and the
//! share of a period's detections that may be disputed without an operator
//! ([`accept_at_once`]).
//!
//! The rules, in one place:
//! - `false_positive` disputes the detection: it is taken out of the usage it was counted in,
//!   at once while the period's accepted disputes stay within the plan's share, otherwise
//!   after an operator accepts it. One anomaly files at most one dispute, ever: a dispute
//!   that was accepted or rejected is final, so repeating the verdict credits nothing more.
//! - An accepted (credited) dispute fixes the verdict: changing it would bill the detection
//!   again, so that is refused. A dispute still waiting for the operator is withdrawn when the
//!   verdict changes.
//! - `false_positive` and `expected` make a suppression rule from the anomaly's explanation
//!   (see `core::rules`); `confirmed` removes the rule the anomaly made, if any.
//! - `expected` also tells the detector that the new state is normal: it takes the data from
//!   here on as its new baseline (a fresh warm-up).

use serde::{Deserialize, Serialize};

/// A person's verdict on an anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A real anomaly.
    Confirmed,
    /// Not an anomaly: the detection is disputed and later ones like it are suppressed.
    FalsePositive,
    /// Real but expected (a deploy, a sale): later ones like it are suppressed and the
    /// detector re-learns its baseline from here.
    Expected,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Confirmed => "confirmed",
            Verdict::FalsePositive => "false_positive",
            Verdict::Expected => "expected",
        }
    }

    /// Whether this verdict makes a suppression rule.
    pub fn suppresses(self) -> bool {
        matches!(self, Verdict::FalsePositive | Verdict::Expected)
    }
}

/// Where a dispute stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeStatus {
    /// Credited: the detection is out of the period's usage.
    Accepted,
    /// Beyond the plan's share: an operator decides.
    AwaitingOperator,
    /// An operator refused it: the detection stays billed.
    Rejected,
    /// The verdict changed before the operator decided.
    Withdrawn,
}

impl DisputeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeStatus::Accepted => "accepted",
            DisputeStatus::AwaitingOperator => "awaiting_operator",
            DisputeStatus::Rejected => "rejected",
            DisputeStatus::Withdrawn => "withdrawn",
        }
    }
}

/// Which API an anomaly belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Stream,
    Monitor,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Stream => "stream",
            Source::Monitor => "monitor",
        }
    }

    /// The prefix of this source's anomaly ids (`sa_12`, `ma_3`).
    pub fn anomaly_prefix(self) -> &'static str {
        match self {
            Source::Stream => "sa",
            Source::Monitor => "ma",
        }
    }
}

/// The feedback kept on a stored anomaly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feedback {
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub given_by: String,
    pub given_at_ms: i64,
    /// The dispute this anomaly filed (at most one, ever), and where it stands (a copy of
    /// the dispute's own status, kept in step by every change to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute_status: Option<DisputeStatus>,
    /// The suppression rule made from this anomaly, while it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<u64>,
}

/// What a change of verdict asks the store to do besides keeping the feedback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackChange {
    pub feedback: Feedback,
    /// File this anomaly's dispute (it has none yet).
    pub file_dispute: bool,
    /// Withdraw the dispute that waits for the operator.
    pub withdraw_dispute: bool,
    /// Make a suppression rule (the anomaly has none).
    pub make_rule: bool,
    /// Delete the anomaly's rule.
    pub drop_rule: bool,
    /// Restart the detector's baseline from here.
    pub rebase: bool,
}

/// Why a verdict cannot change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FeedbackError {
    #[error("the anomaly's dispute was accepted and its detection credited; its verdict stays false_positive")]
    DisputeSettled,
}

impl Feedback {
    /// The change `actor` makes by giving `verdict` (and `note`, the old one kept when absent)
    /// at `now_ms` on an anomaly with feedback `current` whose dispute (if any) is in
    /// `dispute`. `Ok(None)` when nothing changes (a retried request).
    pub fn changed(
        current: Option<&Feedback>,
        dispute: Option<DisputeStatus>,
        (verdict, note): (Verdict, Option<String>),
        actor: &str,
        now_ms: i64,
    ) -> Result<Option<FeedbackChange>, FeedbackError> {
        let note = note.or_else(|| current.and_then(|c| c.note.clone()));
        if let Some(c) = current {
            if c.verdict == verdict && c.note == note {
                return Ok(None);
            }
            if dispute == Some(DisputeStatus::Accepted) && verdict != Verdict::FalsePositive {
                return Err(FeedbackError::DisputeSettled);
            }
        }
        let verdict_changed = current.is_none_or(|c| c.verdict != verdict);
        let rule = current.and_then(|c| c.rule);
        let file_dispute = verdict == Verdict::FalsePositive && dispute.is_none();
        let withdraw_dispute =
            verdict != Verdict::FalsePositive && dispute == Some(DisputeStatus::AwaitingOperator);
        let make_rule = verdict.suppresses() && rule.is_none();
        let drop_rule = verdict == Verdict::Confirmed && rule.is_some();
        let rebase = verdict == Verdict::Expected && verdict_changed;
        Ok(Some(FeedbackChange {
            feedback: Feedback {
                verdict,
                note,
                given_by: actor.to_string(),
                given_at_ms: now_ms,
                dispute: current.and_then(|c| c.dispute),
                dispute_status: dispute,
                rule: if drop_rule { None } else { rule },
            },
            file_dispute,
            withdraw_dispute,
            make_rule,
            drop_rule,
            rebase,
        }))
    }
}

/// The share of a period's detections, in percent, that may be disputed without an operator,
/// when a plan does not say.
pub const DEFAULT_DISPUTE_SHARE_PERCENT: u32 = 5;

/// Disputes a period accepts at once however few its detections, while the share is above
/// zero: an org with a handful of detections can still dispute one without an operator.
pub const DISPUTES_ACCEPTED_REGARDLESS: u64 = 1;

/// Whether one more dispute is accepted at once: the period's accepted disputes, this one
/// included, stay within `share_percent` of the detections counted in it (`counted`, before
/// any dispute), or within [`DISPUTES_ACCEPTED_REGARDLESS`]. With the default 5%, an org with
/// 100 detections may have 5 accepted at once; the sixth waits for an operator. A share of 0
/// sends every dispute to the operator.
pub fn accept_at_once(accepted: u64, counted: u64, share_percent: u32) -> bool {
    if share_percent == 0 {
        return false;
    }
    accepted < DISPUTES_ACCEPTED_REGARDLESS
        || u128::from(accepted + 1) * 100 <= u128::from(counted) * u128::from(share_percent)
}

/// A dispute of one billed detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub id: u64,
    pub org_id: String,
    pub source: Source,
    /// The stream or monitor id.
    pub parent: String,
    pub anomaly_seq: u64,
    /// The billing period the detection was counted in (its start).
    pub period_start_ms: i64,
    pub status: DisputeStatus,
    pub filed_by: String,
    pub filed_at_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_at_ms: Option<i64>,
    /// The operator's reason, for a decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Overage detections the credit took off the bill (0 or 1).
    #[serde(default)]
    pub overage_credited: u64,
}

impl Dispute {
    /// The disputed anomaly's id (`sa_12`).
    pub fn anomaly_id(&self) -> String {
        format!("{}_{}", self.source.anomaly_prefix(), self.anomaly_seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn give(
        current: Option<&Feedback>,
        dispute: Option<DisputeStatus>,
        verdict: Verdict,
    ) -> Result<Option<FeedbackChange>, FeedbackError> {
        Feedback::changed(current, dispute, (verdict, None), "key:k1", 10)
    }

    #[test]
    fn a_false_positive_files_one_dispute_and_makes_a_rule() {
        let change = give(None, None, Verdict::FalsePositive).unwrap().unwrap();
        assert!(change.file_dispute && change.make_rule && !change.rebase);
        let mut kept = change.feedback;
        kept.dispute = Some(1);
        kept.rule = Some(4);
        // Repeating it changes nothing.
        assert_eq!(
            give(
                Some(&kept),
                Some(DisputeStatus::Accepted),
                Verdict::FalsePositive
            ),
            Ok(None)
        );
        // A new note on it files nothing more.
        let noted = Feedback::changed(
            Some(&kept),
            Some(DisputeStatus::Rejected),
            (Verdict::FalsePositive, Some("still wrong".into())),
            "key:k2",
            20,
        )
        .unwrap()
        .unwrap();
        assert!(!noted.file_dispute && !noted.make_rule);
        assert_eq!(noted.feedback.dispute, Some(1));
    }

    #[test]
    fn a_credited_dispute_fixes_the_verdict_and_a_waiting_one_is_withdrawn() {
        let mut fp = give(None, None, Verdict::FalsePositive)
            .unwrap()
            .unwrap()
            .feedback;
        fp.dispute = Some(1);
        fp.rule = Some(2);
        assert_eq!(
            give(Some(&fp), Some(DisputeStatus::Accepted), Verdict::Confirmed),
            Err(FeedbackError::DisputeSettled)
        );
        let change = give(
            Some(&fp),
            Some(DisputeStatus::AwaitingOperator),
            Verdict::Confirmed,
        )
        .unwrap()
        .unwrap();
        assert!(change.withdraw_dispute && change.drop_rule);
        assert_eq!(change.feedback.rule, None);
        assert_eq!(change.feedback.dispute, Some(1));
    }

    #[test]
    fn expected_rebases_once_and_confirmed_touches_nothing_billed() {
        let change = give(None, None, Verdict::Expected).unwrap().unwrap();
        assert!(change.rebase && change.make_rule && !change.file_dispute);
        let again = Feedback::changed(
            Some(&change.feedback),
            None,
            (Verdict::Expected, Some("deploy".into())),
            "key:k1",
            11,
        )
        .unwrap()
        .unwrap();
        assert!(
            !again.rebase,
            "a new note does not restart the baseline again"
        );
        let confirmed = give(None, None, Verdict::Confirmed).unwrap().unwrap();
        assert!(!confirmed.file_dispute && !confirmed.make_rule && !confirmed.rebase);
    }

    #[test]
    fn the_share_allows_disputes_up_to_its_percentage_of_the_detections() {
        assert!(
            accept_at_once(0, 1, 5),
            "the first dispute of a period is accepted"
        );
        assert!(!accept_at_once(1, 39, 5), "5% of 39 is less than two");
        assert!(accept_at_once(1, 40, 5));
        assert!(accept_at_once(4, 100, 5));
        assert!(!accept_at_once(5, 100, 5));
        assert!(
            !accept_at_once(0, 1_000, 0),
            "a share of 0 sends all to the operator"
        );
        assert!(accept_at_once(99, 100, 100));
        assert!(accept_at_once(u64::MAX - 1, u64::MAX, 100));
    }
}
