//! retag-for-environment's configuration: exactly the variables it reads.

use promotion_core::environment::Environments;
use promotion_core::gate::Policy;
use promotion_core::pipeline::Repositories;
use promotion_lambda::config::{self, ConfigError, RegistrySettings, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// `QUARANTINE_REPOSITORY`, `TRUSTED_REPOSITORY`.
    pub repos: Repositories,
    /// `ECR_REGISTRY_ALIASES`, `INSECURE_REGISTRIES`.
    pub registry: RegistrySettings,
    /// `GATE_POLICY` (required): the environment gate.
    pub policy: Policy,
    /// `ENVIRONMENTS`.
    pub environments: Environments,
    /// `KMS_KEY_ID` (required): the pipeline's signature is verified with its public key.
    pub kms_key_id: String,
    /// `INSPECTOR_ASSUME_SCANNED`.
    pub assume_scanned: bool,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            repos: config::repositories(v)?,
            registry: config::registry(v)?,
            policy: config::policy(v)?,
            environments: config::environments(v)?,
            kms_key_id: config::kms_key_id(v)?,
            assume_scanned: config::assume_scanned(v)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_and_the_key_are_required() {
        for (missing, needle) in [("GATE_POLICY", "GATE_POLICY"), ("KMS_KEY_ID", "KMS_KEY_ID")] {
            let vars = |k: &str| {
                let v = match k {
                    "QUARANTINE_REPOSITORY" => "reg.test/q/app",
                    "TRUSTED_REPOSITORY" => "reg.test/t/app",
                    "GATE_POLICY" => "{}",
                    "KMS_KEY_ID" => "alias/x",
                    _ => return None,
                };
                (k != missing).then(|| v.to_owned())
            };
            let e = Config::parse(&Vars(&vars)).err().expect("refused");
            assert!(e.0.contains(&format!("{needle} is not set")), "{e}");
        }
    }
}
