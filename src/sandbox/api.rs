//! The simulated /v1 API: token issue, sync sessions and account, behind rate limits and
//! injected faults, with every request counted.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::body::{BodyError, read_limited};
use super::data;
use super::faults::{FaultEndpoint, Faults};
use super::ratelimit::{ANONYMOUS, Category, Limits, Verdict};
use super::redact::{key_label, method_label, path_label};
use super::state::{SandboxState, now_ms};
use super::stats::NO_ANSWER;

const TOKEN_PATH: &str = "/v1/auth/token";
const SESSIONS_PATH: &str = "/v1/sync/sessions";
const ACCOUNT_PATH: &str = "/v1/account";

/// The documented answer to a wrong key or secret, word for word.
const INVALID_CREDENTIALS: &str = "Invalid API key or secret";

/// What a /v1 request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Sessions,
    Account,
    WrongMethod {
        category: Category,
        allow: &'static str,
    },
    NotFound {
        category: Category,
    },
}

impl Endpoint {
    pub fn classify(method: &Method, path: &str) -> Endpoint {
        let (endpoint, allow) = match path {
            TOKEN_PATH => (Endpoint::Token, "POST"),
            SESSIONS_PATH => (Endpoint::Sessions, "GET"),
            ACCOUNT_PATH => (Endpoint::Account, "GET"),
            _ => {
                let category = category_of_path(path);
                return Endpoint::NotFound { category };
            }
        };
        if method.as_str() == allow {
            return endpoint;
        }
        Endpoint::WrongMethod {
            category: endpoint.category(),
            allow,
        }
    }

    pub fn category(&self) -> Category {
        match self {
            Endpoint::Token => Category::Auth,
            Endpoint::Sessions => Category::Sync,
            Endpoint::Account => Category::Read,
            Endpoint::WrongMethod { category, .. } | Endpoint::NotFound { category } => *category,
        }
    }

    /// The name under which the request is counted in the stats.
    pub fn label(&self, method: &Method, path: &str) -> String {
        match self {
            Endpoint::Token => format!("POST {TOKEN_PATH}"),
            Endpoint::Sessions => format!("GET {SESSIONS_PATH}"),
            Endpoint::Account => format!("GET {ACCOUNT_PATH}"),
            _ => format!("{} {}", method_label(method), path_label(path)),
        }
    }

    fn fault_endpoint(&self) -> Option<FaultEndpoint> {
        match self {
            Endpoint::Token => Some(FaultEndpoint::Auth),
            Endpoint::Sessions => Some(FaultEndpoint::Sessions),
            Endpoint::Account => Some(FaultEndpoint::Account),
            _ => None,
        }
    }
}

/// Rate-limit categories follow the path, whatever the method.
pub fn category_of_path(path: &str) -> Category {
    if path == TOKEN_PATH {
        Category::Auth
    } else if path == "/v1/sync" || path.starts_with("/v1/sync/") {
        Category::Sync
    } else {
        Category::Read
    }
}

/// The request, read and parsed as far as the sandbox needs.
struct Call {
    endpoint: Endpoint,
    label: String,
    /// The rate-limit key: the body's or the token's API key, else [`ANONYMOUS`] or `invalid`.
    key: String,
    credentials: Result<Credentials, String>,
    bearer: Option<String>,
}

struct Credentials {
    api_key: String,
    api_secret: String,
}

/// An answer before the rate-limit headers are added.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
    allow: Option<&'static str>,
}

impl Reply {
    fn ok(body: Value) -> Reply {
        Reply {
            status: StatusCode::OK,
            body,
            allow: None,
        }
    }

    fn error(status: StatusCode, code: &str, message: &str) -> Reply {
        Reply {
            status,
            body: json!({ "error": code, "message": message }),
            allow: None,
        }
    }
}

/// Serves every request under /v1.
pub async fn handle(
    State(state): State<Arc<SandboxState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let call = read_call(&state, &method, uri.path(), &headers, body).await;
    let now = now_ms();
    let (verdict, faults) = admit(&state, &call, now);

    if let Some(latency) = faults.latency {
        state.sleep(latency).await;
    }
    if faults.hang {
        return hang(&state, &call, &method, uri.path()).await;
    }

    let (reply, malformed) = answer(&state, &call, &verdict, &faults);
    let response = render(reply, &verdict, malformed);
    record(
        &state,
        &call,
        &method,
        uri.path(),
        response.status().as_str(),
    );
    response
}

async fn read_call(
    state: &SandboxState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Call {
    let endpoint = Endpoint::classify(method, path);
    // Bodies are read on every endpoint so a client still sending one is not cut off.
    let body = read_limited(body).await;
    let credentials = match endpoint {
        Endpoint::Token => parse_credentials(body),
        _ => Err(String::new()),
    };
    let bearer = bearer_token(headers);
    let key = rate_limit_key(state, &credentials, bearer.as_deref());
    Call {
        endpoint,
        label: endpoint.label(method, path),
        key,
        credentials,
        bearer,
    }
}

/// Token requests count against the body's key, or `invalid` when it is not shaped like a key;
/// others against the key of a token the sandbox issued, even an expired one or one of a
/// revoked key.
fn rate_limit_key(
    state: &SandboxState,
    credentials: &Result<Credentials, String>,
    bearer: Option<&str>,
) -> String {
    if let Ok(credentials) = credentials {
        return key_label(&credentials.api_key).to_owned();
    }
    bearer
        .and_then(|token| state.lock().tokens.get(token).map(|r| r.api_key.clone()))
        .unwrap_or_else(|| ANONYMOUS.to_owned())
}

/// Counts the request against its quota and takes the faults that concern it.
fn admit(state: &SandboxState, call: &Call, now: u64) -> (Verdict, Faults) {
    let mut inner = state.lock();
    let verdict = inner
        .limiter
        .admit(call.endpoint.category(), &call.key, now);
    let faults = if inner.faults.applies_to(call.endpoint.fault_endpoint()) {
        inner.faults.clone()
    } else {
        Faults::default()
    };
    (verdict, faults)
}

/// Never answers until the sandbox stops; the client's timeout usually ends it first.
async fn hang(state: &SandboxState, call: &Call, method: &Method, path: &str) -> Response {
    record(state, call, method, path, NO_ANSWER);
    state.shutdown_requested().await;
    let reply = Reply::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
        "The sandbox is shutting down",
    );
    (reply.status, axum::Json(reply.body)).into_response()
}

/// The rate limiter answers first; then an injected status; then the endpoint itself.
fn answer(state: &SandboxState, call: &Call, verdict: &Verdict, faults: &Faults) -> (Reply, bool) {
    if !verdict.allowed {
        return (rate_limited(verdict), false);
    }
    if let Some(status) = faults.draw_status() {
        return (injected(status), faults.malformed_body);
    }
    (serve_endpoint(state, call), faults.malformed_body)
}

fn rate_limited(verdict: &Verdict) -> Reply {
    let message = format!(
        "Rate limit of {} requests exceeded; retry after {} seconds",
        verdict.limit, verdict.retry_after
    );
    Reply::error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        &message,
    )
}

fn injected(status: StatusCode) -> Reply {
    let reason = status.canonical_reason().unwrap_or("error");
    let code: String = reason
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' | '-' => Some('_'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect();
    Reply::error(status, &code, "Simulated failure injected by the sandbox")
}

fn serve_endpoint(state: &SandboxState, call: &Call) -> Reply {
    match call.endpoint {
        Endpoint::Token => issue_token(state, &call.credentials),
        Endpoint::Sessions => match authorize(state, call.bearer.as_deref()) {
            Ok(_) => Reply::ok(data::sessions(state.started_at)),
            Err(reply) => reply,
        },
        Endpoint::Account => match authorize(state, call.bearer.as_deref()) {
            Ok(api_key) => Reply::ok(account(state, &api_key)),
            Err(reply) => reply,
        },
        Endpoint::WrongMethod { allow, .. } => Reply {
            allow: Some(allow),
            ..Reply::error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed for this endpoint",
            )
        },
        Endpoint::NotFound { .. } => {
            Reply::error(StatusCode::NOT_FOUND, "not_found", "No such endpoint")
        }
    }
}

fn issue_token(state: &SandboxState, credentials: &Result<Credentials, String>) -> Reply {
    let credentials = match credentials {
        Ok(credentials) => credentials,
        Err(message) => {
            return Reply::error(StatusCode::BAD_REQUEST, "invalid_request", message);
        }
    };
    let mut inner = state.lock();
    if !inner
        .keys
        .accepts(&credentials.api_key, &credentials.api_secret)
    {
        return Reply::error(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            INVALID_CREDENTIALS,
        );
    }
    let ttl = state.token_ttl_secs();
    let token = inner.tokens.issue(&credentials.api_key, now_ms(), ttl);
    Reply::ok(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl,
    }))
}

/// The API key behind a usable bearer token, or the 401 that explains why it is not usable.
fn authorize(state: &SandboxState, bearer: Option<&str>) -> Result<String, Reply> {
    let unauthorized = |code, message| Reply::error(StatusCode::UNAUTHORIZED, code, message);
    let Some(token) = bearer else {
        return Err(unauthorized(
            "missing_authorization",
            "Authorization header with a Bearer token is required",
        ));
    };
    let inner = state.lock();
    let Some(record) = inner.tokens.get(token) else {
        return Err(unauthorized("invalid_token", "Access token is invalid"));
    };
    if inner.keys.is_revoked(&record.api_key) {
        return Err(unauthorized("key_revoked", "API key has been revoked"));
    }
    if record.is_expired(now_ms()) {
        return Err(unauthorized("token_expired", "Access token has expired"));
    }
    Ok(record.api_key.clone())
}

fn account(state: &SandboxState, api_key: &str) -> Value {
    let options = &state.options;
    let limits = Limits {
        auth: options.limit_auth,
        sync: options.limit_sync,
        read: options.limit_read,
    };
    data::account(api_key, limits, options.rate_window.as_secs())
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let well_formed = scheme.eq_ignore_ascii_case("bearer")
        && !token.is_empty()
        && !token.contains(char::is_whitespace);
    well_formed.then(|| token.to_owned())
}

/// Parses `{"api_key": "...", "api_secret": "..."}`, whatever the Content-Type says.
fn parse_credentials(body: Result<Bytes, BodyError>) -> Result<Credentials, String> {
    let body = body.map_err(|e| format!("{e}"))?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(
            "request body is empty; expected a JSON object with api_key and api_secret".to_owned(),
        );
    }
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| format!("request body is not valid JSON: {e}"))?;
    let object = value
        .as_object()
        .ok_or_else(|| "request body must be a JSON object".to_owned())?;
    let field = |name: &str| match object.get(name) {
        None => Err(format!("field `{name}` is missing")),
        Some(Value::String(text)) => Ok(text.clone()),
        Some(_) => Err(format!("field `{name}` must be a string")),
    };
    Ok(Credentials {
        api_key: field("api_key")?,
        api_secret: field("api_secret")?,
    })
}

/// Adds the rate-limit headers to the answer and, for a `malformed_body` fault, cuts the
/// body short under a 200 status.
fn render(reply: Reply, verdict: &Verdict, malformed: bool) -> Response {
    let mut body = serde_json::to_vec(&reply.body).expect("JSON values serialize");
    let mut status = reply.status;
    if malformed {
        // A strict prefix of a JSON object is never valid JSON.
        body.truncate((body.len() / 2).max(1));
        status = StatusCode::OK;
    }
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    add_rate_limit_headers(headers, verdict);
    if status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(RETRY_AFTER, HeaderValue::from(verdict.retry_after));
    }
    if let Some(allow) = reply.allow {
        headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    response
}

fn add_rate_limit_headers(headers: &mut HeaderMap, verdict: &Verdict) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(verdict.limit));
    headers.insert(
        "x-ratelimit-remaining",
        HeaderValue::from(verdict.remaining),
    );
    headers.insert("x-ratelimit-reset", HeaderValue::from(verdict.reset));
}

/// Counts the request and logs it; never the body, the token, the Authorization header, an
/// `api_key` that is not shaped like a key, or a path segment that may hold a secret.
fn record(state: &SandboxState, call: &Call, method: &Method, path: &str, status: &str) {
    let category = call.endpoint.category();
    state
        .lock()
        .stats
        .record(&call.label, &call.key, category, status);
    tracing::debug!(
        method = method_label(method),
        path = %path_label(path),
        status = %status,
        category = category.as_str(),
        api_key = %call.key,
        "sandbox request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_their_rate_limit_category() {
        let cases = [
            ("/v1/auth/token", Category::Auth),
            ("/v1/sync/sessions", Category::Sync),
            ("/v1/sync", Category::Sync),
            ("/v1/sync/other", Category::Sync),
            ("/v1/synchronize", Category::Read),
            ("/v1/account", Category::Read),
            ("/v1", Category::Read),
            ("/v1/auth/token/", Category::Read),
        ];

        for (path, category) in cases {
            assert_eq!(category_of_path(path), category, "{path}");
        }
    }

    #[test]
    fn known_paths_with_another_method_are_not_allowed() {
        assert_eq!(
            Endpoint::classify(&Method::GET, TOKEN_PATH),
            Endpoint::WrongMethod {
                category: Category::Auth,
                allow: "POST"
            }
        );
        assert_eq!(
            Endpoint::classify(&Method::POST, SESSIONS_PATH),
            Endpoint::WrongMethod {
                category: Category::Sync,
                allow: "GET"
            }
        );
        assert_eq!(
            Endpoint::classify(&Method::POST, TOKEN_PATH),
            Endpoint::Token
        );
    }

    #[test]
    fn bearer_tokens_need_the_scheme_and_one_token() {
        let cases = [
            (Some("Bearer abc"), Some("abc")),
            (Some("bearer abc"), Some("abc")),
            (Some("Bearer  abc "), Some("abc")),
            (Some("Bearer"), None),
            (Some("Bearer "), None),
            (Some("Basic abc"), None),
            (Some("Bearer a b"), None),
            (Some("abc"), None),
            (None, None),
        ];

        for (header, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = header {
                headers.insert(AUTHORIZATION, HeaderValue::from_static(value));
            }
            assert_eq!(bearer_token(&headers).as_deref(), expected, "{header:?}");
        }
    }

    #[test]
    fn bad_credential_bodies_are_explained() {
        let cases: [(&[u8], &str); 7] = [
            (
                b"",
                "request body is empty; expected a JSON object with api_key and api_secret",
            ),
            (
                b"{",
                "request body is not valid JSON: EOF while parsing an object at line 1 column 1",
            ),
            (b"[1]", "request body must be a JSON object"),
            (b"{\"api_secret\":\"sk_a\"}", "field `api_key` is missing"),
            (b"{\"api_key\":\"pk_a\"}", "field `api_secret` is missing"),
            (
                b"{\"api_key\":1,\"api_secret\":\"sk_a\"}",
                "field `api_key` must be a string",
            ),
            (
                b"{\"api_key\":\"pk_a\",\"api_secret\":null}",
                "field `api_secret` must be a string",
            ),
        ];

        for (body, expected) in cases {
            let error = parse_credentials(Ok(Bytes::from_static(body)))
                .err()
                .expect(expected);
            assert_eq!(error, expected);
        }
    }

    #[test]
    fn malformed_bodies_are_not_json_but_say_200() {
        let verdict = Verdict {
            allowed: true,
            limit: 10,
            remaining: 9,
            reset: 60,
            retry_after: 30,
        };
        let reply = Reply::error(StatusCode::UNAUTHORIZED, "invalid_token", "x");

        let response = render(reply, &verdict, true);

        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-ratelimit-remaining"], "9");
    }

    #[test]
    fn injected_statuses_get_an_error_code_from_their_reason() {
        let reply = injected(StatusCode::SERVICE_UNAVAILABLE);

        assert_eq!(reply.body["error"], "service_unavailable");
        assert_eq!(
            injected(StatusCode::IM_A_TEAPOT).body["error"],
            "im_a_teapot"
        );
    }
}
