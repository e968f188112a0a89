//! Injected faults: the admin API's fault description, its checks, and when a fault applies.

use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};

const FIELDS: [&str; 6] = [
    "latency",
    "status",
    "status_ratio",
    "hang",
    "malformed_body",
    "endpoint",
];

/// The API endpoints a fault can be limited to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FaultEndpoint {
    Auth,
    Sessions,
    Account,
}

impl FaultEndpoint {
    fn parse(name: &str) -> Option<FaultEndpoint> {
        match name {
            "auth" => Some(FaultEndpoint::Auth),
            "sessions" => Some(FaultEndpoint::Sessions),
            "account" => Some(FaultEndpoint::Account),
            _ => None,
        }
    }
}

/// The faults in force; the default injects nothing.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    pub latency: Option<Duration>,
    pub status: Option<StatusCode>,
    pub status_ratio: f64,
    pub hang: bool,
    pub malformed_body: bool,
    pub endpoint: Option<FaultEndpoint>,
}

/// The JSON shape of [`Faults`], as accepted by `PUT /_sandbox/faults` and shown by `GET`.
#[derive(Debug, Serialize)]
pub struct FaultsView {
    latency: Option<String>,
    status: Option<u16>,
    status_ratio: Option<f64>,
    hang: bool,
    malformed_body: bool,
    endpoint: Option<FaultEndpoint>,
}

/// Why a fault description was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error("request body must be a JSON object")]
    NotObject,
    #[error("unknown field `{0}`, expected one of {list}", list = FIELDS.join(", "))]
    UnknownField(String),
    #[error("field `{field}` must be {expected}, got {value}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
        value: String,
    },
    #[error("field `latency` is not a duration like \"500ms\": {value:?}")]
    Latency { value: String },
    #[error("field `status` must be an HTTP status from 400 to 599, got {0}")]
    Status(u64),
    #[error("field `status_ratio` must be between 0 and 1, got {0}")]
    StatusRatio(f64),
    #[error("field `status_ratio` needs field `status`")]
    RatioWithoutStatus,
    #[error("field `endpoint` must be \"auth\", \"sessions\", \"account\" or null, got {0:?}")]
    Endpoint(String),
}

impl Default for Faults {
    fn default() -> Faults {
        Faults {
            latency: None,
            status: None,
            status_ratio: 1.0,
            hang: false,
            malformed_body: false,
            endpoint: None,
        }
    }
}

impl Faults {
    /// Checks a fault description given as JSON; absent and null fields mean no such fault.
    pub fn from_json(value: &Value) -> Result<Faults, FaultError> {
        let fields = value.as_object().ok_or(FaultError::NotObject)?;
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(FaultError::UnknownField(unknown.clone()));
        }
        let status = status_field(fields)?;
        let status_ratio = ratio_field(fields, status.is_some())?;
        Ok(Faults {
            latency: latency_field(fields)?,
            status,
            status_ratio,
            hang: bool_field(fields, "hang")?,
            malformed_body: bool_field(fields, "malformed_body")?,
            endpoint: endpoint_field(fields)?,
        })
    }

    /// Whether these faults concern a request to `endpoint` (None for other /v1 paths).
    pub fn applies_to(&self, endpoint: Option<FaultEndpoint>) -> bool {
        self.endpoint.is_none() || self.endpoint == endpoint
    }

    /// Draws whether this request gets the injected status.
    pub fn draw_status(&self) -> Option<StatusCode> {
        self.status
            .filter(|_| rand::random_bool(self.status_ratio.clamp(0.0, 1.0)))
    }

    pub fn view(&self) -> FaultsView {
        FaultsView {
            latency: self
                .latency
                .map(|d| humantime::format_duration(d).to_string()),
            status: self.status.map(|s| s.as_u16()),
            status_ratio: self.status.map(|_| self.status_ratio),
            hang: self.hang,
            malformed_body: self.malformed_body,
            endpoint: self.endpoint,
        }
    }
}

fn present<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|v| !v.is_null())
}

fn wrong_type(field: &'static str, expected: &'static str, value: &Value) -> FaultError {
    FaultError::WrongType {
        field,
        expected,
        value: value.to_string(),
    }
}

fn latency_field(fields: &Map<String, Value>) -> Result<Option<Duration>, FaultError> {
    let Some(value) = present(fields, "latency") else {
        return Ok(None);
    };
    let text = value
        .as_str()
        .ok_or_else(|| wrong_type("latency", "a duration string", value))?;
    humantime::parse_duration(text)
        .map(Some)
        .map_err(|_| FaultError::Latency {
            value: text.to_owned(),
        })
}

fn status_field(fields: &Map<String, Value>) -> Result<Option<StatusCode>, FaultError> {
    let Some(value) = present(fields, "status") else {
        return Ok(None);
    };
    let code = value
        .as_u64()
        .ok_or_else(|| wrong_type("status", "an integer", value))?;
    u16::try_from(code)
        .ok()
        .filter(|c| (400..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
        .map(Some)
        .ok_or(FaultError::Status(code))
}

fn ratio_field(fields: &Map<String, Value>, has_status: bool) -> Result<f64, FaultError> {
    let Some(value) = present(fields, "status_ratio") else {
        return Ok(1.0);
    };
    let ratio = value
        .as_f64()
        .ok_or_else(|| wrong_type("status_ratio", "a number", value))?;
    if !(0.0..=1.0).contains(&ratio) {
        return Err(FaultError::StatusRatio(ratio));
    }
    if !has_status {
        return Err(FaultError::RatioWithoutStatus);
    }
    Ok(ratio)
}

fn bool_field(fields: &Map<String, Value>, name: &'static str) -> Result<bool, FaultError> {
    match present(fields, name) {
        None => Ok(false),
        Some(value) => value
            .as_bool()
            .ok_or_else(|| wrong_type(name, "true or false", value)),
    }
}

fn endpoint_field(fields: &Map<String, Value>) -> Result<Option<FaultEndpoint>, FaultError> {
    let Some(value) = present(fields, "endpoint") else {
        return Ok(None);
    };
    let name = value
        .as_str()
        .ok_or_else(|| wrong_type("endpoint", "a string", value))?;
    FaultEndpoint::parse(name)
        .map(Some)
        .ok_or_else(|| FaultError::Endpoint(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_description_is_accepted() {
        let faults = Faults::from_json(&json!({
            "latency": "500ms", "status": 503, "status_ratio": 0.5,
            "hang": false, "malformed_body": true, "endpoint": "sessions"
        }))
        .expect("description is valid");

        assert_eq!(
            faults,
            Faults {
                latency: Some(Duration::from_millis(500)),
                status: Some(StatusCode::SERVICE_UNAVAILABLE),
                status_ratio: 0.5,
                hang: false,
                malformed_body: true,
                endpoint: Some(FaultEndpoint::Sessions),
            }
        );
    }

    #[test]
    fn an_empty_description_injects_nothing() {
        assert_eq!(Faults::from_json(&json!({})), Ok(Faults::default()));
        assert_eq!(
            Faults::from_json(&json!({"latency": null, "endpoint": null})),
            Ok(Faults::default())
        );
    }

    #[test]
    fn status_alone_applies_to_every_request() {
        let faults = Faults::from_json(&json!({"status": 500})).expect("valid");

        assert_eq!(faults.status_ratio, 1.0);
        assert_eq!(
            faults.draw_status(),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }

    #[test]
    fn a_zero_ratio_never_injects_the_status() {
        let faults = Faults::from_json(&json!({"status": 500, "status_ratio": 0})).expect("valid");

        assert!((0..100).all(|_| faults.draw_status().is_none()));
    }

    #[test]
    fn bad_descriptions_name_the_field() {
        let cases = [
            (json!([]), "request body must be a JSON object"),
            (
                json!({"delay": "1s"}),
                "unknown field `delay`, expected one of latency, status, status_ratio, hang, \
                 malformed_body, endpoint",
            ),
            (
                json!({"latency": "soon"}),
                "field `latency` is not a duration like \"500ms\": \"soon\"",
            ),
            (
                json!({"latency": 500}),
                "field `latency` must be a duration string, got 500",
            ),
            (
                json!({"status": 200}),
                "field `status` must be an HTTP status from 400 to 599, got 200",
            ),
            (
                json!({"status": "503"}),
                "field `status` must be an integer, got \"503\"",
            ),
            (
                json!({"status": 503, "status_ratio": 1.5}),
                "field `status_ratio` must be between 0 and 1, got 1.5",
            ),
            (
                json!({"status_ratio": 0.5}),
                "field `status_ratio` needs field `status`",
            ),
            (
                json!({"hang": "yes"}),
                "field `hang` must be true or false, got \"yes\"",
            ),
            (
                json!({"malformed_body": 1}),
                "field `malformed_body` must be true or false, got 1",
            ),
            (
                json!({"endpoint": "token"}),
                "field `endpoint` must be \"auth\", \"sessions\", \"account\" or null, got \
                 \"token\"",
            ),
        ];

        for (body, expected) in cases {
            let error = Faults::from_json(&body).expect_err(expected);
            assert_eq!(error.to_string(), expected);
        }
    }

    #[test]
    fn an_endpoint_limits_the_fault() {
        let faults = Faults::from_json(&json!({"status": 503, "endpoint": "auth"})).expect("ok");

        assert!(faults.applies_to(Some(FaultEndpoint::Auth)));
        assert!(!faults.applies_to(Some(FaultEndpoint::Sessions)));
        assert!(!faults.applies_to(None));
        assert!(Faults::default().applies_to(None));
    }

    #[test]
    fn the_view_round_trips() {
        let body = json!({
            "latency": "1s 500ms", "status": 429, "status_ratio": 0.25,
            "hang": true, "malformed_body": false, "endpoint": "account"
        });
        let faults = Faults::from_json(&body).expect("valid");

        let view = serde_json::to_value(faults.view()).expect("view serializes");

        assert_eq!(view, body);
        assert_eq!(Faults::from_json(&view), Ok(faults));
    }
}
