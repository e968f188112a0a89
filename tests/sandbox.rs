//! The sandbox over a real loopback socket: the documentation's own examples, every error
//! shape, the rate limits and their headers, each admin call, and the request counts.

mod support_sandbox;

use std::io::Write as _;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pinkcloudsync_exporter::sandbox::{
    self, Credential, DEFAULT_API_KEY, DEFAULT_API_SECRET, SandboxArgs, SandboxOptions,
};
use reqwest::header::{ALLOW, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support_sandbox::*;

const OTHER_KEY: &str = "pk_test_other";
const OTHER_SECRET: &str = "sk_test_other_secret";
const MINUTE: Duration = Duration::from_secs(60);

const INVALID_CREDENTIALS: &str =
    r#"{"error":"invalid_credentials","message":"Invalid API key or secret"}"#;

/// The documentation's base URL, swapped for the sandbox's in the examples below.
const DOC_BASE_URL: &str = "https://api.pinkcloudsync.example/v1";

const DOC_CURL_TOKEN: &str = r#"curl -X POST https://api.pinkcloudsync.example/v1/auth/token \
  -H "Content-Type: application/json" \
  -d '{
    "api_key": "pk_live_abc123",
    "api_secret": "sk_live_xyz789"
  }'"#;

const DOC_CURL_SESSIONS: &str = r#"curl -X GET https://api.pinkcloudsync.example/v1/sync/sessions \
  -H "Authorization: Bearer YOUR_ACCESS_TOKEN""#;

const DOC_PYTHON_TOKEN: &str = r#"import requests

url = "https://api.pinkcloudsync.example/v1/auth/token"

payload = {
    "api_key": "pk_live_abc123",
    "api_secret": "sk_live_xyz789"
}

response = requests.post(url, json=payload)
token_data = response.json()

print(f"Access token: {token_data['access_token']}")
"#;

const DOC_PYTHON_SESSIONS: &str = r#"import requests

url = "https://api.pinkcloudsync.example/v1/sync/sessions"

headers = {
    "Authorization": f"Bearer {token_data['access_token']}"
}

response = requests.get(url, headers=headers)
sessions = response.json()
"#;

fn with_other_key(options: SandboxOptions) -> SandboxOptions {
    SandboxOptions {
        credentials: vec![
            Credential::documented(),
            Credential::new(OTHER_KEY, OTHER_SECRET),
        ],
        ..options
    }
}

async fn run_shell(script: &str) -> Output {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(20), child)
        .await
        .expect("command finishes in time")
        .expect("command runs")
}

fn decode_json_part(part: &str) -> Value {
    let bytes = URL_SAFE_NO_PAD.decode(part).expect("part is base64url");
    serde_json::from_slice(&bytes).expect("part is JSON")
}

fn error_body(code: &str, message: &str) -> Value {
    json!({ "error": code, "message": message })
}

// === The documentation's examples ===

#[tokio::test]
async fn the_documented_curl_commands_work_with_the_host_swapped() {
    let t = TestSandbox::with_defaults().await;
    let base = t.sandbox.base_url();

    let output = run_shell(&DOC_CURL_TOKEN.replace(DOC_BASE_URL, &base)).await;
    assert!(output.status.success(), "{output:?}");
    let body: Value = serde_json::from_slice(&output.stdout).expect("token answer is JSON");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().expect("token is a string");
    assert!(token.starts_with("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));

    let sessions = DOC_CURL_SESSIONS
        .replace(DOC_BASE_URL, &base)
        .replace("YOUR_ACCESS_TOKEN", token);
    let output = run_shell(&sessions).await;
    assert!(output.status.success(), "{output:?}");
    let body: Value = serde_json::from_slice(&output.stdout).expect("sessions answer is JSON");
    assert_eq!(body["sessions"].as_array().map(Vec::len), Some(3));
}

#[tokio::test]
async fn the_documented_python_example_works_with_the_host_swapped() {
    let check = run_shell("python3 -c 'import requests'").await;
    assert!(
        check.status.success(),
        "python3 cannot import `requests`; install it with `pip install requests`: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let t = TestSandbox::with_defaults().await;
    let base = t.sandbox.base_url();
    let script = format!(
        "{}\n{}\nprint(f\"Sessions: {{len(sessions['sessions'])}}\")\n",
        DOC_PYTHON_TOKEN.replace(DOC_BASE_URL, &base),
        DOC_PYTHON_SESSIONS.replace(DOC_BASE_URL, &base)
    );
    let path = std::env::temp_dir().join(format!("sandbox-doc-{}.py", std::process::id()));
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(script.as_bytes()))
        .expect("script is written");

    let output = run_shell(&format!("python3 {}", path.display())).await;

    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).expect("output is text");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("Access token: eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."));
    assert_eq!(lines[1], "Sessions: 3");
    let stats = t.stats().await;
    assert_eq!(stats["by_status"], json!({"200": 2}));
}

// === Tokens ===

#[tokio::test]
async fn tokens_are_shaped_like_a_jwt_for_the_key() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;

    let response = t.request_token(OTHER_KEY, OTHER_SECRET).await;
    let (status, body) = json_of(response).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().expect("token is a string");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    assert_eq!(
        decode_json_part(parts[0]),
        json!({"alg": "HS256", "typ": "JWT"})
    );
    let claims = decode_json_part(parts[1]);
    assert_eq!(claims["sub"], OTHER_KEY);
    let iat = claims["iat"].as_u64().expect("iat is a number");
    assert_eq!(claims["exp"].as_u64(), Some(iat + 3600));
    assert!(claims["jti"].is_string());
    assert_eq!(URL_SAFE_NO_PAD.decode(parts[2]).map(|s| s.len()), Ok(32));
}

#[tokio::test]
async fn the_documented_pair_is_accepted_besides_configured_pairs() {
    let t = TestSandbox::start(SandboxOptions {
        credentials: vec![Credential::new(OTHER_KEY, OTHER_SECRET)],
        ..SandboxOptions::default()
    })
    .await;

    let other = t.token_for(OTHER_KEY, OTHER_SECRET).await;
    let documented = t.token_for(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;

    assert_ne!(other, documented);
    let (status, _) = json_of(t.sessions(Some(&other)).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_credentials_get_the_documented_401_word_for_word() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    let cases = [
        ("wrong secret", DEFAULT_API_KEY, "sk_live_wrong"),
        ("unknown key", "pk_live_unknown", DEFAULT_API_SECRET),
        ("another key's secret", OTHER_KEY, DEFAULT_API_SECRET),
        ("empty strings", "", ""),
    ];

    for (name, key, secret) in cases {
        let response = t.request_token(key, secret).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/json",
            "{name}"
        );
        assert_eq!(
            response.text().await.expect("body"),
            INVALID_CREDENTIALS,
            "{name}"
        );
    }
}

#[tokio::test]
async fn malformed_token_requests_get_400_with_a_reason() {
    let t = TestSandbox::with_defaults().await;
    let huge = format!(
        r#"{{"api_key":"pk_live_abc123","api_secret":"sk_live_xyz789","pad":"{}"}}"#,
        "x".repeat(1024 * 1024)
    );
    let json_type = Some("application/json");
    let cases: [(&str, Option<&str>, String, &str); 8] = [
        (
            "no body",
            None,
            String::new(),
            "request body is empty; expected a JSON object with api_key and api_secret",
        ),
        (
            "blank body",
            json_type,
            "  \n".to_owned(),
            "request body is empty; expected a JSON object with api_key and api_secret",
        ),
        (
            "bad JSON",
            json_type,
            "{\"api_key\": ".to_owned(),
            "request body is not valid JSON: EOF while parsing a value at line 1 column 12",
        ),
        (
            "form encoding",
            Some("application/x-www-form-urlencoded"),
            "api_key=pk_live_abc123&api_secret=sk_live_xyz789".to_owned(),
            "request body is not valid JSON: expected value at line 1 column 1",
        ),
        (
            "not an object",
            json_type,
            "[\"pk_live_abc123\"]".to_owned(),
            "request body must be a JSON object",
        ),
        (
            "wrong types",
            json_type,
            r#"{"api_key": 123, "api_secret": true}"#.to_owned(),
            "field `api_key` must be a string",
        ),
        (
            "missing field",
            json_type,
            r#"{"api_key": "pk_live_abc123"}"#.to_owned(),
            "field `api_secret` is missing",
        ),
        (
            "huge body",
            json_type,
            huge,
            "request body is larger than 65536 bytes",
        ),
    ];

    for (name, content_type, body, message) in cases {
        let mut request = t.client.post(t.url("/auth/token")).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let response = request.send().await.expect("answered");
        assert_eq!(rate_headers(&response).limit, 10, "{name}");
        let (status, answer) = json_of(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}");
        assert_eq!(answer, error_body("invalid_request", message), "{name}");
    }
}

#[tokio::test]
async fn json_is_accepted_without_a_content_type() {
    let t = TestSandbox::with_defaults().await;
    let body = format!(r#"{{"api_key":"{DEFAULT_API_KEY}","api_secret":"{DEFAULT_API_SECRET}"}}"#);

    let response = t
        .client
        .post(t.url("/auth/token"))
        .body(body)
        .send()
        .await
        .expect("answered");

    assert!(response.headers().get(CONTENT_TYPE).is_some());
    let (status, answer) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["token_type"], "Bearer");
}

#[tokio::test]
async fn tokens_expire_after_the_configured_ttl() {
    let t = TestSandbox::start(SandboxOptions {
        token_ttl: Duration::from_secs(1),
        ..SandboxOptions::default()
    })
    .await;
    let (_, body) = json_of(t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await).await;
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(body["expires_in"], 1);
    let (status, _) = json_of(t.sessions(Some(token)).await).await;
    assert_eq!(status, StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, answer) = json_of(t.sessions(Some(token)).await).await;

    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer,
        error_body("token_expired", "Access token has expired")
    );
}

// === Sessions and other reads ===

#[tokio::test]
async fn sessions_answer_with_the_documented_shape() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;

    let response = t.sessions(Some(&token)).await;
    assert_eq!(rate_headers(&response).limit, 100);
    let (status, body) = json_of(response).await;

    assert_eq!(status, StatusCode::OK);
    let sessions = body["sessions"].as_array().expect("sessions is a list");
    let statuses: Vec<&str> = sessions
        .iter()
        .map(|s| s["status"].as_str().expect("status"))
        .collect();
    assert_eq!(statuses, ["completed", "failed", "running"]);
    for session in sessions {
        let fields: Vec<&str> = session
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            fields,
            [
                "bytes_transferred",
                "destination",
                "finished_at",
                "id",
                "source",
                "started_at",
                "status"
            ]
        );
        assert!(session["id"].as_str().expect("id").starts_with("ses_"));
        let started = session["started_at"].as_str().expect("started_at");
        chrono::DateTime::parse_from_rfc3339(started).expect("started_at is RFC 3339");
        match session["finished_at"].as_str() {
            Some(finished) => {
                chrono::DateTime::parse_from_rfc3339(finished).expect("RFC 3339");
            }
            None => assert_eq!(session["status"], "running"),
        }
        assert!(session["bytes_transferred"].is_u64());
    }
}

#[tokio::test]
async fn the_account_endpoint_is_a_read() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;

    let response = t.get("/account", Some(&token)).await;
    let headers = rate_headers(&response);
    let (status, body) = json_of(response).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!((headers.limit, headers.remaining), (1000, 999));
    assert_eq!(body["api_key"], DEFAULT_API_KEY);
    assert_eq!(
        body["rate_limits"],
        json!({"window_seconds": 60, "auth": 10, "sync": 100, "read": 1000})
    );
}

#[tokio::test]
async fn unauthorized_reads_get_one_of_four_codes() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    let expired = t.token().await;
    t.admin(Method::POST, "/tokens/expire", None).await;
    let revoked = t.token_for(OTHER_KEY, OTHER_SECRET).await;
    t.admin(Method::POST, &format!("/keys/{OTHER_KEY}/revoke"), None)
        .await;
    let missing = (
        "missing_authorization",
        "Authorization header with a Bearer token is required",
    );
    let cases = [
        (None, missing),
        (
            Some("Basic cGtfbGl2ZV9hYmMxMjM6c2tfbGl2ZV94eXo3ODk=".to_owned()),
            missing,
        ),
        (Some("Bearer".to_owned()), missing),
        (Some(expired.clone()), missing),
        (
            Some("Bearer not.a.token".to_owned()),
            ("invalid_token", "Access token is invalid"),
        ),
        (
            Some(format!("Bearer {expired}")),
            ("token_expired", "Access token has expired"),
        ),
        (
            Some(format!("Bearer {revoked}")),
            ("key_revoked", "API key has been revoked"),
        ),
    ];

    for path in ["/sync/sessions", "/account"] {
        for (authorization, (code, message)) in &cases {
            let mut request = t.client.get(t.url(path));
            if let Some(value) = authorization {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.expect("answered");
            rate_headers(&response);
            let (status, body) = json_of(response).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {authorization:?}");
            assert_eq!(body, error_body(code, message), "{path} {authorization:?}");
        }
    }
}

#[tokio::test]
async fn unknown_paths_get_json_404s() {
    let t = TestSandbox::with_defaults().await;

    let response = t.get("/nope", None).await;
    let headers = rate_headers(&response);
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers.limit, 1000);
    assert_eq!(body, error_body("not_found", "No such endpoint"));

    let outside = t
        .client
        .get(format!("http://{}/health", t.sandbox.addr()))
        .send()
        .await
        .expect("answered");
    assert!(outside.headers().get("x-ratelimit-limit").is_none());
    let (status, body) = json_of(outside).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    assert_eq!(t.stats().await["by_endpoint"], json!({"GET /v1/nope": 1}));
}

// === Rate limits ===

#[tokio::test]
async fn every_kind_of_answer_carries_the_rate_limit_headers() {
    let t = TestSandbox::with_defaults().await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    let token = t.token().await;
    let auth = |body: &'static str| t.client.post(t.url("/auth/token")).body(body).send();
    let wrong_secret = r#"{"api_key":"pk_live_abc123","api_secret":"sk_live_nope"}"#;

    let mut answers = vec![
        ("400", auth("{").await.expect("answered"), 10, 9),
        (
            "401 auth",
            auth(wrong_secret).await.expect("answered"),
            10,
            8,
        ),
        ("200 sessions", t.sessions(Some(&token)).await, 100, 99),
        ("401 sessions", t.sessions(None).await, 100, 99),
        (
            "200 account",
            t.get("/account", Some(&token)).await,
            1000,
            999,
        ),
        ("404", t.get("/v1", None).await, 1000, 999),
    ];
    let wrong_method = t.get("/auth/token", None).await;
    assert_eq!(wrong_method.headers()[ALLOW], "POST");
    answers.push(("405", wrong_method, 10, 8));
    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"status": 503, "endpoint": "sessions"})),
    )
    .await;
    answers.push(("503", t.sessions(Some(&token)).await, 100, 98));
    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"malformed_body": true})),
    )
    .await;
    answers.push((
        "malformed",
        t.get("/account", Some(&token)).await,
        1000,
        998,
    ));
    t.admin(Method::DELETE, "/faults", None).await;
    t.admin(Method::POST, "/quota/read/exhaust", None).await;
    answers.push(("429", t.get("/account", Some(&token)).await, 1000, 0));

    let reset = window_end(now_ms(), MINUTE);
    for (name, response, limit, remaining) in answers {
        let headers = rate_headers(&response);
        assert_eq!(
            (headers.limit, headers.remaining),
            (limit, remaining),
            "{name}"
        );
        assert_eq!(headers.reset, reset, "{name}");
    }
}

#[tokio::test]
async fn the_eleventh_token_request_in_a_minute_is_refused() {
    let t = TestSandbox::with_defaults().await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    let reset = window_end(now_ms(), MINUTE);

    for expected_remaining in (0..10).rev() {
        let response = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            rate_headers(&response),
            RateHeaders {
                limit: 10,
                remaining: expected_remaining,
                reset
            }
        );
    }
    let refused = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;

    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rate_headers(&refused),
        RateHeaders {
            limit: 10,
            remaining: 0,
            reset
        }
    );
    let retry_after: u64 = refused.headers()[RETRY_AFTER]
        .to_str()
        .expect("text")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (_, body) = json_of(refused).await;
    assert_eq!(body["error"], "rate_limit_exceeded");
    assert!(body["message"].is_string());
    assert_eq!(t.stats().await["by_status"], json!({"200": 10, "429": 1}));
}

#[tokio::test]
async fn keys_and_categories_have_their_own_quotas() {
    let t = TestSandbox::start(with_other_key(SandboxOptions {
        limit_auth: 1,
        ..SandboxOptions::default()
    }))
    .await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    let token = t.token().await;

    let refused = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    let other = t.request_token(OTHER_KEY, OTHER_SECRET).await;
    let sessions = t.sessions(Some(&token)).await;
    let anonymous = t.sessions(None).await;

    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(rate_headers(&other).remaining, 0);
    assert_eq!(rate_headers(&sessions).remaining, 99);
    assert_eq!(rate_headers(&anonymous).remaining, 99);
    let stats = t.stats().await;
    assert_eq!(
        stats["by_key"],
        json!({"anonymous": 1, "pk_live_abc123": 3, "pk_test_other": 1})
    );
}

#[tokio::test]
async fn a_short_window_resets_the_count_at_its_end() {
    let window = Duration::from_secs(2);
    let t = TestSandbox::start(SandboxOptions {
        limit_auth: 2,
        rate_window: window,
        ..SandboxOptions::default()
    })
    .await;
    wait_for_window_room(window, Duration::from_millis(1500)).await;
    let reset = window_end(now_ms(), window);

    let first = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    let second = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    let third = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    assert_eq!(
        rate_headers(&first),
        RateHeaders {
            limit: 2,
            remaining: 1,
            reset
        }
    );
    assert_eq!(
        rate_headers(&second),
        RateHeaders {
            limit: 2,
            remaining: 0,
            reset
        }
    );
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rate_headers(&third),
        RateHeaders {
            limit: 2,
            remaining: 0,
            reset
        }
    );

    sleep_until(reset).await;
    let next = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;

    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(
        rate_headers(&next),
        RateHeaders {
            limit: 2,
            remaining: 1,
            reset: reset + 2
        }
    );
}

// === Admin: keys and tokens ===

#[tokio::test]
async fn a_revoked_key_is_refused_until_restored() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;
    let revoke = format!("/keys/{DEFAULT_API_KEY}/revoke");
    let restore = format!("/keys/{DEFAULT_API_KEY}/restore");

    let answer = t.admin(Method::POST, &revoke, None).await;
    assert_eq!(answer, json!({"api_key": DEFAULT_API_KEY, "revoked": true}));
    let auth = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    assert_eq!(auth.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(auth.text().await.expect("body"), INVALID_CREDENTIALS);
    let (status, body) = json_of(t.sessions(Some(&token)).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "key_revoked");

    let answer = t.admin(Method::POST, &restore, None).await;
    assert_eq!(
        answer,
        json!({"api_key": DEFAULT_API_KEY, "revoked": false})
    );
    let (status, _) = json_of(t.sessions(Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
    t.token().await;
}

#[tokio::test]
async fn revoking_an_unknown_key_is_a_404() {
    let t = TestSandbox::with_defaults().await;

    for action in ["revoke", "restore"] {
        let path = format!("/keys/pk_nope/{action}");
        let (status, body) = t.admin_call(Method::POST, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, error_body("unknown_key", "no API key \"pk_nope\""));
    }
}

#[tokio::test]
async fn expiring_tokens_ends_every_issued_token() {
    let t = TestSandbox::with_defaults().await;
    let first = t.token().await;
    let second = t.token().await;

    let answer = t.admin(Method::POST, "/tokens/expire", None).await;

    assert_eq!(answer, json!({"expired": 2}));
    for token in [first, second] {
        let (status, body) = json_of(t.sessions(Some(&token)).await).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "token_expired");
    }
    let fresh = t.token().await;
    let (status, _) = json_of(t.sessions(Some(&fresh)).await).await;
    assert_eq!(status, StatusCode::OK);
}

// === Admin: quotas ===

#[tokio::test]
async fn an_exhausted_quota_refuses_until_the_window_ends() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    let token = t.token().await;
    let reset = window_end(now_ms(), MINUTE);

    let answer = t.admin(Method::POST, "/quota/sync/exhaust", None).await;
    let refused = t.sessions(Some(&token)).await;
    let read = t.get("/account", Some(&token)).await;

    assert_eq!(
        answer,
        json!({"category": "sync", "api_key": null, "exhausted_until": reset})
    );
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        rate_headers(&refused),
        RateHeaders {
            limit: 100,
            remaining: 0,
            reset
        }
    );
    assert!(refused.headers().get(RETRY_AFTER).is_some());
    assert_eq!(read.status(), StatusCode::OK);
}

#[tokio::test]
async fn exhausting_one_key_leaves_the_others() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;

    let path = format!("/quota/auth/exhaust?api_key={OTHER_KEY}");
    let answer = t.admin(Method::POST, &path, None).await;

    assert_eq!(answer["api_key"], OTHER_KEY);
    let other = t.request_token(OTHER_KEY, OTHER_SECRET).await;
    assert_eq!(other.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rate_headers(&other).remaining, 0);
    t.token().await;
}

#[tokio::test]
async fn an_exhausted_short_window_recovers_at_its_end() {
    let window = Duration::from_secs(1);
    let t = TestSandbox::start(SandboxOptions {
        rate_window: window,
        ..SandboxOptions::default()
    })
    .await;
    wait_for_window_room(window, Duration::from_millis(700)).await;

    let answer = t.admin(Method::POST, "/quota/auth/exhaust", None).await;
    let refused = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    sleep_until(answer["exhausted_until"].as_u64().expect("timestamp")).await;

    let admitted = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    assert_eq!(rate_headers(&admitted).remaining, 9);
}

#[tokio::test]
async fn bad_quota_calls_are_refused() {
    let t = TestSandbox::with_defaults().await;
    let cases = [
        (
            Method::POST,
            "/quota/write/exhaust",
            None,
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_category",
                "category must be auth, sync or read, got \"write\"",
            ),
        ),
        (
            Method::PUT,
            "/quota/sessions/consumers",
            Some(json!({"requests_per_minute": 1})),
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_category",
                "category must be auth, sync or read, got \"sessions\"",
            ),
        ),
        (
            Method::PUT,
            "/quota/sync/consumers",
            Some(json!({"requests_per_minute": -1})),
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_request",
                "invalid JSON request body: invalid value: integer `-1`, expected u32 at line \
                 1 column 25",
            ),
        ),
        (
            Method::PUT,
            "/quota/sync/consumers",
            Some(json!({"rpm": 1})),
            StatusCode::BAD_REQUEST,
            error_body(
                "invalid_request",
                "invalid JSON request body: unknown field `rpm`, expected \
                 `requests_per_minute` or `api_key` at line 1 column 6",
            ),
        ),
    ];

    for (method, path, body, status, expected) in cases {
        let answer = t.admin_call(method, path, body).await;
        assert_eq!(answer, (status, expected), "{path}");
    }
}

#[tokio::test]
async fn other_consumers_lower_remaining_as_the_window_goes_by() {
    let limit = 1_000_000;
    let t = TestSandbox::start(SandboxOptions {
        limit_read: limit,
        ..SandboxOptions::default()
    })
    .await;
    let token = t.token().await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    let body = json!({"requests_per_minute": 60_000});

    let answer = t
        .admin(Method::PUT, "/quota/read/consumers", Some(body))
        .await;
    // At 60 000 a minute, others have sent one request per elapsed millisecond.
    let before = now_ms() % 60_000;
    let response = t.get("/account", Some(&token)).await;
    let after = now_ms() % 60_000;

    assert_eq!(
        answer,
        json!({"category": "read", "api_key": null, "requests_per_minute": 60_000})
    );
    let remaining = rate_headers(&response).remaining;
    let range = (u64::from(limit) - 1 - after)..=(u64::from(limit) - 1 - before);
    assert!(range.contains(&remaining), "{remaining} not in {range:?}");

    let cleared = t.admin(Method::DELETE, "/quota/read/consumers", None).await;
    assert_eq!(cleared, json!({"category": "read", "removed": 1}));
    let response = t.get("/account", Some(&token)).await;
    assert_eq!(rate_headers(&response).remaining, u64::from(limit) - 2);
}

#[tokio::test]
async fn other_consumers_of_one_key_can_use_up_its_quota() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    wait_for_window_room(MINUTE, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let token = t.token().await;
    let other = t.token_for(OTHER_KEY, OTHER_SECRET).await;
    let body = json!({"requests_per_minute": 6_000_000, "api_key": DEFAULT_API_KEY});

    t.admin(Method::PUT, "/quota/sync/consumers", Some(body))
        .await;
    let refused = t.sessions(Some(&token)).await;
    let admitted = t.sessions(Some(&other)).await;

    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rate_headers(&refused).remaining, 0);
    assert_eq!(admitted.status(), StatusCode::OK);
    assert_eq!(rate_headers(&admitted).remaining, 99);

    t.admin(Method::DELETE, "/quota/sync/consumers", None).await;
    let admitted = t.sessions(Some(&token)).await;
    assert_eq!(admitted.status(), StatusCode::OK);
    assert_eq!(rate_headers(&admitted).remaining, 98);
}

// === Admin: faults ===

#[tokio::test]
async fn a_status_fault_with_share_one_answers_every_request() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;
    t.admin(Method::POST, "/stats/reset", None).await;

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"status": 503, "status_ratio": 1.0})),
    )
    .await;
    for _ in 0..5 {
        let response = t.sessions(Some(&token)).await;
        rate_headers(&response);
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            error_body(
                "service_unavailable",
                "Simulated failure injected by the sandbox"
            )
        );
    }
    assert_eq!(t.stats().await["by_status"], json!({"503": 5}));

    let cleared = t.admin(Method::DELETE, "/faults", None).await;
    assert_eq!(
        cleared,
        json!({"latency": null, "status": null, "status_ratio": null, "hang": false,
               "malformed_body": false, "endpoint": null})
    );
    let (status, _) = json_of(t.sessions(Some(&token)).await).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_status_fault_with_share_zero_never_fires() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"status": 500, "status_ratio": 0.0})),
    )
    .await;

    for _ in 0..20 {
        assert_eq!(t.sessions(Some(&token)).await.status(), StatusCode::OK);
    }
}

#[tokio::test]
async fn a_fault_can_be_limited_to_one_endpoint() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"status": 500, "endpoint": "auth"})),
    )
    .await;

    let auth = t.request_token(DEFAULT_API_KEY, DEFAULT_API_SECRET).await;
    assert_eq!(auth.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(t.sessions(Some(&token)).await.status(), StatusCode::OK);
    assert_eq!(
        t.get("/account", Some(&token)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_latency_fault_delays_the_answer() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;
    let latency = Duration::from_millis(400);

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"latency": "400ms", "endpoint": "sessions"})),
    )
    .await;
    let started = Instant::now();
    let delayed = t.sessions(Some(&token)).await;
    let delayed_took = started.elapsed();
    let started = Instant::now();
    let prompt = t.get("/account", Some(&token)).await;
    let prompt_took = started.elapsed();

    assert_eq!(delayed.status(), StatusCode::OK);
    assert!(delayed_took >= latency, "{delayed_took:?}");
    assert!(delayed_took < Duration::from_secs(3), "{delayed_took:?}");
    assert_eq!(prompt.status(), StatusCode::OK);
    assert!(prompt_took < latency, "{prompt_took:?}");
}

#[tokio::test]
async fn a_hang_fault_never_answers_but_is_counted() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(300))
        .build()
        .expect("client");

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"hang": true, "endpoint": "sessions"})),
    )
    .await;
    let error = impatient
        .get(t.url("/sync/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .expect_err("the sandbox does not answer");

    assert!(error.is_timeout(), "{error}");
    t.token().await;
    let stats = t.stats().await;
    let hung: Vec<&Value> = stats["requests"]
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["status"] == "none")
        .collect();
    assert_eq!(
        hung,
        [
            &json!({"endpoint": "GET /v1/sync/sessions", "key": DEFAULT_API_KEY,
                 "category": "sync", "status": "none", "count": 1})
        ]
    );
}

#[tokio::test]
async fn a_hanging_request_does_not_block_shutdown() {
    let TestSandbox { sandbox, client } = TestSandbox::with_defaults().await;
    let admin = format!("{}/faults", sandbox.admin_url());
    client
        .put(&admin)
        .json(&json!({"hang": true}))
        .send()
        .await
        .expect("fault set");
    let url = format!("{}/account", sandbox.base_url());
    let hanging = tokio::spawn(async move { client.get(url).send().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    tokio::time::timeout(Duration::from_secs(3), sandbox.shutdown())
        .await
        .expect("shutdown finishes despite the hanging request");

    assert!(started.elapsed() < Duration::from_secs(3));
    let answer = hanging.await.expect("request task ends");
    if let Ok(response) = answer {
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
}

#[tokio::test]
async fn a_malformed_body_fault_sends_broken_json_with_200() {
    let t = TestSandbox::with_defaults().await;

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"malformed_body": true, "endpoint": "auth"})),
    )
    .await;

    for secret in [DEFAULT_API_SECRET, "sk_live_wrong"] {
        let response = t.request_token(DEFAULT_API_KEY, secret).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        rate_headers(&response);
        let text = response.text().await.expect("body");
        assert!(!text.is_empty());
        assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    }
}

#[tokio::test]
async fn faults_are_shown_and_bad_ones_refused() {
    let t = TestSandbox::with_defaults().await;
    let faults = json!({"latency": "250ms", "status": 502, "status_ratio": 0.5, "hang": false,
                        "malformed_body": false, "endpoint": "sessions"});

    let set = t.admin(Method::PUT, "/faults", Some(faults.clone())).await;
    assert_eq!(set, faults);
    assert_eq!(t.admin(Method::GET, "/faults", None).await, faults);

    let cases = [
        (
            json!({"latency": "soon"}),
            "field `latency` is not a duration like \"500ms\": \"soon\"",
        ),
        (
            json!({"status": 200}),
            "field `status` must be an HTTP status from 400 to 599, got 200",
        ),
        (
            json!({"status": 503, "status_ratio": 2}),
            "field `status_ratio` must be between 0 and 1, got 2",
        ),
        (
            json!({"endpoint": "token"}),
            "field `endpoint` must be \"auth\", \"sessions\", \"account\" or null, got \"token\"",
        ),
        (
            json!({"hang": 1}),
            "field `hang` must be true or false, got 1",
        ),
        (
            json!({"drop": true}),
            "unknown field `drop`, expected one of latency, status, status_ratio, hang, \
             malformed_body, endpoint",
        ),
    ];
    for (body, message) in cases {
        let answer = t.admin_call(Method::PUT, "/faults", Some(body)).await;
        assert_eq!(
            answer,
            (
                StatusCode::BAD_REQUEST,
                error_body("invalid_request", message)
            )
        );
    }
    let not_json = t
        .client
        .put(t.admin_url("/faults"))
        .body("latency=1s")
        .send()
        .await
        .expect("answered");
    let (status, body) = json_of(not_json).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["message"],
        "invalid JSON request body: expected value at line 1 column 1"
    );
    assert_eq!(t.admin(Method::GET, "/faults", None).await, faults);
}

#[tokio::test]
async fn faults_leave_the_admin_api_alone() {
    let t = TestSandbox::with_defaults().await;

    t.admin(
        Method::PUT,
        "/faults",
        Some(json!({"status": 503, "hang": false})),
    )
    .await;

    let (status, _) = t.admin_call(Method::GET, "/stats", None).await;
    assert_eq!(status, StatusCode::OK);
}

// === Admin: stats and the rest ===

#[tokio::test]
async fn stats_count_exactly_what_was_sent() {
    let t = TestSandbox::with_defaults().await;
    let token = t.token().await;
    t.request_token(DEFAULT_API_KEY, "sk_live_wrong").await;
    t.client
        .post(t.url("/auth/token"))
        .body("{")
        .send()
        .await
        .expect("answered");
    t.sessions(Some(&token)).await;
    t.sessions(Some(&token)).await;
    t.sessions(None).await;
    t.get("/nope", None).await;
    t.get("/account", Some(&token)).await;

    let stats = t.stats().await;

    let row = |endpoint: &str, key: &str, category: &str, status: &str, count: u64| {
        json!({"endpoint": endpoint, "key": key, "category": category, "status": status,
               "count": count})
    };
    assert_eq!(
        stats,
        json!({
            "total": 8,
            "by_endpoint": {"GET /v1/account": 1, "GET /v1/nope": 1,
                            "GET /v1/sync/sessions": 3, "POST /v1/auth/token": 3},
            "by_key": {"anonymous": 3, "pk_live_abc123": 5},
            "by_category": {"auth": 3, "sync": 3, "read": 2},
            "by_status": {"200": 4, "400": 1, "401": 2, "404": 1},
            "requests": [
                row("GET /v1/account", DEFAULT_API_KEY, "read", "200", 1),
                row("GET /v1/nope", "anonymous", "read", "404", 1),
                row("GET /v1/sync/sessions", "anonymous", "sync", "401", 1),
                row("GET /v1/sync/sessions", DEFAULT_API_KEY, "sync", "200", 2),
                row("POST /v1/auth/token", "anonymous", "auth", "400", 1),
                row("POST /v1/auth/token", DEFAULT_API_KEY, "auth", "200", 1),
                row("POST /v1/auth/token", DEFAULT_API_KEY, "auth", "401", 1),
            ],
        })
    );

    let reset = t.admin(Method::POST, "/stats/reset", None).await;
    assert_eq!(reset["total"], 0);
    assert_eq!(t.stats().await["requests"], json!([]));
}

#[tokio::test]
async fn the_state_shows_keys_without_secrets() {
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;
    t.token().await;
    t.admin(Method::POST, &format!("/keys/{OTHER_KEY}/revoke"), None)
        .await;

    let state = t.admin(Method::GET, "/state", None).await;

    assert_eq!(
        state["keys"],
        json!([{"api_key": DEFAULT_API_KEY, "revoked": false},
               {"api_key": OTHER_KEY, "revoked": true}])
    );
    assert_eq!(state["tokens"], json!({"valid": 1, "expired": 0}));
    assert!(!state.to_string().contains("sk_"), "{state}");
}

#[tokio::test]
async fn unknown_admin_calls_get_json_errors() {
    let t = TestSandbox::with_defaults().await;
    let cases = [
        (
            Method::GET,
            "/nope",
            StatusCode::NOT_FOUND,
            error_body("not_found", "no such sandbox admin endpoint"),
        ),
        (
            Method::GET,
            "/tokens/expire",
            StatusCode::METHOD_NOT_ALLOWED,
            error_body(
                "method_not_allowed",
                "method not allowed for this sandbox admin endpoint",
            ),
        ),
        (
            Method::POST,
            "",
            StatusCode::METHOD_NOT_ALLOWED,
            error_body(
                "method_not_allowed",
                "method not allowed for this sandbox admin endpoint",
            ),
        ),
        (
            Method::POST,
            "/",
            StatusCode::METHOD_NOT_ALLOWED,
            error_body(
                "method_not_allowed",
                "method not allowed for this sandbox admin endpoint",
            ),
        ),
    ];

    for (method, path, status, body) in cases {
        assert_eq!(
            t.admin_call(method, path, None).await,
            (status, body),
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_admin_root_lists_every_admin_endpoint() {
    let t = TestSandbox::with_defaults().await;

    for path in ["", "/"] {
        let response = t
            .client
            .get(t.admin_url(path))
            .send()
            .await
            .expect("answered");
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "/_sandbox{path}: {body}");
        let endpoints = body["endpoints"].as_array().expect("a list of endpoints");
        assert!(endpoints.contains(&json!({
            "method": "POST",
            "path": "/_sandbox/tokens/expire",
            "purpose": "Expire every token issued so far."
        })));
    }
}

#[tokio::test]
async fn every_listed_admin_endpoint_is_served() {
    let t = TestSandbox::with_defaults().await;
    let listed = t.admin(Method::GET, "", None).await;

    for endpoint in listed["endpoints"].as_array().expect("a list") {
        let method: Method = endpoint["method"]
            .as_str()
            .and_then(|m| m.parse().ok())
            .expect("a method");
        let path = endpoint["path"].as_str().expect("a path");
        assert!(!endpoint["purpose"].as_str().expect("a purpose").is_empty());
        let path = path
            .strip_prefix("/_sandbox")
            .expect("under /_sandbox")
            .replace("{api_key}", DEFAULT_API_KEY)
            .replace("{category}", "sync");
        let body = match (&method, path.as_str()) {
            (&Method::PUT, "/faults") => Some(json!({})),
            (&Method::PUT, _) => Some(json!({"requests_per_minute": 1})),
            _ => None,
        };

        let (status, answer) = t.admin_call(method.clone(), &path, body).await;

        assert_eq!(status, StatusCode::OK, "{method} {path}: {answer}");
    }
}

// === Lifecycle and logs ===

#[tokio::test]
async fn the_urls_point_at_the_bound_address() {
    let t = TestSandbox::with_defaults().await;
    let addr = t.sandbox.addr();

    assert!(addr.ip().is_loopback());
    assert_eq!(
        t.sandbox.base_url(),
        format!("http://127.0.0.1:{}/v1", addr.port())
    );
    assert_eq!(
        t.sandbox.admin_url(),
        format!("http://127.0.0.1:{}/_sandbox", addr.port())
    );
}

#[tokio::test]
async fn dropping_the_sandbox_stops_it() {
    let TestSandbox { sandbox, client } = TestSandbox::with_defaults().await;
    let url = format!("{}/account", sandbox.base_url());

    drop(sandbox);

    let mut refused = false;
    for _ in 0..50 {
        if client.get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the sandbox still answers after being dropped");
}

#[tokio::test]
async fn run_serves_until_told_to_stop() {
    share_log_call_sites();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let args = SandboxArgs {
        listen: ([127, 0, 0, 1], port).into(),
        token_ttl: Duration::from_secs(60),
        limit_auth: 10,
        limit_sync: 100,
        limit_read: 1000,
        rate_window: MINUTE,
        config_file: None,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(sandbox::run(args, async {
        let _ = stopped.await;
    }));
    let client = client();
    let url = format!("http://127.0.0.1:{port}/v1/auth/token");
    let body = json!({"api_key": DEFAULT_API_KEY, "api_secret": DEFAULT_API_SECRET});

    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = client.post(&url).json(&body).send().await {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, token) = json_of(answered.expect("the sandbox answers")).await;
    assert_eq!(token["expires_in"], 60);

    stop.send(()).expect("run is waiting");
    let result = tokio::time::timeout(Duration::from_secs(5), running)
        .await
        .expect("run returns after the stop")
        .expect("run does not panic");
    assert!(result.is_ok(), "{result:?}");
}

#[tokio::test]
async fn run_reports_a_bad_key_pairs_file() {
    share_log_call_sites();
    let args = SandboxArgs {
        listen: ([127, 0, 0, 1], 0).into(),
        token_ttl: Duration::from_secs(3600),
        limit_auth: 10,
        limit_sync: 100,
        limit_read: 1000,
        rate_window: MINUTE,
        config_file: Some("/nonexistent/keys.toml".into()),
    };

    let error = sandbox::run(args, std::future::pending())
        .await
        .expect_err("file is missing");

    assert_eq!(
        format!("{error:#}"),
        "cannot read key-pairs file /nonexistent/keys.toml: No such file or directory (os error 2)"
    );
}

/// Log lines written at every level, kept in memory.
#[derive(Clone, Default)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned()
    }
}

#[tokio::test]
async fn logs_never_show_secrets_or_tokens() {
    let (logs, _guard) = capture_logs();
    let t = TestSandbox::start(with_other_key(SandboxOptions::default())).await;

    let token = t.token().await;
    t.request_token(OTHER_KEY, "sk_test_wrong_guess").await;
    t.sessions(Some(&token)).await;
    t.sessions(Some("not-a-real-token-value")).await;
    t.admin(Method::POST, "/tokens/expire", None).await;

    let text = logs.text();
    assert!(text.contains("sandbox listening"), "{text}");
    assert!(text.contains("sandbox request"), "{text}");
    assert!(text.contains("sandbox admin call"), "{text}");
    for secret in [
        DEFAULT_API_SECRET,
        OTHER_SECRET,
        "sk_test_wrong_guess",
        &token,
        "not-a-real-token-value",
        "Bearer",
    ] {
        assert!(
            !text.contains(secret),
            "{secret} appears in the logs:\n{text}"
        );
    }
}

/// Captures every log line of this test thread, at the most verbose level, until the guard drops.
fn capture_logs() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
    share_log_call_sites();
    let logs = CapturedLogs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

#[tokio::test]
async fn a_secret_sent_in_place_of_a_key_is_never_logged_or_counted() {
    let (logs, _guard) = capture_logs();
    let t = TestSandbox::with_defaults().await;
    let secret_method = Method::from_bytes(DEFAULT_API_SECRET.as_bytes()).expect("a token");

    let swapped = t.request_token(DEFAULT_API_SECRET, DEFAULT_API_KEY).await;
    let in_path = t.get(&format!("/keys/{DEFAULT_API_SECRET}"), None).await;
    let as_method = t
        .client
        .request(secret_method, t.url("/nope"))
        .send()
        .await
        .expect("answered");

    assert_eq!(swapped.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(in_path.status(), StatusCode::NOT_FOUND);
    assert_eq!(as_method.status(), StatusCode::NOT_FOUND);
    let stats = t.stats().await;
    assert_eq!(stats["by_key"], json!({"anonymous": 2, "invalid": 1}));
    assert_eq!(
        stats["by_endpoint"],
        json!({"GET /v1/keys/<hidden>": 1, "OTHER /v1/nope": 1, "POST /v1/auth/token": 1})
    );
    let text = logs.text();
    assert!(text.contains("api_key=invalid"), "{text}");
    for shown in [stats.to_string(), text] {
        assert!(!shown.contains(DEFAULT_API_SECRET), "{shown}");
    }
}

#[tokio::test]
async fn admin_calls_never_store_or_echo_a_secret_as_a_key() {
    let (logs, _guard) = capture_logs();
    let t = TestSandbox::with_defaults().await;
    let revoke = format!("/keys/{DEFAULT_API_SECRET}/revoke");
    let exhaust = format!("/quota/auth/exhaust?api_key={DEFAULT_API_SECRET}");
    let consumers = json!({"requests_per_minute": 1, "api_key": DEFAULT_API_SECRET});
    let not_a_key = error_body(
        "unknown_key",
        "no such API key; API keys start with \"pk_\"",
    );
    let bad_key = error_body(
        "invalid_request",
        "api_key must be an API key (\"pk_...\"), \"anonymous\" or \"invalid\"",
    );

    let revoked = t.admin_call(Method::POST, &revoke, None).await;
    let exhausted = t.admin_call(Method::POST, &exhaust, None).await;
    let simulated = t
        .admin_call(Method::PUT, "/quota/auth/consumers", Some(consumers))
        .await;

    assert_eq!(revoked, (StatusCode::NOT_FOUND, not_a_key));
    assert_eq!(exhausted, (StatusCode::BAD_REQUEST, bad_key.clone()));
    assert_eq!(simulated, (StatusCode::BAD_REQUEST, bad_key));
    let state = t.admin(Method::GET, "/state", None).await;
    let text = logs.text();
    assert!(text.contains("/_sandbox/keys/invalid/revoke"), "{text}");
    for shown in [state.to_string(), text] {
        assert!(!shown.contains(DEFAULT_API_SECRET), "{shown}");
    }
}

#[tokio::test]
async fn a_key_pairs_file_error_never_shows_a_secret() {
    share_log_call_sites();
    let cases = [
        ("unclosed", "api_secret = \"sk_SUPERSECRET\n"),
        (
            "duplicate",
            "api_secret = \"sk_SUPERSECRET\"\napi_secret = \"sk_SUPERSECRET\"\n",
        ),
        ("trailing", "api_secret = \"sk_SUPERSECRET\" junk\n"),
        ("integer", "api_secret = 12345\n"),
        (
            "swapped",
            "api_secret = \"pk_test\"\napi_key = \"sk_SUPERSECRET\"\n",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("sandbox-secret-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir is writable");
    let inline = "credentials = [{ api_key = \"pk_a\", api_secret = \"sk_SUPERSECRET\", x = 1 }]\n";
    let files = cases
        .iter()
        .map(|(name, lines)| {
            (
                *name,
                format!("[[credentials]]\napi_key = \"pk_a\"\n{lines}"),
            )
        })
        .chain([("inline", inline.to_owned())]);

    for (name, text) in files {
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, text).expect("temp file is writable");
        let args = SandboxArgs {
            listen: ([127, 0, 0, 1], 0).into(),
            token_ttl: Duration::from_secs(3600),
            limit_auth: 10,
            limit_sync: 100,
            limit_read: 1000,
            rate_window: MINUTE,
            config_file: Some(path),
        };

        let error = sandbox::run(args, std::future::pending())
            .await
            .expect_err(name);

        for shown in [format!("{error:#}"), format!("{error:?}")] {
            assert!(!shown.contains("SUPERSECRET"), "{name}: {shown}");
            assert!(shown.contains("key-pairs file"), "{name}: {shown}");
        }
    }
}

/// hyper answers a request line it cannot take before any handler runs; the README lists this
/// under the sandbox's limitations. The URI is sent over a raw socket: the client refuses it.
#[tokio::test]
async fn a_uri_over_the_http_librarys_limit_gets_its_bare_414() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let t = TestSandbox::with_defaults().await;
    let mut socket = tokio::net::TcpStream::connect(t.sandbox.addr())
        .await
        .expect("connects");
    let request = format!(
        "GET /v1/{} HTTP/1.1\r\nHost: sandbox\r\nConnection: close\r\n\r\n",
        "a".repeat(70_000)
    );

    socket
        .write_all(request.as_bytes())
        .await
        .expect("request is sent");
    let mut answer = Vec::new();
    tokio::time::timeout(REQUEST_TIMEOUT, socket.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("answer is readable");

    let answer = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(
        answer.starts_with("http/1.1 414 uri too long\r\n"),
        "{answer}"
    );
    assert!(answer.contains("content-length: 0\r\n"), "{answer}");
    assert!(!answer.contains("content-type"), "{answer}");
    assert_eq!(t.stats().await["total"], 0);
}
