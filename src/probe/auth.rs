//! The auth probe: can the target's credentials still obtain a token? A token it obtains
//! replaces the cached one, so the sessions probe rarely needs a fetch of its own.

use crate::probe::{ProbeError, ProbeKind};
use crate::target::Target;

pub async fn run(target: &Target) -> Result<(), ProbeError> {
    target
        .tokens
        .refresh(|| target.obtain_token(ProbeKind::Auth))
        .await?;
    Ok(())
}
