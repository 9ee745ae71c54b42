//! sign: sign the trusted digest (and each platform manifest) with the pipeline's key.

use super::{PipelineError, Repositories, pinned};
use crate::registry::Registry;
use crate::selection::Limits;
use crate::sign::Signer;
use crate::sign::store::{SignMode, SignOptions, sign_image};
use serde::{Deserialize, Serialize};

/// Input of sign.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignRequest {
    /// The trusted image, pinned.
    pub image: String,
}

/// Result of sign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignResult {
    /// The signed image, pinned.
    pub image: String,
    /// Digests signed (the index and each platform).
    pub digests_signed: usize,
    /// Signatures written now (0 on a repeat).
    pub signatures_created: usize,
}

/// Sign the trusted digest (and each platform). The claims carry the annotations the image
/// already has (source digest, gate summary), not anything from the request.
pub async fn sign(
    reg: &dyn Registry,
    repos: &Repositories,
    signer: &dyn Signer,
    mode: SignMode,
    req: &SignRequest,
) -> Result<SignResult, PipelineError> {
    let image = pinned("image", &req.image)?;
    repos.in_trusted(&image, "image")?;
    // The trusted digest passed promote-and-annotate's selection under the policy's limits;
    // sign reads manifests only and is not the place to refuse it afresh.
    let opts = SignOptions {
        mode,
        limits: Limits::UNBOUNDED,
        ..SignOptions::default()
    };
    let report = sign_image(reg, &image, signer, &opts).await?;
    Ok(SignResult {
        image: image.to_string(),
        digests_signed: report.signed.len(),
        signatures_created: report.signatures_created as usize,
    })
}
