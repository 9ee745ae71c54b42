//! copy-to-quarantine's configuration: exactly the variables it reads.

use promotion_core::copy::CopyOptions;
use promotion_core::environment::Environments;
use promotion_core::pipeline::{CopySettings, SourceRegistries};
use promotion_core::selection::Limits;
use promotion_lambda::config::{self, ConfigError, Deployment, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The repositories and registry settings.
    pub deployment: Deployment,
    /// `COPY_CONCURRENCY`; `COPY_REFERRERS` (default false): also copy the source's inert
    /// referrers (signatures, SBOMs, attestations; never images) into quarantine.
    pub copy: CopyOptions,
    /// `GATE_POLICY` (required): its `limits` bound the source image.
    pub limits: Limits,
    /// `ENVIRONMENTS`, `APPROVAL_ARTIFACT_TYPE`: the request's build id is checked against
    /// the first environment before anything is written.
    pub environments: Environments,
    /// `SOURCE_REGISTRIES`: where a source may be, besides the deployment's own registries.
    pub sources: SourceRegistries,
    /// `SOURCE_CREDENTIALS_SECRET_PREFIX`: where the sources' credentials are kept.
    pub secret_prefix: Option<String>,
    /// `SOURCE_ECR_ROLES`: the role to assume per source account (account, role ARN).
    pub ecr_roles: Vec<(String, String)>,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            deployment: config::deployment(v)?,
            copy: CopyOptions {
                referrers: v.flag("COPY_REFERRERS")?,
                inert_referrers_only: true,
                ..config::copy_options(v)?
            },
            limits: config::policy(v)?.limits(),
            environments: config::environments(v)?,
            sources: config::source_registries(v)?,
            secret_prefix: config::secret_prefix(v)?,
            ecr_roles: config::source_ecr_roles(v)?,
        })
    }

    /// The copy step's settings.
    pub fn settings(&self) -> CopySettings<'_> {
        CopySettings {
            copy: self.copy.clone(),
            limits: self.limits,
            environments: &self.environments,
            sources: &self.sources,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repositories_are_required_and_named() {
        let e = Config::parse(&Vars(&|_: &str| None))
            .err()
            .expect("refused");
        assert!(e.0.contains("PIPELINE_REGISTRY is not set"), "{e}");
    }

    #[test]
    fn copy_referrers_defaults_to_false_and_is_checked() {
        let with = |value: Option<&'static str>| {
            move |k: &str| match k {
                "PIPELINE_REGISTRY" => Some("reg.test".to_owned()),
                "INGRESS_PREFIX" => Some("incoming/".to_owned()),
                "QUARANTINE_PREFIX" => Some("quarantine/".to_owned()),
                "TRUSTED_PREFIX" => Some("trusted/".to_owned()),
                "GATE_POLICY" => Some("{}".to_owned()),
                "COPY_REFERRERS" => value.map(str::to_owned),
                _ => None,
            }
        };
        let parse = |v: Option<&'static str>| Config::parse(&Vars(&with(v)));
        assert!(!parse(None).unwrap_or_else(|e| panic!("{e}")).copy.referrers);
        assert!(
            parse(Some("true"))
                .unwrap_or_else(|e| panic!("{e}"))
                .copy
                .referrers
        );
        let e = parse(Some("yes")).err().expect("refused");
        assert!(e.0.contains("COPY_REFERRERS"), "{e}");
    }
}
