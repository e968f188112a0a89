//! The simulated account data the read endpoints answer with.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{Value, json};

use super::ratelimit::Limits;

/// One sync session of `GET /v1/sync/sessions`.
#[derive(Debug, Serialize)]
pub struct Session {
    id: &'static str,
    status: &'static str,
    source: &'static str,
    destination: &'static str,
    started_at: String,
    finished_at: Option<String>,
    bytes_transferred: u64,
}

/// A fixed set of sessions, dated relative to the sandbox's start so they stay plausible.
pub fn sessions(started: DateTime<Utc>) -> Value {
    let sessions = [
        Session {
            id: "ses_7f3a9c21d4e8",
            status: "completed",
            source: "s3://acme-backups/daily",
            destination: "pcs://acme/archive/daily",
            started_at: timestamp(started - Duration::hours(3)),
            finished_at: Some(timestamp(started - Duration::minutes(151))),
            bytes_transferred: 52_428_800_000,
        },
        Session {
            id: "ses_2b81e6f05a77",
            status: "failed",
            source: "gs://acme-media/raw",
            destination: "pcs://acme/media/raw",
            started_at: timestamp(started - Duration::minutes(95)),
            finished_at: Some(timestamp(started - Duration::minutes(88))),
            bytes_transferred: 1_073_741_824,
        },
        Session {
            id: "ses_c0d45e9b1f32",
            status: "running",
            source: "/srv/exports/reports",
            destination: "pcs://acme/reports",
            started_at: timestamp(started - Duration::minutes(4)),
            finished_at: None,
            bytes_transferred: 268_435_456,
        },
    ];
    json!({ "sessions": sessions })
}

/// The answer of `GET /v1/account` for the key a token was issued to.
pub fn account(api_key: &str, limits: Limits, window_secs: u64) -> Value {
    json!({
        "id": "acc_sandbox",
        "name": "PinkCloudSync sandbox",
        "plan": "sandbox",
        "api_key": api_key,
        "rate_limits": {
            "window_seconds": window_secs,
            "auth": limits.auth,
            "sync": limits.sync,
            "read": limits.read,
        },
    })
}

fn timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_have_the_documented_fields() {
        let started = DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
            .expect("valid date")
            .with_timezone(&Utc);

        let body = sessions(started);

        assert_eq!(
            body["sessions"][0],
            json!({
                "id": "ses_7f3a9c21d4e8", "status": "completed",
                "source": "s3://acme-backups/daily", "destination": "pcs://acme/archive/daily",
                "started_at": "2026-01-01T09:00:00Z", "finished_at": "2026-01-01T09:29:00Z",
                "bytes_transferred": 52_428_800_000u64
            })
        );
        assert_eq!(body["sessions"][2]["finished_at"], Value::Null);
    }
}
