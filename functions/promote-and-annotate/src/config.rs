//! promote-and-annotate's configuration: exactly the variables it reads.

use promotion_core::copy::CopyOptions;
use promotion_core::gate::Policy;
use promotion_core::mutate::Entries;
use promotion_core::pipeline::Repositories;
use promotion_lambda::config::{self, ConfigError, RegistrySettings, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// `QUARANTINE_REPOSITORY`, `TRUSTED_REPOSITORY`.
    pub repos: Repositories,
    /// `ECR_REGISTRY_ALIASES`, `INSECURE_REGISTRIES`.
    pub registry: RegistrySettings,
    /// `GATE_POLICY` (required): the gate is re-checked before anything is written.
    pub policy: Policy,
    /// `ANNOTATIONS`.
    pub annotations: Entries,
    /// `LABELS`.
    pub labels: Entries,
    /// `INSPECTOR_ASSUME_SCANNED`.
    pub assume_scanned: bool,
    /// `COPY_CONCURRENCY`.
    pub copy: CopyOptions,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            repos: config::repositories(v)?,
            registry: config::registry(v)?,
            policy: config::policy(v)?,
            annotations: v.entries("ANNOTATIONS", "annotation")?,
            labels: v.entries("LABELS", "label")?,
            assume_scanned: config::assume_scanned(v)?,
            copy: config::copy_options(v)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_required() {
        let vars = |k: &str| match k {
            "QUARANTINE_REPOSITORY" => Some("reg.test/q/app".to_owned()),
            "TRUSTED_REPOSITORY" => Some("reg.test/t/app".to_owned()),
            _ => None,
        };
        let e = Config::parse(&Vars(&vars)).err().expect("refused");
        assert!(e.0.contains("GATE_POLICY is not set"), "{e}");
    }
}
