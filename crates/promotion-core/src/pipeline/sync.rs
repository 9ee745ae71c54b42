//! What a bulk sync needs to decide per upstream tag, on the `Registry` port: the environment
//! tag a promotion of it would get, and whether the trusted repository already holds a
//! promotion of that digest there (`promote sync`; a sync Lambda would ask the same).

use crate::digest::Digest;
use crate::environment::{Environment, Environments};
use crate::manifest::ManifestDoc;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};
use crate::sign::CLAIM_SOURCE_DIGEST;

/// The environment tag a promotion of upstream `tag` gets in `env` (`dev-<tag>`), or `None`
/// when the tag cannot be a build id there (`latest`, or a tag the template cannot hold).
pub fn environment_tag(envs: &Environments, env: &Environment, tag: &str) -> Option<String> {
    super::build_from_source_tag(envs, Some(tag)).and_then(|build| env.template.render(&build).ok())
}

/// What the trusted repository holds under an environment tag, for one source digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// Nothing: the tag is to be promoted.
    Nothing,
    /// A promotion of this source digest (the trusted digest, which records it in
    /// `io.ecr-promotion.source.digest`, or is it when promoted without mutation).
    Promotion(Digest),
    /// A promotion of another digest: the upstream tag moved since. Environment tags never
    /// move, so this is a conflict, not something to promote over.
    Other(Digest),
}

/// What `trusted:env_tag` holds, as far as `source` is concerned.
pub async fn held_under(
    registry: &dyn Registry,
    trusted: &ImageRef,
    env_tag: &str,
    source: &Digest,
) -> Result<Held, RegistryError> {
    let Some(held) = registry.head_manifest(trusted, env_tag).await? else {
        return Ok(Held::Nothing);
    };
    if &held == source {
        return Ok(Held::Promotion(held));
    }
    let raw = registry.get_manifest(trusted, held.as_str()).await?;
    let recorded = ManifestDoc::parse(&raw.bytes, Some(&raw.media_type))
        .ok()
        .and_then(|(doc, _, _)| doc.annotations.get(CLAIM_SOURCE_DIGEST).cloned())
        .and_then(|d| d.parse::<Digest>().ok());
    Ok(if recorded.as_ref() == Some(source) {
        Held::Promotion(held)
    } else {
        Held::Other(held)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::manifest::RawManifest;
    use crate::registry::memory::MemoryRegistry;
    use bytes::Bytes;

    fn manifest(annotations: serde_json::Value) -> RawManifest {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [],
            "annotations": annotations,
        });
        RawManifest::new(
            Bytes::from(doc.to_string()),
            "application/vnd.oci.image.index.v1+json".into(),
        )
    }

    #[tokio::test]
    async fn a_tag_is_held_by_a_promotion_of_its_digest_another_or_nothing() {
        let reg = MemoryRegistry::new();
        let trusted: ImageRef = "reg.test/trusted/app".parse().unwrap();
        let upstream = manifest(serde_json::json!({"upstream": "1"})).digest;
        let promoted = manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: upstream.to_string()}));
        reg.put_manifest_bytes(&trusted, Some("dev-1.0"), promoted.clone());
        let other =
            manifest(serde_json::json!({CLAIM_SOURCE_DIGEST: Digest::of(b"x").to_string()}));
        reg.put_manifest_bytes(&trusted, Some("dev-0.9"), other.clone());
        let preserved = manifest(serde_json::json!({}));
        reg.put_manifest_bytes(&trusted, Some("dev-0.8"), preserved.clone());

        let held = |tag: &'static str, source: Digest| {
            let (reg, trusted) = (&reg, &trusted);
            async move { held_under(reg, trusted, tag, &source).await.unwrap() }
        };
        assert_eq!(
            held("dev-1.0", upstream.clone()).await,
            Held::Promotion(promoted.digest)
        );
        assert_eq!(
            held("dev-0.9", upstream.clone()).await,
            Held::Other(other.digest)
        );
        // Promoted without mutation: the trusted digest is the upstream one.
        assert_eq!(
            held("dev-0.8", preserved.digest.clone()).await,
            Held::Promotion(preserved.digest.clone())
        );
        // No record and another digest: not a promotion of this source.
        assert_eq!(
            held("dev-0.8", upstream.clone()).await,
            Held::Other(preserved.digest)
        );
        assert_eq!(held("dev-2.0", upstream).await, Held::Nothing);
    }

    #[test]
    fn environment_tags_come_from_the_template_and_latest_is_none() {
        let envs = Environments::default();
        let dev = envs.first();
        assert_eq!(
            environment_tag(&envs, dev, "1.4.2").as_deref(),
            Some("dev-1.4.2")
        );
        assert_eq!(environment_tag(&envs, dev, "latest"), None);
    }
}
