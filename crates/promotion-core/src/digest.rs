//! Content digests (`sha256:<hex>`): parsing, hashing, and the fallback-tag form.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// A validated content digest. Only `sha256` is accepted: it is what every registry we target
/// (ECR included) computes, and a digest we cannot verify is a digest we must not trust.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid digest {input:?}: {reason}")]
pub struct DigestError {
    /// The rejected input (digests are not secret).
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    /// `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// The referrers tag-schema fallback tag (`sha256-<hex>`), also the prefix of cosign's tags.
    pub fn fallback_tag(&self) -> String {
        format!("sha256-{}", self.hex())
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| DigestError {
            input: s.chars().take(100).collect(),
            reason,
        };
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(err("expected <algorithm>:<hex>"));
        };
        if alg != "sha256" {
            return Err(err("only sha256 digests are supported"));
        }
        if hex.len() != 64 {
            return Err(err("a sha256 digest has 64 hex characters"));
        }
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err("the hex part must be lowercase hexadecimal"));
        }
        Ok(Digest(s.to_owned()))
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Incremental SHA-256 with a byte count: used to verify blobs while they stream.
#[derive(Default)]
pub struct Hasher {
    inner: Sha256,
    len: u64,
}

impl Hasher {
    /// Feed bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.inner.update(bytes);
        self.len += bytes.len() as u64;
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The digest of everything fed.
    pub fn finish(self) -> Digest {
        Digest(format!("sha256:{}", hex::encode(self.inner.finalize())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_json_object_matches_the_oci_empty_descriptor() {
        assert_eq!(
            Digest::of(b"{}").as_str(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }

    #[test]
    fn hasher_equals_one_shot() {
        let mut h = Hasher::default();
        h.update(b"ab");
        h.update(b"c");
        assert_eq!(h.len(), 3);
        assert_eq!(h.finish(), Digest::of(b"abc"));
    }

    #[test]
    fn rejects_malformed_digests_with_a_reason() {
        for (input, reason) in [
            ("sha256", "expected <algorithm>:<hex>"),
            ("md5:abc", "only sha256 digests are supported"),
            ("sha256:abc", "a sha256 digest has 64 hex characters"),
            (
                &*format!("sha256:{}", "G".repeat(64)),
                "the hex part must be lowercase hexadecimal",
            ),
        ] {
            assert_eq!(
                input.parse::<Digest>().unwrap_err().reason,
                reason,
                "{input}"
            );
        }
    }

    #[test]
    fn fallback_tag_replaces_the_colon() {
        let d = Digest::of(b"x");
        assert_eq!(d.fallback_tag(), format!("sha256-{}", d.hex()));
    }
}
