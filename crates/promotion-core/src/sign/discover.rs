//! The tree of an image's referrers (signatures, SBOMs, attestations, approvals), like
//! `oras discover`: through the referrers API or the fallback index, plus cosign's legacy tags.

use super::SignError;
use crate::digest::Digest;
use crate::manifest::{Kind, ManifestDoc};
use crate::reference::ImageRef;
use crate::referrers::{self, Route};
use crate::registry::Registry;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

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
    /// Whether it verifies, for artifacts the caller checked (approvals).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Its own referrers.
    pub referrers: Vec<Node>,
}

/// The tree of `image`: its referrers and, for an index, each platform's, as deep as the one
/// bounded walk of [`referrers::Walk`] goes.
pub async fn discover<R: Registry + ?Sized>(reg: &R, image: &ImageRef) -> Result<Node, SignError> {
    let top = reg.get_manifest(image, &image.reference()).await?;
    let children = match ManifestDoc::parse(&top.bytes, Some(&top.media_type)) {
        Ok((doc, Kind::Index, _)) => doc.manifests,
        _ => Vec::new(),
    };
    // Each subject's own referrers, listed once.
    let mut found: HashMap<Digest, Vec<Found>> = HashMap::new();
    let roots =
        std::iter::once(top.digest.clone()).chain(children.iter().map(|c| c.digest.clone()));
    let mut walk = referrers::Walk::new(roots);
    while let Some((depth, subject)) = walk.next() {
        let level = referrers_of(reg, image, &subject).await?;
        for f in level.iter().filter(|f| f.expand) {
            walk.push(depth, f.node.digest.clone());
        }
        found.insert(subject, level);
    }
    let mut root = Node {
        digest: top.digest.clone(),
        media_type: top.media_type.clone(),
        artifact_type: None,
        via: "image".into(),
        annotations: BTreeMap::new(),
        status: None,
        referrers: tree(&found, &top.digest, 0),
    };
    for c in &children {
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
            status: None,
            referrers: tree(&found, &c.digest, 0),
        });
    }
    Ok(root)
}

/// A referrer found for one subject; `expand` when its own referrers are listed too (cosign's
/// tag manifests are leaves).
struct Found {
    node: Node,
    expand: bool,
}

/// The nodes below `subject`, from what the walk found, to the walk's depth.
fn tree(found: &HashMap<Digest, Vec<Found>>, subject: &Digest, depth: usize) -> Vec<Node> {
    if depth >= referrers::MAX_DEPTH {
        return Vec::new();
    }
    found.get(subject).map_or_else(Vec::new, |level| {
        level
            .iter()
            .map(|f| Node {
                referrers: if f.expand {
                    tree(found, &f.node.digest, depth + 1)
                } else {
                    Vec::new()
                },
                ..f.node.clone()
            })
            .collect()
    })
}

/// One level: the referrers of `digest` and cosign's tags beside it.
async fn referrers_of<R: Registry + ?Sized>(
    reg: &R,
    repo: &ImageRef,
    digest: &Digest,
) -> Result<Vec<Found>, SignError> {
    let listing = referrers::list(reg, repo, digest).await?;
    let via = match listing.route {
        Route::ReferrersApi => "referrers-api",
        _ => "fallback-tag",
    };
    let mut out: Vec<Found> = listing
        .descriptors
        .into_iter()
        .map(|d| Found {
            node: Node {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                artifact_type: d.artifact_type.clone(),
                via: via.into(),
                annotations: d.annotations.clone().unwrap_or_default(),
                status: None,
                referrers: Vec::new(),
            },
            expand: true,
        })
        .collect();
    for (kind, tag, raw) in referrers::cosign_tags(reg, repo, digest).await? {
        let layers = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
            .map(|(d, _, _)| d.layers.len())
            .unwrap_or(0);
        out.push(Found {
            node: Node {
                digest: raw.digest.clone(),
                media_type: raw.media_type.clone(),
                artifact_type: Some(format!("cosign {} ({layers} layers)", kind.suffix())),
                via: format!("tag {tag}"),
                annotations: BTreeMap::new(),
                status: None,
                referrers: Vec::new(),
            },
            expand: false,
        });
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
            let status = n
                .status
                .as_deref()
                .map(|st| format!(" — {st}"))
                .unwrap_or_default();
            s.push_str(&format!(
                "{prefix}{branch}{kind} {} [{}]{status}\n",
                n.digest, n.via
            ));
            walk(&n.referrers, &format!("{prefix}{next}"), s);
        }
    }
    walk(&root.referrers, "", &mut s);
    s
}
