//! Reading a Lambda's configuration: a [`Vars`] lookup (the process environment, or a map in
//! tests) and one parser per kind of setting. Each function composes its own typed config from
//! these, reading only the variables it needs (`functions/<step>/src/config.rs`); every error
//! names the variable. Settings that decide trust (the gate policy, the repositories, the
//! signing key) have no default: a missing one stops the function at start-up.
//!
//! The stand-in switches ([`STAND_IN_SWITCHES`]) exist only in builds with the cargo feature
//! `stand-ins` (the tests and the demo enable it; release and SAM builds do not). A build without
//! it refuses to start when any of them is set: a changed Lambda configuration cannot turn the
//! gate off or send the ECR token to another host.

use promotion_core::copy::CopyOptions;
use promotion_core::ecr::EcrRegistry;
use promotion_core::environment::Environments;
use promotion_core::environment::config::DEFAULT_APPROVAL_ARTIFACT_TYPE;
use promotion_core::gate::Policy;
use promotion_core::mutate::Entries;
use promotion_core::pipeline::{Repositories, SourceRegistries};
use std::collections::BTreeMap;

/// A configuration or start-up failure, naming the variable.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Where configuration values come from: the process environment, or a map in tests. Blank
/// values count as unset.
pub struct Vars<'a>(pub &'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
    /// A variable's value, if set and not blank.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    /// A variable that must be set.
    pub fn required(&self, name: &str) -> Result<String, ConfigError> {
        self.var(name)
            .ok_or_else(|| ConfigError(format!("{name} is not set")))
    }

    /// A whole number, `default` when unset.
    pub fn number(&self, name: &str, default: u64) -> Result<u64, ConfigError> {
        match self.var(name) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| ConfigError(format!("{name}={v:?} is not a whole number"))),
        }
    }

    /// `true` or `false`, `false` when unset.
    pub fn flag(&self, name: &str) -> Result<bool, ConfigError> {
        match self.var(name).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(ConfigError(format!("{name}={v:?}: expected true or false"))),
        }
    }

    /// A value parsed with `FromStr`, `default` when unset.
    pub fn parsed<T: std::str::FromStr>(&self, name: &str, default: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.var(name)
            .unwrap_or_else(|| default.into())
            .parse()
            .map_err(|e| ConfigError(format!("{name}: {e}")))
    }

    /// A JSON object of strings, checked as annotations or labels (`what`).
    pub fn entries(&self, name: &str, what: &str) -> Result<Entries, ConfigError> {
        let Some(text) = self.var(name) else {
            return Ok(Entries::default());
        };
        let map: BTreeMap<String, String> = serde_json::from_str(&text)
            .map_err(|e| ConfigError(format!("{name} must be a JSON object of strings: {e}")))?;
        Entries::from_input(what, map).map_err(|e| ConfigError(format!("{name}: {e}")))
    }

    /// A comma-separated list.
    pub fn list(&self, name: &str) -> Vec<String> {
        self.var(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// `PIPELINE_REGISTRY`, `INGRESS_PREFIX`, `QUARANTINE_PREFIX`, `TRUSTED_PREFIX` (required: an
/// application's repositories are `<prefix><application>` in the pipeline's registry),
/// `APPROVALS_PREFIX` (without it no approval is read, so environments that require one are
/// never entered) and `INGRESS_REGISTRY`.
pub fn repositories(v: &Vars) -> Result<Repositories, ConfigError> {
    let registry = v.required("PIPELINE_REGISTRY")?;
    let (ingress, quarantine, trusted) = (
        v.required("INGRESS_PREFIX")?,
        v.required("QUARANTINE_PREFIX")?,
        v.required("TRUSTED_PREFIX")?,
    );
    Repositories::per_application(
        registry.trim(),
        ingress.trim(),
        quarantine.trim(),
        trusted.trim(),
        v.var("INGRESS_REGISTRY"),
    )
    .map_err(|e| {
        ConfigError(format!(
            "PIPELINE_REGISTRY, INGRESS_PREFIX, QUARANTINE_PREFIX, TRUSTED_PREFIX: {e}"
        ))
    })
    .and_then(|r| match v.var("APPROVALS_PREFIX") {
        Some(a) => r
            .with_approvals_prefix(a.trim())
            .map_err(|e| ConfigError(format!("APPROVALS_PREFIX: {e}"))),
        None => Ok(r),
    })
}

/// What every function reads: where the pipeline's repositories are and how registries are
/// reached.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// `PIPELINE_REGISTRY`, `INGRESS_PREFIX`, `QUARANTINE_PREFIX`, `TRUSTED_PREFIX`,
    /// `INGRESS_REGISTRY`.
    pub repos: Repositories,
    /// `ECR_REGISTRY_ALIASES`, `INSECURE_REGISTRIES`.
    pub registry: RegistrySettings,
}

/// The repositories and the registry settings. Every function reads its deployment first, so a
/// stand-in switch set on a build without them stops every function, including those that do not
/// read that switch.
pub fn deployment(v: &Vars) -> Result<Deployment, ConfigError> {
    refuse_stand_in_switches(v)?;
    Ok(Deployment {
        repos: repositories(v)?,
        registry: registry(v)?,
    })
}

/// What every function that reads findings reads (scan-gate, promote-and-annotate,
/// retag-for-environment): the deployment, the policy and the stand-in switch.
#[derive(Debug, Clone)]
pub struct Gating {
    /// The repositories and registry settings.
    pub deployment: Deployment,
    /// `GATE_POLICY` (required).
    pub policy: Policy,
    /// `INSPECTOR_ASSUME_SCANNED`.
    pub assume_scanned: bool,
}

/// The deployment, `GATE_POLICY` and `INSPECTOR_ASSUME_SCANNED`.
pub fn gating(v: &Vars) -> Result<Gating, ConfigError> {
    Ok(Gating {
        deployment: deployment(v)?,
        policy: policy(v)?,
        assume_scanned: assume_scanned(v)?,
    })
}

/// How the registry client reaches registries.
#[derive(Debug, Clone, Default)]
pub struct RegistrySettings {
    /// `ECR_REGISTRY_ALIASES`: `host=<account>.dkr.ecr.<region>.amazonaws.com`, comma-separated.
    pub ecr_aliases: Vec<(String, EcrRegistry)>,
    /// `INSECURE_REGISTRIES`: hosts reached over plain HTTP (stand-ins only).
    pub insecure_registries: Vec<String>,
    /// Hosts that may resolve to internal addresses: the deployment's own registries
    /// (`PIPELINE_REGISTRY`, `INGRESS_REGISTRY`: the account's ECR, which an interface VPC
    /// endpoint answers with private addresses) and the `ECR_REGISTRY_ALIASES` hosts.
    /// Every other host is refused there (`promotion_registry::egress`).
    pub internal_registries: Vec<String>,
    /// `BLOB_REDIRECT_HOSTS`: where registries may redirect blob transfers besides their own
    /// host (`host`, `host:port`, `*.domain`): the CDNs and object stores of the
    /// `SOURCE_REGISTRIES`. ECR's own layer bucket needs no entry. Read in every build.
    pub redirect_hosts: Vec<String>,
}

/// The variables only stand-ins set: `ECR_REGISTRY_ALIASES` (authenticate a host with ECR's
/// token), `INSECURE_REGISTRIES` (plain HTTP) and `INSPECTOR_ASSUME_SCANNED` (skip Inspector's
/// coverage check). Read only with the cargo feature `stand-ins`.
pub const STAND_IN_SWITCHES: [&str; 3] = [
    "ECR_REGISTRY_ALIASES",
    "INSECURE_REGISTRIES",
    "INSPECTOR_ASSUME_SCANNED",
];

/// Whether this build reads the stand-in switches (cargo feature `stand-ins`).
pub const STAND_INS: bool = cfg!(feature = "stand-ins");

/// Without the feature `stand-ins`: an error naming every stand-in switch that is set (to any
/// value, `false` included), so that a deployment that sets one fails at start-up instead of
/// believing it took effect. With the feature: nothing to refuse.
pub fn refuse_stand_in_switches(v: &Vars) -> Result<(), ConfigError> {
    let set: Vec<&str> = STAND_IN_SWITCHES
        .into_iter()
        .filter(|name| v.var(name).is_some())
        .collect();
    if STAND_INS || set.is_empty() {
        return Ok(());
    }
    Err(ConfigError(format!(
        "{} set, but this build has no stand-in switches (cargo feature `stand-ins`, for tests \
         and the demo only): remove {} from the function's configuration",
        set.join(", "),
        if set.len() == 1 { "it" } else { "them" }
    )))
}

/// `ECR_REGISTRY_ALIASES` and `INSECURE_REGISTRIES` (stand-ins only: without the feature
/// `stand-ins`, refused when set, else the defaults).
pub fn registry(v: &Vars) -> Result<RegistrySettings, ConfigError> {
    refuse_stand_in_switches(v)?;
    let mut settings = registry_switches(v)?;
    // The deployment's own registries may resolve to internal addresses in every build (an
    // interface VPC endpoint for ECR answers with private ones); aliases only in stand-in builds.
    settings.internal_registries = ["PIPELINE_REGISTRY", "INGRESS_REGISTRY"]
        .into_iter()
        .filter_map(|name| v.var(name))
        .map(|h| h.trim().to_owned())
        .chain(settings.ecr_aliases.iter().map(|(h, _)| h.clone()))
        .collect();
    settings.redirect_hosts = v.list("BLOB_REDIRECT_HOSTS");
    promotion_registry::egress::RedirectHosts::new(&settings.redirect_hosts)
        .map_err(|e| ConfigError(format!("BLOB_REDIRECT_HOSTS: {e}")))?;
    Ok(settings)
}

/// Without the feature `stand-ins`: no switch to read.
#[cfg(not(feature = "stand-ins"))]
fn registry_switches(_: &Vars) -> Result<RegistrySettings, ConfigError> {
    Ok(RegistrySettings::default())
}

/// With the feature `stand-ins`: the aliases and the plain-HTTP hosts.
#[cfg(feature = "stand-ins")]
fn registry_switches(v: &Vars) -> Result<RegistrySettings, ConfigError> {
    let mut ecr_aliases = Vec::new();
    for item in v.list("ECR_REGISTRY_ALIASES") {
        let (host, ecr) = item
            .split_once('=')
            .and_then(|(h, e)| Some((h.to_owned(), EcrRegistry::from_host(e)?)))
            .ok_or_else(|| {
                ConfigError(format!(
                    "ECR_REGISTRY_ALIASES: {item:?} is not host=<account>.dkr.ecr.<region>.amazonaws.com"
                ))
            })?;
        ecr_aliases.push((host, ecr));
    }
    Ok(RegistrySettings {
        ecr_aliases,
        insecure_registries: v.list("INSECURE_REGISTRIES"),
        ..RegistrySettings::default()
    })
}

// ------------------------------------------------------------------------------------------------
// Egress: where copy-to-quarantine may read from
// ------------------------------------------------------------------------------------------------

/// `SOURCE_REGISTRIES`: the registries copy-to-quarantine may copy from (`host[:port]`,
/// comma-separated) besides the deployment's own (`PIPELINE_REGISTRY`, `INGRESS_REGISTRY`),
/// which are always allowed. Unset or empty: only those. A request naming another registry is
/// `Input.Invalid` before anything is fetched.
pub fn source_registries(v: &Vars) -> Result<SourceRegistries, ConfigError> {
    SourceRegistries::only(v.list("SOURCE_REGISTRIES"))
        .map_err(|e| ConfigError(format!("SOURCE_REGISTRIES: {e}")))
}

/// `SOURCE_CREDENTIALS_SECRET_PREFIX`: source registries' credentials are read from Secrets
/// Manager, secret `<prefix><host>` (`promotion_core::registry::secrets`). Unset or empty: no
/// secret is read (public sources and the deployment's ECR only). The prefix must be usable in
/// a secret name (letters, digits, `/_+=.@-`), so that the IAM grant scoped to it is exact.
pub fn secret_prefix(v: &Vars) -> Result<Option<String>, ConfigError> {
    let Some(prefix) = v
        .var("SOURCE_CREDENTIALS_SECRET_PREFIX")
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    let ok = prefix.len() <= 256
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c));
    if !ok {
        return Err(ConfigError(format!(
            "SOURCE_CREDENTIALS_SECRET_PREFIX: {prefix:?} cannot start a secret name (letters, \
             digits and /_+=.@- only)"
        )));
    }
    Ok(Some(prefix))
}

/// `SOURCE_ECR_ROLES`: IAM role ARNs (comma-separated), one per source account: another
/// account's ECR registry is read with a token its role gets (copy-to-quarantine assumes the
/// role of the registry's account). Each `(account, role ARN)`; a malformed ARN, or two roles
/// for one account, stops the function.
pub fn source_ecr_roles(v: &Vars) -> Result<Vec<(String, String)>, ConfigError> {
    let mut roles: Vec<(String, String)> = Vec::new();
    for arn in v.list("SOURCE_ECR_ROLES") {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let account = match parts.as_slice() {
            ["arn", partition, "iam", "", account, resource]
                if !partition.is_empty()
                    && account.len() == 12
                    && account.bytes().all(|b| b.is_ascii_digit())
                    && resource
                        .strip_prefix("role/")
                        .is_some_and(|n| !n.is_empty()) =>
            {
                (*account).to_owned()
            }
            _ => {
                return Err(ConfigError(format!(
                    "SOURCE_ECR_ROLES: {arn:?} is not an IAM role ARN \
                     (arn:<partition>:iam::<account>:role/<name>)"
                )));
            }
        };
        if roles.iter().any(|(a, _)| *a == account) {
            return Err(ConfigError(format!(
                "SOURCE_ECR_ROLES: two roles for account {account}"
            )));
        }
        roles.push((account, arn));
    }
    Ok(roles)
}

/// `GATE_POLICY` (JSON or YAML), required: the deployment states its policy.
pub fn policy(v: &Vars) -> Result<Policy, ConfigError> {
    Policy::parse(&v.required("GATE_POLICY")?).map_err(|e| ConfigError(format!("GATE_POLICY: {e}")))
}

/// `ENVIRONMENTS` (default: dev, staging, prod) and `APPROVAL_ARTIFACT_TYPE`, which wins over
/// the document's default and must equal the type the document names, if it names one: the
/// deployment's approval type (the one its EventBridge rule matches) is the one approvals are
/// resolved by.
pub fn environments(v: &Vars) -> Result<Environments, ConfigError> {
    let mut environments = match v.var("ENVIRONMENTS") {
        Some(t) => {
            Environments::parse(&t).map_err(|e| ConfigError(format!("ENVIRONMENTS: {e}")))?
        }
        None => Environments::default(),
    };
    if let Some(t) = v.var("APPROVAL_ARTIFACT_TYPE") {
        let from_doc = &environments.approval_artifact_type;
        if *from_doc != t && from_doc != DEFAULT_APPROVAL_ARTIFACT_TYPE {
            return Err(ConfigError(format!(
                "APPROVAL_ARTIFACT_TYPE={t:?} but ENVIRONMENTS names approval_artifact_type {from_doc:?}"
            )));
        }
        environments.approval_artifact_type = t;
    }
    Ok(environments)
}

/// `INSPECTOR_ASSUME_SCANNED=true`: skip ListCoverage (stand-ins without it only). Without the
/// feature `stand-ins`: refused when set, else `false`.
pub fn assume_scanned(v: &Vars) -> Result<bool, ConfigError> {
    refuse_stand_in_switches(v)?;
    #[cfg(feature = "stand-ins")]
    return v.flag("INSPECTOR_ASSUME_SCANNED");
    #[cfg(not(feature = "stand-ins"))]
    Ok(false)
}

/// `COPY_CONCURRENCY` (default 4, at most 64).
pub fn copy_options(v: &Vars) -> Result<CopyOptions, ConfigError> {
    Ok(CopyOptions {
        concurrency: v.number("COPY_CONCURRENCY", 4)?.clamp(1, 64) as usize,
        ..CopyOptions::default()
    })
}

/// `KMS_KEY_ID`, required.
pub fn kms_key_id(v: &Vars) -> Result<String, ConfigError> {
    v.required("KMS_KEY_ID")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// `f` on a lookup of `pairs` over the repositories and policy every test needs.
    pub(crate) fn with<T>(
        pairs: &[(&str, &str)],
        f: impl Fn(&Vars) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let mut map: HashMap<String, String> = HashMap::from([
            ("PIPELINE_REGISTRY".into(), "reg.test".into()),
            ("INGRESS_PREFIX".into(), "incoming/".into()),
            ("QUARANTINE_PREFIX".into(), "quarantine/".into()),
            ("TRUSTED_PREFIX".into(), "trusted/".into()),
            ("GATE_POLICY".into(), "{}".into()),
        ]);
        for (k, v) in pairs {
            map.insert((*k).into(), (*v).into());
        }
        f(&Vars(&|k: &str| map.get(k).cloned()))
    }

    #[test]
    fn every_error_names_its_variable() {
        type Parse = fn(&Vars) -> Result<(), ConfigError>;
        let repos: Parse = |v| repositories(v).map(drop);
        let number: Parse = |v| v.number("SCAN_POLL_SECONDS", 30).map(drop);
        let annotations: Parse = |v| v.entries("ANNOTATIONS", "annotation").map(drop);
        let labels: Parse = |v| v.entries("LABELS", "label").map(drop);
        let pol: Parse = |v| policy(v).map(drop);
        let envs: Parse = |v| environments(v).map(drop);
        let reg: Parse = |v| registry(v).map(drop);
        let scanned: Parse = |v| assume_scanned(v).map(drop);
        let mode: Parse = |v| {
            v.parsed::<promotion_aws::kms::KmsMessageMode>("KMS_MESSAGE_MODE", "digest")
                .map(drop)
        };
        let key: Parse = |v| kms_key_id(v).map(drop);
        let sources: Parse = |v| source_registries(v).map(drop);
        let secrets: Parse = |v| secret_prefix(v).map(drop);
        let roles: Parse = |v| source_ecr_roles(v).map(drop);
        let cases: [((&str, &str), Parse, &str); 17] = [
            (
                ("SOURCE_ECR_ROLES", "arn:aws:iam::21098765432:role/pull"),
                roles,
                "SOURCE_ECR_ROLES: \"arn:aws:iam::21098765432:role/pull\" is not an IAM role",
            ),
            (
                (
                    "SOURCE_ECR_ROLES",
                    "arn:aws:iam::210987654321:role/a,arn:aws:iam::210987654321:role/b",
                ),
                roles,
                "two roles for account 210987654321",
            ),
            (
                ("SOURCE_CREDENTIALS_SECRET_PREFIX", "creds/*"),
                secrets,
                "SOURCE_CREDENTIALS_SECRET_PREFIX",
            ),
            (("TRUSTED_PREFIX", ""), repos, "TRUSTED_PREFIX is not set"),
            (
                ("APPROVALS_PREFIX", "trusted/approvals/"),
                repos,
                "APPROVALS_PREFIX: the approvals prefix \"trusted/approvals/\" and the trusted",
            ),
            (
                ("TRUSTED_PREFIX", "incoming/trusted/"),
                repos,
                "TRUSTED_PREFIX: the ingress prefix \"incoming/\" is a prefix of the trusted",
            ),
            (
                ("SCAN_POLL_SECONDS", "soon"),
                number,
                "SCAN_POLL_SECONDS=\"soon\"",
            ),
            (
                ("ANNOTATIONS", "[1]"),
                annotations,
                "ANNOTATIONS must be a JSON object",
            ),
            (
                ("LABELS", r#"{"io.ecr-promotion.x":"1"}"#),
                labels,
                "LABELS",
            ),
            (
                ("GATE_POLICY", "block_severity: [HIGH]"),
                pol,
                "GATE_POLICY",
            ),
            (("GATE_POLICY", " "), pol, "GATE_POLICY is not set"),
            (("ENVIRONMENTS", "environments: []"), envs, "ENVIRONMENTS"),
            (
                ("ECR_REGISTRY_ALIASES", "127.0.0.1:5000"),
                reg,
                "ECR_REGISTRY_ALIASES",
            ),
            (
                ("INSPECTOR_ASSUME_SCANNED", "yes"),
                scanned,
                "INSPECTOR_ASSUME_SCANNED",
            ),
            (("KMS_MESSAGE_MODE", "sha1"), mode, "KMS_MESSAGE_MODE"),
            (("KMS_KEY_ID", ""), key, "KMS_KEY_ID is not set"),
            (
                ("SOURCE_REGISTRIES", "ghcr.io,https://quay.io"),
                sources,
                "SOURCE_REGISTRIES",
            ),
        ];
        for ((k, v), parse, needle) in cases {
            let e = with(&[(k, v)], parse)
                .err()
                .unwrap_or_else(|| panic!("{k}={v} accepted"));
            assert!(e.0.contains(needle), "{k}={v}: {e}");
        }
    }

    #[test]
    fn defaults() {
        assert_eq!(with(&[], secret_prefix).unwrap(), None);
        assert_eq!(
            with(
                &[(
                    "SOURCE_ECR_ROLES",
                    "arn:aws:iam::210987654321:role/ecr-promotion-pull, arn:aws-cn:iam::111122223333:role/p/q"
                )],
                source_ecr_roles
            )
            .unwrap(),
            [
                (
                    "210987654321".to_owned(),
                    "arn:aws:iam::210987654321:role/ecr-promotion-pull".to_owned()
                ),
                (
                    "111122223333".to_owned(),
                    "arn:aws-cn:iam::111122223333:role/p/q".to_owned()
                )
            ]
        );
        assert_eq!(
            with(
                &[("SOURCE_CREDENTIALS_SECRET_PREFIX", "ecr-pullthroughcache/")],
                secret_prefix
            )
            .unwrap()
            .as_deref(),
            Some("ecr-pullthroughcache/")
        );
        assert_eq!(with(&[], environments).unwrap(), Environments::default());
        assert!(!with(&[], assume_scanned).unwrap());
        assert_eq!(with(&[], copy_options).unwrap().concurrency, 4);
        assert_eq!(
            with(&[], |v| v.number("SCAN_POLL_SECONDS", 30)).unwrap(),
            30
        );
    }

    #[test]
    fn the_deployment_approval_type_wins_unless_the_document_names_another() {
        let c = with(
            &[("APPROVAL_ARTIFACT_TYPE", "application/x.approve")],
            environments,
        )
        .unwrap();
        assert_eq!(c.approval_artifact_type, "application/x.approve");
        let doc = "environments: [{name: dev}]\napproval_artifact_type: application/x.other";
        let e = with(
            &[
                ("ENVIRONMENTS", doc),
                ("APPROVAL_ARTIFACT_TYPE", "application/x.approve"),
            ],
            environments,
        )
        .expect_err("mismatch refused");
        assert!(e.0.contains("application/x.other"), "{e}");
        let same = "environments: [{name: dev}]\napproval_artifact_type: application/x.approve";
        assert!(
            with(
                &[
                    ("ENVIRONMENTS", same),
                    ("APPROVAL_ARTIFACT_TYPE", "application/x.approve")
                ],
                environments
            )
            .is_ok()
        );
    }

    #[cfg(feature = "stand-ins")]
    #[test]
    fn with_the_stand_ins_feature_the_switches_are_read() {
        let alias = with(
            &[(
                "ECR_REGISTRY_ALIASES",
                "127.0.0.1:5000=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            )],
            registry,
        )
        .unwrap();
        assert_eq!(alias.ecr_aliases[0].0, "127.0.0.1:5000");
        assert_eq!(alias.ecr_aliases[0].1.region, "eu-west-1");
        let insecure = with(&[("INSECURE_REGISTRIES", "a:1, b:2")], registry).unwrap();
        assert_eq!(insecure.insecure_registries, ["a:1", "b:2"]);
        assert!(with(&[("INSPECTOR_ASSUME_SCANNED", "true")], assume_scanned).unwrap());
    }

    /// Release and SAM builds: each switch, set to anything (even `false`), stops the function
    /// at start-up with an error naming it, through every parser that every function calls.
    #[cfg(not(feature = "stand-ins"))]
    #[test]
    fn without_the_stand_ins_feature_a_set_switch_is_refused() {
        type Parse = fn(&Vars) -> Result<(), ConfigError>;
        let parsers: [(&str, Parse); 4] = [
            ("deployment", |v| deployment(v).map(drop)),
            ("gating", |v| gating(v).map(drop)),
            ("registry", |v| registry(v).map(drop)),
            ("assume_scanned", |v| assume_scanned(v).map(drop)),
        ];
        let values = [
            "127.0.0.1:5000=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "false",
            "true",
        ];
        for name in STAND_IN_SWITCHES {
            for value in values {
                for (what, parse) in parsers {
                    let e = with(&[(name, value)], parse)
                        .err()
                        .unwrap_or_else(|| panic!("{what}: {name}={value} accepted"));
                    assert!(e.0.contains(name), "{what}: {e}");
                    assert!(e.0.contains("stand-ins"), "{what}: {e}");
                }
            }
        }
        let both = with(
            &[
                ("INSECURE_REGISTRIES", "h:1"),
                ("INSPECTOR_ASSUME_SCANNED", "true"),
            ],
            deployment,
        )
        .expect_err("refused");
        assert!(
            both.0
                .starts_with("INSECURE_REGISTRIES, INSPECTOR_ASSUME_SCANNED set"),
            "{both}"
        );
        // Unset or blank: the defaults, as before.
        let d = with(&[("INSECURE_REGISTRIES", " ")], deployment).unwrap();
        assert!(d.registry.ecr_aliases.is_empty() && d.registry.insecure_registries.is_empty());
        assert!(!with(&[], assume_scanned).unwrap());
    }

    #[test]
    fn sources_default_to_the_deployments_own_and_its_registries_may_be_internal() {
        let repos = with(&[], repositories).unwrap();
        let only_own = with(&[], source_registries).unwrap();
        let r = |s: &str| s.parse::<promotion_core::ImageRef>().unwrap();
        assert!(
            only_own
                .check(&r("reg.test/incoming/app:1"), &repos)
                .is_ok()
        );
        assert!(only_own.check(&r("ghcr.io/org/app:1"), &repos).is_err());
        let listed = with(
            &[("SOURCE_REGISTRIES", " ghcr.io , quay.io ")],
            source_registries,
        )
        .unwrap();
        assert!(listed.check(&r("ghcr.io/org/app:1"), &repos).is_ok());
        assert!(listed.check(&r("127.0.0.1:9001/x:1"), &repos).is_err());

        // The deployment's own registries may be internal in every build...
        let reg = with(&[("INGRESS_REGISTRY", "ingress.test")], registry).unwrap();
        assert_eq!(reg.internal_registries, ["reg.test", "ingress.test"]);
        // ... and the ECR aliases too, in stand-in builds (elsewhere they are refused).
        #[cfg(feature = "stand-ins")]
        {
            let reg = with(
                &[
                    ("INGRESS_REGISTRY", "ingress.test"),
                    (
                        "ECR_REGISTRY_ALIASES",
                        "127.0.0.1:5000=123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                    ),
                ],
                registry,
            )
            .unwrap();
            assert_eq!(
                reg.internal_registries,
                ["reg.test", "ingress.test", "127.0.0.1:5000"]
            );
        }
    }

    #[test]
    fn blob_redirect_hosts_are_read_in_every_build_and_checked() {
        assert!(with(&[], registry).unwrap().redirect_hosts.is_empty());
        let reg = with(
            &[(
                "BLOB_REDIRECT_HOSTS",
                " *.cdn.example , store.example:8443 ",
            )],
            registry,
        )
        .unwrap();
        assert_eq!(reg.redirect_hosts, ["*.cdn.example", "store.example:8443"]);
        // A bad one stops the function at start-up, not at the first redirect.
        for bad in ["https://cdn.example", "*.com", "cdn.example/blobs"] {
            let e = with(&[("BLOB_REDIRECT_HOSTS", bad)], registry).unwrap_err();
            assert!(
                e.to_string().starts_with("BLOB_REDIRECT_HOSTS: "),
                "{bad}: {e}"
            );
            assert!(
                e.to_string().contains("not a blob-storage host"),
                "{bad}: {e}"
            );
        }
    }
}
