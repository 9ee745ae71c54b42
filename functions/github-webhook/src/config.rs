//! github-webhook's configuration: exactly the variables it reads.

use promotion_lambda::config::{ConfigError, Vars};

/// Parsed once at start-up.
pub struct Config {
    /// `WEBHOOK_SECRET_ID`: the Secrets Manager secret (name or ARN) holding the webhook's
    /// secret as its text; required.
    pub secret_id: String,
    /// `EVENT_BUS_NAME`: the pipeline's own bus, where requests go; required.
    pub event_bus: String,
    /// `WEBHOOK_REGISTRY`: the registry host the packages are in (default `ghcr.io`).
    pub registry: String,
}

impl Config {
    /// Every error names its variable.
    pub fn parse(v: &Vars) -> Result<Config, ConfigError> {
        Ok(Config {
            secret_id: v.required("WEBHOOK_SECRET_ID")?,
            event_bus: v.required("EVENT_BUS_NAME")?,
            registry: v
                .var("WEBHOOK_REGISTRY")
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "ghcr.io".to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_and_the_bus_are_required_and_the_registry_defaults_to_ghcr() {
        let e = Config::parse(&Vars(&|_: &str| None)).err().map(|e| e.0);
        assert!(e.is_some_and(|e| e.contains("WEBHOOK_SECRET_ID")));
        let env = |k: &str| match k {
            "WEBHOOK_SECRET_ID" => Some("webhook".to_owned()),
            "EVENT_BUS_NAME" => Some("stack-promotion".to_owned()),
            _ => None,
        };
        let c = Config::parse(&Vars(&env)).ok();
        assert!(c.is_some_and(|c| c.registry == "ghcr.io" && c.event_bus == "stack-promotion"));
    }
}
