//! The status of a stored anomaly in requests and answers: `PATCH .../anomalies/{anomaly_id}`
//! with `{status, note}`, and the `status` fields of every stored anomaly shown. Owns the
//! anomaly ids (`sa_<n>` in a stream, `ma_<n>` in a monitor: the anomaly's number there,
//! stable for its life) and the views of [`crate::core::triage::Triage`].

use poem_openapi::{Enum, Object};

use super::{
    error::{ApiError, ApiResult},
    models::DateTime,
    name::{valid_name, Name},
};
use crate::core::triage::{AnomalyStatus, Triage};

/// Where a person has put an anomaly.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[oai(rename_all = "snake_case")]
pub enum Status {
    /// New: nobody has looked at it yet.
    Open,
    /// Someone is on it.
    Acknowledged,
    /// Dealt with.
    Resolved,
}

impl From<Status> for AnomalyStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Open => AnomalyStatus::Open,
            Status::Acknowledged => AnomalyStatus::Acknowledged,
            Status::Resolved => AnomalyStatus::Resolved,
        }
    }
}

impl From<AnomalyStatus> for Status {
    fn from(s: AnomalyStatus) -> Self {
        match s {
            AnomalyStatus::Open => Status::Open,
            AnomalyStatus::Acknowledged => Status::Acknowledged,
            AnomalyStatus::Resolved => Status::Resolved,
        }
    }
}

/// A new status for an anomaly, and why.
#[derive(Object)]
#[oai(skip_serializing_if_is_none)]
pub struct SetStatusRequest {
    pub status: Status,
    /// Kept with the status (the last note is kept when this is absent).
    pub note: Option<Name>,
}

impl SetStatusRequest {
    /// The status and the trimmed note, or 422 naming `note`.
    pub fn parts(&self) -> ApiResult<(AnomalyStatus, Option<String>)> {
        let note = self
            .note
            .as_ref()
            .map(|n| valid_name("note", &n.0))
            .transpose()?;
        Ok((self.status.into(), note))
    }
}

/// The status fields of a stored anomaly.
#[derive(Object, Clone)]
#[oai(skip_serializing_if_is_none)]
pub struct TriageView {
    /// `open` until someone acknowledges or resolves it.
    pub status: Status,
    /// The note given with the last status change.
    pub status_note: Option<String>,
    /// Who changed the status last, as the audit log names callers (`key:<key id>`).
    pub status_changed_by: Option<String>,
    pub status_changed_at: Option<DateTime>,
}

impl From<&Triage> for TriageView {
    fn from(t: &Triage) -> Self {
        TriageView {
            status: t.status.into(),
            status_note: t.note.clone(),
            status_changed_by: t.changed_by.clone(),
            status_changed_at: t.changed_at_ms.map(DateTime::from_ms),
        }
    }
}

/// `sa_12` -> 12 for `prefix` `sa`; 404 for anything else (no such anomaly).
pub fn anomaly_number(prefix: &str, id: &str) -> ApiResult<u64> {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .filter(|n| !n.starts_with('0'))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| ApiError::NotFound {
            entity: "anomaly",
            id: id.to_string(),
        })
}

/// The id of anomaly number `n` with `prefix`.
pub fn anomaly_id(prefix: &str, n: u64) -> String {
    format!("{prefix}_{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_ids_round_trip_and_others_are_not_found() {
        assert_eq!(anomaly_number("sa", &anomaly_id("sa", 12)).unwrap(), 12);
        for bad in [
            "ma_12",
            "sa_",
            "sa_012",
            "sa_x",
            "12",
            "sa_99999999999999999999999",
        ] {
            assert!(anomaly_number("sa", bad).is_err(), "{bad}");
        }
        // The pattern the routes declare.
        let re = regex::Regex::new(r"^sa_[1-9][0-9]{0,19}$").unwrap();
        assert!(re.is_match("sa_1") && !re.is_match("sa_0"));
    }
}
