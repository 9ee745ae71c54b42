//! Image references in the usual grammar (`busybox`, `host:5000/team/app:1.0`, `repo@sha256:…`).
//!
//! The grammar and the Docker Hub normalisation are distribution's (`reference/regexp.go` and
//! `normalize.go`), as `oci-spec` implements them: [`split`] accepts exactly what `oci-spec`'s
//! `Reference` accepts, except tags, which are ASCII here as the distribution spec says (its
//! regex's `\w` also takes Unicode letters). It is written out by hand because that regex costs
//! every process about 20 ms of CPU to compile on first use (a third of a second in a 128 MB
//! Lambda); a test holds the two to the same answers on generated input. On top, the rules the
//! pipeline needs: a missing tag means `latest`, only `sha256` digests, and errors that name
//! what is wrong with the input.

use crate::digest::{Digest, DigestError};
use crate::error::{Classify, ErrorType};
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

/// The longest repository (after normalisation), as distribution's `NameTotalLengthMax`.
const NAME_TOTAL_LENGTH_MAX: usize = 255;

const TAG_GRAMMAR: &str =
    "a tag is 1 to 128 characters of [A-Za-z0-9_.-] and does not start with '.' or '-'";

/// Why [`split`] refused a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grammar {
    /// The name (registry and repository) or the tag does not follow the grammar.
    Format,
    /// The repository is longer than [`NAME_TOTAL_LENGTH_MAX`].
    TooLong,
}

/// A reference split into its parts, Docker Hub normalised (`busybox` is
/// `docker.io/library/busybox`). The digest is not checked yet.
#[derive(Debug, PartialEq, Eq)]
struct Parts<'a> {
    registry: String,
    repository: String,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

/// Splits `input` as `name[:tag][@digest]` and checks the name and tag against the grammar:
///
/// ```text
/// name      := [domain '/'] path
/// domain    := host [':' [0-9]+]
/// host      := component ('.' component)*     component := [a-zA-Z0-9] | [a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]
/// path      := path-component ('/' path-component)*
/// path-component := [a-z0-9]+ ((\. | _ | __ | -*) [a-z0-9]+)*
/// tag       := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
/// ```
///
/// Which part of the name is the registry is decided afterwards, as distribution's
/// `splitDomain` does: the first component if it has a `.` or a `:` or is `localhost`.
fn split(input: &str) -> Result<Parts<'_>, Grammar> {
    let (rest, digest) = match input.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (input, None),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a port).
    let after_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[after_slash..].rfind(':') {
        Some(i) => (&rest[..after_slash + i], Some(&rest[after_slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !is_valid_tag(t)) {
        return Err(Grammar::Format);
    }
    let name_ok = is_path(name)
        || name
            .split_once('/')
            .is_some_and(|(domain, path)| is_domain(domain) && is_path(path));
    if !name_ok {
        return Err(Grammar::Format);
    }
    let (registry, repository) = split_domain(name);
    if repository.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(Grammar::TooLong);
    }
    Ok(Parts {
        registry,
        repository,
        tag,
        digest,
    })
}

/// `host[:port]`: dot-separated components of ASCII letters, digits and inner '-', and a port
/// of digits (its range is checked later).
fn is_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let component = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
    };
    host.split('.').all(component)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// '/'-separated path components.
fn is_path(path: &str) -> bool {
    path.split('/').all(is_path_component)
}

/// `[a-z0-9]+` runs joined by one of `.`, `_`, `__` or any number of `-`.
fn is_path_component(c: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let b = c.as_bytes();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &b[start..i];
        let ok = sep == b"." || sep == b"_" || sep == b"__" || sep.iter().all(|&x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

/// distribution's `splitDomain`: the registry and the repository of a valid name, Docker Hub
/// normalised (`index.docker.io` is `docker.io`; its one-component names are `library/…`).
fn split_domain(name: &str) -> (String, String) {
    let (mut registry, mut repository) = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => {
            (first.to_owned(), rest.to_owned())
        }
        _ => ("docker.io".to_owned(), name.to_owned()),
    };
    if registry == "index.docker.io" {
        registry = "docker.io".to_owned();
    }
    if registry == "docker.io" && !repository.contains('/') {
        repository = format!("library/{repository}");
    }
    (registry, repository)
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
        let parts = split(input).map_err(|e| {
            if e == Grammar::TooLong {
                invalid("the repository name is longer than 255 characters")
            } else if has_uppercase_repository(input) {
                invalid("the repository name must be lowercase")
            } else if has_invalid_tag(input) {
                invalid(TAG_GRAMMAR)
            } else {
                invalid("expected [registry[:port]/]repository[:tag][@sha256:digest]")
            }
        })?;
        // A first component with an uppercase letter and no '.', ':' or "localhost" is not a
        // host, so it is part of the repository (found by fuzz/reference, see
        // crates/promotion-core/tests/fuzz_regressions.rs): refused like any uppercase
        // repository, so that every reference this parser accepts prints as one it accepts.
        if parts.repository.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid("the repository name must be lowercase"));
        }
        // A port the grammar accepts but no socket has (`host:99999`, `host:0`) is bad input, not
        // an outage to retry.
        if let Some((_, port)) = parts.registry.rsplit_once(':')
            && !port.parse::<u16>().is_ok_and(|p| p > 0)
        {
            return Err(invalid("the registry port must be 1 to 65535"));
        }
        // Named with the whole reference, like every other error here.
        let digest = parts
            .digest
            .map(str::parse::<Digest>)
            .transpose()
            .map_err(|e| invalid(&format!("the digest after '@': {}", e.reason)))?;
        let tag = match (parts.tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(ImageRef {
            registry: parts.registry,
            repository: parts.repository,
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
            (
                "app@sha256:1234",
                "the digest after '@': a sha256 digest has 64",
            ),
            ("app@SHA256:1234", "the digest after '@': only sha256"),
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

    /// The parse as it was with `oci-spec`'s `Reference` and the same rules on top: the
    /// registry, repository, tag and digest, or `None` when refused.
    fn with_oci_spec(input: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        if input.chars().any(|c| c.is_whitespace() || c.is_control()) || input.contains("://") {
            return None;
        }
        let r: oci_spec::distribution::Reference = input.parse().ok()?;
        let port_ok = r
            .registry()
            .rsplit_once(':')
            .is_none_or(|(_, p)| p.parse::<u16>().is_ok_and(|p| p > 0));
        if r.repository().chars().any(|c| c.is_ascii_uppercase()) || !port_ok {
            return None;
        }
        let digest = r.digest().map(str::parse::<Digest>).transpose().ok()?;
        let tag = match (r.tag(), &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Some((
            r.registry().to_owned(),
            r.repository().to_owned(),
            tag,
            digest.map(|d| d.to_string()),
        ))
    }

    fn fields(input: &str) -> Option<(String, String, Option<String>, Option<String>)> {
        let r: ImageRef = input.parse().ok()?;
        Some((
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(|d| d.to_string()),
        ))
    }

    /// The hand-written grammar against `oci-spec`'s regex on 200,000 references built from
    /// pieces that sit at the grammar's edges: both accept the same ones, with the same parts.
    /// The one intended difference: `oci-spec`'s tag `\w` takes Unicode letters, ours only
    /// ASCII (distribution's spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`).
    #[test]
    fn the_grammar_agrees_with_oci_spec_on_generated_references() {
        let hex = "a".repeat(64);
        let digest = format!("sha256:{hex}");
        let upper_digest = format!("sha256:{}", "A".repeat(64));
        let long = "a".repeat(250);
        let pieces: Vec<&str> = vec![
            "a",
            "b",
            "z",
            "0",
            "9",
            "ab",
            "a1",
            "A",
            "Z",
            "-",
            "--",
            "_",
            "__",
            "___",
            ".",
            "..",
            ":",
            "/",
            "//",
            "@",
            "é",
            "\u{661}",
            "localhost",
            "docker.io",
            "index.docker.io",
            "example.com",
            "Example.COM",
            "127.0.0.1",
            "5000",
            "0",
            "99999",
            "65535",
            "latest",
            "v1.0",
            "-x",
            ".x",
            "sha256",
            &digest,
            &upper_digest,
            "sha512:abc",
            "md5:",
            &long,
            "library",
            ":5000/",
            "/a:b",
            "@sha256:",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut accepted = 0;
        for _ in 0..200_000 {
            let n = 1 + (next() % 8) as usize;
            let input: String = (0..n)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            let ours = fields(&input);
            let theirs = with_oci_spec(&input);
            accepted += usize::from(ours.is_some());
            let unicode_tag = theirs
                .as_ref()
                .and_then(|t| t.2.as_deref())
                .is_some_and(|t| !t.is_ascii());
            if unicode_tag {
                assert_eq!(ours, None, "{input:?}: a non-ASCII tag must be refused");
            } else {
                assert_eq!(ours, theirs, "{input:?}");
            }
        }
        // The generator reaches both sides of the grammar, not only refusals.
        assert!(accepted > 20_000, "only {accepted} references accepted");
    }

    #[test]
    fn pinned_drops_the_tag() {
        let d = Digest::of(b"m");
        let r = parse("example.com/a/b:1").pinned(d.clone());
        assert_eq!(r.tag(), None);
        assert_eq!(r.reference(), d.to_string());
    }
}
