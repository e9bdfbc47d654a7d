//! Where a person has put a stored anomaly: `open` (new), `acknowledged` (someone is on it) or
//! `resolved` (dealt with), with who set it, when, and their note. Owns [`Triage`] and the
//! rule for a change: any status may follow any other (a resolved anomaly can be reopened);
//! setting the status it already has with the same note changes nothing, so a retried request
//! does not move `changed_at`.

use serde::{Deserialize, Serialize};

/// The status of a stored anomaly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyStatus {
    #[default]
    Open,
    Acknowledged,
    Resolved,
}

impl AnomalyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyStatus::Open => "open",
            AnomalyStatus::Acknowledged => "acknowledged",
            AnomalyStatus::Resolved => "resolved",
        }
    }
}

/// A stored anomaly's status and its last change (none while it was never changed).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Triage {
    pub status: AnomalyStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_at_ms: Option<i64>,
}

impl Triage {
    /// The triage after `actor` sets `status` (and `note`, kept when absent) at `now_ms`;
    /// None when that changes nothing.
    pub fn changed(
        &self,
        status: AnomalyStatus,
        note: Option<String>,
        actor: &str,
        now_ms: i64,
    ) -> Option<Triage> {
        let note = note.or_else(|| self.note.clone());
        if status == self.status && note == self.note {
            return None;
        }
        Some(Triage {
            status,
            note,
            changed_by: Some(actor.to_string()),
            changed_at_ms: Some(now_ms),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_records_who_and_when_and_a_repeat_changes_nothing() {
        let new = Triage::default();
        assert_eq!(new.status, AnomalyStatus::Open);
        let acked = new
            .changed(
                AnomalyStatus::Acknowledged,
                Some("on it".into()),
                "key_1",
                10,
            )
            .unwrap();
        assert_eq!(acked.changed_by.as_deref(), Some("key_1"));
        assert_eq!(acked.changed_at_ms, Some(10));
        assert_eq!(
            acked.changed(AnomalyStatus::Acknowledged, None, "key_2", 20),
            None
        );
        let resolved = acked
            .changed(AnomalyStatus::Resolved, None, "key_2", 30)
            .unwrap();
        assert_eq!(resolved.note.as_deref(), Some("on it"), "the note is kept");
        let reopened = resolved
            .changed(AnomalyStatus::Open, None, "key_1", 40)
            .unwrap();
        assert_eq!(reopened.status, AnomalyStatus::Open);
    }

    #[test]
    fn records_written_before_triage_read_as_open() {
        let t: Triage = serde_json::from_str(r#"{"status":"open"}"#).unwrap();
        assert_eq!(t, Triage::default());
    }
}
