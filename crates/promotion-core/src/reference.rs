//! Image references in the usual grammar (`busybox`, `host:5000/team/app:1.0`, `repo@sha256:…`).
//!
//! Parsing (and Docker Hub normalisation) is `oci-spec`'s (the OCI distribution reference
//! grammar); this module adds the rules the pipeline needs on top: a missing tag means `latest`,
//! only `sha256` digests, and errors that name what is wrong with the input.

use crate::digest::{Digest, DigestError};
use crate::error::{Classify, ErrorType};
use oci_spec::distribution::{ParseError, Reference};
use std::fmt;
use std::str::FromStr;

/// A parsed image reference: registry, repository, and a tag and/or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why an image reference was rejected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    /// The reference does not follow the grammar.
    #[error("invalid image reference {input:?}: {reason}")]
    Invalid {
        /// The rejected input (truncated).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The digest part is malformed or uses an unsupported algorithm.
    #[error("invalid image reference: {0}")]
    Digest(#[from] DigestError),
}

impl Classify for ReferenceError {
    fn error_type(&self) -> ErrorType {
        ErrorType::InputInvalid
    }
}

fn explain(e: &ParseError) -> &'static str {
    match e {
        ParseError::DigestInvalidFormat | ParseError::DigestInvalidLength => {
            "the digest after '@' must be sha256:<64 lowercase hex characters>"
        }
        ParseError::DigestUnsupported => "only sha256 digests are supported",
        ParseError::NameContainsUppercase => "the repository name must be lowercase",
        ParseError::NameEmpty => "the repository name is empty",
        ParseError::NameTooLong => "the repository name is longer than 255 characters",
        ParseError::TagInvalidFormat => {
            "a tag is 1 to 128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'"
        }
        _ => "expected [registry[:port]/]repository[:tag][@sha256:digest]",
    }
}

/// Whether the repository part (after an optional registry host, before tag or digest) has
/// uppercase letters. Registry hosts are case-insensitive and tags may be mixed case.
fn has_uppercase_repository(input: &str) -> bool {
    let name = input.split('@').next().unwrap_or(input);
    let mut parts: Vec<&str> = name.split('/').collect();
    if let Some(last) = parts.last_mut() {
        *last = last.split(':').next().unwrap_or(last);
    }
    let first_is_host =
        parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost");
    parts
        .iter()
        .skip(usize::from(first_is_host))
        .any(|p| p.chars().any(|c| c.is_ascii_uppercase()))
}

/// Whether the reference has a tag (after the last `/`, before any `@`) that breaks the grammar
/// `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
fn has_invalid_tag(input: &str) -> bool {
    let name = input.split('@').next().unwrap_or(input);
    let last = name.rsplit('/').next().unwrap_or(name);
    let Some((_, tag)) = last.split_once(':') else {
        return false;
    };
    !is_valid_tag(tag)
}

/// Whether `tag` follows the OCI tag grammar `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| ReferenceError::Invalid {
            input: input.chars().take(300).collect(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(invalid("the reference is empty"));
        }
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "the reference contains whitespace or control characters",
            ));
        }
        if input.contains("://") {
            return Err(invalid(
                "a reference has no scheme: drop the 'https://' prefix",
            ));
        }
        let parsed: Reference = input.parse().map_err(|e| {
            // oci-spec reports an uppercase repository as a generic format error; say it.
            if has_uppercase_repository(input) {
                invalid("the repository name must be lowercase")
            } else if has_invalid_tag(input) {
                invalid(explain(&ParseError::TagInvalidFormat))
            } else {
                invalid(explain(&e))
            }
        })?;
        // A first component with an uppercase letter and no '.', ':' or "localhost" is not a
        // host, so it is part of the repository (found by fuzz/reference, see
        // crates/promotion-core/tests/fuzz_regressions.rs): refused like any uppercase
        // repository, so that every reference this parser accepts prints as one it accepts.
        if parsed.repository().chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("the repository name must be lowercase"));
        }
        // A port the grammar accepts but no socket has (`host:99999`, `host:0`) is bad input, not
        // an outage to retry.
        let registry = parsed.registry();
        if !registry.ends_with(']')
            && let Some((_, port)) = registry.rsplit_once(':')
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(invalid("the registry port must be 1 to 65535"));
        }
        let digest = parsed.digest().map(str::parse).transpose()?;
        let tag = match (parsed.tag(), &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(ImageRef {
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
            tag,
            digest,
        })
    }
}

impl ImageRef {
    /// A reference from parts that are already known to be valid (a repository we read from a
    /// reference, a digest we computed).
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Self {
        ImageRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        }
    }

    /// The registry as written (`docker.io`, `127.0.0.1:5000`, `1234.dkr.ecr…`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to talk to: Docker Hub's API lives on `index.docker.io`.
    pub fn api_host(&self) -> &str {
        match self.registry.as_str() {
            "docker.io" => "index.docker.io",
            other => other,
        }
    }

    /// The repository (`library/busybox`, `team/app`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository pinned to `digest` (the tag is dropped: after resolution every
    /// step names digests).
    pub fn pinned(&self, digest: Digest) -> ImageRef {
        ImageRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// `registry/repository` followed by `@digest` or `:tag`, for messages about `reference`.
    pub fn at(&self, reference: &str) -> String {
        let sep = if reference.parse::<Digest>().is_ok() {
            '@'
        } else {
            ':'
        };
        format!("{}{sep}{reference}", self.repo_path())
    }

    /// `registry/repository`, without tag or digest.
    pub fn repo_path(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Whether both references live on the same registry (so blobs can be mounted).
    pub fn same_registry(&self, other: &ImageRef) -> bool {
        self.api_host() == other.api_host()
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> ImageRef {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn docker_hub_normalisation() {
        let r = parse("busybox");
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        assert_eq!(r.api_host(), "index.docker.io");
        assert_eq!(
            parse("bitnami/redis:7").to_string(),
            "docker.io/bitnami/redis:7"
        );
    }

    #[test]
    fn ports_nested_repositories_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse(&format!("127.0.0.1:5000/team/sub/app:1.4.2@{d}"));
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/sub/app");
        assert_eq!(r.tag(), Some("1.4.2"));
        assert_eq!(r.digest().map(Digest::as_str), Some(d.as_str()));
        assert_eq!(r.reference(), d);
        let p = parse(&format!("ghcr.io/org/app@{d}"));
        assert_eq!(p.tag(), None);
        assert_eq!(p.to_string(), format!("ghcr.io/org/app@{d}"));
        assert_eq!(parse("localhost:5000/app").tag(), Some("latest"));
        assert_eq!(parse("localhost:65535/app").registry(), "localhost:65535");
    }

    #[test]
    fn invalid_references_name_what_is_wrong() {
        let long_tag = format!("app:{}", "t".repeat(129));
        let cases = [
            ("", "empty"),
            ("Team/App:1", "lowercase"),
            ("app:bad tag", "whitespace"),
            ("app:-bad", "a tag is 1 to 128 characters"),
            (long_tag.as_str(), "a tag is 1 to 128 characters"),
            ("app:", "a tag is 1 to 128 characters"),
            ("https://ghcr.io/org/app", "scheme"),
            ("app@sha256:1234", "digest"),
            ("app@md5:d41d8cd98f00b204e9800998ecf8427e", "digest"),
            ("127.0.0.1:99999/x:y", "port must be 1 to 65535"),
            ("localhost:0/x", "port must be 1 to 65535"),
        ];
        for (input, needle) in cases {
            let msg = input.parse::<ImageRef>().unwrap_err().to_string();
            assert!(
                msg.contains(needle),
                "{input:?} gave {msg:?}, expected it to mention {needle}"
            );
        }
    }

    #[test]
    fn pinned_drops_the_tag() {
        let d = Digest::of(b"m");
        let r = parse("example.com/a/b:1").pinned(d.clone());
        assert_eq!(r.tag(), None);
        assert_eq!(r.reference(), d.to_string());
    }
}
