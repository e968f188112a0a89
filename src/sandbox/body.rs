//! Reading request bodies with a size cap, so a huge body gets a clean 400, not a hang or a
//! reset connection.

use std::pin::Pin;

use axum::body::{Body, Bytes, HttpBody};

/// The largest request body the sandbox reads, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Past the cap, up to this much more is read and dropped before answering: a client still
/// sending its body when the answer comes may otherwise see a reset instead of the 400.
const MAX_DRAINED_BYTES: usize = 16 * 1024 * 1024;

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body is larger than {MAX_BODY_BYTES} bytes")]
    TooLarge,
    #[error("request body could not be read")]
    Read(#[source] axum::Error),
}

/// Reads at most [`MAX_BODY_BYTES`] of `body`.
pub async fn read_limited(mut body: Body) -> Result<Bytes, BodyError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(BodyError::Read)?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > MAX_DRAINED_BYTES {
            break;
        }
        if seen <= MAX_BODY_BYTES {
            kept.extend_from_slice(data);
        }
    }
    if seen > MAX_BODY_BYTES {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_within_the_cap_is_read_whole() {
        let body = Body::from(vec![b'x'; MAX_BODY_BYTES]);

        let bytes = read_limited(body).await.expect("body fits");

        assert_eq!(bytes.len(), MAX_BODY_BYTES);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused() {
        let body = Body::from(vec![b'x'; MAX_BODY_BYTES + 1]);

        let error = read_limited(body).await.expect_err("body is too large");

        assert_eq!(error.to_string(), "request body is larger than 65536 bytes");
    }

    #[tokio::test]
    async fn an_empty_body_reads_as_empty() {
        assert!(read_limited(Body::empty()).await.expect("empty").is_empty());
    }
}
