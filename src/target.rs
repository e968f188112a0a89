//! One configured target at run time: its client, token cache and rate-limit state, the
//! steps every probe shares (admit, send, record), and the last result of each probe.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::{ApiClient, ApiResponse, RequestError};
use crate::config::TargetConfig;
use crate::metrics::{self, Metrics};
use crate::probe::{Failure, FailureReason, ProbeError, ProbeKind, ProbeOutcome};
use crate::ratelimit::{Category, RateLimitHeaders, RateLimiter, unix_seconds};
use crate::token::{Token, TokenCache};

/// Longest token lifetime taken at face value; anything longer is an invalid response, not a
/// token cached for ever.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// After a failed token request (a stale secret, an auth outage), token requests for probes
/// other than the auth probe wait this long, doubling up to `TOKEN_RETRY_MAX`, so that the
/// sessions probe does not use up the key's authentication quota. The auth probe keeps its
/// own schedule, and its success ends the wait.
const TOKEN_RETRY_MIN: Duration = Duration::from_secs(60);
const TOKEN_RETRY_MAX: Duration = Duration::from_secs(900);

#[derive(Debug, Default)]
struct TokenRequests {
    failures: u32,
    retry_at: Option<Instant>,
    last_failure: Option<Failure>,
}

/// What the landing page shows of a probe.
#[derive(Debug, Clone)]
pub struct LastResult {
    pub at: SystemTime,
    pub outcome: ProbeOutcome,
    pub duration: Duration,
}

pub struct Target {
    pub config: TargetConfig,
    pub metrics: Arc<Metrics>,
    client: ApiClient,
    pub tokens: TokenCache,
    limiter: Mutex<RateLimiter>,
    last: Mutex<BTreeMap<ProbeKind, LastResult>>,
    token_requests: Mutex<TokenRequests>,
    credentials_valid: Mutex<Option<bool>>,
}

impl Target {
    pub fn new(config: TargetConfig, metrics: Arc<Metrics>) -> Result<Self, reqwest::Error> {
        let client = ApiClient::new(&config)?;
        let probes: Vec<(ProbeKind, f64)> = config
            .probes
            .iter()
            .map(|p| (p.kind, p.schedule.period().as_secs_f64()))
            .collect();
        let margin = config.token_refresh_margin;
        metrics.init_target(&config.name, &probes, margin.as_secs_f64());
        if let Some(expires_at) = config.api_key_expires_at {
            let labels = metrics::target_labels(&config.name);
            metrics
                .api_key_expiry
                .get_or_create(&labels)
                .set(expires_at.timestamp() as f64);
        }

        Ok(Target {
            tokens: TokenCache::new(margin),
            limiter: Mutex::new(RateLimiter::new(config.quota_reserve)),
            client,
            metrics,
            config,
            last: Mutex::new(BTreeMap::new()),
            token_requests: Mutex::new(TokenRequests::default()),
            credentials_valid: Mutex::new(None),
        })
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn timeout(&self, kind: ProbeKind) -> Duration {
        self.config
            .probes
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.timeout)
            .unwrap_or(crate::config::DEFAULT_PROBE_TIMEOUT)
    }

    pub fn last_results(&self) -> BTreeMap<ProbeKind, LastResult> {
        lock(&self.last).clone()
    }

    pub fn set_last_result(&self, kind: ProbeKind, result: LastResult) {
        lock(&self.last).insert(kind, result);
    }

    // === Steps shared by the probes ===

    /// Sends one request in `category` if the quota allows it, and records what the response
    /// says: its status code and its rate-limit headers.
    pub async fn send<F, Fut>(
        &self,
        probe: ProbeKind,
        category: Category,
        request: F,
    ) -> Result<ApiResponse, ProbeError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<ApiResponse, RequestError>>,
    {
        lock(&self.limiter)
            .admit(category, SystemTime::now())
            .map_err(ProbeError::Skipped)?;

        let response = request()
            .await
            .map_err(|e| Failure::new(request_reason(&e), e.to_string()))?;

        let code = response.status.as_u16();
        let labels = metrics::code_labels(self.name(), probe, code);
        self.metrics.http_responses.get_or_create(&labels).inc();
        self.record_rate_limit(category, code, &response);
        Ok(response)
    }

    fn record_rate_limit(&self, category: Category, status: u16, response: &ApiResponse) {
        let now = SystemTime::now();
        let headers = RateLimitHeaders::parse(&response.headers, now);
        let m = &self.metrics;
        if headers.errors > 0 {
            let labels = metrics::target_labels(self.name());
            m.ratelimit_header_errors
                .get_or_create(&labels)
                .inc_by(headers.errors.into());
        }

        let labels = metrics::category_labels(self.name(), category);
        if let Some(limit) = headers.limit {
            m.ratelimit_limit
                .get_or_create(&labels)
                .set(clamp_i64(limit));
        }
        if let Some(remaining) = headers.remaining {
            m.ratelimit_remaining
                .get_or_create(&labels)
                .set(clamp_i64(remaining));
        }
        if let Some(reset) = headers.reset_at {
            m.ratelimit_reset
                .get_or_create(&labels)
                .set(unix_seconds(reset));
        }

        let backoff = lock(&self.limiter).observe(category, status, &headers, now);
        let until = backoff.map(unix_seconds).unwrap_or(0.0);
        m.ratelimit_backoff_until.get_or_create(&labels).set(until);
        if let Some(until) = backoff {
            let wait = until.duration_since(now).unwrap_or_default().as_secs_f64();
            warn!(
                target_name = self.name(),
                category = category.as_str(),
                backoff_seconds = wait,
                "rate limited, backing off"
            );
        }
    }

    /// Requests a new token (`POST /auth/token`) and checks the answer's shape. Tracks
    /// whether the credentials are valid.
    /// After a failed one, requests for probes other than the auth probe wait for a cool-down
    /// and repeat that failure meanwhile.
    pub async fn obtain_token(&self, probe: ProbeKind) -> Result<Token, ProbeError> {
        if probe != ProbeKind::Auth {
            self.check_token_retry()?;
        }
        let result = self.request_token(probe).await;
        match &result {
            Ok(_) => self.token_request_succeeded(),
            Err(ProbeError::Failed(failure)) => self.token_request_failed(failure),
            Err(ProbeError::Skipped(_)) => {}
        }
        result
    }

    async fn request_token(&self, probe: ProbeKind) -> Result<Token, ProbeError> {
        let timeout = self.timeout(probe);
        let (key, secret) = (&self.config.api_key, &self.config.api_secret);
        let response = self
            .send(probe, Category::Auth, || {
                self.client.request_token(key, secret, timeout)
            })
            .await?;

        let status = response.status.as_u16();
        if status == 401 && error_code(&response.body).as_deref() == Some("invalid_credentials") {
            self.set_credentials_valid(false);
        }
        if status != 200 {
            return Err(status_failure(&response).into());
        }

        let token = parse_token(&response.body)?;
        self.set_credentials_valid(true);
        self.record_token(&token);
        Ok(token)
    }

    fn record_token(&self, token: &Token) {
        let labels = metrics::target_labels(self.name());
        let m = &self.metrics;
        m.token_refreshes.get_or_create(&labels).inc();
        let expiry = unix_seconds(token.expires_at_wall);
        m.token_expiry.get_or_create(&labels).set(expiry);
        let margin = self.tokens.margin_for(token.lifetime).as_secs_f64();
        m.token_refresh_margin.get_or_create(&labels).set(margin);
        debug!(
            target_name = self.name(),
            expires_in_seconds = token.lifetime.as_secs(),
            "token obtained"
        );
    }

    fn check_token_retry(&self) -> Result<(), Failure> {
        let state = lock(&self.token_requests);
        match (&state.retry_at, &state.last_failure) {
            (Some(at), Some(failure)) if Instant::now() < *at => {
                let wait = at.saturating_duration_since(Instant::now()).as_secs();
                let detail = format!(
                    "token request failed ({}); next one in {wait}s or by the auth probe",
                    failure.detail
                );
                Err(Failure::new(failure.reason, detail))
            }
            _ => Ok(()),
        }
    }

    fn token_request_failed(&self, failure: &Failure) {
        let mut state = lock(&self.token_requests);
        state.failures = state.failures.saturating_add(1);
        let doublings = state.failures.saturating_sub(1).min(10);
        let wait = (TOKEN_RETRY_MIN * 2u32.pow(doublings)).min(TOKEN_RETRY_MAX);
        state.retry_at = Some(Instant::now() + wait);
        state.last_failure = Some(failure.clone());
    }

    fn token_request_succeeded(&self) {
        *lock(&self.token_requests) = TokenRequests::default();
    }

    fn set_credentials_valid(&self, valid: bool) {
        let previous = lock(&self.credentials_valid).replace(valid);
        let labels = metrics::target_labels(self.name());
        let gauge = self.metrics.credentials_valid.get_or_create(&labels);
        gauge.set(i64::from(valid));
        drop(gauge);
        if previous != Some(valid) && !valid {
            warn!(
                target_name = self.name(),
                "credentials rejected: invalid_credentials"
            );
        }
    }

    pub fn count_rejected_token(&self) {
        let labels = metrics::target_labels(self.name());
        self.metrics.token_rejected.get_or_create(&labels).inc();
    }

    pub fn client(&self) -> &ApiClient {
        &self.client
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep going.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn request_reason(error: &RequestError) -> FailureReason {
    match error {
        RequestError::Timeout => FailureReason::Timeout,
        RequestError::Connect(_) => FailureReason::Connect,
        RequestError::BodyTooLarge(_) | RequestError::Read(_) => FailureReason::InvalidResponse,
    }
}

/// The failure a non-2xx answer stands for, with the API's error code when it sent one.
pub fn status_failure(response: &ApiResponse) -> Failure {
    let status = response.status.as_u16();
    let detail = match error_code(&response.body) {
        Some(code) => format!("HTTP {status} ({code})"),
        None => format!("HTTP {status}"),
    };
    Failure::new(FailureReason::from_status(status), detail)
}

/// The `error` field of a JSON error body, if it is a short machine-readable code.
pub fn error_code(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: String,
    }
    let parsed: ErrorBody = serde_json::from_slice(body).ok()?;
    let is_code = parsed.error.len() <= 64
        && parsed
            .error
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_');
    is_code.then_some(parsed.error)
}

/// Checks a token answer: non-empty `access_token`, `token_type` Bearer, and an `expires_in`
/// that is a positive number (or numeric string) of seconds no longer than a week.
pub fn parse_token(body: &[u8]) -> Result<Token, Failure> {
    #[derive(Deserialize)]
    struct TokenBody {
        access_token: String,
        token_type: String,
        #[serde(deserialize_with = "number_or_string")]
        expires_in: f64,
    }
    let invalid = |detail: String| Failure::new(FailureReason::InvalidResponse, detail);
    let parsed: TokenBody = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "token response is not the documented JSON ({})",
            json_error(&e)
        ))
    })?;

    if parsed.access_token.trim().is_empty() {
        return Err(invalid("access_token is empty".into()));
    }
    // It goes into an Authorization header: visible ASCII only.
    if !parsed.access_token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "access_token has characters a header cannot carry".into(),
        ));
    }
    if !parsed.token_type.eq_ignore_ascii_case("bearer") {
        return Err(invalid(format!(
            "token_type is {:?}, not Bearer",
            parsed.token_type
        )));
    }
    let max = MAX_TOKEN_LIFETIME.as_secs_f64();
    if !(parsed.expires_in.is_finite() && parsed.expires_in >= 1.0 && parsed.expires_in <= max) {
        return Err(invalid(format!(
            "expires_in {} is not between 1 and {max} seconds",
            parsed.expires_in
        )));
    }

    let lifetime = Duration::from_secs_f64(parsed.expires_in);
    Ok(Token::new(
        crate::secret::Secret::new(parsed.access_token),
        lifetime,
    ))
}

/// Where and what kind of JSON error, without serde's excerpt of the offending value: a
/// malformed answer may carry a token in an unexpected place.
pub fn json_error(error: &serde_json::Error) -> String {
    let kind = match error.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "missing or mistyped field",
        serde_json::error::Category::Eof => "truncated",
    };
    format!("{kind} at line {} column {}", error.line(), error.column())
}

fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrString {
        Number(f64),
        Text(String),
    }
    match NumberOrString::deserialize(deserializer)? {
        NumberOrString::Number(n) => Ok(n),
        NumberOrString::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("expires_in {text:?} is not a number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_checked() {
        let ok = |body: &str| parse_token(body.as_bytes()).map(|t| t.lifetime.as_secs());
        let reason = |body: &str| parse_token(body.as_bytes()).unwrap_err().reason;

        assert_eq!(
            ok(r#"{"access_token":"a.b.c","token_type":"Bearer","expires_in":3600}"#),
            Ok(3600)
        );
        assert_eq!(
            ok(r#"{"access_token":"a.b.c","token_type":"bearer","expires_in":"60"}"#),
            Ok(60)
        );
        let invalid = [
            r#"{"access_token":"","token_type":"Bearer","expires_in":3600}"#,
            r#"{"access_token":"x","token_type":"Basic","expires_in":3600}"#,
            r#"{"access_token":"x","token_type":"Bearer"}"#,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":0}"#,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":-5}"#,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":1e300}"#,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":"soon"}"#,
            r#"{"access_token":"x","token_type":"Bearer","expires_in":null}"#,
            "not json",
            "",
            "{\"access_token\":\"a\\r\\nX-Injected: 1\",\"token_type\":\"Bearer\",\"expires_in\":60}",
        ];
        for body in invalid {
            assert_eq!(reason(body), FailureReason::InvalidResponse, "{body}");
        }
    }

    #[test]
    fn error_codes_are_read_only_when_they_look_like_codes() {
        assert_eq!(
            error_code(br#"{"error":"invalid_credentials","message":"x"}"#).as_deref(),
            Some("invalid_credentials")
        );
        assert_eq!(error_code(br#"{"error":"has spaces and <html>"}"#), None);
        assert_eq!(error_code(b"<html>"), None);
    }

    #[test]
    fn token_failures_never_echo_the_token() {
        let body = r#"{"access_token":"eyJsecret","token_type":"Basic","expires_in":1}"#;

        let failure = parse_token(body.as_bytes()).unwrap_err();

        assert!(!failure.detail.contains("eyJsecret"), "{failure}");
    }
}
