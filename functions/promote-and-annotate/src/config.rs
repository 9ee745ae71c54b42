//! promote-and-annotate's configuration: exactly the variables it reads.

use promotion_core::clock::Clock;
use promotion_core::copy::CopyOptions;
use promotion_core::environment::Environments;
use promotion_core::mutate::Entries;
use promotion_core::pipeline::PromoteSettings;
use promotion_lambda::config::{self, ConfigError, Gating, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The deployment, `GATE_POLICY` (required) and `INSPECTOR_ASSUME_SCANNED`.
    pub gating: Gating,
    /// `ANNOTATIONS`.
    pub annotations: Entries,
    /// `LABELS`.
    pub labels: Entries,
    /// `ENVIRONMENTS`, `APPROVAL_ARTIFACT_TYPE`: the first environment's tags are checked
    /// before anything is written.
    pub environments: Environments,
    /// `COPY_CONCURRENCY`.
    pub copy: CopyOptions,
    /// `PRESERVE_DIGEST` (default false): promote without mutation unless a request says
    /// otherwise.
    pub preserve_digest: bool,
}

promotion_lambda::reads_findings!(Config);

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            gating: config::gating(v)?,
            annotations: v.entries("ANNOTATIONS", "annotation")?,
            labels: v.entries("LABELS", "label")?,
            environments: config::environments(v)?,
            copy: config::copy_options(v)?,
            preserve_digest: v.flag("PRESERVE_DIGEST")?,
        })
    }

    /// The promote step's settings.
    pub fn settings<'a>(&'a self, clock: &'a dyn Clock) -> PromoteSettings<'a> {
        PromoteSettings {
            policy: &self.gating.policy,
            environments: &self.environments,
            annotations: &self.annotations,
            labels: &self.labels,
            clock,
            copy: self.copy.clone(),
            preserve_digest: self.preserve_digest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_is_required() {
        let vars = |k: &str| match k {
            "PIPELINE_REGISTRY" => Some("reg.test".to_owned()),
            "INGRESS_PREFIX" => Some("incoming/".to_owned()),
            "QUARANTINE_PREFIX" => Some("quarantine/".to_owned()),
            "TRUSTED_PREFIX" => Some("trusted/".to_owned()),
            _ => None,
        };
        let e = Config::parse(&Vars(&vars)).err().expect("refused");
        assert!(e.0.contains("GATE_POLICY is not set"), "{e}");
    }

    #[test]
    fn preserve_digest_defaults_to_false_and_is_checked() {
        let with = |value: Option<&'static str>| {
            move |k: &str| match k {
                "PIPELINE_REGISTRY" => Some("reg.test".to_owned()),
                "INGRESS_PREFIX" => Some("incoming/".to_owned()),
                "QUARANTINE_PREFIX" => Some("quarantine/".to_owned()),
                "TRUSTED_PREFIX" => Some("trusted/".to_owned()),
                "GATE_POLICY" => Some("{}".to_owned()),
                "PRESERVE_DIGEST" => value.map(str::to_owned),
                _ => None,
            }
        };
        let parse = |v: Option<&'static str>| Config::parse(&Vars(&with(v)));
        assert!(
            !parse(None)
                .unwrap_or_else(|e| panic!("{e}"))
                .preserve_digest
        );
        assert!(
            parse(Some("true"))
                .unwrap_or_else(|e| panic!("{e}"))
                .preserve_digest
        );
        let e = parse(Some("yes")).err().expect("refused");
        assert!(e.0.contains("PRESERVE_DIGEST"), "{e}");
    }
}
