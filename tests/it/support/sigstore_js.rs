//! The independent Sigstore bundle verifier: sigstore-js (`@sigstore/verify` + `@sigstore/bundle`)
//! on Node 22, driven by `scripts/node/verify-bundle.mjs`. Node and the packages live in
//! `.work/node`, installed by `scripts/install-node.sh` from the committed lock file.

use super::images::RegistryClient;
use serde_json::Value;
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

/// `.work/node/node_modules/.bin/node` (Node 22); panics naming `scripts/install-node.sh` when it
/// or the sigstore packages are missing.
pub fn node() -> PathBuf {
    let work = super::pipeline::root().join(".work/node");
    let node = work.join("node_modules/.bin/node");
    for needed in [
        node.clone(),
        work.join("node_modules/@sigstore/verify/package.json"),
        work.join("node_modules/@sigstore/bundle/package.json"),
    ] {
        assert!(
            needed.is_file(),
            "{} is missing: the bundle tests verify with sigstore-js on Node 22. Run \
             `scripts/install-node.sh` (or `scripts/setup.sh node`, or scripts/test.sh).",
            needed.display()
        );
    }
    node
}

/// Verifies a Sigstore v0.3 bundle with sigstore-js, trusting only `public_key_pem` (no
/// transparency log, no timestamps), and requires a statement subject with `digest`
/// (`sha256:<hex>`) and, when given, that `predicate_type`. Returns the script's output: exit 0
/// means verified (one JSON line on stdout), 1 a failed check (named on stderr), 2 a usage error.
pub fn verify_bundle_with_sigstore_js(
    bundle_json: &[u8],
    public_key_pem: &str,
    digest: &str,
    predicate_type: Option<&str>,
) -> Output {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bundle = tmp.path().join("bundle.json");
    let key = tmp.path().join("key.pub");
    fs::write(&bundle, bundle_json).expect("write bundle");
    fs::write(&key, public_key_pem).expect("write public key");
    let mut cmd = Command::new(node());
    cmd.arg(super::pipeline::root().join("scripts/node/verify-bundle.mjs"))
        .arg("--bundle")
        .arg(&bundle)
        .arg("--key")
        .arg(&key)
        .arg("--digest")
        .arg(digest);
    if let Some(predicate_type) = predicate_type {
        cmd.arg("--predicate-type").arg(predicate_type);
    }
    cmd.output().expect("run scripts/node/verify-bundle.mjs")
}

/// The Sigstore bundle v0.3 media type.
pub const BUNDLE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// cosign v3's signature predicate type.
pub const COSIGN_SIGN: &str = "https://sigstore.dev/cosign/sign/v1";

/// The Sigstore bundles among the referrers of `digest` in `repo` (the registry has no referrers
/// API: the `sha256-<hex>` fallback index lists them), as raw JSON bytes.
pub fn bundles_of(c: &RegistryClient, repo: &str, digest: &str) -> Vec<Vec<u8>> {
    let tag = format!("sha256-{}", crate::support::digest_hex(digest));
    let Some((bytes, _)) = c.get_manifest(repo, &tag) else {
        return Vec::new();
    };
    let index: Value = serde_json::from_slice(&bytes).expect("fallback index JSON");
    let mut out = Vec::new();
    for entry in index["manifests"].as_array().expect("manifests") {
        if entry["artifactType"] != BUNDLE {
            continue;
        }
        let (m, _) = c.manifest(repo, entry["digest"].as_str().expect("digest"));
        let m: Value = serde_json::from_slice(&m).expect("referrer JSON");
        assert_eq!(m["artifactType"], BUNDLE, "{m:#}");
        assert_eq!(m["layers"].as_array().map(Vec::len), Some(1), "{m:#}");
        out.push(c.get_blob(repo, m["layers"][0]["digest"].as_str().expect("layer")));
    }
    out
}

/// Whether sigstore-js verifies one of `bundles` for `digest` with `pem` (and says why not).
pub fn sigstore_js_accepts(bundles: &[Vec<u8>], pem: &str, digest: &str) -> Result<(), String> {
    let mut why = Vec::new();
    for b in bundles {
        let out = verify_bundle_with_sigstore_js(b, pem, digest, Some(COSIGN_SIGN));
        if out.status.success() {
            return Ok(());
        }
        why.push(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Err(format!(
        "{} bundle(s), none verified: {why:?}",
        bundles.len()
    ))
}
