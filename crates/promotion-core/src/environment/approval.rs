//! Approvals: OCI 1.1 referrers of a trusted digest that ask for its promotion to an environment.
//!
//! An approval is a small artifact manifest — the empty config and one empty layer, as the OCI
//! image spec recommends for artifacts without content — with `artifactType` from the
//! environments document, `subject` = the approved digest, and annotations naming the target
//! environment (and optionally the build id and who approved). Pushing one to the trusted
//! repository makes ECR emit an `ECR Referrer Action` event; the state machine then runs the
//! environment promotion. The manifest carries no timestamp, so approving twice is idempotent
//! (same bytes, same digest, listed once in the fallback index).

use super::EnvError;
use super::config::Environments;
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc, OCI_EMPTY, OCI_MANIFEST, RawManifest};
use crate::reference::ImageRef;
use crate::referrers::{self, descriptor_json, put_small_blob};
use crate::registry::Registry;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;

/// The annotation naming the target environment.
pub const ANNOTATION_ENVIRONMENT: &str = "io.ecr-promotion.environment";
/// The annotation carrying the build id to use in the environment tag (optional).
pub const ANNOTATION_BUILD: &str = "io.ecr-promotion.build";
/// The annotation naming who or what approved (optional, free text).
pub const ANNOTATION_APPROVED_BY: &str = "io.ecr-promotion.approved-by";

/// One approval, as found in a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The approval manifest's digest.
    pub digest: Digest,
    /// The approved digest.
    pub subject: Digest,
    /// The target environment.
    pub environment: String,
    /// The build id asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Who approved, if said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_by: Option<String>,
}

/// What `push_approval` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    /// Always `approve`.
    pub operation: &'static str,
    /// The repository.
    pub repository: String,
    /// The approval.
    pub approval: Approval,
    /// Whether the approval manifest was new (false: the same approval existed already).
    pub created: bool,
}

/// The approval manifest for `subject`.
fn approval_manifest(
    subject: &RawManifest,
    artifact_type: &str,
    annotations: &BTreeMap<String, String>,
) -> Result<RawManifest, EnvError> {
    let empty = Digest::of(b"{}");
    let mut empty_desc = descriptor_json(OCI_EMPTY, &empty, 2);
    // The empty descriptor may embed its two bytes (`e30=` is base64 of `{}`).
    empty_desc["data"] = "e30=".into();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": empty_desc,
        "layers": [empty_desc],
        "subject": descriptor_json(&subject.media_type, &subject.digest, subject.bytes.len()),
        "annotations": annotations,
    });
    let bytes = serde_json::to_vec(&m).map_err(|e| EnvError::Input(e.to_string()))?;
    Ok(RawManifest::new(
        Bytes::from(bytes),
        OCI_MANIFEST.to_owned(),
    ))
}

/// Push an approval of `image` (tag or digest; a tag is resolved once) for `environment`.
/// The environment must exist; the build id, when given, must make a valid tag.
pub async fn push_approval<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    envs: &Environments,
    environment: &str,
    build: Option<&str>,
    approved_by: Option<&str>,
) -> Result<ApprovalReport, EnvError> {
    let env = envs.get(environment)?;
    if let Some(b) = build {
        env.template.render(b)?;
    }
    if let Some(by) = approved_by
        && (by.is_empty() || by.len() > 256 || by.chars().any(char::is_control))
    {
        return Err(EnvError::Input(
            "--by must be 1 to 256 printable characters".into(),
        ));
    }
    let subject = super::manifest_of(reg, image).await?;
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_ENVIRONMENT.to_owned(), env.name.clone());
    if let Some(b) = build {
        annotations.insert(ANNOTATION_BUILD.to_owned(), b.to_owned());
    }
    if let Some(by) = approved_by {
        annotations.insert(ANNOTATION_APPROVED_BY.to_owned(), by.to_owned());
    }
    let raw = approval_manifest(&subject, &envs.approval_artifact_type, &annotations)?;
    let created = reg
        .head_manifest(image, raw.digest.as_str())
        .await?
        .is_none();
    put_small_blob(reg, image, &Bytes::from_static(b"{}")).await?;
    referrers::attach(
        reg,
        image,
        &subject.digest,
        &raw,
        &envs.approval_artifact_type,
    )
    .await?;
    Ok(ApprovalReport {
        operation: "approve",
        repository: image.repo_path(),
        approval: Approval {
            digest: raw.digest,
            subject: subject.digest,
            environment: env.name.clone(),
            build: build.map(str::to_owned),
            approved_by: approved_by.map(str::to_owned),
        },
        created,
    })
}

fn parse_approval(
    raw: &RawManifest,
    envs: &Environments,
    what: &str,
) -> Result<Approval, EnvError> {
    let not = |why: String| EnvError::Input(format!("{what} is not an approval: {why}"));
    let (doc, kind, _) =
        ManifestDoc::parse(&raw.bytes, Some(&raw.media_type)).map_err(|e| not(e.to_string()))?;
    let subject = match (kind, &doc.subject) {
        (Kind::Manifest, Some(s)) => s.digest.clone(),
        _ => return Err(not("it has no subject".into())),
    };
    if doc.artifact_type.as_deref() != Some(envs.approval_artifact_type.as_str()) {
        return Err(not(format!(
            "its artifact type is {:?}, not {:?}",
            doc.artifact_type.as_deref().unwrap_or(""),
            envs.approval_artifact_type
        )));
    }
    let environment = doc.annotations.get(ANNOTATION_ENVIRONMENT).ok_or_else(|| {
        not(format!(
            "the annotation {ANNOTATION_ENVIRONMENT} is missing"
        ))
    })?;
    let env = envs.get(environment)?;
    let build = doc.annotations.get(ANNOTATION_BUILD).cloned();
    if let Some(b) = &build {
        env.template.render(b)?;
    }
    Ok(Approval {
        digest: raw.digest.clone(),
        subject,
        environment: env.name.clone(),
        build,
        approved_by: doc.annotations.get(ANNOTATION_APPROVED_BY).cloned(),
    })
}

/// The approvals an event names. ECR's `ECR Referrer Action` carries one `image-digest`, and AWS
/// does not document whether it is the referrer's or the subject's, so both are accepted:
/// - the digest of an approval manifest: that approval;
/// - the digest of an image: every approval among its referrers (maybe none).
///
/// Anything else with a subject (a signature, an SBOM) is `Input.Invalid`.
pub async fn resolve_approvals<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    envs: &Environments,
) -> Result<Vec<Approval>, EnvError> {
    let pinned = repo.pinned(digest.clone());
    let raw = super::manifest_of(reg, &pinned).await?;
    let (doc, _, _) = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        .map_err(|e| EnvError::Input(format!("{pinned}: {e}")))?;
    if doc.subject.is_some() {
        return Ok(vec![parse_approval(&raw, envs, &pinned.to_string())?]);
    }
    let mut out = Vec::new();
    for d in referrers::list(reg, repo, digest).await?.descriptors {
        if d.artifact_type.as_deref() != Some(envs.approval_artifact_type.as_str()) {
            continue;
        }
        let what = repo.pinned(d.digest.clone());
        let raw = super::manifest_of(reg, &what).await?;
        out.push(parse_approval(&raw, envs, &what.to_string())?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};
    use crate::registry::memory::{Behaviour, MemoryRegistry};

    fn repo() -> ImageRef {
        "registry.test/trusted/app".parse().unwrap()
    }

    fn image(reg: &MemoryRegistry) -> Digest {
        let m = RawManifest::new(
            Bytes::from_static(
                br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#,
            ),
            OCI_MANIFEST.into(),
        );
        let d = m.digest.clone();
        reg.put_manifest_bytes(&repo(), Some("1.0"), m);
        d
    }

    #[tokio::test]
    async fn pushed_approvals_are_found_from_either_digest_and_pushing_twice_adds_nothing() {
        for referrers_api in [false, true] {
            let reg = MemoryRegistry::new();
            reg.set_behaviour(Behaviour {
                referrers_api,
                ..Behaviour::default()
            });
            let subject = image(&reg);
            let envs = Environments::default();
            let img = repo().with_tag("1.0");
            let first = push_approval(&reg, &img, &envs, "staging", Some("42"), Some("qa-suite"))
                .await
                .unwrap();
            assert!(first.created);
            assert_eq!(first.approval.subject, subject);
            let again = push_approval(&reg, &img, &envs, "staging", Some("42"), Some("qa-suite"))
                .await
                .unwrap();
            assert!(!again.created);
            assert_eq!(again.approval.digest, first.approval.digest);

            // From the subject's digest: one approval, listed once.
            let found = resolve_approvals(&reg, &repo(), &subject, &envs)
                .await
                .unwrap();
            assert_eq!(
                found,
                std::slice::from_ref(&first.approval),
                "referrers API: {referrers_api}"
            );
            // From the approval's own digest.
            let found = resolve_approvals(&reg, &repo(), &first.approval.digest, &envs)
                .await
                .unwrap();
            assert_eq!(found, std::slice::from_ref(&first.approval));
            assert_eq!(found[0].build.as_deref(), Some("42"));
            assert_eq!(found[0].approved_by.as_deref(), Some("qa-suite"));
        }
    }

    #[tokio::test]
    async fn bad_approvals_change_nothing_and_other_referrers_are_not_approvals() {
        let reg = MemoryRegistry::new();
        let subject = image(&reg);
        let envs = Environments::default();
        let img = repo().pinned(subject.clone());
        let before = reg.tags(&repo());
        for (env, build) in [("qa", None), ("prod", Some("a/b"))] {
            let err = push_approval(&reg, &img, &envs, env, build, None)
                .await
                .unwrap_err();
            assert_eq!(err.error_type(), ErrorType::InputInvalid, "{err}");
        }
        assert_eq!(reg.tags(&repo()), before, "nothing written");
        let missing = repo().pinned(Digest::of(b"nope"));
        let err = push_approval(&reg, &missing, &envs, "dev", None, None)
            .await
            .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::RegistryNotFound, "{err}");

        // An approval of another artifact type (say, with another pipeline's configuration) is
        // not ours.
        let other = Environments::parse(
            "environments: [{name: dev}]\napproval_artifact_type: application/x.other",
        )
        .unwrap();
        let pushed = push_approval(&reg, &img, &other, "dev", None, None)
            .await
            .unwrap();
        assert!(
            resolve_approvals(&reg, &repo(), &subject, &envs)
                .await
                .unwrap()
                .is_empty()
        );
        let err = resolve_approvals(&reg, &repo(), &pushed.approval.digest, &envs)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("artifact type is \"application/x.other\""),
            "{err}"
        );
    }
}
