//! scan-gate's configuration: exactly the variables it reads.

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
    /// `GATE_POLICY` (required).
    pub policy: Policy,
    /// `ENVIRONMENTS`, `APPROVAL_ARTIFACT_TYPE`.
    pub environments: Environments,
    /// `SCAN_POLL_SECONDS` (default 30).
    pub poll_seconds: u64,
    /// `SCAN_MAX_WAIT_SECONDS` (default: the policy's `max_wait_seconds`).
    pub max_wait_seconds: u64,
    /// `INSPECTOR_ASSUME_SCANNED`.
    pub assume_scanned: bool,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        let policy = config::policy(v)?;
        let max_wait = policy.rules(None).max_wait_seconds;
        Ok(Config {
            repos: config::repositories(v)?,
            registry: config::registry(v)?,
            environments: config::environments(v)?,
            poll_seconds: v.number("SCAN_POLL_SECONDS", 30)?.max(1),
            max_wait_seconds: v.number("SCAN_MAX_WAIT_SECONDS", max_wait)?,
            assume_scanned: config::assume_scanned(v)?,
            policy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_policy_is_required_and_the_waits_default() {
        let mut map = HashMap::from([
            ("QUARANTINE_REPOSITORY", "reg.test/q/app"),
            ("TRUSTED_REPOSITORY", "reg.test/t/app"),
        ]);
        let e = Config::parse(&Vars(&|k: &str| map.get(k).map(|v| v.to_string())))
            .err()
            .expect("refused");
        assert!(e.0.contains("GATE_POLICY is not set"), "{e}");
        map.insert("GATE_POLICY", "max_wait_seconds: 600");
        let c = Config::parse(&Vars(&|k: &str| map.get(k).map(|v| v.to_string())))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.poll_seconds, c.max_wait_seconds), (30, 600));
    }
}
