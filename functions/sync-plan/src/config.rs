//! sync-plan's configuration: exactly the variables it reads.

use promotion_core::environment::Environments;
use promotion_core::pipeline::SourceRegistries;
use promotion_core::pipeline::sync::SyncSettings;
use promotion_lambda::config::{self, ConfigError, Deployment, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The repositories (a sync's trusted repository is its application's) and registry
    /// settings.
    pub deployment: Deployment,
    /// `ENVIRONMENTS`, `APPROVAL_ARTIFACT_TYPE`: the first environment's tag template names the
    /// environment tag a promotion of each upstream tag gets.
    pub environments: Environments,
    /// `SOURCE_REGISTRIES`: where a synced repository may be, as for copy-to-quarantine.
    pub sources: SourceRegistries,
    /// `SOURCE_CREDENTIALS_SECRET_PREFIX`: where the sources' credentials are kept.
    pub secret_prefix: Option<String>,
    /// `SOURCE_ECR_ROLES`: the role to assume per source account (account, role ARN).
    pub ecr_roles: Vec<(String, String)>,
    /// `SYNC_MAX_CONCURRENCY` (default 3, 1-1000).
    pub max_concurrency: u32,
    /// `SYNC_TOLERATED_FAILURE_PERCENTAGE` (default 20, 0-100).
    pub tolerated_failure_percentage: u32,
    /// `SYNC_MAX_PROMOTIONS` (default 200, 1-1000).
    pub max_promotions: usize,
}

/// A whole number in `range`, `default` when unset.
fn bounded(
    v: &Vars,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let n = v.number(name, default)?;
    if range.contains(&n) {
        Ok(n)
    } else {
        Err(ConfigError(format!(
            "{name}={n}: expected {} to {}",
            range.start(),
            range.end()
        )))
    }
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        // The bounds keep the values what the Map accepts; a u64 in them fits the targets.
        let number = |name, default, range| bounded(v, name, default, range).map(|n| n as u32);
        Ok(Config {
            deployment: config::deployment(v)?,
            environments: config::environments(v)?,
            sources: config::source_registries(v)?,
            secret_prefix: config::secret_prefix(v)?,
            ecr_roles: config::source_ecr_roles(v)?,
            max_concurrency: number("SYNC_MAX_CONCURRENCY", 3, 1..=1000)?,
            tolerated_failure_percentage: number("SYNC_TOLERATED_FAILURE_PERCENTAGE", 20, 0..=100)?,
            max_promotions: number("SYNC_MAX_PROMOTIONS", 200, 1..=1000)? as usize,
        })
    }

    /// The plan's settings.
    pub fn settings(&self) -> SyncSettings<'_> {
        SyncSettings {
            environments: &self.environments,
            sources: &self.sources,
            max_concurrency: self.max_concurrency,
            tolerated_failure_percentage: self.tolerated_failure_percentage,
            max_promotions: self.max_promotions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(extra: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        move |k: &str| match k {
            "PIPELINE_REGISTRY" => Some("reg.test".to_owned()),
            "INGRESS_PREFIX" => Some("incoming/".to_owned()),
            "QUARANTINE_PREFIX" => Some("quarantine/".to_owned()),
            "TRUSTED_PREFIX" => Some("trusted/".to_owned()),
            _ => extra
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned()),
        }
    }

    #[test]
    fn the_map_settings_default_to_stay_under_the_put_image_rate_and_are_bounded() {
        let c = Config::parse(&Vars(&with(vec![]))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                c.max_concurrency,
                c.tolerated_failure_percentage,
                c.max_promotions
            ),
            (3, 20, 200)
        );
        for (name, value) in [
            ("SYNC_MAX_CONCURRENCY", "0"),
            ("SYNC_TOLERATED_FAILURE_PERCENTAGE", "101"),
            ("SYNC_MAX_PROMOTIONS", "many"),
        ] {
            let e = Config::parse(&Vars(&with(vec![(name, value)])))
                .err()
                .expect("refused");
            assert!(e.0.starts_with(name), "{e}");
        }
        let e = Config::parse(&Vars(&|_: &str| None))
            .err()
            .expect("refused");
        assert!(e.0.contains("PIPELINE_REGISTRY"), "{e}");
    }
}
