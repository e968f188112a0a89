//! The sessions probe: an authenticated call (`GET /sync/sessions`) with the cached token.
//! A 401 on a cached token drops it, fetches a new one and retries once.

use crate::client::ApiResponse;
use crate::probe::{Failure, FailureReason, ProbeError, ProbeKind};
use crate::ratelimit::Category;
use crate::target::{Target, json_error, status_failure};
use crate::token::{Origin, Token};

const KIND: ProbeKind = ProbeKind::Sessions;

pub async fn run(target: &Target) -> Result<(), ProbeError> {
    let (token, origin) = token(target).await?;
    let mut response = list_sessions(target, &token).await?;

    if response.status.as_u16() == 401 {
        // A rejected token is never used again; only one that came from the cache is worth a
        // retry with a new one.
        target.count_rejected_token();
        target.tokens.invalidate(&token.value).await;
        if origin == Origin::Cached {
            let (token, _) = self::token(target).await?;
            response = list_sessions(target, &token).await?;
        }
    }

    check(&response)
}

async fn token(target: &Target) -> Result<(Token, Origin), ProbeError> {
    target
        .tokens
        .get_or_fetch(|| target.obtain_token(KIND))
        .await
}

async fn list_sessions(target: &Target, token: &Token) -> Result<ApiResponse, ProbeError> {
    let timeout = target.timeout(KIND);
    target
        .send(KIND, Category::Sync, || {
            target.client().list_sessions(&token.value, timeout)
        })
        .await
}

/// A 200 with a JSON body.
fn check(response: &ApiResponse) -> Result<(), ProbeError> {
    if response.status.as_u16() != 200 {
        return Err(status_failure(response).into());
    }
    serde_json::from_slice::<serde_json::Value>(&response.body).map_err(|e| {
        let detail = format!("sessions response is not JSON ({})", json_error(&e));
        Failure::new(FailureReason::InvalidResponse, detail)
    })?;
    Ok(())
}
