//! GitHub package webhooks, ghcr2ecr's trigger: which deliveries are genuine, and which of those
//! ask for a promotion.
//!
//! GitHub signs each delivery's body with the webhook's secret, HMAC-SHA256, in
//! `X-Hub-Signature-256: sha256=<hex>` (docs.github.com, "Validating webhook deliveries"); the
//! comparison is constant-time (`hmac`'s `verify_slice`). A container version published to GHCR
//! arrives as a `registry_package` (or, older, `package`) event with action `published`; its
//! version names the digest (`sha256:…`) and its container metadata the tag. Such a delivery is
//! a promotion request for `ghcr.io/<owner>/<package>:<tag>@<digest>`: pinned, so that the copy
//! promotes what was published, and refused by the copy step if the tag no longer names it.
//! Every other delivery (a ping, another action, an untagged version, another package type)
//! asks for nothing.

use crate::digest::Digest;
use crate::reference::{ImageRef, is_valid_tag};
use crate::registry::auth::async_trait;
use hmac::{Hmac, Mac};
use serde::Deserialize;

/// Where promotion requests go (the pipeline's own event bus in the webhook Lambda: a
/// `Promotion Requested` event whose detail is a manual request).
#[async_trait]
pub trait PromotionRequests: Send + Sync {
    /// Ask for the promotion of `image`; an error says why it could not be asked.
    async fn request(&self, image: &ImageRef) -> Result<(), String>;
}

/// Whether `header` (`X-Hub-Signature-256`) is `sha256=` followed by the hex HMAC-SHA256 of
/// `body` under `secret`. Anything else (absent, another algorithm, malformed hex) is not.
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<sha2_10::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// Why a genuine delivery could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The body is not the JSON of the event its header names.
    #[error("a {event} delivery whose body is not that event's JSON")]
    Malformed {
        /// The `X-GitHub-Event` header.
        event: String,
    },
    /// A published container version that cannot be named as an image.
    #[error("package {package}: {why}")]
    Unnameable {
        /// `<owner>/<package>`.
        package: String,
        /// What is wrong.
        why: String,
    },
}

#[derive(Deserialize)]
struct Delivery {
    action: Option<String>,
    registry_package: Option<Package>,
    package: Option<Package>,
}

#[derive(Deserialize)]
struct Package {
    name: String,
    package_type: Option<String>,
    owner: Option<Owner>,
    namespace: Option<String>,
    package_version: Option<Version>,
}

#[derive(Deserialize)]
struct Owner {
    login: String,
}

#[derive(Deserialize)]
struct Version {
    version: Option<String>,
    container_metadata: Option<ContainerMetadata>,
}

#[derive(Deserialize)]
struct ContainerMetadata {
    tag: Option<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    name: Option<String>,
}

/// The image a genuine delivery of event `event` (`X-GitHub-Event`) asks to promote, pinned
/// (`<registry>/<owner>/<package>:<tag>@<digest>`; `registry` is GHCR's host), or `None` when it
/// asks for nothing.
pub fn published_image(
    event: &str,
    body: &[u8],
    registry: &str,
) -> Result<Option<ImageRef>, WebhookError> {
    if event != "registry_package" && event != "package" {
        return Ok(None);
    }
    let d: Delivery = serde_json::from_slice(body).map_err(|_| WebhookError::Malformed {
        event: event.to_owned(),
    })?;
    let Some(p) = d.registry_package.or(d.package) else {
        return Err(WebhookError::Malformed {
            event: event.to_owned(),
        });
    };
    let container = p
        .package_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("container"));
    if d.action.as_deref() != Some("published") || !container {
        return Ok(None);
    }
    let owner = p
        .namespace
        .or(p.owner.map(|o| o.login))
        .unwrap_or_default()
        .to_ascii_lowercase();
    let name = p.name.to_ascii_lowercase();
    let package = format!("{owner}/{name}");
    let unnameable = |why: &str| WebhookError::Unnameable {
        package: package.clone(),
        why: why.to_owned(),
    };
    let version = p
        .package_version
        .ok_or_else(|| unnameable("no package_version"))?;
    let Some(tag) = version
        .container_metadata
        .and_then(|m| m.tag)
        .and_then(|t| t.name)
        .filter(|t| !t.is_empty())
    else {
        // An untagged version (a platform manifest of a multi-arch push): as with ECR pushes,
        // only tagged versions start a promotion.
        return Ok(None);
    };
    if !is_valid_tag(&tag) {
        return Err(unnameable("its tag is not a valid tag"));
    }
    let digest: Digest = version
        .version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unnameable("its version is not a digest"))?;
    let image: ImageRef = format!("{registry}/{package}:{tag}@{digest}")
        .parse()
        .map_err(|_| unnameable("it is not a valid repository name"))?;
    Ok(Some(image))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SECRET: &[u8] = b"webhook-secret";
    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = Hmac::<sha2_10::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    fn published(action: &str, package_type: &str, tag: &str) -> Vec<u8> {
        serde_json::json!({
            "action": action,
            "registry_package": {
                "name": "Shop-API", "namespace": "Acme", "package_type": package_type,
                "owner": {"login": "acme"},
                "package_version": {"version": DIGEST,
                    "container_metadata": {"tag": {"name": tag, "digest": DIGEST}}}
            }
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn only_the_secrets_hmac_of_this_body_is_a_valid_signature() {
        let body = published("published", "CONTAINER", "1.4.2");
        let good = sign(SECRET, &body);
        assert!(signature_valid(SECRET, &body, Some(&good)));
        // A replayed body with another signature, another secret's, another body's.
        let mut other_body = body.clone();
        other_body.push(b' ');
        for bad in [
            sign(b"another-secret", &body),
            sign(SECRET, &other_body),
            good.replace("sha256=", "sha1="),
            good[..good.len() - 2].to_owned(),
            format!("{good}00"),
            "sha256=not-hex".to_owned(),
            String::new(),
        ] {
            assert!(!signature_valid(SECRET, &body, Some(&bad)), "{bad}");
        }
        assert!(!signature_valid(SECRET, &body, None));
    }

    #[test]
    fn a_published_tagged_container_version_is_a_pinned_ghcr_image() {
        let image = published_image(
            "registry_package",
            &published("published", "CONTAINER", "1.4.2"),
            "ghcr.io",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            image.to_string(),
            format!("ghcr.io/acme/shop-api:1.4.2@{DIGEST}")
        );
        // The older `package` event has the same shape under `package`.
        let body = String::from_utf8(published("published", "container", "2.0")).unwrap();
        let body = body.replace("registry_package", "package");
        let old = published_image("package", body.as_bytes(), "ghcr.io").unwrap();
        assert!(old.is_some_and(|i| i.tag() == Some("2.0")));
    }

    #[test]
    fn everything_else_asks_for_nothing_and_bad_versions_are_named() {
        let none = |event: &str, body: &[u8]| published_image(event, body, "ghcr.io").unwrap();
        assert!(none("ping", br#"{"zen": "Keep it logically awesome."}"#).is_none());
        assert!(none("push", b"not even json").is_none());
        assert!(none("registry_package", &published("updated", "CONTAINER", "1")).is_none());
        assert!(none("registry_package", &published("published", "npm", "1")).is_none());
        assert!(none("registry_package", &published("published", "CONTAINER", "")).is_none());
        assert!(published_image("registry_package", b"{", "ghcr.io").is_err());
        let bad_tag = published_image(
            "registry_package",
            &published("published", "CONTAINER", "no spaces"),
            "ghcr.io",
        );
        assert!(matches!(bad_tag, Err(WebhookError::Unnameable { .. })));
        let body = String::from_utf8(published("published", "CONTAINER", "1")).unwrap();
        let no_digest = body.replace(&format!("\"version\":\"{DIGEST}\""), "\"version\":\"1\"");
        let e = published_image("registry_package", no_digest.as_bytes(), "ghcr.io");
        assert!(
            e.as_ref()
                .is_err_and(|e| e.to_string().contains("not a digest")),
            "{:?}",
            e.map(|i| i.map(|i| i.to_string()))
        );
    }
}
