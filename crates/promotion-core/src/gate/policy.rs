//! The gate policy: what blocks an image, written by a security team in JSON or YAML.
//!
//! ```yaml
//! block_severities: [CRITICAL, HIGH]     # default
//! ignore_without_fix: false              # fixAvailable NO: severity/score rules do not apply
//! block_exploitable: false               # exploitAvailable YES blocks at any severity
//! epss_threshold: 0.5                    # EPSS score >= this blocks at any severity (optional)
//! inspector_score_threshold: 9.0         # Inspector score >= this blocks (optional)
//! allow_unscannable: false               # unscannable images fail closed
//! block_untriaged: true                  # UNTRIAGED (not yet rated) findings block
//! honour_suppressions: false             # SUPPRESSED findings are judged like ACTIVE ones
//! max_wait_seconds: 1800                 # total wait for the scan and the settle
//! settle_seconds: 30                     # two equal reads this far apart; 0 = one read
//! allowlist:
//!   - id: CVE-2024-6119
//!     reason: "not reachable: we never parse X.509 names"   # required
//!     package: openssl                                       # optional: only this package
//!     expires: 2026-12-01                                    # optional, see below
//! environments:                          # overrides, per environment
//!   prod: { block_severities: [CRITICAL, HIGH, MEDIUM], block_exploitable: true }
//! limits:                                # bounds on one image (crate::selection), defaults:
//!   max_manifests: 256                   #   every index, image and attestation of the tree
//!   max_blobs: 4096                      #   distinct configs and layers
//!   max_bytes: 68719476736               #   their total size (64 GiB)
//! ```
//!
//! **UNTRIAGED and SUPPRESSED findings fail closed by default.** A new CVE often starts
//! UNTRIAGED (Inspector has not rated it yet): it blocks until it is rated, unless
//! `block_untriaged: false`. A SUPPRESSED finding was silenced by an Inspector suppression rule,
//! which anyone with `inspector2:CreateFilter` can create account-wide, outside this policy and
//! its review: it is judged like an ACTIVE one unless `honour_suppressions: true`. The policy's
//! allowlist (with a reason, an optional package and expiry, and the policy digest signed into
//! every promoted image) is the reviewed way to accept a finding. Every verdict reports the
//! UNTRIAGED count (with the ACTIVE counts) and the SUPPRESSED count, whichever way they were
//! judged.
//!
//! **Expiry rule:** an entry with `expires: D` applies up to and including day `D` (UTC) and
//! stops applying on `D + 1`. An expired entry that matches a finding is reported, and the
//! finding is judged as if the entry were absent.
//!
//! Unknown keys are errors that name the key; so are unknown severities, malformed dates,
//! missing reasons and out-of-range thresholds. The core never reads the file: the caller
//! hands in its text.

use super::findings::{Availability, Finding, Severity};
use super::time::Date;
use crate::digest::Digest;
use crate::error::{Classify, ErrorType};
use crate::selection::Limits;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Why a policy is rejected.
#[derive(Debug, thiserror::Error)]
#[error("invalid policy: {0}")]
pub struct PolicyError(pub String);

impl Classify for PolicyError {
    fn error_type(&self) -> ErrorType {
        ErrorType::PolicyInvalid
    }
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowEntry {
    /// Vulnerability id (`CVE-2024-6119`, `GHSA-…`), compared case-insensitively.
    pub id: String,
    /// Why it is accepted. Required: an allowlist is an audit trail.
    #[serde(default)]
    pub reason: String,
    /// Only for this package (by name); any package when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Last day (UTC, inclusive) the entry applies, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// Settings an environment may override.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    block_severities: Option<Vec<Severity>>,
    ignore_without_fix: Option<bool>,
    block_exploitable: Option<bool>,
    epss_threshold: Option<f64>,
    inspector_score_threshold: Option<f64>,
    allow_unscannable: Option<bool>,
    block_untriaged: Option<bool>,
    honour_suppressions: Option<bool>,
    #[serde(default)]
    allowlist: Vec<AllowEntry>,
}

/// The policy file as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    block_severities: Option<Vec<Severity>>,
    #[serde(default)]
    ignore_without_fix: bool,
    #[serde(default)]
    block_exploitable: bool,
    epss_threshold: Option<f64>,
    inspector_score_threshold: Option<f64>,
    #[serde(default)]
    allow_unscannable: bool,
    block_untriaged: Option<bool>,
    #[serde(default)]
    honour_suppressions: bool,
    max_wait_seconds: Option<u64>,
    settle_seconds: Option<u64>,
    #[serde(default)]
    allowlist: Vec<AllowEntry>,
    #[serde(default)]
    environments: BTreeMap<String, Overrides>,
    #[serde(default)]
    limits: Limits,
}

/// A validated policy: the base rules and per-environment overrides.
#[derive(Debug, Clone)]
pub struct Policy {
    base: PolicyFile,
    digest: Digest,
}

/// Default total wait for a scan: 30 minutes (reference §3: no first-scan SLA).
pub const DEFAULT_MAX_WAIT_SECONDS: u64 = 1800;
/// Default settle interval: findings keep arriving for ~30 s after a scan completes.
pub const DEFAULT_SETTLE_SECONDS: u64 = 30;

impl Default for Policy {
    /// Blocks CRITICAL and HIGH on every platform, fails closed on unscannable images.
    fn default() -> Self {
        Policy {
            base: PolicyFile::default(),
            digest: Digest::of(b""),
        }
    }
}

impl Policy {
    /// Parse a policy from JSON (text starting with `{`) or YAML.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let file: PolicyFile = if text.trim_start().starts_with('{') {
            serde_json::from_str(text).map_err(|e| PolicyError(e.to_string()))?
        } else if text.trim().is_empty() {
            PolicyFile::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| PolicyError(e.to_string()))?
        };
        validate(&file)?;
        Ok(Policy {
            base: file,
            digest: Digest::of(text.as_bytes()),
        })
    }

    /// The sha256 of the policy document as given (of the empty document for the built-in
    /// default): recorded in the trusted image and its signature, so a verdict names its policy.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The bounds on one image's manifests, blobs and bytes ([`crate::selection`]).
    pub fn limits(&self) -> Limits {
        self.base.limits
    }

    /// The environments the policy names.
    pub fn environments(&self) -> impl Iterator<Item = &str> {
        self.base.environments.keys().map(String::as_str)
    }

    /// The effective rules for `environment` (the base rules when it is `None` or not listed;
    /// an environment's allowlist entries are added to the base list).
    pub fn rules(&self, environment: Option<&str>) -> Rules {
        let b = &self.base;
        let o = environment
            .and_then(|e| b.environments.get(e))
            .cloned()
            .unwrap_or_default();
        let mut block: Vec<Severity> = o
            .block_severities
            .or_else(|| b.block_severities.clone())
            .unwrap_or_else(|| vec![Severity::Critical, Severity::High]);
        block.sort_unstable();
        block.dedup();
        let mut allowlist = b.allowlist.clone();
        allowlist.extend(o.allowlist);
        Rules {
            environment: environment.map(str::to_owned),
            block_severities: block,
            ignore_without_fix: o.ignore_without_fix.unwrap_or(b.ignore_without_fix),
            block_exploitable: o.block_exploitable.unwrap_or(b.block_exploitable),
            epss_threshold: o.epss_threshold.or(b.epss_threshold),
            inspector_score_threshold: o.inspector_score_threshold.or(b.inspector_score_threshold),
            allow_unscannable: o.allow_unscannable.unwrap_or(b.allow_unscannable),
            block_untriaged: o.block_untriaged.or(b.block_untriaged).unwrap_or(true),
            honour_suppressions: o.honour_suppressions.unwrap_or(b.honour_suppressions),
            max_wait_seconds: b.max_wait_seconds.unwrap_or(DEFAULT_MAX_WAIT_SECONDS),
            settle_seconds: b.settle_seconds.unwrap_or(DEFAULT_SETTLE_SECONDS),
            allowlist: allowlist
                .into_iter()
                .map(|e| {
                    // Validated in `parse`; a policy built another way gets no expiry.
                    let expires = e.expires.as_deref().and_then(|d| Date::parse(d).ok());
                    (e, expires)
                })
                .collect(),
        }
    }
}

fn validate(f: &PolicyFile) -> Result<(), PolicyError> {
    fn thresholds(prefix: &str, epss: Option<f64>, score: Option<f64>) -> Result<(), PolicyError> {
        if let Some(t) = epss
            && !(0.0..=1.0).contains(&t)
        {
            return Err(PolicyError(format!(
                "{prefix}epss_threshold: {t} is not between 0 and 1"
            )));
        }
        if let Some(t) = score
            && !(0.0..=10.0).contains(&t)
        {
            return Err(PolicyError(format!(
                "{prefix}inspector_score_threshold: {t} is not between 0 and 10"
            )));
        }
        Ok(())
    }
    fn entries(prefix: &str, list: &[AllowEntry]) -> Result<(), PolicyError> {
        for (i, e) in list.iter().enumerate() {
            let at = format!("{prefix}allowlist[{i}]");
            if e.id.trim().is_empty() {
                return Err(PolicyError(format!("{at}.id: must not be empty")));
            }
            if e.reason.trim().is_empty() {
                return Err(PolicyError(format!(
                    "{at}.reason: every allowlist entry needs a reason (entry {:?})",
                    e.id
                )));
            }
            if e.package.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(PolicyError(format!("{at}.package: must not be empty")));
            }
            if let Some(d) = &e.expires {
                Date::parse(d).map_err(|m| PolicyError(format!("{at}.expires: {m}")))?;
            }
        }
        Ok(())
    }
    let l = &f.limits;
    if l.max_manifests == 0 || l.max_blobs == 0 || l.max_bytes == 0 {
        return Err(PolicyError(
            "limits: max_manifests, max_blobs and max_bytes must be at least 1".into(),
        ));
    }
    thresholds("", f.epss_threshold, f.inspector_score_threshold)?;
    entries("", &f.allowlist)?;
    for (name, o) in &f.environments {
        let prefix = format!("environments.{name}.");
        thresholds(&prefix, o.epss_threshold, o.inspector_score_threshold)?;
        entries(&prefix, &o.allowlist)?;
    }
    Ok(())
}

/// The rules in force for one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// The environment they were resolved for.
    pub environment: Option<String>,
    /// Severities that block.
    pub block_severities: Vec<Severity>,
    /// Findings with `fixAvailable: NO` are not blocked by severity or score rules
    /// (`block_exploitable` still applies).
    pub ignore_without_fix: bool,
    /// `exploitAvailable: YES` blocks regardless of severity.
    pub block_exploitable: bool,
    /// EPSS score at or above this blocks regardless of severity.
    pub epss_threshold: Option<f64>,
    /// Inspector score at or above this blocks regardless of severity.
    pub inspector_score_threshold: Option<f64>,
    /// Unscannable images pass (with no findings) instead of failing.
    pub allow_unscannable: bool,
    /// UNTRIAGED findings block (default: they do).
    pub block_untriaged: bool,
    /// SUPPRESSED findings are not judged (default: they are, like ACTIVE ones).
    pub honour_suppressions: bool,
    /// Total wait for scans to complete and settle.
    pub max_wait_seconds: u64,
    /// Two reads at least this far apart must agree; 0 disables settling.
    pub settle_seconds: u64,
    /// Allowlist entries with their parsed expiry.
    pub allowlist: Vec<(AllowEntry, Option<Date>)>,
}

impl Default for Rules {
    fn default() -> Self {
        Policy::default().rules(None)
    }
}

/// What the policy says about one finding.
#[derive(Debug, Clone, PartialEq)]
pub enum Judgement {
    /// It blocks, for these reasons (`severity HIGH`, `exploit available`, …).
    Blocks(Vec<String>),
    /// A live allowlist entry (index into [`Rules::allowlist`]) accepts it.
    Allowed(usize),
    /// No rule blocks it.
    Passes,
}

/// A finding's judgement plus the expired allowlist entries it matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// The outcome.
    pub judgement: Judgement,
    /// Indexes of expired entries that would have matched.
    pub expired: Vec<usize>,
}

impl Rules {
    /// How often a local poller asks again: often enough to catch the settle interval, never
    /// more than every 15 s.
    pub fn poll_seconds(&self) -> u64 {
        match self.settle_seconds {
            0 => 15,
            s => s.clamp(1, 15),
        }
    }

    /// Judge one finding on `today` (UTC), as if it were ACTIVE (the caller decides whether a
    /// SUPPRESSED one is judged: [`Rules::honour_suppressions`]).
    pub fn assess(&self, finding: &Finding, today: Date) -> Assessment {
        let id = finding.vulnerability_id();
        let mut expired = Vec::new();
        for (i, (entry, expires)) in self.allowlist.iter().enumerate() {
            let id_matches = entry.id.eq_ignore_ascii_case(id);
            let pkg_matches = entry
                .package
                .as_deref()
                .is_none_or(|p| finding.package_names().any(|n| n == p));
            if !(id_matches && pkg_matches) {
                continue;
            }
            match expires {
                // Applies through the whole expiry day.
                Some(d) if today > *d => expired.push(i),
                _ => {
                    return Assessment {
                        judgement: Judgement::Allowed(i),
                        expired,
                    };
                }
            }
        }
        let mut reasons = Vec::new();
        let no_fix = finding.fix_available == Some(Availability::No);
        let silenced = self.ignore_without_fix && no_fix;
        if !silenced {
            if self.block_severities.contains(&finding.severity) {
                reasons.push(format!("severity {}", finding.severity));
            } else if finding.severity == Severity::Untriaged && self.block_untriaged {
                reasons.push("untriaged: not rated yet (block_untriaged)".to_owned());
            }
            if let (Some(t), Some(e)) = (self.epss_threshold, finding.epss)
                && e.score >= t
            {
                reasons.push(format!("EPSS {} ≥ {t}", e.score));
            }
            if let (Some(t), Some(s)) = (self.inspector_score_threshold, finding.inspector_score)
                && s >= t
            {
                reasons.push(format!("Inspector score {s} ≥ {t}"));
            }
        }
        if self.block_exploitable && finding.exploit_available == Some(Availability::Yes) {
            reasons.push("exploit available".to_owned());
        }
        Assessment {
            judgement: if reasons.is_empty() {
                Judgement::Passes
            } else {
                Judgement::Blocks(reasons)
            },
            expired,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::findings::{Epss, PackageVulnerabilityDetails, VulnerablePackage};

    fn finding(id: &str, sev: Severity) -> Finding {
        Finding {
            finding_arn: format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            aws_account_id: None,
            severity: sev,
            status: crate::gate::findings::FindingStatus::Active,
            finding_type: "PACKAGE_VULNERABILITY".into(),
            title: None,
            fix_available: Some(Availability::Yes),
            exploit_available: Some(Availability::No),
            epss: None,
            inspector_score: None,
            package_vulnerability_details: Some(PackageVulnerabilityDetails {
                vulnerability_id: id.into(),
                source: None,
                vulnerable_packages: vec![VulnerablePackage {
                    name: "openssl".into(),
                    version: "3.0.13".into(),
                    fixed_in_version: None,
                    package_manager: None,
                    file_path: None,
                }],
            }),
            resources: vec![],
            first_observed_at: None,
            last_observed_at: None,
            updated_at: None,
        }
    }

    fn day(s: &str) -> Date {
        Date::parse(s).unwrap()
    }

    fn blocks(rules: &Rules, f: &Finding) -> bool {
        matches!(
            rules.assess(f, day("2026-06-01")).judgement,
            Judgement::Blocks(_)
        )
    }

    #[test]
    fn default_policy_blocks_critical_high_and_untriaged_and_fails_closed() {
        let r = Rules::default();
        assert!(!r.allow_unscannable);
        for (sev, expect) in [
            (Severity::Critical, true),
            (Severity::High, true),
            (Severity::Medium, false),
            (Severity::Low, false),
            (Severity::Informational, false),
            // Not rated yet: blocks until it is (fail closed).
            (Severity::Untriaged, true),
        ] {
            assert_eq!(blocks(&r, &finding("CVE-1", sev)), expect, "{sev}");
        }
        assert!(!r.honour_suppressions, "suppressions are judged by default");
        let lax = Policy::parse("block_untriaged: false\nhonour_suppressions: true\n")
            .unwrap()
            .rules(None);
        assert!(!blocks(&lax, &finding("CVE-1", Severity::Untriaged)));
        assert!(lax.honour_suppressions);
        let prod = Policy::parse(
            "block_untriaged: false\nenvironments:\n  prod: {block_untriaged: true}\n",
        )
        .unwrap();
        assert!(blocks(
            &prod.rules(Some("prod")),
            &finding("CVE-1", Severity::Untriaged)
        ));
        assert!(!blocks(
            &prod.rules(None),
            &finding("CVE-1", Severity::Untriaged)
        ));
    }

    #[test]
    fn each_option_on_and_off() {
        let medium = finding("CVE-M", Severity::Medium);
        let high_no_fix = Finding {
            fix_available: Some(Availability::No),
            ..finding("CVE-H", Severity::High)
        };
        let low_exploited = Finding {
            exploit_available: Some(Availability::Yes),
            ..finding("CVE-L", Severity::Low)
        };
        let low_epss = Finding {
            epss: Some(Epss { score: 0.7 }),
            ..finding("CVE-E", Severity::Low)
        };
        let low_scored = Finding {
            inspector_score: Some(9.1),
            ..finding("CVE-S", Severity::Low)
        };
        let exploited_no_fix = Finding {
            fix_available: Some(Availability::No),
            ..low_exploited.clone()
        };
        let critical = finding("CVE-C", Severity::Critical);
        // (policy text, finding, blocks?)
        let table: Vec<(&str, &Finding, bool)> = vec![
            ("{}", &medium, false),
            ("block_severities: [critical, high, MEDIUM]", &medium, true),
            ("{}", &high_no_fix, true),
            ("ignore_without_fix: false", &high_no_fix, true),
            ("ignore_without_fix: true", &high_no_fix, false),
            ("{}", &low_exploited, false),
            ("block_exploitable: true", &low_exploited, true),
            (
                "block_exploitable: true\nignore_without_fix: true",
                &exploited_no_fix,
                true,
            ),
            ("{}", &low_epss, false),
            ("epss_threshold: 0.7", &low_epss, true),
            ("epss_threshold: 0.71", &low_epss, false),
            ("{}", &low_scored, false),
            ("inspector_score_threshold: 9", &low_scored, true),
            ("inspector_score_threshold: 9.5", &low_scored, false),
            (
                "inspector_score_threshold: 9\nignore_without_fix: true",
                &low_scored,
                true,
            ),
            ("block_severities: []", &critical, false),
        ];
        for (text, f, expect) in table {
            let rules = Policy::parse(text).unwrap().rules(None);
            assert_eq!(
                blocks(&rules, f),
                expect,
                "policy {text:?} on {}",
                f.vulnerability_id()
            );
        }
        assert!(
            Policy::parse("allow_unscannable: true")
                .unwrap()
                .rules(None)
                .allow_unscannable
        );
        assert!(!Policy::parse("{}").unwrap().rules(None).allow_unscannable);
    }

    #[test]
    fn environment_overrides_replace_base_settings_and_add_allowlist_entries() {
        let p = Policy::parse(
            r#"
block_severities: [CRITICAL]
allowlist: [{id: CVE-A, reason: base}]
environments:
  prod:
    block_severities: [CRITICAL, HIGH, MEDIUM]
    block_exploitable: true
    allowlist: [{id: CVE-B, reason: prod only}]
  dev: {}
"#,
        )
        .unwrap();
        let high = finding("CVE-H", Severity::High);
        assert!(!blocks(&p.rules(None), &high));
        assert!(!blocks(&p.rules(Some("dev")), &high));
        assert!(
            !blocks(&p.rules(Some("staging")), &high),
            "unlisted: base rules"
        );
        let prod = p.rules(Some("prod"));
        assert!(blocks(&prod, &high));
        assert!(prod.block_exploitable);
        assert_eq!(prod.allowlist.len(), 2);
        assert_eq!(p.rules(Some("dev")).allowlist.len(), 1);
        assert_eq!(p.environments().collect::<Vec<_>>(), ["dev", "prod"]);
    }

    #[test]
    fn allowlist_matches_id_and_package_and_expires_after_its_last_day() {
        let p = Policy::parse(
            r#"{"allowlist":[
                {"id":"cve-2024-6119","reason":"not reachable","package":"openssl","expires":"2026-12-01"},
                {"id":"CVE-2024-0001","reason":"other package","package":"zlib"}]}"#,
        )
        .unwrap();
        let r = p.rules(None);
        let f = finding("CVE-2024-6119", Severity::Critical);
        // Boundary: applies on the expiry day itself, not on the day after.
        let on = r.assess(&f, day("2026-12-01"));
        assert_eq!(on.judgement, Judgement::Allowed(0));
        assert!(on.expired.is_empty());
        let after = r.assess(&f, day("2026-12-02"));
        assert_eq!(
            after.judgement,
            Judgement::Blocks(vec!["severity CRITICAL".into()])
        );
        assert_eq!(after.expired, vec![0]);
        // The package must match when the entry names one.
        let other_pkg = finding("CVE-2024-0001", Severity::High);
        assert!(matches!(
            r.assess(&other_pkg, day("2026-01-01")).judgement,
            Judgement::Blocks(_)
        ));
    }

    #[test]
    fn invalid_policies_name_the_key() {
        for (text, needle) in [
            ("block_severity: [HIGH]", "block_severity"),
            (r#"{"blockSeverities":["HIGH"]}"#, "blockSeverities"),
            ("block_severities: [HIGH, SEVERE]", "SEVERE"),
            ("allowlist: [{id: CVE-1}]", "allowlist[0].reason"),
            (
                "allowlist: [{id: CVE-1, reason: x, expires: 2026-13-01}]",
                "allowlist[0].expires",
            ),
            (
                "allowlist: [{id: CVE-1, reason: x, expires: soon}]",
                "allowlist[0].expires",
            ),
            (
                "allowlist: [{id: CVE-1, reason: x, until: 2026-01-01}]",
                "until",
            ),
            ("epss_threshold: 2", "epss_threshold"),
            (
                "environments: {prod: {max_wait_seconds: 5}}",
                "max_wait_seconds",
            ),
            (
                "environments: {prod: {allowlist: [{id: X, reason: ''}]}}",
                "environments.prod.allowlist[0].reason",
            ),
            (
                "environments: {prod: {inspector_score_threshold: 11}}",
                "inspector_score_threshold",
            ),
            ("settle_seconds: -1", "settle_seconds"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert_eq!(e.error_type(), ErrorType::PolicyInvalid);
            assert!(e.to_string().contains(needle), "{text:?}: {e}");
        }
    }
}
