//! Helpers for the sandbox's integration tests: a sandbox on loopback with a client, the
//! rate-limit headers read back, and the window clock.

#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pinkcloudsync_exporter::sandbox::{
    self, DEFAULT_API_KEY, DEFAULT_API_SECRET, RunningSandbox, SandboxOptions,
};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// No single request in these tests may take longer than this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A sandbox on 127.0.0.1 with a client that goes straight to it.
pub struct TestSandbox {
    pub sandbox: RunningSandbox,
    pub client: reqwest::Client,
}

/// The `X-RateLimit-*` headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    pub reset: u64,
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("client builds")
}

/// tracing caches process-wide whether a log call site is enabled. While a single dispatcher
/// is registered, it decides from the current thread's subscriber, so a site first reached on a
/// test thread without one would stay off for the test that captures logs. A second, permanent
/// dispatcher makes tracing consult every registered dispatcher instead.
pub fn share_log_call_sites() {
    static SECOND_DISPATCHER: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND_DISPATCHER
        .get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

impl TestSandbox {
    pub async fn start(options: SandboxOptions) -> TestSandbox {
        share_log_call_sites();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let sandbox = sandbox::start(listener, options)
            .await
            .expect("sandbox starts");
        TestSandbox {
            sandbox,
            client: client(),
        }
    }

    pub async fn with_defaults() -> TestSandbox {
        TestSandbox::start(SandboxOptions::default()).await
    }

    /// `path` below the API base, e.g. "/auth/token".
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.base_url())
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("{}{path}", self.sandbox.admin_url())
    }

    pub async fn request_token(&self, api_key: &str, api_secret: &str) -> Response {
        self.client
            .post(self.url("/auth/token"))
            .json(&json!({ "api_key": api_key, "api_secret": api_secret }))
            .send()
            .await
            .expect("token request is answered")
    }

    /// A token for the documented example pair.
    pub async fn token(&self) -> String {
        self.token_for(DEFAULT_API_KEY, DEFAULT_API_SECRET).await
    }

    pub async fn token_for(&self, api_key: &str, api_secret: &str) -> String {
        let (status, body) = json_of(self.request_token(api_key, api_secret).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"]
            .as_str()
            .expect("access_token is a string")
            .to_owned()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request is answered")
    }

    pub async fn sessions(&self, token: Option<&str>) -> Response {
        self.get("/sync/sessions", token).await
    }

    /// An admin call that must succeed; returns its JSON answer.
    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self.admin_call(method, path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {answer}");
        answer
    }

    pub async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.admin_url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.expect("admin call is answered")).await
    }

    pub async fn stats(&self) -> Value {
        self.admin(Method::GET, "/stats", None).await
    }
}

/// Status and JSON body of an answer; fails the test if the body is not JSON.
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body is readable");
    let body =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// The rate-limit headers, which every /v1 answer must carry.
pub fn rate_headers(response: &Response) -> RateHeaders {
    let header = |name: &str| -> u64 {
        let value = response
            .headers()
            .get(name)
            .unwrap_or_else(|| panic!("{name} is missing from a {} answer", response.status()));
        value
            .to_str()
            .expect("header is text")
            .parse()
            .unwrap_or_else(|e| panic!("{name} is not an integer: {e}"))
    };
    RateHeaders {
        limit: header("x-ratelimit-limit"),
        remaining: header("x-ratelimit-remaining"),
        reset: header("x-ratelimit-reset"),
    }
}

pub fn now_ms() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock is after 1970");
    u64::try_from(since_epoch.as_millis()).expect("milliseconds fit")
}

/// The unix second at which the window containing `at_ms` ends.
pub fn window_end(at_ms: u64, window: Duration) -> u64 {
    let length = u64::try_from(window.as_millis()).expect("window fits");
    (at_ms / length + 1) * length / 1000
}

/// Waits, if needed, until the current window has at least `room` left, so a burst of
/// requests all falls in one window.
pub async fn wait_for_window_room(window: Duration, room: Duration) {
    let length = u64::try_from(window.as_millis()).expect("window fits");
    let left = length - now_ms() % length;
    if u128::from(left) < room.as_millis() {
        tokio::time::sleep(Duration::from_millis(left + 20)).await;
    }
}

/// Sleeps until just after the unix second `reset`.
pub async fn sleep_until(reset: u64) {
    let target = reset * 1000 + 20;
    let now = now_ms();
    if target > now {
        tokio::time::sleep(Duration::from_millis(target - now)).await;
    }
}
