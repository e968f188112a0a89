//! The admin API under /_sandbox: revoke keys, expire tokens, drain quotas, inject faults and
//! read the request counts. It answers only to loopback peers.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::body::read_limited;
use super::faults::{FaultError, Faults};
use super::keys::is_key_shaped;
use super::ratelimit::{Category, Consumers};
use super::redact::{admin_path_label, is_rate_limit_key, method_label};
use super::state::{SandboxState, now_ms};

type SharedState = Arc<SandboxState>;

/// Why an admin call was refused; every variant answers with a JSON error body.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the sandbox admin API answers only to loopback clients")]
    Forbidden,
    #[error("no such sandbox admin endpoint")]
    NotFound,
    #[error("method not allowed for this sandbox admin endpoint")]
    MethodNotAllowed,
    #[error("no API key {0:?}")]
    UnknownKey(String),
    /// A value that is not shaped like a key is never echoed: it may be a secret.
    #[error("no such API key; API keys start with \"pk_\"")]
    NotAKey,
    #[error("api_key must be an API key (\"pk_...\"), \"anonymous\" or \"invalid\"")]
    BadRateLimitKey,
    #[error("category must be auth, sync or read, got {0:?}")]
    BadCategory(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Faults(#[from] FaultError),
}

impl AdminError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AdminError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            AdminError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            AdminError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            AdminError::UnknownKey(_) | AdminError::NotAKey => {
                (StatusCode::NOT_FOUND, "unknown_key")
            }
            AdminError::BadCategory(_) => (StatusCode::BAD_REQUEST, "invalid_category"),
            AdminError::BadRequest(_) | AdminError::BadRateLimitKey | AdminError::Faults(_) => {
                (StatusCode::BAD_REQUEST, "invalid_request")
            }
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = json!({ "error": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

type AdminResult = Result<Json<Value>, AdminError>;

/// One admin endpoint as `GET /_sandbox` lists it.
#[derive(Debug, Serialize)]
struct AdminEndpoint {
    method: &'static str,
    path: &'static str,
    purpose: &'static str,
}

const fn endpoint(
    method: &'static str,
    path: &'static str,
    purpose: &'static str,
) -> AdminEndpoint {
    AdminEndpoint {
        method,
        path,
        purpose,
    }
}

/// What `GET /_sandbox` answers; kept beside [`router`], which must serve each of them.
const ENDPOINTS: [AdminEndpoint; 14] = [
    endpoint("GET", "/_sandbox", "List the admin endpoints."),
    endpoint(
        "POST",
        "/_sandbox/keys/{api_key}/revoke",
        "Revoke an API key: its token requests and tokens answer 401.",
    ),
    endpoint(
        "POST",
        "/_sandbox/keys/{api_key}/restore",
        "Restore a revoked API key.",
    ),
    endpoint(
        "POST",
        "/_sandbox/tokens/expire",
        "Expire every token issued so far.",
    ),
    endpoint(
        "POST",
        "/_sandbox/quota/{category}/exhaust",
        "Answer 429 for a category (of every key, or of ?api_key=) until the window ends.",
    ),
    endpoint(
        "PUT",
        "/_sandbox/quota/{category}/consumers",
        "Simulate other clients using a category's quota at requests_per_minute.",
    ),
    endpoint(
        "DELETE",
        "/_sandbox/quota/{category}/consumers",
        "Stop the simulated clients of a category (of every key, or of ?api_key=).",
    ),
    endpoint("GET", "/_sandbox/faults", "Show the injected faults."),
    endpoint(
        "PUT",
        "/_sandbox/faults",
        "Replace the injected faults (latency, status, hang, malformed body).",
    ),
    endpoint("DELETE", "/_sandbox/faults", "Clear the injected faults."),
    endpoint("GET", "/_sandbox/stats", "Count the /v1 requests received."),
    endpoint("POST", "/_sandbox/stats/reset", "Zero the request counts."),
    endpoint(
        "GET",
        "/_sandbox/state",
        "Show the options, keys, tokens, quotas and faults in force.",
    ),
    endpoint(
        "GET",
        "/_sandbox/",
        "List the admin endpoints (same as /_sandbox).",
    ),
];

/// The routes below /_sandbox, each refused to peers that are not on loopback.
pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/", get(list_endpoints))
        .route("/keys/{api_key}/revoke", post(revoke_key))
        .route("/keys/{api_key}/restore", post(restore_key))
        .route("/tokens/expire", post(expire_tokens))
        .route("/quota/{category}/exhaust", post(exhaust_quota))
        .route(
            "/quota/{category}/consumers",
            put(set_consumers).delete(clear_consumers),
        )
        .route(
            "/faults",
            get(show_faults).put(set_faults).delete(clear_faults),
        )
        .route("/stats", get(show_stats))
        .route("/stats/reset", post(reset_stats))
        .route("/state", get(show_state))
        .fallback(|| async { AdminError::NotFound })
        .method_not_allowed_fallback(|| async { AdminError::MethodNotAllowed })
        .layer(middleware::from_fn(require_loopback))
}

/// `/_sandbox/`, which the nested [`router`] does not reach: it serves `/_sandbox` and the paths
/// below, and the demo prints the admin URL with a trailing slash.
pub fn index_with_slash() -> MethodRouter<SharedState> {
    get(list_endpoints)
        .fallback(|| async { AdminError::MethodNotAllowed })
        .layer(middleware::from_fn(require_loopback))
}

/// Admin calls change what every client sees, so only this machine may make them.
pub fn is_loopback_peer(peer: SocketAddr) -> bool {
    peer.ip().to_canonical().is_loopback()
}

async fn require_loopback(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    // Inside the nested router the URI has lost its /_sandbox prefix.
    let uri = request.extensions().get::<OriginalUri>().map(|o| &o.0);
    let path = admin_path_label(uri.unwrap_or(request.uri()).path());
    let response = if is_loopback_peer(peer) {
        next.run(request).await
    } else {
        AdminError::Forbidden.into_response()
    };
    tracing::debug!(
        method = method_label(&method),
        path,
        status = response.status().as_u16(),
        peer = %peer,
        "sandbox admin call"
    );
    response
}

#[derive(Debug, Deserialize)]
struct KeyQuery {
    api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumersRequest {
    requests_per_minute: u32,
    #[serde(default)]
    api_key: Option<String>,
}

async fn list_endpoints() -> AdminResult {
    Ok(Json(json!({ "endpoints": ENDPOINTS })))
}

async fn revoke_key(state: State<SharedState>, Path(api_key): Path<String>) -> AdminResult {
    set_revoked(&state, api_key, true)
}

async fn restore_key(state: State<SharedState>, Path(api_key): Path<String>) -> AdminResult {
    set_revoked(&state, api_key, false)
}

fn set_revoked(state: &SandboxState, api_key: String, revoked: bool) -> AdminResult {
    if !is_key_shaped(&api_key) {
        return Err(AdminError::NotAKey);
    }
    if !state.lock().keys.set_revoked(&api_key, revoked) {
        return Err(AdminError::UnknownKey(api_key));
    }
    Ok(Json(json!({ "api_key": api_key, "revoked": revoked })))
}

async fn expire_tokens(State(state): State<SharedState>) -> AdminResult {
    let expired = state.lock().tokens.expire_all(now_ms());
    Ok(Json(json!({ "expired": expired })))
}

async fn exhaust_quota(
    State(state): State<SharedState>,
    Path(category): Path<String>,
    Query(query): Query<KeyQuery>,
) -> AdminResult {
    let category = parse_category(&category)?;
    let api_key = rate_limit_key(query.api_key)?;
    let until = state
        .lock()
        .limiter
        .exhaust(category, api_key.clone(), now_ms());
    Ok(Json(json!({
        "category": category,
        "api_key": api_key,
        "exhausted_until": until,
    })))
}

async fn set_consumers(
    State(state): State<SharedState>,
    Path(category): Path<String>,
    body: Body,
) -> AdminResult {
    let category = parse_category(&category)?;
    let request: ConsumersRequest = parse_json(body).await?;
    let consumers = Consumers {
        category,
        api_key: rate_limit_key(request.api_key)?,
        requests_per_minute: request.requests_per_minute,
    };
    let answer = json!(consumers);
    state.lock().limiter.set_consumers(consumers);
    Ok(Json(answer))
}

async fn clear_consumers(
    State(state): State<SharedState>,
    Path(category): Path<String>,
    Query(query): Query<KeyQuery>,
) -> AdminResult {
    let category = parse_category(&category)?;
    let api_key = rate_limit_key(query.api_key)?;
    let removed = state
        .lock()
        .limiter
        .clear_consumers(category, api_key.as_deref());
    Ok(Json(json!({ "category": category, "removed": removed })))
}

async fn show_faults(State(state): State<SharedState>) -> AdminResult {
    Ok(Json(json!(state.lock().faults.view())))
}

async fn set_faults(State(state): State<SharedState>, body: Body) -> AdminResult {
    let value: Value = parse_json(body).await?;
    let faults = Faults::from_json(&value)?;
    let view = json!(faults.view());
    state.lock().faults = faults;
    Ok(Json(view))
}

async fn clear_faults(State(state): State<SharedState>) -> AdminResult {
    let faults = Faults::default();
    let view = json!(faults.view());
    state.lock().faults = faults;
    Ok(Json(view))
}

async fn show_stats(State(state): State<SharedState>) -> AdminResult {
    Ok(Json(json!(state.lock().stats.view())))
}

async fn reset_stats(State(state): State<SharedState>) -> AdminResult {
    let mut inner = state.lock();
    inner.stats.reset();
    Ok(Json(json!(inner.stats.view())))
}

async fn show_state(State(state): State<SharedState>) -> AdminResult {
    let now = now_ms();
    let inner = state.lock();
    let keys: Vec<Value> = inner
        .keys
        .list()
        .into_iter()
        .map(|(api_key, revoked)| json!({ "api_key": api_key, "revoked": revoked }))
        .collect();
    let (valid, expired) = inner.tokens.counts(now);
    let options = &state.options;
    Ok(Json(json!({
        "options": {
            "token_ttl_seconds": options.token_ttl.as_secs(),
            "rate_window_seconds": options.rate_window.as_secs(),
            "limits": {
                "auth": options.limit_auth,
                "sync": options.limit_sync,
                "read": options.limit_read,
            },
        },
        "keys": keys,
        "tokens": { "valid": valid, "expired": expired },
        "quota": {
            "exhausted": inner.limiter.exhaustions(now),
            "consumers": inner.limiter.consumers(),
        },
        "faults": inner.faults.view(),
    })))
}

/// Admin calls may name only keys the limiter can count, so a secret is never stored as one.
fn rate_limit_key(api_key: Option<String>) -> Result<Option<String>, AdminError> {
    match api_key {
        Some(key) if !is_rate_limit_key(&key) => Err(AdminError::BadRateLimitKey),
        api_key => Ok(api_key),
    }
}

fn parse_category(name: &str) -> Result<Category, AdminError> {
    Category::parse(name).ok_or_else(|| AdminError::BadCategory(name.to_owned()))
}

async fn parse_json<T: serde::de::DeserializeOwned>(body: Body) -> Result<T, AdminError> {
    let bytes = read_limited(body)
        .await
        .map_err(|e| AdminError::BadRequest(e.to_string()))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| AdminError::BadRequest(format!("invalid JSON request body: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_are_admitted() {
        let cases = [
            ("127.0.0.1:5000", true),
            ("127.8.9.10:5000", true),
            ("[::1]:5000", true),
            ("[::ffff:127.0.0.1]:5000", true),
            ("192.0.2.7:5000", false),
            ("10.0.0.1:5000", false),
            ("[2001:db8::1]:5000", false),
            ("[::ffff:192.0.2.7]:5000", false),
            ("0.0.0.0:5000", false),
        ];

        for (peer, expected) in cases {
            let peer: SocketAddr = peer.parse().expect("valid address");
            assert_eq!(is_loopback_peer(peer), expected, "{peer}");
        }
    }

    #[test]
    fn errors_answer_with_their_status_and_code() {
        let cases = [
            (AdminError::Forbidden, StatusCode::FORBIDDEN, "forbidden"),
            (
                AdminError::UnknownKey("pk_x".to_owned()),
                StatusCode::NOT_FOUND,
                "unknown_key",
            ),
            (AdminError::NotAKey, StatusCode::NOT_FOUND, "unknown_key"),
            (
                AdminError::BadRateLimitKey,
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
            (
                AdminError::BadCategory("x".to_owned()),
                StatusCode::BAD_REQUEST,
                "invalid_category",
            ),
            (
                AdminError::Faults(FaultError::NotObject),
                StatusCode::BAD_REQUEST,
                "invalid_request",
            ),
        ];

        for (error, status, code) in cases {
            assert_eq!(error.status_and_code(), (status, code));
        }
    }
}
