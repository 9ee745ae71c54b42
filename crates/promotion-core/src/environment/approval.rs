//! Signed approvals: who asked for a trusted digest to enter an environment, provably.
//!
//! An approval is an in-toto Statement v1 signed into a DSSE envelope ([`crate::sign::dsse`]):
//! its subject is the trusted digest, named by the trusted repository; its predicate type is
//! [`APPROVAL_PREDICATE`]; its predicate says which environment, which build id (optional), who
//! claims to approve and when. The envelope travels in a Sigstore bundle v0.3, the one layer of
//! a small OCI artifact whose `artifactType` is the environments document's approval type and
//! whose `subject` is the trusted digest. That artifact is pushed to the application's
//! **approvals repository**, which approvers may push to and nothing but the pipeline reads;
//! approvers never get write access to trusted.
//!
//! [`verify_approval`] is what environment promotion runs before anything else: among the
//! approval referrers of the digest (through the referrers API *and* the fallback index, since
//! a registry that refuses a referrer of an index gets the approval listed there instead) it
//! looks for one whose signature verifies with a key of an approver of the target environment,
//! whose statement names exactly this digest in exactly this trusted repository, and whose
//! predicate names exactly this environment. Everything the artifact says outside the signed
//! statement (annotations, the OCI `subject`) is a hint for listing only. The verified approval
//! is then copied into the trusted repository as a referrer of the digest
//! ([`record_approval`]), so the image carries its history.
//!
//! Refusals are `Approval.Missing` (no approval artifact for the digest at all, or the
//! environment needs one and has no approvers) and `Approval.Invalid` (approvals exist, none
//! valid; the message says why for each: unsigned, wrong key, another digest, another
//! repository, another environment).

use super::EnvError;
use super::config::{ApproverKey, Environment, Environments};
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc, OCI_EMPTY, OCI_MANIFEST, RawManifest};
use crate::reference::ImageRef;
use crate::referrers::{self, descriptor_json, put_small_blob, read_small_blob};
use crate::registry::{Registry, RegistryError};
use crate::sign::bundle::{BUNDLE_MEDIA_TYPE, Bundle, MAX_BUNDLE_BYTES};
use crate::sign::dsse::{self, Statement, Subject};
use crate::sign::{PublicKey, SignError, Signer};
use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The predicate type of an approval statement (stable: verifiers match on it).
pub const APPROVAL_PREDICATE: &str = "urn:ecr-promotion:approval:v1";
/// The annotation naming the target environment (a listing hint; the statement decides).
pub const ANNOTATION_ENVIRONMENT: &str = "io.ecr-promotion.environment";
/// The annotation carrying the build id (a listing hint).
pub const ANNOTATION_BUILD: &str = "io.ecr-promotion.build";
/// The annotation naming who approved (a listing hint; in trusted, the verified approver).
pub const ANNOTATION_APPROVED_BY: &str = "io.ecr-promotion.approved-by";
/// When the approval was signed (RFC 3339).
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// Approval referrers read per digest before giving up (a flood is refused, not walked).
const MAX_CANDIDATES: usize = 64;

/// The predicate of an approval statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApprovalPredicate {
    /// The environment the digest may enter.
    pub environment: String,
    /// The build id for the environment tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Who signed, as they say (free text; reports use the configured approver's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// When it was signed (RFC 3339).
    pub approved_at: String,
}

/// The public keys of each environment's approvers, resolved once (KMS keys fetched).
#[derive(Debug, Clone, Default)]
pub struct ApproverKeys {
    by_env: BTreeMap<String, Vec<(String, PublicKey)>>,
}

impl ApproverKeys {
    /// The approvers of `env`: (configured name, key).
    pub fn of(&self, env: &str) -> &[(String, PublicKey)] {
        self.by_env.get(env).map_or(&[], Vec::as_slice)
    }

    /// Keys given directly (tests, the CLI's `--approver` files).
    pub fn insert(&mut self, env: &str, name: &str, key: PublicKey) {
        self.by_env
            .entry(env.to_owned())
            .or_default()
            .push((name.to_owned(), key));
    }
}

/// Fetches the public key of an `awskms:///` approver.
#[async_trait]
pub trait KeySource: Send + Sync {
    /// The public key of `uri` (`awskms:///<key>`).
    async fn public_key(&self, uri: &str) -> Result<PublicKey, SignError>;
}

/// A [`KeySource`] that has no KMS: any `awskms:///` approver is an error naming it.
pub struct NoKms;

#[async_trait]
impl KeySource for NoKms {
    async fn public_key(&self, uri: &str) -> Result<PublicKey, SignError> {
        Err(SignError::Key(format!(
            "approver key {uri}: no KMS client is configured to fetch it"
        )))
    }
}

/// Resolve every approver's key of `envs` (PEM keys as parsed, KMS keys through `kms`).
pub async fn approver_keys(
    envs: &Environments,
    kms: &dyn KeySource,
) -> Result<ApproverKeys, SignError> {
    let mut out = ApproverKeys::default();
    for e in envs.all() {
        for a in &e.approvers {
            let key = match &a.key {
                ApproverKey::Pem(k) => k.clone(),
                ApproverKey::Kms(uri) => kms.public_key(uri).await.map_err(|err| {
                    SignError::Key(format!("{}: approver {}: {err}", e.name, a.name))
                })?,
            };
            out.insert(&e.name, &a.name, key);
        }
    }
    Ok(out)
}

/// What [`push_approval`] did.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalReport {
    /// Always `approve`.
    pub operation: &'static str,
    /// The approvals repository written to.
    pub repository: String,
    /// The approved image (trusted repository).
    pub image: String,
    /// The approval artifact's digest.
    pub approval: Digest,
    /// The approved digest.
    pub subject: Digest,
    /// The environment.
    pub environment: String,
    /// The build id, if given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The key that signed (`ecdsa-p256`, …) and its Sigstore hint.
    pub key: String,
    /// Anything an operator should know (fallbacks).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// What to approve.
pub struct ApprovalInput<'a> {
    /// The environment.
    pub environment: &'a str,
    /// The build id for the environment tag.
    pub build: Option<&'a str>,
    /// Who approves (free text, recorded in the signed predicate).
    pub approved_by: Option<&'a str>,
    /// Now, RFC 3339.
    pub time: &'a str,
}

/// Sign an approval of `image` (trusted; a tag is resolved once) with `signer` and push it to
/// `approvals` as a referrer of the approved digest. The environment must exist and the build
/// id must make a valid tag; nothing is written otherwise.
pub async fn push_approval<R: Registry + ?Sized>(
    reg: &R,
    image: &ImageRef,
    approvals: &ImageRef,
    envs: &Environments,
    input: &ApprovalInput<'_>,
    signer: &dyn Signer,
) -> Result<ApprovalReport, EnvError> {
    let env = envs.get(input.environment)?;
    if let Some(b) = input.build {
        env.template.render(b)?;
    }
    if let Some(by) = input.approved_by
        && (by.is_empty() || by.len() > 256 || by.chars().any(char::is_control))
    {
        return Err(EnvError::Input(
            "--by must be 1 to 256 printable characters".into(),
        ));
    }
    if !approvals.same_registry(image) {
        return Err(EnvError::Input(format!(
            "the approvals repository {} must be in the image's registry {}",
            approvals.repo_path(),
            image.registry()
        )));
    }
    let subject = super::manifest_of(reg, image).await?;
    let predicate = ApprovalPredicate {
        environment: env.name.clone(),
        build: input.build.map(str::to_owned),
        approver: input.approved_by.map(str::to_owned),
        approved_at: input.time.to_owned(),
    };
    let statement = Statement::new(
        vec![Subject::new(
            &image.repo_path(),
            &subject.digest,
            &BTreeMap::new(),
        )],
        APPROVAL_PREDICATE,
        serde_json::to_value(&predicate).map_err(|e| EnvError::Input(e.to_string()))?,
    );
    let envelope = dsse::seal(&statement, signer).await?;
    let bundle = Bundle::new(envelope, signer.public_key())?;
    let stored = store(
        reg,
        approvals,
        &subject,
        &bundle.to_bytes()?,
        &predicate,
        &envs.approval_artifact_type,
    )
    .await?;
    Ok(ApprovalReport {
        operation: "approve",
        repository: approvals.repo_path(),
        image: image.pinned(subject.digest.clone()).to_string(),
        approval: stored.digest,
        subject: subject.digest,
        environment: env.name.clone(),
        build: predicate.build,
        key: format!(
            "{} {}",
            signer.public_key().kind(),
            signer.public_key().hint()?
        ),
        warnings: stored.warning.into_iter().collect(),
    })
}

struct Stored {
    digest: Digest,
    warning: Option<String>,
}

/// Store a bundle as an approval artifact of `subject` in `repo`: a referrer when the registry
/// takes it; where it refuses a referrer of an index (ECR's 405, containers-roadmap#2783), the
/// same artifact without `subject`, listed in the `sha256-<hex>` fallback index, which
/// [`candidates`] reads too. Same bytes, same digest: storing twice changes nothing.
async fn store<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    subject: &RawManifest,
    bundle: &Bytes,
    predicate: &ApprovalPredicate,
    artifact_type: &str,
) -> Result<Stored, EnvError> {
    let (bd, _) = put_small_blob(reg, repo, bundle).await?;
    let (ed, _) = put_small_blob(reg, repo, &Bytes::from_static(b"{}")).await?;
    let mut annotations = BTreeMap::from([
        (ANNOTATION_ENVIRONMENT, predicate.environment.clone()),
        (ANNOTATION_CREATED, predicate.approved_at.clone()),
        (
            crate::sign::bundle::PREDICATE_ANNOTATION,
            APPROVAL_PREDICATE.to_owned(),
        ),
    ]);
    if let Some(b) = &predicate.build {
        annotations.insert(ANNOTATION_BUILD, b.clone());
    }
    if let Some(a) = &predicate.approver {
        annotations.insert(ANNOTATION_APPROVED_BY, a.clone());
    }
    let manifest = |with_subject: bool| -> Result<RawManifest, EnvError> {
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": descriptor_json(OCI_EMPTY, &ed, 2),
            "layers": [descriptor_json(BUNDLE_MEDIA_TYPE, &bd, bundle.len())],
            "annotations": annotations,
        });
        if with_subject {
            m["subject"] =
                descriptor_json(&subject.media_type, &subject.digest, subject.bytes.len());
        }
        let bytes = serde_json::to_vec(&m).map_err(|e| EnvError::Input(e.to_string()))?;
        Ok(RawManifest::new(
            Bytes::from(bytes),
            OCI_MANIFEST.to_owned(),
        ))
    };
    let raw = manifest(true)?;
    match referrers::attach(reg, repo, &subject.digest, &raw, artifact_type).await {
        Ok(()) => Ok(Stored {
            digest: raw.digest,
            warning: None,
        }),
        Err(RegistryError::Protocol { detail, .. })
            if detail.starts_with("HTTP 405") && is_index(subject) =>
        {
            let raw = manifest(false)?;
            reg.put_manifest(repo, raw.digest.as_str(), &raw).await?;
            let mut d = raw.descriptor();
            d.artifact_type = Some(artifact_type.to_owned());
            referrers::merge_fallback(reg, repo, &subject.digest, &[d], None).await?;
            let w = format!(
                "the registry refused a referrer whose subject is the index {} (HTTP 405, as ECR \
                 does); the approval is listed in the {} index instead",
                subject.digest,
                subject.digest.fallback_tag()
            );
            tracing::warn!(digest = %subject.digest, "{w}");
            Ok(Stored {
                digest: raw.digest,
                warning: Some(w),
            })
        }
        Err(e) => Err(e.into()),
    }
}

fn is_index(m: &RawManifest) -> bool {
    matches!(
        ManifestDoc::parse(&m.bytes, Some(&m.media_type)),
        Ok((_, Kind::Index, _))
    )
}

/// An approval whose signature and statement verified.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifiedApproval {
    /// The approval artifact in the approvals repository.
    pub manifest: Digest,
    /// The approved digest.
    pub subject: Digest,
    /// The configured name of the approver whose key verified.
    pub approver: String,
    /// What it says.
    pub predicate: ApprovalPredicate,
    /// The bundle, as stored (copied into trusted by [`record_approval`]).
    #[serde(skip)]
    pub bundle: Bytes,
}

/// One approval artifact read back (unverified).
struct Candidate {
    manifest: Digest,
    bundle: Result<(Bundle, Bytes), String>,
}

/// The approval artifacts listed for `digest` in `repo`: through the referrers API and the
/// fallback index both (a registry with the API may still hold fallback-listed approvals).
async fn candidates<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    artifact_type: &str,
) -> Result<Vec<Candidate>, EnvError> {
    let mut listed: Vec<Digest> = Vec::new();
    for d in referrers::list_every_route(reg, repo, digest).await? {
        if d.artifact_type.as_deref() == Some(artifact_type) && !listed.contains(&d.digest) {
            listed.push(d.digest);
        }
    }
    if listed.len() > MAX_CANDIDATES {
        return Err(EnvError::ApprovalInvalid(format!(
            "{}@{digest} has {} approval artifacts, more than the {MAX_CANDIDATES} read",
            repo.repo_path(),
            listed.len()
        )));
    }
    let mut out = Vec::new();
    for m in listed {
        let Some(raw) = referrers::get_optional(reg, repo, m.as_str()).await? else {
            continue;
        };
        out.push(Candidate {
            manifest: m,
            bundle: read_bundle(reg, repo, &raw).await?,
        });
    }
    Ok(out)
}

/// The bundle of an approval artifact; `Err(why)` when it holds none (an unsigned approval).
async fn read_bundle<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    raw: &RawManifest,
) -> Result<Result<(Bundle, Bytes), String>, EnvError> {
    let Ok((doc, Kind::Manifest, _)) = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type)) else {
        return Ok(Err("not an image manifest".into()));
    };
    let Some(layer) = doc
        .layers
        .iter()
        .find(|l| l.media_type == BUNDLE_MEDIA_TYPE)
    else {
        return Ok(Err("unsigned: it holds no Sigstore bundle layer".to_owned()));
    };
    let bytes = match read_small_blob(reg, repo, &layer.digest, layer.size, MAX_BUNDLE_BYTES).await
    {
        Ok(b) => b,
        Err(RegistryError::NotFound { .. } | RegistryError::DigestMismatch { .. }) => {
            return Ok(Err("its bundle layer is missing or corrupt".into()));
        }
        Err(RegistryError::Manifest { .. }) => {
            return Ok(Err(format!(
                "its bundle layer is larger than {MAX_BUNDLE_BYTES} bytes"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    Ok(serde_json::from_slice::<Bundle>(&bytes)
        .map(|b| (b, bytes))
        .map_err(|e| format!("its bundle does not parse: {e}")))
}

/// Why one candidate is not a valid approval (for the refusal message).
fn check(
    c: &Candidate,
    trusted: &ImageRef,
    digest: &Digest,
    env: &Environment,
    keys: &[(String, PublicKey)],
) -> Result<VerifiedApproval, String> {
    let (bundle, bytes) = c.bundle.as_ref().map_err(Clone::clone)?;
    let mut opened = None;
    for (name, key) in keys {
        if let Ok(st) = dsse::open(&bundle.dsse_envelope, key) {
            opened = Some((name, st));
            break;
        }
    }
    let Some((approver, st)) = opened else {
        return Err(format!(
            "its signature does not verify with the key of any approver of {} ({})",
            env.name,
            keys.iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    };
    if st.predicate_type != APPROVAL_PREDICATE {
        return Err(format!(
            "its statement's predicate type is {:?}, not {APPROVAL_PREDICATE:?}",
            st.predicate_type
        ));
    }
    let name = trusted.repo_path();
    match st.subject_for(digest) {
        None => {
            return Err(format!(
                "it approves {}, not {digest}",
                st.subject
                    .iter()
                    .filter_map(|s| s.sha256())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(s) if s.name != name => {
            return Err(format!(
                "it approves the digest in {}, not in {name}",
                s.name
            ));
        }
        Some(_) => {}
    }
    let predicate: ApprovalPredicate = serde_json::from_value(st.predicate.clone())
        .map_err(|e| format!("its predicate is not an approval: {e}"))?;
    if predicate.environment != env.name {
        return Err(format!(
            "it approves environment {:?}, not {:?}",
            predicate.environment, env.name
        ));
    }
    if let Some(b) = &predicate.build {
        env.template
            .render(b)
            .map_err(|e| format!("its build id: {e}"))?;
    }
    Ok(VerifiedApproval {
        manifest: c.manifest.clone(),
        subject: digest.clone(),
        approver: approver.clone(),
        predicate,
        bundle: bytes.clone(),
    })
}

/// The approval that lets `trusted` (pinned) enter `env`: a valid approval by an approver of
/// `env` among the approval artifacts of the digest in `approvals`; the newest when several
/// are valid. `Approval.Missing` when there is none or `env` has no approvers,
/// `Approval.Invalid` (saying why for each) when none is valid.
pub async fn verify_approval<R: Registry + ?Sized>(
    reg: &R,
    approvals: &ImageRef,
    trusted: &ImageRef,
    envs: &Environments,
    env: &Environment,
    keys: &ApproverKeys,
) -> Result<VerifiedApproval, EnvError> {
    let digest = trusted.digest().ok_or_else(|| {
        EnvError::Input(format!("{trusted}: an approval is checked for a digest"))
    })?;
    let found = candidates(reg, approvals, digest, &envs.approval_artifact_type).await?;
    choose(&found, approvals, trusted, digest, envs, env, keys)
}

/// The newest valid approval for `env` among `found` (already read), or why there is none.
fn choose(
    found: &[Candidate],
    approvals: &ImageRef,
    trusted: &ImageRef,
    digest: &Digest,
    envs: &Environments,
    env: &Environment,
    keys: &ApproverKeys,
) -> Result<VerifiedApproval, EnvError> {
    let approvers = keys.of(&env.name);
    if approvers.is_empty() {
        return Err(EnvError::ApprovalMissing(format!(
            "{} requires a signed approval, and the environments document lists no approvers \
             for it",
            env.name
        )));
    }
    if found.is_empty() {
        return Err(EnvError::ApprovalMissing(format!(
            "{trusted} has no approval for {} in {} ({} referrers of the digest)",
            env.name,
            approvals.repo_path(),
            envs.approval_artifact_type
        )));
    }
    let mut valid = Vec::new();
    let mut reasons = Vec::new();
    for c in found {
        match check(c, trusted, digest, env, approvers) {
            Ok(v) => valid.push(v),
            Err(why) => reasons.push(format!("{}: {why}", c.manifest)),
        }
    }
    // RFC 3339 UTC timestamps of one format sort as strings.
    valid.sort_by(|a, b| b.predicate.approved_at.cmp(&a.predicate.approved_at));
    valid.into_iter().next().ok_or_else(|| {
        EnvError::ApprovalInvalid(format!(
            "{trusted}: no valid approval for {} in {} — {}",
            env.name,
            approvals.repo_path(),
            reasons.join("; ")
        ))
    })
}

/// The approvals of `digest` in `approvals` that verify for some environment (the earliest
/// environment first) — what an approval event asks for. Errors as [`verify_approval`] when
/// none verifies for any environment.
pub async fn verified_approvals<R: Registry + ?Sized>(
    reg: &R,
    approvals: &ImageRef,
    trusted: &ImageRef,
    envs: &Environments,
    keys: &ApproverKeys,
) -> Result<Vec<VerifiedApproval>, EnvError> {
    let digest = trusted.digest().ok_or_else(|| {
        EnvError::Input(format!("{trusted}: an approval is checked for a digest"))
    })?;
    // Read once; every environment is checked against the same artifacts.
    let found = candidates(reg, approvals, digest, &envs.approval_artifact_type).await?;
    let mut out = Vec::new();
    let mut last = None;
    for env in envs.all() {
        match choose(&found, approvals, trusted, digest, envs, env, keys) {
            Ok(v) => out.push(v),
            Err(e @ (EnvError::ApprovalMissing(_) | EnvError::ApprovalInvalid(_))) => {
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    match (out.is_empty(), last) {
        (true, Some(e)) => Err(e),
        _ => Ok(out),
    }
}

/// Each approval artifact of `trusted`'s digest in `repo` with its verification status, as
/// `promote discover` shows them: `verified: <approver> approves <env> (<time>)`, or
/// `not verified: <why>` for the environment the (unverified) statement claims.
pub async fn statuses<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    trusted: &ImageRef,
    envs: &Environments,
    keys: &ApproverKeys,
) -> Result<Vec<(Digest, String)>, EnvError> {
    let digest = trusted
        .digest()
        .ok_or_else(|| EnvError::Input(format!("{trusted}: approvals are listed for a digest")))?;
    let found = candidates(reg, repo, digest, &envs.approval_artifact_type).await?;
    Ok(found
        .iter()
        .map(|c| {
            (
                c.manifest.clone(),
                status_of(c, trusted, digest, envs, keys),
            )
        })
        .collect())
}

fn status_of(
    c: &Candidate,
    trusted: &ImageRef,
    digest: &Digest,
    envs: &Environments,
    keys: &ApproverKeys,
) -> String {
    let claimed = c.bundle.as_ref().ok().and_then(|(b, _)| {
        dsse::payload_statement(&b.dsse_envelope)
            .ok()
            .and_then(|st| st.predicate["environment"].as_str().map(str::to_owned))
    });
    let mut why = None;
    for env in envs.all() {
        let approvers = keys.of(&env.name);
        let result = if approvers.is_empty() {
            Err(format!("{} has no approvers configured", env.name))
        } else {
            check(c, trusted, digest, env, approvers)
        };
        match result {
            Ok(v) => {
                return format!(
                    "verified: {} approves {} ({})",
                    v.approver, env.name, v.predicate.approved_at
                );
            }
            Err(e) if claimed.as_deref() == Some(env.name.as_str()) || why.is_none() => {
                why = Some(e);
            }
            Err(_) => {}
        }
    }
    format!(
        "not verified: {}",
        why.unwrap_or_else(|| "no environment is configured".into())
    )
}

/// What an approval event names, read from the approvals repository: ECR's referrer event
/// carries one `image-digest`, and AWS does not document whether it is the referrer's or the
/// subject's, so both are accepted. For an approval artifact: the digest it approves (its
/// `subject`, else its statement's subject in `trusted`) and the environment it asks for — both
/// *unverified* hints saying what to verify. For any other digest: that digest, no hint.
pub async fn event_target<R: Registry + ?Sized>(
    reg: &R,
    approvals: &ImageRef,
    trusted: &ImageRef,
    digest: &Digest,
    envs: &Environments,
) -> Result<(Digest, Option<String>), EnvError> {
    let Some(raw) = referrers::get_optional(reg, approvals, digest.as_str()).await? else {
        return Ok((digest.clone(), None));
    };
    let what = approvals.pinned(digest.clone());
    let (doc, _, _) = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        .map_err(|e| EnvError::Input(format!("{what}: {e}")))?;
    if doc.artifact_type.as_deref() != Some(envs.approval_artifact_type.as_str()) {
        return Err(EnvError::Input(format!(
            "{what} is not an approval: its artifact type is {:?}, not {:?}",
            doc.artifact_type.as_deref().unwrap_or(""),
            envs.approval_artifact_type
        )));
    }
    let statement = match read_bundle(reg, approvals, &raw).await? {
        Ok((b, _)) => dsse::payload_statement(&b.dsse_envelope).ok(),
        Err(_) => None,
    };
    let env = statement
        .as_ref()
        .and_then(|st| st.predicate["environment"].as_str().map(str::to_owned))
        .or_else(|| doc.annotations.get(ANNOTATION_ENVIRONMENT).cloned());
    let subject = match (&doc.subject, &statement) {
        (Some(s), _) => s.digest.clone(),
        (None, Some(st)) => st
            .subject
            .iter()
            .find(|s| s.name == trusted.repo_path())
            .and_then(Subject::sha256)
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| {
                EnvError::ApprovalInvalid(format!(
                    "{what} names no digest of {}",
                    trusted.repo_path()
                ))
            })?,
        (None, None) => {
            return Err(EnvError::ApprovalInvalid(format!(
                "{what} has no subject and no readable statement"
            )));
        }
    };
    Ok((subject, env))
}

/// Copy a verified approval into the trusted repository as a referrer of the approved digest
/// (the image carries its history). The bundle is stored as verified; the annotations are
/// rebuilt from the signed predicate, with the verified approver's name. Idempotent.
pub async fn record_approval<R: Registry + ?Sized>(
    reg: &R,
    trusted: &ImageRef,
    envs: &Environments,
    approval: &VerifiedApproval,
) -> Result<Digest, EnvError> {
    let subject = super::manifest_of(reg, &trusted.pinned(approval.subject.clone())).await?;
    let predicate = ApprovalPredicate {
        approver: Some(approval.approver.clone()),
        ..approval.predicate.clone()
    };
    let stored = store(
        reg,
        trusted,
        &subject,
        &approval.bundle,
        &predicate,
        &envs.approval_artifact_type,
    )
    .await?;
    Ok(stored.digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Classify, ErrorType};
    use crate::registry::memory::{Behaviour, MemoryRegistry};
    use crate::sign::local::LocalSigner;

    fn trusted() -> ImageRef {
        "registry.test/trusted/app".parse().unwrap()
    }

    fn approvals() -> ImageRef {
        "registry.test/approvals/app".parse().unwrap()
    }

    fn image(reg: &MemoryRegistry, tag: &str, body: &'static [u8]) -> Digest {
        let m = RawManifest::new(Bytes::from_static(body), OCI_MANIFEST.into());
        let d = m.digest.clone();
        reg.put_manifest_bytes(&trusted(), Some(tag), m);
        d
    }

    const ONE: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    const TWO: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[],"annotations":{"n":"2"}}"#;

    fn input<'a>(env: &'a str, build: Option<&'a str>) -> ApprovalInput<'a> {
        ApprovalInput {
            environment: env,
            build,
            approved_by: Some("qa-suite"),
            time: "2026-12-04T10:00:00Z",
        }
    }

    fn keys_for(env: &str, signer: &LocalSigner) -> ApproverKeys {
        let mut k = ApproverKeys::default();
        k.insert(env, "qa-lead", signer.public_key().clone());
        k
    }

    #[tokio::test]
    async fn an_approval_by_an_approver_verifies_for_exactly_its_digest_and_environment() {
        for referrers_api in [false, true] {
            let reg = MemoryRegistry::new();
            reg.set_behaviour(Behaviour {
                referrers_api,
                ..Behaviour::default()
            });
            let one = image(&reg, "1", ONE);
            let two = image(&reg, "2", TWO);
            let envs = Environments::default();
            let approver = LocalSigner::generate_p256();
            let keys = keys_for("staging", &approver);
            let r = push_approval(
                &reg,
                &trusted().with_tag("1"),
                &approvals(),
                &envs,
                &input("staging", Some("42")),
                &approver,
            )
            .await
            .unwrap();
            assert_eq!(r.subject, one);
            let staging = envs.get("staging").unwrap();
            let v = verify_approval(
                &reg,
                &approvals(),
                &trusted().pinned(one.clone()),
                &envs,
                staging,
                &keys,
            )
            .await
            .unwrap();
            assert_eq!(v.approver, "qa-lead");
            assert_eq!(v.predicate.build.as_deref(), Some("42"));
            assert_eq!(v.manifest, r.approval);

            // Not for another digest, nor for another environment.
            let e = verify_approval(
                &reg,
                &approvals(),
                &trusted().pinned(two.clone()),
                &envs,
                staging,
                &keys,
            )
            .await
            .unwrap_err();
            assert_eq!(e.error_type(), ErrorType::ApprovalMissing, "{e}");
            let mut prod_keys = keys.clone();
            prod_keys.insert("prod", "qa-lead", approver.public_key().clone());
            let e = verify_approval(
                &reg,
                &approvals(),
                &trusted().pinned(one.clone()),
                &envs,
                envs.get("prod").unwrap(),
                &prod_keys,
            )
            .await
            .unwrap_err();
            assert_eq!(e.error_type(), ErrorType::ApprovalInvalid, "{e}");
            assert!(
                e.to_string().contains("approves environment \"staging\""),
                "{e}"
            );

            // Copied into trusted: same statement, the verified approver named.
            let copied = record_approval(&reg, &trusted(), &envs, &v).await.unwrap();
            let again = record_approval(&reg, &trusted(), &envs, &v).await.unwrap();
            assert_eq!(copied, again, "recording twice writes the same artifact");
            let in_trusted = verify_approval(
                &reg,
                &trusted(),
                &trusted().pinned(one.clone()),
                &envs,
                staging,
                &keys,
            )
            .await
            .unwrap();
            assert_eq!(in_trusted.predicate.environment, "staging");
        }
    }

    #[tokio::test]
    async fn unsigned_foreign_key_another_digest_and_another_repository_are_refused_by_name() {
        let reg = MemoryRegistry::new();
        let one = image(&reg, "1", ONE);
        let two = image(&reg, "2", TWO);
        let envs = Environments::default();
        let staging = envs.get("staging").unwrap();
        let approver = LocalSigner::generate_p256();
        let keys = keys_for("staging", &approver);
        let pinned = trusted().pinned(one.clone());
        let approvals_repo = approvals();
        let verify = || verify_approval(&reg, &approvals_repo, &pinned, &envs, staging, &keys);

        let e = verify().await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ApprovalMissing, "{e}");

        // An unsigned approval (the old format: empty layer, annotations only).
        let empty = Bytes::from_static(b"{}");
        put_small_blob(&reg, &approvals(), &empty).await.unwrap();
        let subject = super::super::manifest_of(&reg, &pinned).await.unwrap();
        let ed = Digest::of(b"{}");
        let unsigned = serde_json::json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "artifactType": envs.approval_artifact_type,
            "config": descriptor_json(OCI_EMPTY, &ed, 2),
            "layers": [descriptor_json(OCI_EMPTY, &ed, 2)],
            "subject": descriptor_json(&subject.media_type, &subject.digest, subject.bytes.len()),
            "annotations": {ANNOTATION_ENVIRONMENT: "staging", ANNOTATION_APPROVED_BY: "admin"},
        });
        let raw = RawManifest::new(
            Bytes::from(serde_json::to_vec(&unsigned).unwrap()),
            OCI_MANIFEST.into(),
        );
        referrers::attach(&reg, &approvals(), &one, &raw, &envs.approval_artifact_type)
            .await
            .unwrap();
        let e = verify().await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ApprovalInvalid, "{e}");
        assert!(e.to_string().contains("unsigned"), "{e}");

        // Signed by a stranger.
        let stranger = LocalSigner::generate_p256();
        push_approval(
            &reg,
            &trusted().with_tag("1"),
            &approvals(),
            &envs,
            &input("staging", None),
            &stranger,
        )
        .await
        .unwrap();
        let e = verify().await.unwrap_err();
        assert!(
            e.to_string()
                .contains("does not verify with the key of any approver of staging (qa-lead)"),
            "{e}"
        );

        // The approver's statement about another digest, listed under this one.
        let other = push_approval(
            &reg,
            &trusted().with_tag("2"),
            &approvals(),
            &envs,
            &input("staging", None),
            &approver,
        )
        .await
        .unwrap();
        assert_eq!(other.subject, two);
        let listed = referrers::get_optional(&reg, &approvals(), other.approval.as_str())
            .await
            .unwrap()
            .unwrap();
        let mut d = listed.descriptor();
        d.artifact_type = Some(envs.approval_artifact_type.clone());
        referrers::merge_fallback(&reg, &approvals(), &one, &[d], None)
            .await
            .unwrap();
        let e = verify().await.unwrap_err();
        assert!(e.to_string().contains(&format!("it approves {two}")), "{e}");

        // The approver's statement about the same digest in another application's repository.
        let elsewhere: ImageRef = "registry.test/trusted/other".parse().unwrap();
        reg.put_manifest_bytes(
            &elsewhere,
            Some("1"),
            RawManifest::new(Bytes::from_static(ONE), OCI_MANIFEST.into()),
        );
        push_approval(
            &reg,
            &elsewhere.with_tag("1"),
            &approvals(),
            &envs,
            &input("staging", None),
            &approver,
        )
        .await
        .unwrap();
        let e = verify().await.unwrap_err();
        assert!(
            e.to_string().contains("not in registry.test/trusted/app"),
            "{e}"
        );

        // No approvers configured: refused whatever is there.
        let e = verify_approval(
            &reg,
            &approvals(),
            &pinned,
            &envs,
            staging,
            &ApproverKeys::default(),
        )
        .await
        .unwrap_err();
        assert_eq!(e.error_type(), ErrorType::ApprovalMissing, "{e}");
        assert!(e.to_string().contains("lists no approvers"), "{e}");

        // And the real one, at last, verifies among them all.
        push_approval(
            &reg,
            &trusted().with_tag("1"),
            &approvals(),
            &envs,
            &input("staging", Some("9")),
            &approver,
        )
        .await
        .unwrap();
        assert_eq!(
            verify().await.unwrap().predicate.build.as_deref(),
            Some("9")
        );
    }

    #[tokio::test]
    async fn a_registry_refusing_index_subjects_gets_the_approval_in_the_fallback_index() {
        let reg = MemoryRegistry::new();
        reg.set_behaviour(Behaviour {
            referrers_api: true,
            refuse_index_subjects: true,
            ..Behaviour::default()
        });
        let raw = crate::annotate::tests::index(&reg, &trusted().with_tag("1"));
        let envs = Environments::default();
        let approver = LocalSigner::generate_p256();
        let r = push_approval(
            &reg,
            &trusted().with_tag("1"),
            &approvals(),
            &envs,
            &input("staging", None),
            &approver,
        )
        .await
        .unwrap();
        assert!(r.warnings[0].contains("405"), "{:?}", r.warnings);
        let v = verify_approval(
            &reg,
            &approvals(),
            &trusted().pinned(raw.digest.clone()),
            &envs,
            envs.get("staging").unwrap(),
            &keys_for("staging", &approver),
        )
        .await
        .unwrap();
        assert_eq!(v.manifest, r.approval);
    }

    #[tokio::test]
    async fn bad_input_writes_nothing() {
        let reg = MemoryRegistry::new();
        let one = image(&reg, "1", ONE);
        let envs = Environments::default();
        let signer = LocalSigner::generate_p256();
        for (env, build) in [("qa", None), ("prod", Some("a/b"))] {
            let err = push_approval(
                &reg,
                &trusted().pinned(one.clone()),
                &approvals(),
                &envs,
                &input(env, build),
                &signer,
            )
            .await
            .unwrap_err();
            assert_eq!(err.error_type(), ErrorType::InputInvalid, "{err}");
        }
        assert!(reg.tags(&approvals()).is_empty(), "nothing written");
        let missing = trusted().pinned(Digest::of(b"nope"));
        let err = push_approval(
            &reg,
            &missing,
            &approvals(),
            &envs,
            &input("dev", None),
            &signer,
        )
        .await
        .unwrap_err();
        assert_eq!(err.error_type(), ErrorType::RegistryNotFound, "{err}");
    }
}
