//! scan-gate's configuration: exactly the variables it reads.

use promotion_core::clock::Clock;
use promotion_core::environment::{ApproverKeys, Environments};
use promotion_core::pipeline::GateSettings;
use promotion_lambda::config::{self, ConfigError, Gating, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The deployment, `GATE_POLICY` (required) and `INSPECTOR_ASSUME_SCANNED`.
    pub gating: Gating,
    /// `ENVIRONMENTS`, `APPROVAL_ARTIFACT_TYPE`.
    pub environments: Environments,
    /// `SCAN_POLL_SECONDS` (default 30).
    pub poll_seconds: u64,
    /// `SCAN_MAX_WAIT_SECONDS` (default: the policy's `max_wait_seconds`).
    pub max_wait_seconds: u64,
}

promotion_lambda::reads_findings!(Config);

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        let gating = config::gating(v)?;
        let max_wait = gating.policy.rules(None).max_wait_seconds;
        Ok(Config {
            environments: config::environments(v)?,
            poll_seconds: v.number("SCAN_POLL_SECONDS", 30)?.max(1),
            max_wait_seconds: v.number("SCAN_MAX_WAIT_SECONDS", max_wait)?,
            gating,
        })
    }

    /// The gate step's settings, verifying approvals with `approvers`.
    pub fn settings<'a>(
        &'a self,
        approvers: &'a ApproverKeys,
        clock: &'a dyn Clock,
    ) -> GateSettings<'a> {
        GateSettings {
            policy: &self.gating.policy,
            environments: &self.environments,
            approvers,
            poll_seconds: self.poll_seconds,
            max_wait_seconds: self.max_wait_seconds,
            clock,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_policy_is_required_and_the_waits_default() {
        let mut map = HashMap::from([
            ("PIPELINE_REGISTRY", "reg.test"),
            ("INGRESS_PREFIX", "incoming/"),
            ("QUARANTINE_PREFIX", "quarantine/"),
            ("TRUSTED_PREFIX", "trusted/"),
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
