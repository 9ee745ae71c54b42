//! sign's configuration: exactly the variables it reads.

use promotion_aws::kms::KmsMessageMode;
use promotion_core::sign::store::SignMode;
use promotion_lambda::config::{self, ConfigError, Deployment, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// The repositories and registry settings.
    pub deployment: Deployment,
    /// `KMS_KEY_ID` (required).
    pub kms_key_id: String,
    /// `KMS_MESSAGE_MODE` (`digest`, default, or `raw` for KMS stand-ins whose DIGEST is wrong).
    pub kms_message_mode: KmsMessageMode,
    /// `SIGN_MODE` (`bundle`, `legacy`, `both`; default `both`).
    pub sign_mode: SignMode,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            deployment: config::deployment(v)?,
            kms_key_id: config::kms_key_id(v)?,
            kms_message_mode: v.parsed("KMS_MESSAGE_MODE", "digest")?,
            sign_mode: v.parsed("SIGN_MODE", "both")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let extra: Vec<(String, String)> = extra
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let vars = move |k: &str| match k {
            "PIPELINE_REGISTRY" => Some("reg.test".to_owned()),
            "INGRESS_PREFIX" => Some("incoming/".to_owned()),
            "QUARANTINE_PREFIX" => Some("quarantine/".to_owned()),
            "TRUSTED_PREFIX" => Some("trusted/".to_owned()),
            _ => extra.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
        };
        Config::parse(&Vars(&vars))
    }

    #[test]
    fn the_key_is_required_and_the_modes_default_and_are_checked() {
        let e = parse(&[]).err().expect("refused");
        assert!(e.0.contains("KMS_KEY_ID is not set"), "{e}");
        let c = parse(&[("KMS_KEY_ID", "alias/x")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.kms_message_mode, KmsMessageMode::default());
        assert_eq!(c.sign_mode, SignMode::Both);
        let e = parse(&[("KMS_KEY_ID", "alias/x"), ("SIGN_MODE", "all")])
            .err()
            .expect("refused");
        assert!(e.0.contains("SIGN_MODE"), "{e}");
    }
}
