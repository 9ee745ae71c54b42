//! The tree of an image's referrers (signatures, SBOMs, attestations, approvals), like
//! `oras discover`: through the referrers API or the fallback index, plus cosign's legacy tags.

use super::SignError;
use super::store::{Route, get_optional, list_referrers};
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc};
use crate::reference::ImageRef;
use crate::registry::Registry;
use serde::Serialize;
use std::collections::BTreeMap;

/// How deep referrers of referrers are followed.
const MAX_DEPTH: usize = 3;
/// cosign's legacy tags next to `sha256-<hex>`.
const COSIGN_SUFFIXES: [&str; 3] = ["sig", "att", "sbom"];

/// A node of the tree.
#[derive(Debug, Clone, Serialize)]
pub struct Node {
    /// Digest of the manifest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// `artifactType` (or the config media type), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// How it was found (`referrers-api`, `fallback-tag`, `sig-tag`…), or the platform for the
    /// children of an index.
    pub via: String,
    /// Annotations of the descriptor.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Its own referrers.
    pub referrers: Vec<Node>,
}

/// The tree of `image`: its referrers and, for an index, each platform's.
pub async fn discover<R: Registry + ?Sized>(reg: &R, image: &ImageRef) -> Result<Node, SignError> {
    let top = reg.get_manifest(image, &image.reference()).await?;
    let mut root = Node {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        artifact_type: None,
        via: "image".into(),
        annotations: BTreeMap::new(),
        referrers: Vec::new(),
    };
    root.referrers = referrers_of(reg, image, &top.digest, 0).await?;
    if let Ok((doc, Kind::Index, _)) = ManifestDoc::parse(&top.bytes, Some(&top.media_type)) {
        for c in &doc.manifests {
            let refs = referrers_of(reg, image, &c.digest, 0).await?;
            root.referrers.push(Node {
                digest: c.digest.clone(),
                media_type: c.media_type.clone(),
                artifact_type: None,
                via: format!(
                    "platform {}",
                    c.platform
                        .as_ref()
                        .map_or_else(|| "unknown".into(), ToString::to_string)
                ),
                annotations: BTreeMap::new(),
                referrers: refs,
            });
        }
    }
    Ok(root)
}

async fn referrers_of<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
    depth: usize,
) -> Result<Vec<Node>, SignError> {
    if depth >= MAX_DEPTH {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let (route, list) = list_referrers(reg, repo, digest).await?;
    let via = match route {
        Route::ReferrersApi => "referrers-api",
        _ => "fallback-tag",
    };
    for d in list {
        let refs = Box::pin(referrers_of(reg, repo, &d.digest, depth + 1)).await?;
        out.push(Node {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
            artifact_type: d.artifact_type.clone(),
            via: via.into(),
            annotations: d.annotations.clone().unwrap_or_default(),
            referrers: refs,
        });
    }
    for suffix in COSIGN_SUFFIXES {
        let tag = format!("{}.{suffix}", digest.fallback_tag());
        if let Some(raw) = get_optional(reg, repo, &tag).await? {
            let layers = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
                .map(|(d, _, _)| d.layers.len())
                .unwrap_or(0);
            out.push(Node {
                digest: raw.digest.clone(),
                media_type: raw.media_type.clone(),
                artifact_type: Some(format!("cosign {suffix} ({layers} layers)")),
                via: format!("tag {tag}"),
                annotations: BTreeMap::new(),
                referrers: Vec::new(),
            });
        }
    }
    Ok(out)
}

/// Render the tree as text, like `oras discover`.
pub fn render(image: &str, root: &Node) -> String {
    let mut s = format!("{image}@{}\n", root.digest);
    fn walk(nodes: &[Node], prefix: &str, s: &mut String) {
        for (i, n) in nodes.iter().enumerate() {
            let last = i + 1 == nodes.len();
            let (branch, next) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let kind = n.artifact_type.as_deref().unwrap_or(&n.media_type);
            s.push_str(&format!(
                "{prefix}{branch}{kind} {} [{}]\n",
                n.digest, n.via
            ));
            walk(&n.referrers, &format!("{prefix}{next}"), s);
        }
    }
    walk(&root.referrers, "", &mut s);
    s
}
