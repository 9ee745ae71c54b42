//! Where copy-to-quarantine may read from: the source allow-list (docs/DESIGN.md, invariant 13).
//!
//! A copy request names its source, and anyone who can start an execution can name any host:
//! without a list the copy Lambda would fetch from wherever a request points, from inside the
//! account. So a deployment lists its source registries (`SOURCE_REGISTRIES`); its own
//! registries (the pipeline's and the ingress registry, the account's ECR) are always allowed.
//! The CLI reads from whatever registry its user names on the command line
//! ([`SourceRegistries::any`]): it runs on the user's own machine with the user's own access.
//! Either way the registry client refuses internal addresses it was not told about
//! (`promotion_registry::egress`).

use super::{PipelineError, Repositories, parse_repository};
use crate::reference::ImageRef;

/// The registries copy-to-quarantine may read from, besides the deployment's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRegistries(Option<Vec<String>>);

impl SourceRegistries {
    /// Any registry (the CLI: the user named it).
    pub fn any() -> Self {
        SourceRegistries(None)
    }

    /// Only `hosts` (`host[:port]`, compared case-insensitively; `:443` is the same as no
    /// port; Docker Hub's names are one) and the deployment's own registries. None: only those.
    pub fn only<S: AsRef<str>>(
        hosts: impl IntoIterator<Item = S>,
    ) -> Result<SourceRegistries, PipelineError> {
        let mut out = Vec::new();
        for h in hosts {
            let h = h.as_ref().trim();
            if h.contains('/') {
                return Err(PipelineError::Input(format!(
                    "source registry {h:?}: name the host[:port] only, without a scheme or path"
                )));
            }
            parse_repository("source registry", &format!("{h}/x"))?;
            out.push(canonical(h));
        }
        Ok(SourceRegistries(Some(out)))
    }

    /// `src`'s registry may be read from: it is listed, or it is one of `repos`' own.
    /// `Input.Invalid` naming the host and the setting otherwise.
    pub fn check(&self, src: &ImageRef, repos: &Repositories) -> Result<(), PipelineError> {
        let Some(listed) = &self.0 else {
            return Ok(());
        };
        let host = canonical(src.registry());
        if listed.contains(&host) || repos.own_registries().any(|r| canonical(r) == host) {
            return Ok(());
        }
        let allowed: Vec<String> = repos
            .own_registries()
            .map(str::to_owned)
            .chain(listed.iter().cloned())
            .collect();
        Err(PipelineError::Input(format!(
            "source: the registry {} is not an allowed source; add it to SOURCE_REGISTRIES \
             (the SourceRegistries parameter) to copy from it (allowed: {})",
            src.registry(),
            allowed.join(", ")
        )))
    }
}

/// Lower case, without a `:443`, Docker Hub under one name.
fn canonical(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = h.strip_suffix(":443").map(str::to_owned).unwrap_or(h);
    match h.as_str() {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        _ => h,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn repos() -> Repositories {
        Repositories::per_application(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "incoming/",
            "quarantine/",
            "trusted/",
            Some("210987654321.dkr.ecr.eu-west-1.amazonaws.com".into()),
        )
        .unwrap()
    }

    fn r(s: &str) -> ImageRef {
        s.parse().unwrap()
    }

    #[test]
    fn only_listed_and_own_registries_are_sources() {
        let only = SourceRegistries::only(["ghcr.io", "Registry.Example:8443"]).unwrap();
        for ok in [
            "ghcr.io/org/app:1",
            "GHCR.io:443/org/app:1",
            "registry.example:8443/app:1",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/incoming/app:1",
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com/incoming/app:1",
        ] {
            assert!(only.check(&r(ok), &repos()).is_ok(), "{ok}");
        }
        for refused in [
            "127.0.0.1:9001/x:1",
            "registry.example/app:1",
            "ghcr.io.evil.example/app:1",
            "busybox:1",
        ] {
            let e = only.check(&r(refused), &repos()).unwrap_err();
            let msg = e.to_string();
            assert_eq!(
                crate::error::Classify::error_type(&e),
                crate::ErrorType::InputInvalid
            );
            assert!(msg.contains("SOURCE_REGISTRIES"), "{msg}");
            assert!(msg.contains(r(refused).registry()), "{msg}");
        }
        // Empty: only the deployment's own.
        let none = SourceRegistries::only(Vec::<String>::new()).unwrap();
        assert!(none.check(&r("ghcr.io/org/app:1"), &repos()).is_err());
        assert!(
            none.check(
                &r("123456789012.dkr.ecr.eu-west-1.amazonaws.com/incoming/app:1"),
                &repos()
            )
            .is_ok()
        );
        // Docker Hub under any of its names.
        let hub = SourceRegistries::only(["registry-1.docker.io"]).unwrap();
        assert!(hub.check(&r("busybox:1"), &repos()).is_ok());
        assert!(
            SourceRegistries::any()
                .check(&r("127.0.0.1:9001/x:1"), &repos())
                .is_ok()
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        for bad in ["https://ghcr.io", "ghcr.io/org", "bad host", ""] {
            assert!(SourceRegistries::only([bad]).is_err(), "{bad}");
        }
    }
}
