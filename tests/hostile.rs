//! The probes against hostile or broken servers: a local fake API per case answers what a
//! real server must not, and each case ends in its exact outcome, never a crash.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pinkcloudsync_exporter::probe::{FailureReason, ProbeKind, ProbeOutcome, SkipReason};
use pinkcloudsync_exporter::scheduler::ProbeRunner;
use support::*;
use tokio::net::TcpListener;

const TOKEN_OK: &str =
    r#"{"access_token":"eyJhbGciOiJIUzI1NiJ9.e30.c2ln","token_type":"Bearer","expires_in":3600}"#;

/// What the fake API answers to the token and sessions endpoints.
#[derive(Clone)]
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: body.to_string(),
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::from_u16(self.status).unwrap(), self.body).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }
}

/// Authorization headers the fake server received.
type Seen = Arc<Mutex<Vec<String>>>;

async fn serve(router: Router) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}

async fn fake_api(token: Answer, sessions: Answer) -> String {
    let router = Router::new()
        .route("/v1/auth/token", post(move || async move { token.clone() }))
        .route(
            "/v1/sync/sessions",
            get(move || async move { sessions.clone() }),
        );
    serve(router).await
}

fn config(name: &str, base: &str, probes: &str) -> String {
    let limits = "max_quota_share = 1.0\n";
    format!(
        "{limits}{}",
        config_for(name, &format!("{base}/v1"), probes)
    )
}

const SESSIONS_PROBE: &str =
    "[targets.probes.sessions]\nschedule = \"0 0 0 1 1 *\"\ntimeout = \"1s\"\n";
const AUTH_PROBE: &str = "[targets.probes.auth]\nschedule = \"0 0 0 1 1 *\"\ntimeout = \"1s\"\n";

/// Runs one probe by hand (the schedule above is once a year) and returns its outcome.
async fn probe_once(base: &str, probes: &str, kind: ProbeKind) -> ProbeOutcome {
    let exporter = start_exporter(&config("hostile", base, probes), API_SECRET).await;
    let runner = exporter
        .runners
        .iter()
        .find(|r| r.kind() == kind)
        .unwrap()
        .clone();
    let outcome = runner.run_once().await;
    exporter.shutdown().await.unwrap();
    outcome
}

fn reason(outcome: &ProbeOutcome) -> Option<FailureReason> {
    match outcome {
        ProbeOutcome::Failed(failure) => Some(failure.reason),
        _ => None,
    }
}

#[tokio::test]
async fn hostile_token_answers_end_in_their_exact_reason() {
    let big = "x".repeat(2 * 1024 * 1024);
    let cases = [
        (answer(200, TOKEN_OK), None),
        (
            answer(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":"3600"}"#,
            ),
            None,
        ),
        (
            answer(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":0}"#,
            ),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":-1}"#,
            ),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(
                200,
                r#"{"access_token":"t","token_type":"Bearer","expires_in":99999999999}"#,
            ),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(200, r#"{"access_token":"t","token_type":"Bearer"}"#),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(
                200,
                r#"{"access_token":"","token_type":"Bearer","expires_in":60}"#,
            ),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(
                200,
                r#"{"access_token":"t","token_type":"Basic","expires_in":60}"#,
            ),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(200, "<html>maintenance</html>"),
            Some(FailureReason::InvalidResponse),
        ),
        (
            answer(200, r#"{"access_token":"t","#),
            Some(FailureReason::InvalidResponse),
        ),
        (answer(200, &big), Some(FailureReason::InvalidResponse)),
        (
            answer(
                401,
                r#"{"error":"invalid_credentials","message":"Invalid API key or secret"}"#,
            ),
            Some(FailureReason::Unauthorized),
        ),
        (answer(403, "{}"), Some(FailureReason::ClientError)),
        (answer(429, ""), Some(FailureReason::RateLimited)),
        (answer(500, "oops"), Some(FailureReason::ServerError)),
        (answer(502, ""), Some(FailureReason::ServerError)),
        (answer(204, ""), Some(FailureReason::InvalidResponse)),
    ];
    for (token, expected) in cases {
        let status = token.status;
        let base = fake_api(token, answer(200, "[]")).await;

        let outcome = probe_once(&base, AUTH_PROBE, ProbeKind::Auth).await;

        assert_eq!(
            reason(&outcome),
            expected,
            "token answer {status}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn hostile_sessions_answers_end_in_their_exact_reason() {
    let cases = [
        (answer(200, r#"{"sessions":[]}"#), None),
        (answer(200, "[]"), None),
        (
            answer(200, "not json"),
            Some(FailureReason::InvalidResponse),
        ),
        (answer(200, ""), Some(FailureReason::InvalidResponse)),
        (
            answer(404, r#"{"error":"not_found"}"#),
            Some(FailureReason::ClientError),
        ),
        (answer(503, ""), Some(FailureReason::ServerError)),
        (
            answer(401, r#"{"error":"invalid_token"}"#),
            Some(FailureReason::Unauthorized),
        ),
    ];
    for (sessions, expected) in cases {
        let status = sessions.status;
        let base = fake_api(answer(200, TOKEN_OK), sessions).await;

        let outcome = probe_once(&base, SESSIONS_PROBE, ProbeKind::Sessions).await;

        assert_eq!(
            reason(&outcome),
            expected,
            "sessions answer {status}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn a_server_that_never_answers_is_a_timeout_within_the_probe_timeout() {
    let router = Router::new().route(
        "/v1/auth/token",
        post(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let base = serve(router).await;
    let started = std::time::Instant::now();

    let outcome = probe_once(&base, AUTH_PROBE, ProbeKind::Auth).await;

    assert_eq!(reason(&outcome), Some(FailureReason::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreadable_rate_limit_headers_are_counted_and_ignored() {
    let mut token = answer(200, TOKEN_OK);
    token.headers = vec![
        ("x-ratelimit-limit", "ten".into()),
        ("x-ratelimit-remaining", "9".into()),
        ("x-ratelimit-reset", "soon".into()),
    ];
    let base = fake_api(token, answer(200, "[]")).await;
    let exporter = start_exporter(&config("hdr", &base, AUTH_PROBE), API_SECRET).await;
    let runner = exporter.runners[0].clone();

    let outcome = runner.run_once().await;
    let m = scrape(&exporter).await;

    assert_eq!(outcome, ProbeOutcome::Success);
    assert_eq!(
        m.get(
            "pinkcloudsync_ratelimit_header_errors_total",
            &[("target", "hdr")]
        ),
        2.0
    );
    assert_eq!(
        m.get(
            "pinkcloudsync_ratelimit_remaining",
            &[("target", "hdr"), ("category", "auth")]
        ),
        9.0
    );
}

#[tokio::test]
async fn authorization_never_follows_a_redirect_to_another_origin() {
    let seen: Seen = Arc::default();
    let elsewhere = serve(
        Router::new()
            .route("/steal", get(record_authorization))
            .with_state(seen.clone()),
    )
    .await;
    let location = format!("{elsewhere}/steal");
    let redirecting = fake_api(
        answer(200, TOKEN_OK),
        Answer {
            status: 307,
            headers: vec![("location", location)],
            body: String::new(),
        },
    )
    .await;

    let outcome = probe_once(&redirecting, SESSIONS_PROBE, ProbeKind::Sessions).await;

    assert_eq!(
        reason(&outcome),
        Some(FailureReason::InvalidResponse),
        "{outcome:?}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "the other origin was called"
    );
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    let seen: Seen = Arc::default();
    let router = Router::new()
        .route("/v1/auth/token", post(|| async { answer(200, TOKEN_OK) }))
        .route(
            "/v1/sync/sessions",
            get(|| async {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/v2/sync/sessions")],
                )
            }),
        )
        .route("/v2/sync/sessions", get(record_authorization))
        .with_state(seen.clone());
    let base = serve(router).await;

    let outcome = probe_once(&base, SESSIONS_PROBE, ProbeKind::Sessions).await;

    assert_eq!(outcome, ProbeOutcome::Success);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["Bearer eyJhbGciOiJIUzI1NiJ9.e30.c2ln"]
    );
}

async fn record_authorization(State(seen): State<Seen>, headers: HeaderMap) -> &'static str {
    let value = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap().to_string());
    seen.lock().unwrap().push(value.unwrap_or_default());
    "[]"
}

#[tokio::test]
async fn a_run_never_overlaps_the_previous_one() {
    let router = Router::new().route(
        "/v1/auth/token",
        post(|| async {
            tokio::time::sleep(Duration::from_millis(700)).await;
            answer(200, TOKEN_OK)
        }),
    );
    let base = serve(router).await;
    let exporter = start_exporter(&config("overlap", &base, AUTH_PROBE), API_SECRET).await;
    let runner: Arc<ProbeRunner> = exporter.runners[0].clone();

    runner.tick();
    tokio::time::sleep(Duration::from_millis(100)).await;
    runner.tick();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let m = scrape(&exporter).await;

    let overlap = [
        ("target", "overlap"),
        ("probe", "auth"),
        ("reason", SkipReason::Overlap.as_str()),
    ];
    assert_eq!(m.get("pinkcloudsync_probe_skipped_total", &overlap), 1.0);
    assert_eq!(
        m.get("pinkcloudsync_probe_success", &labels("overlap", "auth")),
        1.0
    );
    assert_eq!(
        m.get(
            "pinkcloudsync_token_refreshes_total",
            &[("target", "overlap")]
        ),
        1.0
    );
}
