//! retag-for-environment's configuration: exactly the variables it reads.

use promotion_core::clock::Clock;
use promotion_core::environment::{ApproverKeys, Environments};
use promotion_core::pipeline::RetagSettings;
use promotion_core::sign::PublicKey;
use promotion_lambda::config::{self, ConfigError, Gating, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The deployment, `GATE_POLICY` (required) and `INSPECTOR_ASSUME_SCANNED`.
    pub gating: Gating,
    /// `ENVIRONMENTS`.
    pub environments: Environments,
    /// `KMS_KEY_ID` (required): the pipeline's signature is verified with its public key.
    pub kms_key_id: String,
}

promotion_lambda::reads_findings!(Config);

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            gating: config::gating(v)?,
            environments: config::environments(v)?,
            kms_key_id: config::kms_key_id(v)?,
        })
    }

    /// The retag step's settings, verifying with `key` and `approvers`.
    pub fn settings<'a>(
        &'a self,
        key: &'a PublicKey,
        approvers: &'a ApproverKeys,
        clock: &'a dyn Clock,
    ) -> RetagSettings<'a> {
        RetagSettings {
            environments: &self.environments,
            policy: &self.gating.policy,
            key,
            approvers,
            clock,
        }
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
                    "PIPELINE_REGISTRY" => "reg.test",
                    "INGRESS_PREFIX" => "incoming/",
                    "QUARANTINE_PREFIX" => "quarantine/",
                    "TRUSTED_PREFIX" => "trusted/",
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
