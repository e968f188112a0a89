//! Credentials and quota against the sandbox, counting the requests it really received:
//! tokens reused and refreshed ahead of expiry, revoked keys, expired tokens, backoff after
//! a 429, and the quota reserve left to other clients.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pinkcloudsync_exporter::sandbox::SandboxOptions;
use serde_json::json;
use support::*;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn status_count(stats: &serde_json::Value, status: &str) -> u64 {
    stats["by_status"][status].as_u64().unwrap_or(0)
}

/// Sessions probes only, every `interval`, with the budget check opened up for tests.
fn sessions_only(name: &str, base_url: &str, interval: &str) -> String {
    let probes =
        format!("[targets.probes.sessions]\ninterval = \"{interval}\"\ntimeout = \"900ms\"\n");
    format!(
        "max_quota_share = 1.0\n{}",
        config_for(name, base_url, &probes)
    )
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_about_once_per_lifetime_without_401s() {
    let options = SandboxOptions {
        token_ttl: Duration::from_secs(10),
        ..SandboxOptions::default()
    };
    let sandbox = start_sandbox(options).await;
    let exporter =
        start_exporter(&sessions_only("ttl", &sandbox.base_url(), "2s"), API_SECRET).await;

    tokio::time::sleep(Duration::from_secs(61)).await;
    let stats = stats(&sandbox).await;
    let m = scrape(&exporter).await;

    let (auths, sessions) = (count(&stats, AUTH), count(&stats, SESSIONS));
    assert_eq!(
        status_count(&stats, "401"),
        0,
        "no 401 caused by expiry: {stats}"
    );
    assert!(
        (25..=32).contains(&sessions),
        "sessions requests: {sessions}"
    );
    assert!(
        (6..=8).contains(&auths),
        "one auth per 10 s token, not one per probe: {auths}"
    );
    assert_eq!(
        m.get("pinkcloudsync_token_rejected_total", &[("target", "ttl")]),
        0.0
    );
    assert_eq!(
        m.get(
            "pinkcloudsync_token_refresh_margin_seconds",
            &[("target", "ttl")]
        ),
        1.0
    );
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("ttl", "sessions")),
        1.0
    );
}

#[tokio::test]
async fn revoked_key_marks_credentials_invalid_until_restored() {
    let options = SandboxOptions {
        limit_auth: 1000,
        ..SandboxOptions::default()
    };
    let sandbox = start_sandbox(options).await;
    let probes = "[targets.rate_limits]\nauth = 1000\n[targets.probes.auth]\ninterval = \"2s\"\ntimeout = \"1s\"\n";
    let exporter =
        start_exporter(&config_for("rev", &sandbox.base_url(), probes), API_SECRET).await;
    let valid = |v: f64| {
        move |m: &Scrape| {
            m.value("pinkcloudsync_credentials_valid", &[("target", "rev")]) == Some(v)
        }
    };
    wait_for(
        &exporter,
        "credentials valid",
        Duration::from_secs(5),
        valid(1.0),
    )
    .await;

    post(&sandbox, &format!("/keys/{API_KEY}/revoke")).await;
    // One auth interval (2 s), plus up to a second for the scheduler's tick.
    let m = wait_for(
        &exporter,
        "credentials invalid within one auth interval",
        Duration::from_secs(4),
        valid(0.0),
    )
    .await;
    let code_401 = [("target", "rev"), ("probe", "auth"), ("code", "401")];
    assert!(m.get("pinkcloudsync_http_responses_total", &code_401) >= 1.0);
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("rev", "auth")),
        0.0
    );

    post(&sandbox, &format!("/keys/{API_KEY}/restore")).await;
    wait_for(
        &exporter,
        "credentials valid again",
        Duration::from_secs(3),
        valid(1.0),
    )
    .await;
}

#[tokio::test]
async fn expired_tokens_cost_one_401_one_refresh_and_succeed_on_the_retry() {
    let sandbox = start_sandbox(SandboxOptions::default()).await;
    let exporter =
        start_exporter(&sessions_only("exp", &sandbox.base_url(), "1s"), API_SECRET).await;
    let target = [("target", "exp")];
    wait_for(&exporter, "a first success", Duration::from_secs(5), |m| {
        m.value("pinkcloudsync_probe_success", &labels("exp", "sessions")) == Some(1.0)
    })
    .await;
    let before = stats(&sandbox).await;

    post(&sandbox, "/tokens/expire").await;
    let m = wait_for(
        &exporter,
        "the token to be rejected",
        Duration::from_secs(5),
        |m| m.value("pinkcloudsync_token_rejected_total", &target) == Some(1.0),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = stats(&sandbox).await;

    assert_eq!(
        status_count(&after, "401") - status_count(&before, "401"),
        1,
        "{after}"
    );
    assert_eq!(
        count(&after, AUTH) - count(&before, AUTH),
        1,
        "one refresh: {after}"
    );
    let unauthorized = [
        ("target", "exp"),
        ("probe", "sessions"),
        ("reason", "unauthorized"),
    ];
    assert_eq!(
        m.get("pinkcloudsync_probe_failures_total", &unauthorized),
        0.0
    );
    let m = scrape(&exporter).await;
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("exp", "sessions")),
        1.0
    );
    assert_eq!(m.get("pinkcloudsync_token_rejected_total", &target), 1.0);
}

#[tokio::test]
async fn after_a_429_nothing_is_sent_in_the_category_until_the_reset() {
    let options = SandboxOptions {
        rate_window: Duration::from_secs(10),
        ..SandboxOptions::default()
    };
    let sandbox = start_sandbox(options).await;
    let exporter = start_exporter(
        &sessions_only("quota", &sandbox.base_url(), "1s"),
        API_SECRET,
    )
    .await;
    wait_for(&exporter, "a first success", Duration::from_secs(5), |m| {
        m.value("pinkcloudsync_probe_success", &labels("quota", "sessions")) == Some(1.0)
    })
    .await;

    // Exhaust early in a 10 s window, so that the 429 comes before the window resets.
    let into_window = now() % 10.0;
    if into_window > 4.0 {
        tokio::time::sleep(Duration::from_secs_f64(10.0 - into_window + 0.2)).await;
    }
    post(&sandbox, "/quota/sync/exhaust").await;
    let code_429 = [("target", "quota"), ("probe", "sessions"), ("code", "429")];
    let m = wait_for(&exporter, "a 429", Duration::from_secs(5), |m| {
        m.value("pinkcloudsync_http_responses_total", &code_429) == Some(1.0)
    })
    .await;
    let sent_at_429 = count(&stats(&sandbox).await, SESSIONS);
    let sync = [("target", "quota"), ("category", "sync")];
    let reset = m.get("pinkcloudsync_ratelimit_reset_timestamp_seconds", &sync);
    let backoff_until = m.get(
        "pinkcloudsync_ratelimit_backoff_until_timestamp_seconds",
        &sync,
    );
    assert!(
        backoff_until >= reset && backoff_until <= reset + 2.5,
        "{backoff_until} vs {reset}"
    );
    assert_eq!(m.get("pinkcloudsync_ratelimit_remaining", &sync), 0.0);

    let wait = (reset - now() - 0.3).max(0.0);
    tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    assert_eq!(
        count(&stats(&sandbox).await, SESSIONS),
        sent_at_429,
        "sent during the backoff"
    );

    let m = wait_for(&exporter, "probes to resume", Duration::from_secs(6), |m| {
        m.value("pinkcloudsync_probe_success", &labels("quota", "sessions")) == Some(1.0)
    })
    .await;
    let skipped = [
        ("target", "quota"),
        ("probe", "sessions"),
        ("reason", "backoff"),
    ];
    assert!(m.get("pinkcloudsync_probe_skipped_total", &skipped) >= 1.0);
    assert_eq!(m.get("pinkcloudsync_http_responses_total", &code_429), 1.0);
}

#[tokio::test]
async fn a_429_storm_sends_nothing_more_until_the_reset() {
    let sandbox = start_sandbox(SandboxOptions::default()).await;
    set_faults(
        &sandbox,
        json!({"status": 429, "status_ratio": 1.0, "endpoint": "sessions"}),
    )
    .await;
    let exporter = start_exporter(
        &sessions_only("storm", &sandbox.base_url(), "1s"),
        API_SECRET,
    )
    .await;

    tokio::time::sleep(Duration::from_secs(9)).await;
    let sent = count(&stats(&sandbox).await, SESSIONS);
    let m = scrape(&exporter).await;

    // The storm's 429s carry the window's reset: at most the first try and one after a reset.
    assert!(
        (1..=2).contains(&sent),
        "sessions requests during the storm: {sent}"
    );
    let skipped = [
        ("target", "storm"),
        ("probe", "sessions"),
        ("reason", "backoff"),
    ];
    assert!(m.get("pinkcloudsync_probe_skipped_total", &skipped) >= 5.0);
    let rate_limited = [
        ("target", "storm"),
        ("probe", "sessions"),
        ("reason", "rate_limited"),
    ];
    assert_eq!(
        m.get("pinkcloudsync_probe_failures_total", &rate_limited),
        sent as f64
    );
}

#[tokio::test]
async fn the_exporter_stays_out_of_the_reserve_when_other_clients_use_the_quota() {
    let options = SandboxOptions {
        rate_window: Duration::from_secs(10),
        ..SandboxOptions::default()
    };
    let sandbox = start_sandbox(options).await;
    // Other clients take 9 requests a second: 90 of the 100 by the end of each 10 s window.
    let consumers = json!({"requests_per_minute": 540});
    admin(
        &sandbox,
        reqwest::Method::PUT,
        "/quota/sync/consumers",
        Some(consumers),
    )
    .await;
    let exporter = start_exporter(
        &sessions_only("reserve", &sandbox.base_url(), "1s"),
        API_SECRET,
    )
    .await;

    let reserve = [
        ("target", "reserve"),
        ("probe", "sessions"),
        ("reason", "quota_reserve"),
    ];
    let m = wait_for(
        &exporter,
        "reserve skips in two windows",
        Duration::from_secs(40),
        |m| {
            m.value("pinkcloudsync_probe_skipped_total", &reserve)
                .unwrap_or(0.0)
                >= 2.0
        },
    )
    .await;

    let code_429 = [
        ("target", "reserve"),
        ("probe", "sessions"),
        ("code", "429"),
    ];
    assert_eq!(m.get("pinkcloudsync_http_responses_total", &code_429), 0.0);
    let ok = [
        ("target", "reserve"),
        ("probe", "sessions"),
        ("code", "200"),
    ];
    assert!(m.get("pinkcloudsync_http_responses_total", &ok) >= 10.0);
}

#[tokio::test]
async fn a_rejected_secret_does_not_use_up_the_auth_quota() {
    let sandbox = start_sandbox(SandboxOptions::default()).await;
    let exporter = start_exporter(
        &sessions_only("stale", &sandbox.base_url(), "1s"),
        "sk_live_stale",
    )
    .await;
    let unauthorized = [
        ("target", "stale"),
        ("probe", "sessions"),
        ("reason", "unauthorized"),
    ];

    let m = wait_for(
        &exporter,
        "four failed sessions runs",
        Duration::from_secs(8),
        |m| {
            m.value("pinkcloudsync_probe_failures_total", &unauthorized)
                .unwrap_or(0.0)
                >= 4.0
        },
    )
    .await;

    assert_eq!(
        count(&stats(&sandbox).await, AUTH),
        1,
        "one token request, then a cooldown"
    );
    assert_eq!(
        m.get("pinkcloudsync_credentials_valid", &[("target", "stale")]),
        0.0
    );
}

#[tokio::test]
async fn an_auth_outage_does_not_make_the_sessions_probe_hammer_the_token_endpoint() {
    let sandbox = start_sandbox(SandboxOptions::default()).await;
    set_faults(&sandbox, json!({"status": 503, "endpoint": "auth"})).await;
    let exporter = start_exporter(
        &sessions_only("outage", &sandbox.base_url(), "1s"),
        API_SECRET,
    )
    .await;
    let server_error = [
        ("target", "outage"),
        ("probe", "sessions"),
        ("reason", "server_error"),
    ];

    wait_for(
        &exporter,
        "four failed sessions runs",
        Duration::from_secs(8),
        |m| {
            m.value("pinkcloudsync_probe_failures_total", &server_error)
                .unwrap_or(0.0)
                >= 4.0
        },
    )
    .await;

    assert_eq!(
        count(&stats(&sandbox).await, AUTH),
        1,
        "one token request, then a cool-down"
    );
}

#[tokio::test]
async fn a_slow_auth_probe_does_not_hold_up_the_sessions_probe() {
    let sandbox = start_sandbox(roomy_sandbox()).await;
    let text = config_for("slow", &sandbox.base_url(), FAST_PROBES);
    let exporter = start_exporter(&text, API_SECRET).await;
    wait_for(&exporter, "a cached token", Duration::from_secs(5), |m| {
        m.value("pinkcloudsync_probe_success", &labels("slow", "sessions")) == Some(1.0)
    })
    .await;

    set_faults(&sandbox, json!({"hang": true, "endpoint": "auth"})).await;
    let auth_timeout = [("target", "slow"), ("probe", "auth"), ("reason", "timeout")];
    let m = wait_for(
        &exporter,
        "two auth timeouts",
        Duration::from_secs(8),
        |m| {
            m.value("pinkcloudsync_probe_failures_total", &auth_timeout)
                .unwrap_or(0.0)
                >= 2.0
        },
    )
    .await;

    let sessions_timeout = [
        ("target", "slow"),
        ("probe", "sessions"),
        ("reason", "timeout"),
    ];
    assert_eq!(
        m.get("pinkcloudsync_probe_failures_total", &sessions_timeout),
        0.0
    );
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("slow", "sessions")),
        1.0
    );
}
