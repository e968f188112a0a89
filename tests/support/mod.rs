//! Shared helpers for the exporter's integration tests: a sandbox and an exporter on
//! loopback, `/metrics` read with an independent parser, and the sandbox's admin API.

#![allow(dead_code)]

use std::path::Path;
use std::time::{Duration, Instant};

use pinkcloudsync_exporter::config;
use pinkcloudsync_exporter::exporter::{self, RunningExporter};
use pinkcloudsync_exporter::sandbox::{self, RunningSandbox, SandboxOptions};
use serde_json::Value;
use tokio::net::TcpListener;

pub const API_KEY: &str = "pk_live_abc123";
pub const API_SECRET: &str = "sk_live_xyz789";
pub const SECRET_ENV: &str = "TEST_PINKCLOUDSYNC_SECRET";

/// Both probes every second, with limits the sandbox must be started with too (see
/// `roomy_sandbox`), so that one-second probes never meet the rate limit.
pub const FAST_PROBES: &str = r#"
[targets.rate_limits]
auth = 1000
sync = 1000
[targets.probes.auth]
interval = "1s"
timeout = "800ms"
[targets.probes.sessions]
interval = "1s"
timeout = "800ms"
"#;

pub fn roomy_sandbox() -> SandboxOptions {
    SandboxOptions {
        limit_auth: 1000,
        limit_sync: 1000,
        ..SandboxOptions::default()
    }
}

pub async fn start_sandbox(options: SandboxOptions) -> RunningSandbox {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind sandbox");
    sandbox::start(listener, options)
        .await
        .expect("start sandbox")
}

/// A config with one target named `name` at `base_url`, whose secret is `secret`, and the
/// given probe tables (TOML text placed under the target).
pub fn config_for(name: &str, base_url: &str, probes: &str) -> String {
    format!(
        r#"
[[targets]]
name = "{name}"
base_url = "{base_url}"
api_key = "{API_KEY}"
api_secret_env = "{SECRET_ENV}"
{probes}
"#
    )
}

pub fn validate(text: &str, secret: &str) -> config::Config {
    let raw = config::parse(Path::new("test.toml"), text).expect("parse test config");
    let secret = secret.to_string();
    let env = move |name: &str| (name == SECRET_ENV).then(|| secret.clone());
    config::validate(raw, Path::new("."), &env).expect("valid test config")
}

pub async fn start_exporter(text: &str, secret: &str) -> RunningExporter {
    let config = validate(text, secret);
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind exporter");
    exporter::start(config, listener)
        .await
        .expect("start exporter")
}

/// `/metrics` of a running exporter, parsed by the `prometheus-parse` crate.
pub struct Scrape {
    pub text: String,
    pub content_type: String,
    pub parsed: prometheus_parse::Scrape,
}

impl Scrape {
    /// The value of the sample `name` whose labels include all of `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.parsed
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .and_then(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => Some(v),
                _ => None,
            })
    }

    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{}", self.text))
    }
}

pub async fn scrape(exporter: &RunningExporter) -> Scrape {
    let url = format!("http://{}/metrics", exporter.addr);
    let response = reqwest::get(&url).await.expect("GET /metrics");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    let text = response.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("parse /metrics");
    Scrape {
        text,
        content_type,
        parsed,
    }
}

/// Scrapes until `condition` holds, or fails naming `what` after `timeout`.
pub async fn wait_for(
    exporter: &RunningExporter,
    what: &str,
    timeout: Duration,
    condition: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + timeout;
    loop {
        let scrape = scrape(exporter).await;
        if condition(&scrape) {
            return scrape;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}; last /metrics:\n{}",
                scrape.text
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn labels<'a>(target: &'a str, probe: &'a str) -> [(&'a str, &'a str); 2] {
    [("target", target), ("probe", probe)]
}

// === The sandbox's admin API ===

pub async fn admin(
    sandbox: &RunningSandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) {
    let url = format!("{}{path}", sandbox.admin_url());
    let mut request = reqwest::Client::new().request(method, &url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("admin call");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
}

pub async fn post(sandbox: &RunningSandbox, path: &str) {
    admin(sandbox, reqwest::Method::POST, path, None).await;
}

pub async fn set_faults(sandbox: &RunningSandbox, faults: Value) {
    admin(sandbox, reqwest::Method::PUT, "/faults", Some(faults)).await;
}

pub async fn stats(sandbox: &RunningSandbox) -> Value {
    let url = format!("{}/stats", sandbox.admin_url());
    reqwest::get(&url).await.unwrap().json().await.unwrap()
}

/// Requests the sandbox received at `endpoint` (e.g. "POST /v1/auth/token").
pub fn count(stats: &Value, endpoint: &str) -> u64 {
    stats["by_endpoint"][endpoint].as_u64().unwrap_or(0)
}

pub const AUTH: &str = "POST /v1/auth/token";
pub const SESSIONS: &str = "GET /v1/sync/sessions";
