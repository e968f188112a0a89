//! The HTTP client of one target: built once and reused, with connect and total timeouts, a
//! cap on body size, and redirects followed only within the target's origin.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap};
use reqwest::redirect::{Attempt, Policy};
use reqwest::{StatusCode, Url};
use serde_json::json;

use crate::config::TargetConfig;
use crate::secret::Secret;

const MAX_REDIRECTS: usize = 3;

/// A response read whole, within the size cap.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Why no response could be read. Messages never include the request's headers or body.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("response body larger than {0} bytes")]
    BodyTooLarge(u64),
    #[error("cannot read response: {0}")]
    Read(String),
}

impl From<reqwest::Error> for RequestError {
    fn from(error: reqwest::Error) -> Self {
        // reqwest's message names the URL; ours never carry a query or credentials.
        let error = error.without_url();
        if error.is_timeout() {
            RequestError::Timeout
        } else if error.is_connect() {
            RequestError::Connect(chain(&error))
        } else {
            RequestError::Read(chain(&error))
        }
    }
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base_url: Url,
    max_body: u64,
}

impl ApiClient {
    pub fn new(target: &TargetConfig) -> Result<Self, reqwest::Error> {
        let origin = target.base_url.origin();
        let policy = Policy::custom(move |attempt: Attempt| {
            if attempt.previous().len() > MAX_REDIRECTS || attempt.url().origin() != origin {
                attempt.stop()
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "pinkcloudsync-exporter/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(target.connect_timeout)
            .redirect(policy)
            .build()?;
        Ok(ApiClient {
            http,
            base_url: target.base_url.clone(),
            max_body: target.max_response_bytes,
        })
    }

    fn endpoint(&self, path: &str) -> Url {
        let mut url = self.base_url.clone();
        let joined = format!("{}{path}", url.path());
        url.set_path(&joined);
        url
    }

    /// `POST {base_url}/auth/token`.
    pub async fn request_token(
        &self,
        api_key: &str,
        api_secret: &Secret,
        timeout: Duration,
    ) -> Result<ApiResponse, RequestError> {
        let body = json!({ "api_key": api_key, "api_secret": api_secret.expose() });
        let request = self
            .http
            .post(self.endpoint("/auth/token"))
            .timeout(timeout)
            .json(&body);
        self.read(request.send().await?).await
    }

    /// `GET {base_url}/sync/sessions` with the Bearer token.
    pub async fn list_sessions(
        &self,
        token: &Secret,
        timeout: Duration,
    ) -> Result<ApiResponse, RequestError> {
        let request = self
            .http
            .get(self.endpoint("/sync/sessions"))
            .timeout(timeout)
            .header(AUTHORIZATION, format!("Bearer {}", token.expose()));
        self.read(request.send().await?).await
    }

    async fn read(&self, mut response: reqwest::Response) -> Result<ApiResponse, RequestError> {
        let declared = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|length| length > self.max_body) {
            return Err(RequestError::BodyTooLarge(self.max_body));
        }

        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(RequestError::BodyTooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(ApiResponse {
            status: response.status(),
            headers: response.headers().clone(),
            body,
        })
    }
}
