//! The Inspector2 `Finding`, as `aws inspector2 list-findings` prints it, and the findings file
//! source that reads such output.
//!
//! Only the fields the gate reads are modelled; everything else in a finding is ignored. The
//! fields Inspector always sends (`findingArn`, `severity`, `status`, `resources`) are required so
//! that a file of some other shape is rejected instead of silently counting as "no findings".

use super::time::{from_epoch_seconds, parse_timestamp};
use super::{FindingsSource, GateError, ScanState, ScannedImage};
use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// Inspector's severity scale, most severe first (the order of `Ord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// `CRITICAL`.
    Critical,
    /// `HIGH`.
    High,
    /// `MEDIUM`.
    Medium,
    /// `LOW`.
    Low,
    /// `INFORMATIONAL`.
    Informational,
    /// `UNTRIAGED`: Inspector has not rated it yet.
    Untriaged,
}

impl Severity {
    /// Every severity, most severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Untriaged,
    ];

    /// The name Inspector uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Untriaged => "UNTRIAGED",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    /// Case-insensitive, so policies may write `critical`.
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown severity {s:?} (expected one of CRITICAL, HIGH, MEDIUM, LOW, \
                     INFORMATIONAL, UNTRIAGED)"
                )
            })
    }
}

impl<'de> Deserialize<'de> for Severity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A finding's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FindingStatus {
    /// Open: counts against the image.
    Active,
    /// Hidden by a suppression rule: reported as a count, never blocks.
    Suppressed,
    /// Resolved: ignored.
    Closed,
}

/// Whether a vulnerability has a fix (`fixAvailable`), or an exploit (`exploitAvailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Availability {
    /// `YES`.
    Yes,
    /// `NO`.
    No,
    /// `PARTIAL` (fixes for some of the affected packages).
    Partial,
}

/// `epss`: the Exploit Prediction Scoring System score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Epss {
    /// Probability of exploitation in the next 30 days, 0..=1.
    pub score: f64,
}

/// One affected package of a package vulnerability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VulnerablePackage {
    /// Package name.
    pub name: String,
    /// Installed version.
    #[serde(default)]
    pub version: String,
    /// The version that fixes it, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in_version: Option<String>,
    /// OS, NPM, PIP, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_manager: Option<String>,
    /// Where the package was found (language packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_path: Option<String>,
}

/// `packageVulnerabilityDetails`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PackageVulnerabilityDetails {
    /// `CVE-2024-6119`, `GHSA-…`, …
    pub vulnerability_id: String,
    /// Where the vulnerability record comes from (`NVD`, `UBUNTU_CVE`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The affected packages.
    #[serde(default)]
    pub vulnerable_packages: Vec<VulnerablePackage>,
}

/// `resources[].details.awsEcrContainerImage`: which image a finding belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrImageDetails {
    /// Platform manifest digest (`sha256:…`).
    pub image_hash: String,
    /// Plain repository name.
    #[serde(default)]
    pub repository_name: String,
    /// Registry (account id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `amd64`, `arm64`, …
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub architecture: Option<String>,
    /// Inspector's OS label (`UBUNTU_24_04`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Tags at scan time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_tags: Vec<String>,
}

/// `resources[].details`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDetails {
    /// Present for `AWS_ECR_CONTAINER_IMAGE` resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_ecr_container_image: Option<EcrImageDetails>,
}

/// `resources[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    /// `arn:aws:ecr:<region>:<account>:repository/<repo>/sha256:<hex>` for images.
    #[serde(default)]
    pub id: String,
    /// `AWS_ECR_CONTAINER_IMAGE`, …
    #[serde(rename = "type", default)]
    pub resource_type: String,
    /// Resource details.
    #[serde(default)]
    pub details: ResourceDetails,
}

/// A timestamp as printed (kept verbatim), validated on load: RFC 3339, Inspector's
/// `Wed Sep 04 16:55:38.411 UTC 2024`, or epoch seconds as the raw API sends them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timestamp {
    /// The text as found (epoch seconds rendered as a number string).
    pub text: String,
    /// The instant it names.
    #[serde(skip)]
    pub at: SystemTime,
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Epoch(f64),
        }
        match Raw::deserialize(d)? {
            Raw::Text(text) => {
                let at = parse_timestamp(&text).map_err(serde::de::Error::custom)?;
                Ok(Timestamp { text, at })
            }
            Raw::Epoch(secs) => {
                let at = from_epoch_seconds(secs).ok_or_else(|| {
                    serde::de::Error::custom(format!("{secs} is not a valid epoch timestamp"))
                })?;
                Ok(Timestamp {
                    text: secs.to_string(),
                    at,
                })
            }
        }
    }
}

/// An Inspector2 finding: the fields the gate reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Unique id of the finding.
    pub finding_arn: String,
    /// Account the finding belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_account_id: Option<String>,
    /// `CRITICAL` … `UNTRIAGED`; any other value is an error.
    pub severity: Severity,
    /// `ACTIVE`, `SUPPRESSED` or `CLOSED`.
    pub status: FindingStatus,
    /// `PACKAGE_VULNERABILITY`, `CODE_VULNERABILITY`, `NETWORK_REACHABILITY`.
    #[serde(rename = "type", default)]
    pub finding_type: String,
    /// One-line title (`CVE-2024-6119 - libssl3t64, openssl`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Whether a fixed version exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_available: Option<Availability>,
    /// Whether a public exploit is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exploit_available: Option<Availability>,
    /// EPSS score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epss: Option<Epss>,
    /// Inspector's adjusted CVSS score, 0..=10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspector_score: Option<f64>,
    /// The vulnerability and its packages (package vulnerabilities only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package_vulnerability_details: Option<PackageVulnerabilityDetails>,
    /// The affected resources (one image for ECR findings).
    pub resources: Vec<Resource>,
    /// First seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_observed_at: Option<Timestamp>,
    /// Last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_observed_at: Option<Timestamp>,
    /// Last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Timestamp>,
}

impl Finding {
    /// The vulnerability id (`CVE-…`), else the title, else the ARN: what reports and allowlists
    /// name.
    pub fn vulnerability_id(&self) -> &str {
        self.package_vulnerability_details
            .as_ref()
            .map(|p| p.vulnerability_id.as_str())
            .or(self.title.as_deref())
            .unwrap_or(&self.finding_arn)
    }

    /// Names of the affected packages.
    pub fn package_names(&self) -> impl Iterator<Item = &str> {
        self.package_vulnerability_details
            .iter()
            .flat_map(|p| p.vulnerable_packages.iter().map(|v| v.name.as_str()))
    }

    /// The ECR images the finding is about.
    pub fn ecr_images(&self) -> impl Iterator<Item = &EcrImageDetails> {
        self.resources
            .iter()
            .filter_map(|r| r.details.aws_ecr_container_image.as_ref())
    }

    /// Whether the finding is about exactly this platform manifest digest. Digests name
    /// content, so the repository is not compared here (the Inspector source filters on it).
    pub fn is_for_digest(&self, digest: &str) -> bool {
        self.ecr_images().any(|i| i.image_hash == digest)
    }

    /// Whether the finding is about `image`: same digest and, when the finding says, the same
    /// repository and registry account.
    pub fn is_for_image(&self, image: &ScannedImage) -> bool {
        self.ecr_images().any(|i| {
            i.image_hash == image.digest.as_str()
                && (i.repository_name.is_empty() || i.repository_name == image.repository)
                && match (&i.registry, &image.registry) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        })
    }
}

/// Parse the output of `aws inspector2 list-findings` (`{"findings":[…]}`, `nextToken`
/// ignored). Errors name the problem and where it is.
pub fn parse_findings_json(text: &str) -> Result<Vec<Finding>, GateError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| GateError::FindingsInvalid {
            source_name: "findings file".into(),
            detail: format!("not JSON: {e}"),
        })?;
    if v.get("findings").is_none_or(|f| !f.is_array()) {
        return Err(GateError::FindingsInvalid {
            source_name: "findings file".into(),
            detail: "expected the output of `aws inspector2 list-findings`: an object with a \
                     `findings` array"
                .into(),
        });
    }
    // Parse finding by finding so the error can say which one is wrong.
    let mut out = Vec::new();
    for (i, f) in v["findings"].as_array().into_iter().flatten().enumerate() {
        let finding = Finding::deserialize(f).map_err(|e| GateError::FindingsInvalid {
            source_name: "findings file".into(),
            detail: format!("findings[{i}]: {e}"),
        })?;
        out.push(finding);
    }
    Ok(out)
}

/// Findings from a file of `aws inspector2 list-findings` output (the CLI reads the file and
/// hands the text in). A file is a completed scan: every image is [`ScanState::Scanned`], and
/// only the findings whose `imageHash` is the image's digest count.
#[derive(Debug, Clone)]
pub struct FileSource {
    findings: Vec<Finding>,
}

impl FileSource {
    /// Parse the file's text.
    pub fn from_json(text: &str) -> Result<Self, GateError> {
        Ok(FileSource {
            findings: parse_findings_json(text)?,
        })
    }

    /// Every finding in the file.
    pub fn all(&self) -> &[Finding] {
        &self.findings
    }
}

#[async_trait]
impl FindingsSource for FileSource {
    async fn scan_state(&self, _image: &ScannedImage) -> Result<ScanState, GateError> {
        Ok(ScanState::Scanned)
    }

    async fn findings(&self, image: &ScannedImage) -> Result<Vec<Finding>, GateError> {
        Ok(self
            .findings
            .iter()
            .filter(|f| f.is_for_digest(image.digest.as_str()))
            .cloned()
            .collect())
    }

    fn is_snapshot(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"{"findings":[{
      "awsAccountId":"123456789012","epss":{"score":0.00045},"exploitAvailable":"NO",
      "fixAvailable":"YES","findingArn":"arn:aws:inspector2:eu-central-1:123456789012:finding/abc",
      "firstObservedAt":"Wed Sep 04 16:55:38.411 UTC 2024","lastObservedAt":"2024-09-04T16:55:38.411000+00:00",
      "updatedAt":1725468938.411,
      "packageVulnerabilityDetails":{"source":"UBUNTU_CVE","vendorSeverity":"medium",
        "vulnerabilityId":"CVE-2024-6119","cvss":[],"relatedVulnerabilities":["USN-6986-1"],
        "vulnerablePackages":[{"arch":"ARM64","epoch":0,"name":"openssl","version":"3.0.13",
          "release":"0ubuntu3.2","fixedInVersion":"0:3.0.13-0ubuntu3.4","packageManager":"OS",
          "sourceLayerHash":"sha256:1567"}]},
      "resources":[{"id":"arn:aws:ecr:eu-central-1:123456789012:repository/inspector2/sha256:84f5",
        "type":"AWS_ECR_CONTAINER_IMAGE","details":{"awsEcrContainerImage":{"architecture":"arm64",
        "imageHash":"sha256:84f5","imageTags":["ubuntu_latest"],"platform":"UBUNTU_24_04",
        "pushedAt":"Wed Sep 04 16:55:28.000 UTC 2024","registry":"123456789012",
        "repositoryName":"inspector2"}}}],
      "severity":"MEDIUM","status":"ACTIVE","title":"CVE-2024-6119 - libssl3t64, openssl",
      "type":"PACKAGE_VULNERABILITY"}],"nextToken":null}"#;

    #[test]
    fn parses_the_documented_finding_shape_with_both_timestamp_styles() {
        let f = &parse_findings_json(SAMPLE).unwrap()[0];
        assert_eq!(f.severity, Severity::Medium);
        assert_eq!(f.vulnerability_id(), "CVE-2024-6119");
        assert_eq!(f.package_names().collect::<Vec<_>>(), ["openssl"]);
        assert_eq!(f.fix_available, Some(Availability::Yes));
        assert!(f.is_for_digest("sha256:84f5"));
        assert!(!f.is_for_digest("sha256:84f"));
        let first = f.first_observed_at.as_ref().unwrap().at;
        assert_eq!(first, f.last_observed_at.as_ref().unwrap().at);
        assert_eq!(first, f.updated_at.as_ref().unwrap().at);
    }

    #[test]
    fn rejects_unknown_severities_other_shapes_and_bad_timestamps() {
        let bad_sev = SAMPLE.replace(r#""severity":"MEDIUM""#, r#""severity":"SEVERE""#);
        let e = parse_findings_json(&bad_sev).unwrap_err().to_string();
        assert!(e.contains("findings[0]") && e.contains("SEVERE"), "{e}");

        let e = parse_findings_json(r#"{"Findings":[]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`findings` array"), "{e}");
        let e = parse_findings_json("[1,2]").unwrap_err().to_string();
        assert!(e.contains("`findings` array"), "{e}");
        let e = parse_findings_json(r#"{"findings":[{"title":"x"}]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("findingArn"), "{e}");

        let bad_ts = SAMPLE.replace("Wed Sep 04 16:55:38.411 UTC 2024", "Wed Sep 4th 2024");
        let e = parse_findings_json(&bad_ts).unwrap_err().to_string();
        assert!(e.contains("not a timestamp"), "{e}");
    }
}
