//! copy-to-quarantine's configuration: exactly the variables it reads.

use promotion_core::copy::CopyOptions;
use promotion_lambda::config::{self, ConfigError, Deployment, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The repositories and registry settings.
    pub deployment: Deployment,
    /// `COPY_CONCURRENCY`.
    pub copy: CopyOptions,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            deployment: config::deployment(v)?,
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
