//! The independent cosign verifier: Debian trixie's skopeo 1.18 (bookworm's has sigstore patched
//! out), installed by `scripts/install-skopeo-sigstore.sh` into `.work/skopeo-trixie/`, with a
//! `sigstoreSigned` policy (../shared/reference/test-infra.md §2).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The wrapper `.work/skopeo-trixie/skopeo`; panics naming the install script when missing.
pub fn skopeo() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let p = root.join(".work/skopeo-trixie/skopeo");
    assert!(
        p.is_file(),
        "{} is missing: the signature tests verify with skopeo >= 1.18 (sigstore enabled). Run \
         `scripts/install-skopeo-sigstore.sh` (fetches Debian trixie's skopeo into .work/ without \
         touching the system's apt state).",
        p.display()
    );
    p
}

/// `skopeo generate-sigstore-key`: writes `<dir>/<name>.private` (cosign's encrypted format) and
/// `<dir>/<name>.pub`, encrypted with `password`. Returns (private, public) paths.
pub fn generate_key(dir: &Path, name: &str, password: &str) -> (PathBuf, PathBuf) {
    let pass = dir.join(format!("{name}.pass"));
    fs::write(&pass, password).expect("write passphrase file");
    super::run_checked(
        Command::new(skopeo())
            .arg("generate-sigstore-key")
            .arg("--output-prefix")
            .arg(dir.join(name))
            .arg("--passphrase-file")
            .arg(&pass),
    );
    (
        dir.join(format!("{name}.private")),
        dir.join(format!("{name}.pub")),
    )
}

/// Copies `docker://<image>` to a scratch `dir:` under a policy that requires a sigstore
/// signature by `public_key` for `repo_scope` (`host/repo`). Returns skopeo's output: success
/// means the signature verified.
pub fn verify_with_skopeo(image: &str, repo_scope: &str, public_key: &Path) -> Output {
    let tmp = tempfile::tempdir().expect("tempdir");
    let regd = tmp.path().join("registries.d");
    fs::create_dir_all(&regd).expect("registries.d");
    fs::write(
        regd.join("default.yaml"),
        "default-docker:\n  use-sigstore-attachments: true\n",
    )
    .expect("registries.d/default.yaml");
    let policy = serde_json::json!({
        "default": [{"type": "reject"}],
        "transports": {"docker": {repo_scope: [{
            "type": "sigstoreSigned",
            "keyPath": public_key.canonicalize().expect("absolute key path"),
            "signedIdentity": {"type": "matchRepository"},
        }]}},
    });
    let policy_path = tmp.path().join("policy.json");
    fs::write(&policy_path, policy.to_string()).expect("policy.json");
    Command::new(skopeo())
        .arg("--policy")
        .arg(&policy_path)
        .arg("--registries.d")
        .arg(&regd)
        .arg("copy")
        .arg("-q")
        .arg("--src-tls-verify=false")
        .arg(format!("docker://{image}"))
        .arg(format!("dir:{}", tmp.path().join("out").display()))
        .output()
        .expect("run skopeo")
}
