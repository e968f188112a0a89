//! The exporter end to end against the sandbox on loopback: each API condition leaves the
//! expected metric values, and `/metrics` stays served.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use support::*;

const WAIT: Duration = Duration::from_secs(15);

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn roomy_config(name: &str, base_url: &str) -> String {
    config_for(name, base_url, FAST_PROBES)
}

#[tokio::test]
async fn healthy_api_gives_success_latency_rate_limits_and_token_expiry() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let exporter = start_exporter(&roomy_config("prod", &sandbox.base_url()), API_SECRET).await;

    let m = wait_for(&exporter, "both probes to succeed", WAIT, |m| {
        m.value("pinkcloudsync_probe_success", &labels("prod", "auth")) == Some(1.0)
            && m.value("pinkcloudsync_probe_success", &labels("prod", "sessions")) == Some(1.0)
    })
    .await;

    assert!(
        m.content_type.starts_with("application/openmetrics-text"),
        "{}",
        m.content_type
    );
    assert!(
        m.get(
            "pinkcloudsync_http_responses_total",
            &[("target", "prod"), ("code", "200")]
        ) >= 1.0
    );
    assert_eq!(
        m.get(
            "pinkcloudsync_probe_failures_total",
            &[
                ("target", "prod"),
                ("probe", "sessions"),
                ("reason", "unauthorized")
            ]
        ),
        0.0
    );
    let auth = [("target", "prod"), ("category", "auth")];
    let sync = [("target", "prod"), ("category", "sync")];
    assert_eq!(m.get("pinkcloudsync_ratelimit_limit", &auth), 1000.0);
    assert_eq!(m.get("pinkcloudsync_ratelimit_limit", &sync), 1000.0);
    assert!(m.get("pinkcloudsync_ratelimit_remaining", &sync) < 1000.0);
    let reset = m.get("pinkcloudsync_ratelimit_reset_timestamp_seconds", &sync);
    assert!(
        reset > now() - 1.0 && reset <= now() + 61.0,
        "reset {reset}"
    );
    let expiry = m.get(
        "pinkcloudsync_token_expiry_timestamp_seconds",
        &[("target", "prod")],
    );
    assert!((expiry - (now() + 3600.0)).abs() < 30.0, "expiry {expiry}");
    assert_eq!(
        m.get("pinkcloudsync_credentials_valid", &[("target", "prod")]),
        1.0
    );
    assert_eq!(
        m.get(
            "pinkcloudsync_probe_interval_seconds",
            &labels("prod", "sessions")
        ),
        1.0
    );
    assert!(
        m.get(
            "pinkcloudsync_probe_last_run_timestamp_seconds",
            &labels("prod", "auth")
        ) > now() - 10.0
    );
    assert!(
        m.text
            .contains("pinkcloudsync_probe_duration_seconds_bucket{")
    );
    assert!(
        m.text
            .contains("pinkcloudsync_exporter_build_info{version=\"")
    );
    exporter.shutdown().await.unwrap();
}

#[tokio::test]
async fn help_texts_say_values_come_from_the_last_scheduled_probe() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let exporter = start_exporter(&roomy_config("prod", &sandbox.base_url()), API_SECRET).await;

    let m = wait_for(&exporter, "a first sessions run", WAIT, |m| {
        m.value("pinkcloudsync_probe_success", &labels("prod", "sessions")) == Some(1.0)
    })
    .await;

    for name in [
        "pinkcloudsync_probe_success",
        "pinkcloudsync_ratelimit_remaining",
        "pinkcloudsync_credentials_valid",
    ] {
        let help = m
            .parsed
            .docs
            .get(name)
            .unwrap_or_else(|| panic!("no HELP for {name}"));
        assert!(help.contains("last scheduled probe"), "{name}: {help}");
    }
}

#[tokio::test]
async fn wrong_secret_counts_401_and_marks_credentials_invalid() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let exporter =
        start_exporter(&roomy_config("prod", &sandbox.base_url()), "sk_live_wrong").await;

    let m = wait_for(&exporter, "credentials_valid 0", WAIT, |m| {
        m.value("pinkcloudsync_credentials_valid", &[("target", "prod")]) == Some(0.0)
    })
    .await;

    assert!(
        m.get(
            "pinkcloudsync_http_responses_total",
            &[("target", "prod"), ("probe", "auth"), ("code", "401")]
        ) >= 1.0
    );
    assert!(
        m.get(
            "pinkcloudsync_probe_failures_total",
            &[
                ("target", "prod"),
                ("probe", "auth"),
                ("reason", "unauthorized")
            ]
        ) >= 1.0
    );
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("prod", "auth")),
        0.0
    );
}

#[tokio::test]
async fn api_down_is_a_connect_failure_and_metrics_stay_served() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", closed.local_addr().unwrap());
    drop(closed);
    let exporter = start_exporter(&roomy_config("down", &base_url), API_SECRET).await;

    let m = wait_for(&exporter, "connect failures on both probes", WAIT, |m| {
        ["auth", "sessions"].iter().all(|probe| {
            let labels = [("target", "down"), ("probe", *probe), ("reason", "connect")];
            m.value("pinkcloudsync_probe_failures_total", &labels)
                .unwrap_or(0.0)
                >= 1.0
        })
    })
    .await;

    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("down", "sessions")),
        0.0
    );
    let page = reqwest::get(format!("http://{}/", exporter.addr))
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
}

/// Each fault the sandbox injects ends in the expected failure reason.
#[tokio::test]
async fn injected_faults_give_their_failure_reasons() {
    let cases = [
        (
            json!({"status": 503, "status_ratio": 1.0}),
            "server_error",
            Some("503"),
        ),
        (json!({"hang": true}), "timeout", None),
        (
            json!({"malformed_body": true}),
            "invalid_response",
            Some("200"),
        ),
        (
            json!({"status": 404, "status_ratio": 1.0}),
            "client_error",
            Some("404"),
        ),
    ];
    for (fault, reason, code) in cases {
        let sandbox = start_sandbox(roomy_sandbox()).await;
        set_faults(&sandbox, fault.clone()).await;
        let exporter =
            start_exporter(&roomy_config("faulty", &sandbox.base_url()), API_SECRET).await;

        let what = format!("reason {reason} for {fault}");
        let m = wait_for(&exporter, &what, WAIT, |m| {
            let labels = [("target", "faulty"), ("probe", "auth"), ("reason", reason)];
            m.value("pinkcloudsync_probe_failures_total", &labels)
                .unwrap_or(0.0)
                >= 1.0
        })
        .await;

        assert_eq!(
            m.get("pinkcloudsync_probe_success", &labels("faulty", "auth")),
            0.0,
            "{fault}"
        );
        if let Some(code) = code {
            let labels = [("target", "faulty"), ("probe", "auth"), ("code", code)];
            assert!(
                m.get("pinkcloudsync_http_responses_total", &labels) >= 1.0,
                "{fault}"
            );
        }
        exporter.shutdown().await.unwrap();
        sandbox.shutdown().await;
    }
}

#[tokio::test]
async fn landing_page_and_health_checks_answer() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let exporter = start_exporter(&roomy_config("prod", &sandbox.base_url()), API_SECRET).await;
    wait_for(&exporter, "a first run", WAIT, |m| {
        m.value("pinkcloudsync_probe_success", &labels("prod", "sessions"))
            .is_some()
    })
    .await;
    let base = format!("http://{}", exporter.addr);

    let page = reqwest::get(format!("{base}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let healthy = reqwest::get(format!("{base}/-/healthy")).await.unwrap();
    let ready = reqwest::get(format!("{base}/-/ready")).await.unwrap();

    assert!(
        page.contains("<td>prod</td>") && page.contains("sessions"),
        "{page}"
    );
    assert!(page.contains("success"), "{page}");
    assert!(page.contains("href=\"/metrics\""));
    assert_eq!(healthy.status(), 200);
    assert_eq!(ready.status(), 200);
}

/// A runtime blocked for several intervals (a stalled runtime, a suspended VM) must not stop
/// the probes: tokio-cron-scheduler's repeated jobs stop for good in that case.
#[tokio::test(flavor = "current_thread")]
async fn probes_survive_a_stalled_runtime() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let exporter = start_exporter(&roomy_config("stall", &sandbox.base_url()), API_SECRET).await;
    wait_for(&exporter, "a first run", WAIT, |m| {
        m.value(
            "pinkcloudsync_probe_last_run_timestamp_seconds",
            &labels("stall", "sessions"),
        )
        .is_some()
    })
    .await;

    // Blocks the only runtime thread: nothing is scheduled for four seconds.
    std::thread::sleep(Duration::from_secs(4));
    let after_stall = now();
    let before = count(&stats(&sandbox).await, SESSIONS);

    let m = wait_for(&exporter, "runs after the stall", WAIT, |m| {
        let last = m.value(
            "pinkcloudsync_probe_last_run_timestamp_seconds",
            &labels("stall", "sessions"),
        );
        last.is_some_and(|t| t > after_stall + 2.0)
    })
    .await;

    assert!(count(&stats(&sandbox).await, SESSIONS) >= before + 2);
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("stall", "sessions")),
        1.0
    );
}

#[tokio::test]
async fn several_targets_are_probed_separately() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let text = format!(
        "{}{}",
        roomy_config("first", &sandbox.base_url()),
        roomy_config("second", &sandbox.base_url())
    );
    let exporter = start_exporter(&text, API_SECRET).await;

    wait_for(&exporter, "both targets to succeed", WAIT, |m| {
        ["first", "second"]
            .iter()
            .all(|t| m.value("pinkcloudsync_probe_success", &labels(t, "sessions")) == Some(1.0))
    })
    .await;
}

#[tokio::test]
async fn first_runs_of_targets_are_spread_over_the_interval() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let probes = "[targets.rate_limits]\nsync = 1000\n[targets.probes.sessions]\ninterval = \"4s\"\ntimeout = \"1s\"\n";
    let names = ["s0", "s1", "s2", "s3"];
    let text: String = names
        .iter()
        .map(|name| config_for(name, &sandbox.base_url(), probes))
        .collect();
    let exporter = start_exporter(&text, API_SECRET).await;

    let m = wait_for(&exporter, "a first run of every target", WAIT, |m| {
        names.iter().all(|t| {
            m.value(
                "pinkcloudsync_probe_last_run_timestamp_seconds",
                &labels(t, "sessions"),
            )
            .is_some()
        })
    })
    .await;

    let mut starts: Vec<f64> = names
        .iter()
        .map(|t| {
            m.get(
                "pinkcloudsync_probe_last_run_timestamp_seconds",
                &labels(t, "sessions"),
            )
        })
        .collect();
    starts.sort_by(f64::total_cmp);
    assert!(
        starts[3] - starts[0] >= 2.0,
        "first runs not spread: {starts:?}"
    );
    for pair in starts.windows(2) {
        assert!(
            pair[1] - pair[0] >= 0.4,
            "two targets started together: {starts:?}"
        );
    }
}

#[tokio::test]
async fn api_key_expiry_is_exported_where_configured() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let text = roomy_config("keyed", &sandbox.base_url()).replace(
        "api_key = \"pk_live_abc123\"",
        "api_key = \"pk_live_abc123\"\napi_key_expires_at = \"2027-01-02T03:04:05+01:00\"",
    );
    let exporter = start_exporter(&text, API_SECRET).await;

    let m = scrape(&exporter).await;

    let expiry = m.get(
        "pinkcloudsync_api_key_expiry_timestamp_seconds",
        &[("target", "keyed")],
    );
    assert_eq!(expiry, 1_798_855_445.0);
}
