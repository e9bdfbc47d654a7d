//! The routes that read one stored anomaly and set its status, for streams
//! (`/v1/streams/{stream_id}/anomalies/{anomaly_id}`, ids `sa_<n>`) and monitors
//! (`/v1/monitors/{monitor_id}/anomalies/{anomaly_id}`, ids `ma_<n>`). Another
//! organization's anomalies answer 404, like ids that do not exist.

use poem_openapi::{param::Path, payload::Json, OpenApi};

use super::{
    auth::{OrgAuth, OrgCaller},
    error::ApiResult,
    models::Tag,
    monitors::AnomalyView,
    streams::StreamAnomaly,
    triage::{anomaly_number, SetStatusRequest},
};
use crate::clock;

pub struct AnomalyStatusApi;

#[OpenApi(prefix_path = "/v1", tag = "Tag::Anomalies")]
impl AnomalyStatusApi {
    /// One stored anomaly of a stream.
    #[oai(
        path = "/streams/:stream_id/anomalies/:anomaly_id",
        method = "get",
        operation_id = "getStreamAnomaly"
    )]
    async fn stream_anomaly(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        #[oai(validator(pattern = r"^sa_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
    ) -> ApiResult<Json<StreamAnomaly>> {
        let seq = anomaly_number("sa", &anomaly_id)?;
        let scope = auth.0.scope;
        Ok(Json(
            scope
                .get_stream_anomaly(&stream_id, (seq, &anomaly_id))?
                .into(),
        ))
    }

    /// Acknowledge, resolve or reopen a stored anomaly of a stream, with a note; who and when
    /// are kept with it. Setting the status it has, with the same note, changes nothing.
    #[oai(
        path = "/streams/:stream_id/anomalies/:anomaly_id",
        method = "patch",
        operation_id = "setStreamAnomalyStatus"
    )]
    async fn set_stream_anomaly_status(
        &self,
        auth: OrgAuth,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:-]{1,128}$"))] stream_id: Path<String>,
        #[oai(validator(pattern = r"^sa_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
        body: Json<SetStatusRequest>,
    ) -> ApiResult<Json<StreamAnomaly>> {
        let seq = anomaly_number("sa", &anomaly_id)?;
        let (status, note) = body.parts()?;
        let OrgCaller { scope, actor } = auth.0;
        let now = clock::now_ms();
        let anomaly = super::blocking(move || {
            let id = (seq, anomaly_id.as_str());
            scope.set_stream_anomaly_status(&stream_id, id, status, note, &actor, now)
        })
        .await?;
        Ok(Json(anomaly.into()))
    }

    /// One stored anomaly of a monitor.
    #[oai(
        path = "/monitors/:monitor_id/anomalies/:anomaly_id",
        method = "get",
        operation_id = "getMonitorAnomaly"
    )]
    async fn monitor_anomaly(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        #[oai(validator(pattern = r"^ma_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
    ) -> ApiResult<Json<AnomalyView>> {
        let seq = anomaly_number("ma", &anomaly_id)?;
        let scope = auth.0.scope;
        Ok(Json(
            scope
                .get_monitor_anomaly(&monitor_id, (seq, &anomaly_id))?
                .into(),
        ))
    }

    /// Acknowledge, resolve or reopen a stored anomaly of a monitor, with a note; who and when
    /// are kept with it. Setting the status it has, with the same note, changes nothing.
    #[oai(
        path = "/monitors/:monitor_id/anomalies/:anomaly_id",
        method = "patch",
        operation_id = "setMonitorAnomalyStatus"
    )]
    async fn set_monitor_anomaly_status(
        &self,
        auth: OrgAuth,
        monitor_id: Path<String>,
        #[oai(validator(pattern = r"^ma_[1-9][0-9]{0,19}$"))] anomaly_id: Path<String>,
        body: Json<SetStatusRequest>,
    ) -> ApiResult<Json<AnomalyView>> {
        let seq = anomaly_number("ma", &anomaly_id)?;
        let (status, note) = body.parts()?;
        let OrgCaller { scope, actor } = auth.0;
        let now = clock::now_ms();
        let anomaly = super::blocking(move || {
            let id = (seq, anomaly_id.as_str());
            scope.set_monitor_anomaly_status(&monitor_id, id, status, note, &actor, now)
        })
        .await?;
        Ok(Json(anomaly.into()))
    }
}
