//! copy-to-quarantine's configuration: exactly the variables it reads.

use promotion_core::copy::CopyOptions;
use promotion_core::pipeline::Repositories;
use promotion_lambda::config::{self, ConfigError, RegistrySettings, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// `INGRESS_REGISTRY`, `QUARANTINE_REPOSITORY`, `TRUSTED_REPOSITORY`.
    pub repos: Repositories,
    /// `ECR_REGISTRY_ALIASES`, `INSECURE_REGISTRIES`.
    pub registry: RegistrySettings,
    /// `COPY_CONCURRENCY`.
    pub copy: CopyOptions,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            repos: config::repositories(v)?,
            registry: config::registry(v)?,
            copy: config::copy_options(v)?,
        })
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
        assert!(e.0.contains("QUARANTINE_REPOSITORY is not set"), "{e}");
    }
}
