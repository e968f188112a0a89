//! The exporter's HTTP server: `/metrics`, a landing page, and health and readiness checks.

use std::fmt::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use html_escape::encode_text;
use tracing::error;

use crate::config::redact_url;
use crate::metrics::{Metrics, OPENMETRICS_CONTENT_TYPE};
use crate::probe::ProbeOutcome;
use crate::target::Target;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub targets: Arc<Vec<Arc<Target>>>,
    /// Set once the scheduler runs.
    pub ready: Arc<AtomicBool>,
}

/// Parses a listen address as exporters take it: `HOST:PORT`, `[V6]:PORT`, a host name such
/// as `localhost:9873`, or `:PORT` for every interface.
pub fn parse_listen_address(text: &str) -> Result<SocketAddr, String> {
    let text = text.trim();
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    if let Ok(address) = full.parse() {
        return Ok(address);
    }
    match full.to_socket_addrs() {
        Ok(mut addresses) => addresses
            .next()
            .ok_or_else(|| format!("\"{text}\" resolves to no address")),
        Err(e) => Err(format!("\"{text}\" is not HOST:PORT or :PORT ({e})")),
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing_page))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            error!(error = %e, "cannot encode metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn healthy() -> &'static str {
    "OK\n"
}

async fn ready(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::SeqCst) {
        "OK\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "scheduler not started\n").into_response()
    }
}

async fn landing_page(State(state): State<AppState>) -> Html<String> {
    let mut page = String::from(concat!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>PinkCloudSync exporter</title></head>\n",
        "<body>\n<h1>PinkCloudSync exporter</h1>\n",
        "<p>Probes the PinkCloudSync API on a schedule (token auth, session list) and serves the results as Prometheus metrics. ",
        "Values come from the last scheduled probe, not from the scrape.</p>\n",
        "<p><a href=\"/metrics\">Metrics</a> · <a href=\"/-/healthy\">Health</a> · <a href=\"/-/ready\">Readiness</a></p>\n",
        "<table border=\"1\" cellpadding=\"4\">\n<tr><th>Target</th><th>Base URL</th><th>Probe</th><th>Last run (UTC)</th><th>Result</th><th>Duration</th></tr>\n",
    ));
    for target in state.targets.iter() {
        write_target_rows(&mut page, target);
    }
    page.push_str(concat!(
        "</table>\n<p>pinkcloudsync-exporter ",
        env!("CARGO_PKG_VERSION"),
        "</p>\n</body></html>\n"
    ));
    Html(page)
}

fn write_target_rows(page: &mut String, target: &Target) {
    let name = encode_text(target.name()).to_string();
    let url = encode_text(&redact_url(&target.config.base_url)).to_string();
    let results = target.last_results();
    for probe in &target.config.probes {
        let kind = probe.kind.as_str();
        let schedule = encode_text(&probe.schedule.to_string()).to_string();
        let (at, result, duration) = match results.get(&probe.kind) {
            Some(last) => (
                DateTime::<Utc>::from(last.at)
                    .format("%Y-%m-%d %H:%M:%S")
                    .to_string(),
                describe(&last.outcome),
                format!("{:.3} s", last.duration.as_secs_f64()),
            ),
            None => (
                "not yet".to_string(),
                "waiting for first run".to_string(),
                String::new(),
            ),
        };
        let result = encode_text(&result).to_string();
        let _ = writeln!(
            page,
            "<tr><td>{name}</td><td>{url}</td><td>{kind} ({schedule})</td><td>{at}</td><td>{result}</td><td>{duration}</td></tr>"
        );
    }
}

fn describe(outcome: &ProbeOutcome) -> String {
    match outcome {
        ProbeOutcome::Success => "success".to_string(),
        ProbeOutcome::Failed(failure) => format!("failed: {failure}"),
        ProbeOutcome::Skipped(reason) => format!("skipped: {}", reason.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_take_the_exporter_forms() {
        let ok = |text: &str| parse_listen_address(text).unwrap().to_string();

        assert_eq!(ok(":9873"), "0.0.0.0:9873");
        assert_eq!(ok("127.0.0.1:9873"), "127.0.0.1:9873");
        assert_eq!(ok("[::1]:9873"), "[::1]:9873");
        assert!(ok("localhost:9873").ends_with(":9873"));
        assert!(
            parse_listen_address("nonsense")
                .unwrap_err()
                .contains("\"nonsense\"")
        );
        assert!(parse_listen_address(":99999").is_err());
    }
}
