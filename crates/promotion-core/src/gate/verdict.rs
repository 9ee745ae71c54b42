//! The verdict and its compact summary, and the settle rule.
//!
//! The summary travels in Step Functions state (256 KiB cap), so every list in it is bounded:
//! whatever the number of findings, it serialises to a few KiB. The full list of blocking
//! findings stays in [`Verdict::blockers`], which is never serialised.

use super::findings::{FindingStatus, Severity};
use super::policy::{Judgement, Rules};
use super::time::Date;
use super::{ScanState, ScannedImage};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// At most this many ids (blocking, allowlisted, expired) are listed in a summary.
pub const MAX_LISTED: usize = 20;

/// The gate's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Decision {
    /// Every platform is scanned, settled, and nothing blocks.
    Passed,
    /// Something blocks, or an image is unscannable and the policy does not allow it.
    Failed,
    /// A scan has not finished, or the findings have not settled: ask again later.
    Pending,
}

/// One read of the findings, carried by the caller between calls to settle them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// When it was read (milliseconds since the Unix epoch).
    pub at_ms: u64,
    /// Number of ACTIVE and SUPPRESSED findings over all platforms.
    pub findings: u32,
    /// Hash of every finding's platform, ARN, severity and status (16 hex digits).
    pub fingerprint: String,
}

/// What [`settle`] concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Two reads far enough apart agree.
    pub stable: bool,
    /// The observation to carry to the next call.
    pub carry: Observation,
    /// Why not stable yet (empty when stable).
    pub note: String,
}

/// The settle rule: findings are stable when a previous read at least `interval` older than
/// `current` has the same fingerprint. While they change, the newest read is carried; while
/// they agree but too recently, the older read is kept so the interval keeps running.
pub fn settle(previous: Option<&Observation>, current: Observation, interval: Duration) -> Settled {
    let interval_ms = interval.as_millis() as u64;
    match previous {
        None => Settled {
            stable: false,
            note: format!(
                "first read of the findings; waiting {} s for them to settle",
                interval.as_secs()
            ),
            carry: current,
        },
        Some(p) if p.fingerprint != current.fingerprint => Settled {
            stable: false,
            note: format!(
                "findings changed since the last read ({} → {}); waiting for them to settle",
                p.findings, current.findings
            ),
            carry: current,
        },
        Some(p) if current.at_ms.saturating_sub(p.at_ms) < interval_ms => Settled {
            stable: false,
            note: format!(
                "findings unchanged for {} s of the {} s settle interval",
                current.at_ms.saturating_sub(p.at_ms) / 1000,
                interval.as_secs()
            ),
            carry: p.clone(),
        },
        Some(_) => Settled {
            stable: true,
            note: String::new(),
            carry: current,
        },
    }
}

/// One platform as read by [`super::evaluate`].
#[derive(Debug, Clone)]
pub struct PlatformRead {
    /// The platform manifest.
    pub image: ScannedImage,
    /// Its scan state.
    pub state: ScanState,
    /// Its findings (only when scanned).
    pub findings: Vec<super::Finding>,
    /// When its last scan completed, when the source says.
    pub completed_at: Option<SystemTime>,
}

/// A blocking finding, in full (for the CLI's table; never serialised into the summary).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Blocker {
    /// Vulnerability id.
    pub id: String,
    /// Severity.
    pub severity: Severity,
    /// Affected packages (`name version`), comma-separated.
    pub package: String,
    /// Platform label (or short digest).
    pub platform: String,
    /// Why it blocks.
    pub reason: String,
}

/// Counts by severity (every severity is present, zero or not).
pub type SeverityCounts = BTreeMap<Severity, u32>;

/// An allowlist entry that applied (or would have, had it not expired).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistUse {
    /// Vulnerability id.
    pub id: String,
    /// Package restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    /// Expiry date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
    /// Findings it matched.
    pub findings: u32,
}

/// One platform in the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlatformSummary {
    /// Platform manifest digest.
    pub digest: String,
    /// `linux/amd64`, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// `SCANNED`, `PENDING`, `UNSCANNABLE` or `ERROR`.
    pub scan: String,
    /// Inspector's reason code, when not scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// ACTIVE findings.
    pub findings: u32,
    /// Blocking findings (plus one when the platform itself blocks: unscannable).
    pub blocking: u32,
}

/// The verdict: decision plus compact summary (what is serialised) and the full list of
/// blockers (what is not).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// PASSED, FAILED or PENDING.
    pub decision: Decision,
    /// One human sentence.
    pub message: String,
    /// The environment whose rules applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// ACTIVE findings by severity, summed over platforms.
    pub counts: SeverityCounts,
    /// SUPPRESSED findings (judged like ACTIVE ones unless the policy honours suppressions;
    /// counted here either way, never in `counts`).
    pub suppressed: u32,
    /// Blocking findings, summed over platforms.
    pub blocking_findings: u32,
    /// Distinct blocking ids, most severe first, at most [`MAX_LISTED`].
    pub blocking_ids: Vec<String>,
    /// Distinct blocking ids left out of `blocking_ids`.
    pub blocking_ids_more: u32,
    /// Allowlist entries that accepted findings (at most [`MAX_LISTED`]).
    pub allowlisted: Vec<AllowlistUse>,
    /// Expired allowlist entries that matched findings (at most [`MAX_LISTED`]).
    pub expired_allowlist: Vec<AllowlistUse>,
    /// Each platform.
    pub platforms: Vec<PlatformSummary>,
    /// Carry this into the next call (settling); absent once decided or while a scan runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observation: Option<Observation>,
    /// Every blocking finding (not serialised).
    #[serde(skip)]
    pub blockers: Vec<Blocker>,
    /// When the most recent of the platforms' scans completed, when the source says (not
    /// serialised; promote-and-annotate refuses a scan younger than the settle interval).
    #[serde(skip)]
    pub last_scan_completed: Option<SystemTime>,
}

impl Verdict {
    /// One line for an annotation or a signature claim: the decision, the environment and the
    /// ACTIVE counts, e.g. `PASSED env=prod CRITICAL=0 HIGH=0 MEDIUM=2 LOW=0 UNTRIAGED=0
    /// suppressed=1`.
    pub fn compact(&self) -> String {
        let mut s = format!("{:?}", self.decision).to_uppercase();
        if let Some(e) = &self.environment {
            s.push_str(&format!(" env={e}"));
        }
        for sev in [
            Severity::Critical,
            Severity::High,
            Severity::Medium,
            Severity::Low,
            Severity::Untriaged,
        ] {
            let n = self.counts.get(&sev).copied().unwrap_or(0);
            s.push_str(&format!(" {}={n}", sev.as_str()));
        }
        s.push_str(&format!(" suppressed={}", self.suppressed));
        if !self.allowlisted.is_empty() {
            s.push_str(&format!(" allowlisted={}", self.allowlisted.len()));
        }
        s
    }

    /// The summary as JSON (what travels in state and what `--json` prints).
    pub fn to_json(&self) -> String {
        #[allow(clippy::unwrap_used)] // plain strings, numbers and maps with string keys
        serde_json::to_string(self).unwrap()
    }
}

fn short(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    format!("sha256:{}", &hex[..hex.len().min(12)])
}

fn label(image: &ScannedImage) -> String {
    image
        .platform
        .clone()
        .unwrap_or_else(|| short(image.digest.as_str()))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the findings of every platform add up to under the rules: the counting half of
/// [`decide`].
struct Tally {
    counts: SeverityCounts,
    suppressed: u32,
    /// Sorted: most severe first, then by id and platform.
    blockers: Vec<Blocker>,
    /// Allowlist entry index → findings it accepted.
    used: BTreeMap<usize, u32>,
    /// Expired allowlist entry index → findings it would have accepted.
    expired: BTreeMap<usize, u32>,
    platforms: Vec<PlatformSummary>,
    /// (platform label, reason) of platforms not scanned yet.
    pending: Vec<(String, String)>,
    /// (platform label, reason) of unscannable platforms the policy does not allow.
    unscannable_blocking: Vec<(String, String)>,
    /// One line per ACTIVE or SUPPRESSED finding, for the settle fingerprint.
    fingerprint: Vec<String>,
    /// ACTIVE and SUPPRESSED findings.
    total: u32,
}

impl Tally {
    /// Distinct blocking ids, most severe first.
    fn ids(&self) -> Vec<&str> {
        let mut seen = BTreeSet::new();
        self.blockers
            .iter()
            .map(|b| b.id.as_str())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The read as an [`Observation`] (order-independent fingerprint).
    fn observation(&self, now: SystemTime) -> Observation {
        let mut lines = self.fingerprint.clone();
        lines.sort_unstable();
        let hash = Sha256::digest(lines.join("\n").as_bytes());
        Observation {
            at_ms: now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or_default(),
            findings: self.total,
            fingerprint: hex::encode(&hash[..8]),
        }
    }
}

/// Count every platform's state and findings under `rules` on `today`.
fn count(reads: &[PlatformRead], rules: &Rules, today: Date) -> Tally {
    let mut t = Tally {
        counts: Severity::ALL.iter().map(|s| (*s, 0)).collect(),
        suppressed: 0,
        blockers: Vec::new(),
        used: BTreeMap::new(),
        expired: BTreeMap::new(),
        platforms: Vec::new(),
        pending: Vec::new(),
        unscannable_blocking: Vec::new(),
        fingerprint: Vec::new(),
        total: 0,
    };
    for read in reads {
        let mut summary = PlatformSummary {
            digest: read.image.digest.to_string(),
            platform: read.image.platform.clone(),
            scan: "SCANNED".into(),
            reason: None,
            findings: 0,
            blocking: 0,
        };
        match &read.state {
            ScanState::Pending(reason) => {
                summary.scan = "PENDING".into();
                summary.reason = Some(reason.clone());
                t.pending.push((label(&read.image), reason.clone()));
            }
            ScanState::Unscannable(reason) | ScanState::Error(reason) => {
                let error = matches!(read.state, ScanState::Error(_));
                summary.scan = if error { "ERROR" } else { "UNSCANNABLE" }.into();
                summary.reason = Some(reason.clone());
                // A failed scan is never allowed: only "will not scan" is the policy's call.
                if error || !rules.allow_unscannable {
                    summary.blocking = 1;
                    t.unscannable_blocking
                        .push((label(&read.image), reason.clone()));
                }
            }
            ScanState::Scanned => {}
        }
        for f in &read.findings {
            let status = match f.status {
                FindingStatus::Closed => continue,
                FindingStatus::Suppressed => "S",
                FindingStatus::Active => "A",
            };
            t.total += 1;
            t.fingerprint.push(format!(
                "{} {} {} {status}",
                read.image.digest, f.finding_arn, f.severity
            ));
            if f.status == FindingStatus::Suppressed {
                t.suppressed += 1;
                // Judged like an ACTIVE finding unless the policy honours suppressions
                // (gate::policy: anyone with inspector2:CreateFilter can suppress).
                if rules.honour_suppressions {
                    continue;
                }
            } else {
                summary.findings += 1;
                *t.counts.entry(f.severity).or_default() += 1;
            }
            let a = rules.assess(f, today);
            for i in a.expired {
                *t.expired.entry(i).or_default() += 1;
            }
            match a.judgement {
                Judgement::Allowed(i) => *t.used.entry(i).or_default() += 1,
                Judgement::Passes => {}
                Judgement::Blocks(reasons) => {
                    summary.blocking += 1;
                    let package = f
                        .package_vulnerability_details
                        .iter()
                        .flat_map(|p| &p.vulnerable_packages)
                        .map(|p| format!("{} {}", p.name, p.version).trim().to_owned())
                        .collect::<Vec<_>>()
                        .join(", ");
                    t.blockers.push(Blocker {
                        id: f.vulnerability_id().to_owned(),
                        severity: f.severity,
                        package,
                        platform: label(&read.image),
                        reason: reasons.join("; "),
                    });
                }
            }
        }
        t.platforms.push(summary);
    }
    t.blockers
        .sort_by(|a, b| (a.severity, &a.id, &a.platform).cmp(&(b.severity, &b.id, &b.platform)));
    t
}

/// Which way the tally goes: the deciding half of [`decide`].
enum Outcome {
    /// A finding or an unscannable platform blocks.
    Blocked,
    /// A platform is not scanned yet.
    NotScanned,
    /// Scanned, nothing blocks, but the findings have not settled (the note says why).
    Unsettled(String),
    /// Scanned, settled, nothing blocks.
    Clean,
}

/// Decide, settling the findings against `previous` unless `snapshot` (or no settle interval).
/// Returns the observation to carry into the next call when unsettled.
fn outcome(
    t: &Tally,
    rules: &Rules,
    now: SystemTime,
    previous: Option<&Observation>,
    snapshot: bool,
) -> (Outcome, Option<Observation>) {
    if !t.blockers.is_empty() || !t.unscannable_blocking.is_empty() {
        return (Outcome::Blocked, None);
    }
    if !t.pending.is_empty() {
        return (Outcome::NotScanned, None);
    }
    if snapshot || rules.settle_seconds == 0 {
        return (Outcome::Clean, None);
    }
    let settled = settle(
        previous,
        t.observation(now),
        Duration::from_secs(rules.settle_seconds),
    );
    if settled.stable {
        (Outcome::Clean, None)
    } else {
        (Outcome::Unsettled(settled.note), Some(settled.carry))
    }
}

/// The one human sentence for `outcome`.
fn message(t: &Tally, rules: &Rules, n_reads: usize, outcome: &Outcome) -> String {
    let n_platforms = plural(n_reads, "platform", "platforms");
    let env = rules
        .environment
        .as_deref()
        .map(|e| format!(" (policy for {e})"))
        .unwrap_or_default();
    match outcome {
        Outcome::Blocked => {
            let mut parts = Vec::new();
            if !t.blockers.is_empty() {
                let ids = t.ids();
                let listed: Vec<&str> = ids.iter().take(3).copied().collect();
                let more = if ids.len() > 3 {
                    format!(" and {} more", ids.len() - 3)
                } else {
                    String::new()
                };
                let hit = t
                    .platforms
                    .iter()
                    .filter(|p| p.blocking > 0 && p.findings > 0)
                    .count();
                parts.push(format!(
                    "{} {} ({}{more}) on {hit} of {n_platforms}",
                    plural(t.blockers.len(), "finding", "findings"),
                    if t.blockers.len() == 1 {
                        "blocks"
                    } else {
                        "block"
                    },
                    listed.join(", "),
                ));
            }
            for (p, reason) in &t.unscannable_blocking {
                parts.push(format!(
                    "{p} is unscannable ({reason}) and the policy does not allow unscannable images"
                ));
            }
            format!("Failed{env}: {}.", parts.join("; "))
        }
        Outcome::NotScanned => {
            let reasons: BTreeSet<&str> = t.pending.iter().map(|(_, r)| r.as_str()).collect();
            // An image Inspector has never heard of stays pending; say what usually causes it.
            let hint = if reasons.contains(super::NO_COVERAGE_RECORD) {
                " (Inspector has no record of the image yet: is enhanced scanning on for the \
                 repository, and is the image in the region asked?)"
            } else {
                ""
            };
            format!(
                "Pending: {} of {n_platforms} not scanned yet ({}){hint}.",
                t.pending.len(),
                reasons.into_iter().collect::<Vec<_>>().join(", ")
            )
        }
        Outcome::Unsettled(note) => format!("Pending: {n_platforms} scanned; {note}."),
        Outcome::Clean => {
            let active: u32 = t.counts.values().sum();
            let mut extra = String::new();
            if !t.used.is_empty() {
                extra.push_str(&format!(
                    ", {} accepted by the allowlist",
                    plural(t.used.values().sum::<u32>() as usize, "finding", "findings")
                ));
            }
            if !t.expired.is_empty() {
                extra.push_str(&format!(
                    ", {} expired",
                    plural(t.expired.len(), "allowlist entry", "allowlist entries")
                ));
            }
            format!(
                "Passed{env}: {n_platforms} scanned, {} and none blocks{extra}.",
                plural(active as usize, "active finding", "active findings")
            )
        }
    }
}

/// Apply `rules` to what was read and decide. Pure: the time comes in as `now`. Counting
/// ([`count`]), deciding ([`outcome`]) and the sentence ([`message`]) are separate steps.
pub fn decide(
    reads: &[PlatformRead],
    rules: &Rules,
    now: SystemTime,
    previous: Option<&Observation>,
    snapshot: bool,
) -> Verdict {
    let t = count(reads, rules, Date::of(now));
    let (outcome, observation) = outcome(&t, rules, now, previous, snapshot);
    let message = message(&t, rules, reads.len(), &outcome);
    let decision = match outcome {
        Outcome::Blocked => Decision::Failed,
        Outcome::NotScanned | Outcome::Unsettled(_) => Decision::Pending,
        Outcome::Clean => Decision::Passed,
    };
    let ids = t.ids();
    let uses = |m: &BTreeMap<usize, u32>| -> Vec<AllowlistUse> {
        m.iter()
            .take(MAX_LISTED)
            .map(|(i, n)| {
                let (e, _) = &rules.allowlist[*i];
                AllowlistUse {
                    id: e.id.clone(),
                    package: e.package.clone(),
                    expires: e.expires.clone(),
                    findings: *n,
                }
            })
            .collect()
    };
    Verdict {
        decision,
        message,
        environment: rules.environment.clone(),
        blocking_findings: t.blockers.len() as u32,
        blocking_ids: ids.iter().take(MAX_LISTED).map(|s| s.to_string()).collect(),
        blocking_ids_more: ids.len().saturating_sub(MAX_LISTED) as u32,
        allowlisted: uses(&t.used),
        expired_allowlist: uses(&t.expired),
        observation,
        counts: t.counts,
        suppressed: t.suppressed,
        platforms: t.platforms,
        blockers: t.blockers,
        last_scan_completed: reads.iter().filter_map(|r| r.completed_at).max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::gate::findings::{Finding, parse_findings_json};
    use crate::gate::policy::Policy;

    fn finding(digest: &str, id: &str, sev: &str, status: &str) -> Finding {
        let json = format!(
            r#"{{"findings":[{{"findingArn":"arn:aws:inspector2:us-east-1:123456789012:finding/{id}-{digest}",
            "severity":"{sev}","status":"{status}","type":"PACKAGE_VULNERABILITY","fixAvailable":"YES",
            "packageVulnerabilityDetails":{{"vulnerabilityId":"{id}","source":"NVD",
              "vulnerablePackages":[{{"name":"openssl","version":"3.0.13"}}]}},
            "resources":[{{"id":"x","type":"AWS_ECR_CONTAINER_IMAGE","details":{{"awsEcrContainerImage":
              {{"imageHash":"{digest}","repositoryName":"app","registry":"123456789012"}}}}}}]}}]}}"#
        );
        parse_findings_json(&json).unwrap().remove(0)
    }

    fn image(n: u8) -> ScannedImage {
        ScannedImage {
            registry: Some("123456789012".into()),
            repository: "app".into(),
            digest: Digest::of(&[n]),
            platform: Some(format!("linux/arch{n}")),
        }
    }

    fn scanned(n: u8, findings: Vec<Finding>) -> PlatformRead {
        PlatformRead {
            image: image(n),
            state: ScanState::Scanned,
            findings,
            completed_at: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        // 2026-06-01T00:00:00Z plus `secs`.
        UNIX_EPOCH + Duration::from_secs(1_780_272_000 + secs)
    }

    fn no_settle() -> Rules {
        Rules {
            settle_seconds: 0,
            ..Rules::default()
        }
    }

    #[test]
    fn settle_needs_two_equal_reads_far_enough_apart() {
        let obs = |ms, fp: &str| Observation {
            at_ms: ms,
            findings: 1,
            fingerprint: fp.into(),
        };
        let i = Duration::from_secs(30);
        let s = settle(None, obs(0, "a"), i);
        assert!(!s.stable);
        assert_eq!(s.carry, obs(0, "a"));
        let s = settle(Some(&obs(0, "a")), obs(10_000, "b"), i);
        assert!(!s.stable, "changed");
        assert_eq!(s.carry, obs(10_000, "b"));
        let s = settle(Some(&obs(10_000, "b")), obs(20_000, "b"), i);
        assert!(!s.stable, "too soon");
        assert_eq!(s.carry, obs(10_000, "b"), "keeps the older read");
        let s = settle(Some(&obs(10_000, "b")), obs(40_000, "b"), i);
        assert!(s.stable);
    }

    #[test]
    fn decides_across_platforms_judges_suppressed_unless_honoured_and_ignores_closed() {
        let d1 = image(1).digest.to_string();
        let d2 = image(2).digest.to_string();
        let reads = vec![
            scanned(
                1,
                vec![
                    finding(&d1, "CVE-1", "MEDIUM", "ACTIVE"),
                    finding(&d1, "CVE-2", "CRITICAL", "SUPPRESSED"),
                    finding(&d1, "CVE-3", "CRITICAL", "CLOSED"),
                ],
            ),
            scanned(2, vec![finding(&d2, "CVE-4", "LOW", "ACTIVE")]),
        ];
        // By default a suppression does not lift a block: anyone with inspector2:CreateFilter
        // can suppress account-wide.
        let v = decide(&reads, &no_settle(), at(0), None, false);
        assert_eq!(v.decision, Decision::Failed, "{}", v.message);
        assert_eq!(v.blocking_ids, ["CVE-2"]);
        assert_eq!(v.suppressed, 1);
        assert_eq!(
            v.counts[&Severity::Critical],
            0,
            "counts are ACTIVE findings"
        );
        // A policy that honours suppressions passes it, and still reports the count.
        let honour = Rules {
            honour_suppressions: true,
            ..no_settle()
        };
        let v = decide(&reads, &honour, at(0), None, false);
        assert_eq!(v.decision, Decision::Passed, "{}", v.message);
        assert_eq!(v.suppressed, 1);
        assert_eq!(v.counts[&Severity::Medium], 1);
        assert_eq!(v.counts[&Severity::Critical], 0);
        assert!(
            v.compact().contains("UNTRIAGED=0 suppressed=1"),
            "{}",
            v.compact()
        );

        let reads = vec![
            scanned(1, vec![]),
            scanned(2, vec![finding(&d2, "CVE-9", "HIGH", "ACTIVE")]),
        ];
        let v = decide(&reads, &no_settle(), at(0), None, false);
        assert_eq!(v.decision, Decision::Failed);
        assert_eq!(v.blocking_ids, ["CVE-9"]);
        assert_eq!(v.blockers[0].platform, "linux/arch2");
        assert_eq!(v.blockers[0].reason, "severity HIGH");
        assert!(v.message.contains("on 1 of 2 platforms"), "{}", v.message);
    }

    #[test]
    fn pending_and_unscannable_platforms() {
        let pending = PlatformRead {
            image: image(1),
            state: ScanState::Pending("SCAN_IN_PROGRESS".into()),
            findings: vec![],
            completed_at: None,
        };
        let v = decide(
            &[pending.clone(), scanned(2, vec![])],
            &no_settle(),
            at(0),
            None,
            false,
        );
        assert_eq!(v.decision, Decision::Pending);
        assert!(v.message.contains("SCAN_IN_PROGRESS"), "{}", v.message);
        let unknown = PlatformRead {
            image: image(3),
            state: ScanState::Pending(crate::gate::NO_COVERAGE_RECORD.into()),
            findings: vec![],
            completed_at: None,
        };
        let v = decide(&[unknown], &no_settle(), at(0), None, false);
        assert_eq!(v.decision, Decision::Pending);
        assert!(v.message.contains("enhanced scanning"), "{}", v.message);

        let unscannable = PlatformRead {
            image: image(1),
            state: ScanState::Unscannable("UNSUPPORTED_OS".into()),
            findings: vec![],
            completed_at: None,
        };
        let v = decide(
            &[unscannable.clone(), pending],
            &no_settle(),
            at(0),
            None,
            false,
        );
        assert_eq!(
            v.decision,
            Decision::Failed,
            "fails closed, even before others finish"
        );
        assert!(v.message.contains("UNSUPPORTED_OS"), "{}", v.message);

        let allow = Rules {
            allow_unscannable: true,
            ..no_settle()
        };
        let v = decide(&[unscannable], &allow, at(0), None, false);
        assert_eq!(v.decision, Decision::Passed, "{}", v.message);
    }

    #[test]
    fn passes_only_after_the_findings_settle() {
        let d1 = image(1).digest.to_string();
        let rules = Rules {
            settle_seconds: 30,
            ..Rules::default()
        };
        let read1 = vec![scanned(1, vec![finding(&d1, "CVE-1", "LOW", "ACTIVE")])];
        let v = decide(&read1, &rules, at(0), None, false);
        assert_eq!(v.decision, Decision::Pending);
        let obs = v.observation.clone().unwrap();
        // More findings arrived: still pending, and the clock restarts.
        let read2 = vec![scanned(
            1,
            vec![
                finding(&d1, "CVE-1", "LOW", "ACTIVE"),
                finding(&d1, "CVE-2", "LOW", "ACTIVE"),
            ],
        )];
        let v = decide(&read2, &rules, at(31), Some(&obs), false);
        assert_eq!(v.decision, Decision::Pending);
        let obs = v.observation.clone().unwrap();
        let v = decide(&read2, &rules, at(45), Some(&obs), false);
        assert_eq!(v.decision, Decision::Pending, "{}", v.message);
        let obs = v.observation.clone().unwrap();
        let v = decide(&read2, &rules, at(61), Some(&obs), false);
        assert_eq!(v.decision, Decision::Passed, "{}", v.message);
        assert!(v.observation.is_none());
        // A snapshot (a file) needs no settling.
        assert_eq!(
            decide(&read1, &rules, at(0), None, true).decision,
            Decision::Passed
        );
    }

    #[test]
    fn summary_stays_small_with_thousands_of_findings() {
        let policy = Policy::parse(
            &("allowlist:\n".to_owned()
                + &(0..40)
                    .map(|i| {
                        format!(
                            "  - {{id: CVE-2024-{i:05}, reason: accepted, expires: 2020-01-01}}\n"
                        )
                    })
                    .collect::<String>()),
        )
        .unwrap();
        let rules = Rules {
            settle_seconds: 0,
            ..policy.rules(Some("prod"))
        };
        let reads: Vec<PlatformRead> = (1..=4u8)
            .map(|n| {
                let d = image(n).digest.to_string();
                scanned(
                    n,
                    (0..1500)
                        .map(|i| {
                            let sev = ["CRITICAL", "HIGH", "MEDIUM", "LOW"][i % 4];
                            finding(&d, &format!("CVE-2024-{i:05}"), sev, "ACTIVE")
                        })
                        .collect(),
                )
            })
            .collect();
        let v = decide(&reads, &rules, at(0), None, false);
        assert_eq!(v.decision, Decision::Failed);
        assert_eq!(v.blocking_findings, 3000);
        assert_eq!(v.blocking_ids.len(), MAX_LISTED);
        assert_eq!(v.blocking_ids_more, 750 - MAX_LISTED as u32);
        assert_eq!(v.expired_allowlist.len(), MAX_LISTED);
        let json = v.to_json();
        assert!(json.len() < 8 * 1024, "{} bytes: {json}", json.len());
        let back: Verdict = serde_json::from_str(&json).unwrap();
        assert_eq!(back.decision, Decision::Failed);
        assert_eq!(back.counts[&Severity::Critical], 1500);
    }
}
