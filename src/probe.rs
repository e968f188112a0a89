//! Probe kinds and their outcomes. Each kind lives in its own file under `probe/`; adding one
//! means a new file, a variant here and an arm in `ProbeKind::run`.

mod auth;
mod sessions;

use std::fmt;

use crate::ratelimit::Category;
use crate::target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// `POST /auth/token`: can the credentials still get a token?
    Auth,
    /// `GET /sync/sessions` with the cached token: does an authenticated call work?
    Sessions,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 2] = [ProbeKind::Auth, ProbeKind::Sessions];

    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Auth => "auth",
            ProbeKind::Sessions => "sessions",
        }
    }

    /// The rate-limit category of the probe's own request.
    pub fn category(self) -> Category {
        match self {
            ProbeKind::Auth => Category::Auth,
            ProbeKind::Sessions => Category::Sync,
        }
    }

    pub async fn run(self, target: &Target) -> ProbeOutcome {
        let result = match self {
            ProbeKind::Auth => auth::run(target).await,
            ProbeKind::Sessions => sessions::run(target).await,
        };
        match result {
            Ok(()) => ProbeOutcome::Success,
            Err(ProbeError::Failed(failure)) => ProbeOutcome::Failed(failure),
            Err(ProbeError::Skipped(reason)) => ProbeOutcome::Skipped(reason),
        }
    }
}

/// Why a probe run failed; a fixed set, used as a label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    Timeout,
    Connect,
    Unauthorized,
    RateLimited,
    ServerError,
    ClientError,
    InvalidResponse,
}

impl FailureReason {
    pub const ALL: [FailureReason; 7] = [
        FailureReason::Timeout,
        FailureReason::Connect,
        FailureReason::Unauthorized,
        FailureReason::RateLimited,
        FailureReason::ServerError,
        FailureReason::ClientError,
        FailureReason::InvalidResponse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Connect => "connect",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::RateLimited => "rate_limited",
            FailureReason::ServerError => "server_error",
            FailureReason::ClientError => "client_error",
            FailureReason::InvalidResponse => "invalid_response",
        }
    }

    /// The failure an unexpected HTTP status stands for.
    pub fn from_status(status: u16) -> FailureReason {
        match status {
            401 => FailureReason::Unauthorized,
            429 => FailureReason::RateLimited,
            500..=599 => FailureReason::ServerError,
            400..=499 => FailureReason::ClientError,
            _ => FailureReason::InvalidResponse,
        }
    }
}

/// Why a scheduled run sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    Overlap,
    Backoff,
    QuotaReserve,
}

impl SkipReason {
    pub const ALL: [SkipReason; 3] = [
        SkipReason::Overlap,
        SkipReason::Backoff,
        SkipReason::QuotaReserve,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Overlap => "overlap",
            SkipReason::Backoff => "backoff",
            SkipReason::QuotaReserve => "quota_reserve",
        }
    }
}

/// A failure with its reason and a short detail for logs and the landing page. The detail
/// never holds a secret, a token, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: FailureReason,
    pub detail: String,
}

impl Failure {
    pub fn new(reason: FailureReason, detail: impl Into<String>) -> Self {
        Failure {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.detail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeOutcome {
    Success,
    Failed(Failure),
    Skipped(SkipReason),
}

/// How a probe step ends early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeError {
    Failed(Failure),
    Skipped(SkipReason),
}

impl From<Failure> for ProbeError {
    fn from(failure: Failure) -> Self {
        ProbeError::Failed(failure)
    }
}
