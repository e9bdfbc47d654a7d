//! The routes the load tool drives, how the report names them, and which kind of traffic
//! (streams, monitors, metering, reads) each belongs to.

/// A route as the report counts it; deliberate replays are their own rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    StreamEvents,
    StreamReplay,
    MonitorPoints,
    MonitorReplay,
    MeterUsage,
    MeterReplay,
    ReadUsage,
    ReadStreamAnomalies,
    ReadMonitorAnomalies,
}

/// The kinds of traffic a client picks between by weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Streams,
    Monitors,
    Metering,
    Reads,
}

impl Route {
    pub const ALL: [Route; 9] = [
        Route::StreamEvents,
        Route::StreamReplay,
        Route::MonitorPoints,
        Route::MonitorReplay,
        Route::MeterUsage,
        Route::MeterReplay,
        Route::ReadUsage,
        Route::ReadStreamAnomalies,
        Route::ReadMonitorAnomalies,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    /// Method and path pattern, as in the OpenAPI document.
    pub fn label(self) -> &'static str {
        match self {
            Route::StreamEvents => "POST /v1/streams/{id}/events",
            Route::StreamReplay => "  same, idempotent replay",
            Route::MonitorPoints => "POST /v1/monitors/{id}/points",
            Route::MonitorReplay => "  same, idempotent replay",
            Route::MeterUsage => "POST /v1/meter-usage",
            Route::MeterReplay => "  same, idempotent replay",
            Route::ReadUsage => "GET /v1/usage",
            Route::ReadStreamAnomalies => "GET /v1/streams/{id}/anomalies",
            Route::ReadMonitorAnomalies => "GET /v1/monitors/{id}/anomalies",
        }
    }

    pub fn kind(self) -> Kind {
        match self {
            Route::StreamEvents | Route::StreamReplay => Kind::Streams,
            Route::MonitorPoints | Route::MonitorReplay => Kind::Monitors,
            Route::MeterUsage | Route::MeterReplay => Kind::Metering,
            Route::ReadUsage | Route::ReadStreamAnomalies | Route::ReadMonitorAnomalies => {
                Kind::Reads
            }
        }
    }

    /// What the route's units are: events, points, detections metered, items read.
    pub fn unit(self) -> &'static str {
        match self.kind() {
            Kind::Streams => "events",
            Kind::Monitors => "points",
            Kind::Metering => "detections",
            Kind::Reads => "items",
        }
    }
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Streams, Kind::Monitors, Kind::Metering, Kind::Reads];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Streams => "streams",
            Kind::Monitors => "monitors",
            Kind::Metering => "metering",
            Kind::Reads => "reads",
        }
    }
}
