//! Amazon Inspector as a [`FindingsSource`], through `aws-sdk-inspector2`.
//!
//! - Findings: `ListFindings` filtered to exactly one image — `ecrImageHash`,
//!   `ecrImageRepositoryName`, `ecrImageRegistry` (when the account is known), `resourceType
//!   AWS_ECR_CONTAINER_IMAGE` and `findingStatus` (ACTIVE, then SUPPRESSED in a second query) —
//!   following every `nextToken`. Every finding is checked against the image again on arrival,
//!   so a service (or stand-in) that ignores filters cannot smuggle in other images' findings.
//! - Scan state: `ListCoverage` filtered on the repository, the resource type and (when the
//!   account and region are known) the image's resource id, mapped through
//!   [`ScanState::from_reason`]. No record means "not scanned yet".

use async_trait::async_trait;
use aws_sdk_inspector2::Client;
use aws_sdk_inspector2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_inspector2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_inspector2::types::{
    CoverageFilterCriteria, CoverageStringComparison, CoverageStringFilter, FilterCriteria,
    StringComparison, StringFilter,
};
use promotion_core::gate::findings::{
    Availability, EcrImageDetails, Epss, Finding, FindingStatus, PackageVulnerabilityDetails,
    Resource, ResourceDetails, Severity, Timestamp, VulnerablePackage,
};
use promotion_core::gate::{
    Coverage, FindingsSource, GateError, NO_COVERAGE_RECORD, ScanState, ScannedImage,
};
use std::time::SystemTime;

/// Page size for `ListFindings` and `ListCoverage` (the API maximum).
const PAGE_SIZE: i32 = 100;
/// A safety stop against a service that keeps handing out tokens: 100,000 findings per image.
const MAX_PAGES: usize = 1000;
/// The resource type of ECR images, in both findings and coverage filters.
const ECR_IMAGE: &str = "AWS_ECR_CONTAINER_IMAGE";

/// Inspector findings and coverage for ECR images.
#[derive(Debug, Clone)]
pub struct InspectorSource {
    client: Client,
}

impl InspectorSource {
    /// From a client built at the edge (region, credentials, endpoint override). Its region is
    /// the region of the images it is asked about.
    pub fn new(client: Client) -> Self {
        InspectorSource { client }
    }

    /// `arn:<partition>:ecr:<region>:<account>:repository/<repo>/<digest>`, when the account
    /// and region are known.
    fn resource_id(&self, image: &ScannedImage) -> Option<String> {
        let region = self.client.config().region()?.as_ref().to_owned();
        let account = image.registry.as_deref()?;
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Some(format!(
            "arn:{partition}:ecr:{region}:{account}:repository/{}/{}",
            image.repository, image.digest
        ))
    }

    async fn list_findings(
        &self,
        image: &ScannedImage,
        status: FindingStatus,
    ) -> Result<Vec<Finding>, GateError> {
        let status_name = match status {
            FindingStatus::Active => "ACTIVE",
            FindingStatus::Suppressed => "SUPPRESSED",
            FindingStatus::Closed => "CLOSED",
        };
        let mut criteria = FilterCriteria::builder()
            .ecr_image_hash(string_eq(image.digest.as_str())?)
            .ecr_image_repository_name(string_eq(&image.repository)?)
            .resource_type(string_eq(ECR_IMAGE)?)
            .finding_status(string_eq(status_name)?);
        if let Some(account) = &image.registry {
            criteria = criteria.ecr_image_registry(string_eq(account)?);
        }
        let criteria = criteria.build();
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_findings()
                .filter_criteria(criteria.clone())
                .max_results(PAGE_SIZE)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| sdk_error("ListFindings", e))?;
            for f in page.findings() {
                let f = convert_finding(f)?;
                if f.status == status && f.is_for_image(image) {
                    out.push(f);
                }
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => {
                    if token.as_deref() == Some(t) {
                        return Err(GateError::FindingsInvalid {
                            source_name: "ListFindings".into(),
                            detail: "the service returned the same nextToken twice".into(),
                        });
                    }
                    token = Some(t.to_owned());
                }
                _ => return Ok(out),
            }
        }
        Err(GateError::FindingsInvalid {
            source_name: "ListFindings".into(),
            detail: format!("more than {MAX_PAGES} pages of findings for {image}"),
        })
    }
}

#[async_trait]
impl FindingsSource for InspectorSource {
    async fn scan_state(&self, image: &ScannedImage) -> Result<ScanState, GateError> {
        self.coverage(image).await.map(|c| c.state)
    }

    async fn coverage(&self, image: &ScannedImage) -> Result<Coverage, GateError> {
        let mut criteria = CoverageFilterCriteria::builder()
            .ecr_repository_name(coverage_eq(&image.repository)?)
            .resource_type(coverage_eq(ECR_IMAGE)?);
        if let Some(id) = self.resource_id(image) {
            criteria = criteria.resource_id(coverage_eq(&id)?);
        }
        let criteria = criteria.build();
        let suffix = format!(":repository/{}/{}", image.repository, image.digest);
        let account = image.registry.as_ref().map(|a| format!(":{a}:repository/"));
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let page = self
                .client
                .list_coverage()
                .filter_criteria(criteria.clone())
                .max_results(PAGE_SIZE)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| sdk_error("ListCoverage", e))?;
            let found = page.covered_resources().iter().find(|r| {
                let id = r.resource_id();
                id.ends_with(&suffix) && account.as_ref().is_none_or(|a| id.contains(a.as_str()))
            });
            if let Some(r) = found {
                let state = match r.scan_status() {
                    Some(s) => ScanState::from_reason(s.reason().as_str()),
                    None => ScanState::Pending(NO_COVERAGE_RECORD.to_owned()),
                };
                let completed_at = r
                    .last_scanned_at()
                    .and_then(|t| SystemTime::try_from(*t).ok());
                return Ok(Coverage {
                    state,
                    completed_at,
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && token.as_deref() != Some(t) => {
                    token = Some(t.to_owned())
                }
                _ => {
                    return Ok(Coverage {
                        state: ScanState::Pending(NO_COVERAGE_RECORD.to_owned()),
                        completed_at: None,
                    });
                }
            }
        }
        Err(GateError::FindingsInvalid {
            source_name: "ListCoverage".into(),
            detail: format!("more than {MAX_PAGES} pages of coverage for {image}"),
        })
    }

    async fn findings(&self, image: &ScannedImage) -> Result<Vec<Finding>, GateError> {
        let mut all = self.list_findings(image, FindingStatus::Active).await?;
        all.extend(self.list_findings(image, FindingStatus::Suppressed).await?);
        Ok(all)
    }
}

fn string_eq(value: &str) -> Result<StringFilter, GateError> {
    StringFilter::builder()
        .comparison(StringComparison::Equals)
        .value(value)
        .build()
        .map_err(|e| GateError::FindingsInvalid {
            source_name: "ListFindings filter".into(),
            detail: e.to_string(),
        })
}

fn coverage_eq(value: &str) -> Result<CoverageStringFilter, GateError> {
    CoverageStringFilter::builder()
        .comparison(CoverageStringComparison::Equals)
        .value(value)
        .build()
        .map_err(|e| GateError::FindingsInvalid {
            source_name: "ListCoverage filter".into(),
            detail: e.to_string(),
        })
}

/// Classify an SDK failure: throttling, 5xx and transport failures are worth retrying;
/// access denied is not; a validation error means we sent something wrong.
fn sdk_error<E, R>(what: &str, e: SdkError<E, R>) -> GateError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .map(str::to_owned);
    // The SDK's context can carry the whole raw response: keep errors (and state) small.
    let mut detail = DisplayErrorContext(&e).to_string();
    if detail.len() > 400 {
        detail.truncate(detail.floor_char_boundary(400));
        detail.push('…');
    }
    let what = what.to_owned();
    match code.as_deref() {
        Some("AccessDeniedException" | "UnrecognizedClientException") => {
            GateError::Unauthorized { what, detail }
        }
        Some("ValidationException") => GateError::FindingsInvalid {
            source_name: what,
            detail,
        },
        _ => GateError::Unavailable { what, detail },
    }
}

fn timestamp(t: &DateTime) -> Option<Timestamp> {
    Some(Timestamp {
        text: t.fmt(DateTimeFormat::DateTime).ok()?,
        at: SystemTime::try_from(*t).ok()?,
    })
}

fn availability(s: &str) -> Option<Availability> {
    match s {
        "YES" => Some(Availability::Yes),
        "NO" => Some(Availability::No),
        "PARTIAL" => Some(Availability::Partial),
        _ => None,
    }
}

/// The SDK's finding in our model. An unknown severity or status is an error, never a guess.
fn convert_finding(f: &aws_sdk_inspector2::types::Finding) -> Result<Finding, GateError> {
    let invalid = |detail: String| GateError::FindingsInvalid {
        source_name: "ListFindings".into(),
        detail: format!("finding {}: {detail}", f.finding_arn()),
    };
    let severity: Severity = f.severity().as_str().parse().map_err(invalid)?;
    let status = match f.status().as_str() {
        "ACTIVE" => FindingStatus::Active,
        "SUPPRESSED" => FindingStatus::Suppressed,
        "CLOSED" => FindingStatus::Closed,
        other => return Err(invalid(format!("unknown finding status {other:?}"))),
    };
    Ok(Finding {
        finding_arn: f.finding_arn().to_owned(),
        aws_account_id: Some(f.aws_account_id().to_owned()).filter(|s| !s.is_empty()),
        severity,
        status,
        finding_type: f.r#type().as_str().to_owned(),
        title: f.title().map(str::to_owned),
        fix_available: f.fix_available().and_then(|a| availability(a.as_str())),
        exploit_available: f.exploit_available().and_then(|a| availability(a.as_str())),
        epss: f.epss().map(|e| Epss { score: e.score() }),
        inspector_score: f.inspector_score(),
        package_vulnerability_details: f.package_vulnerability_details().map(|p| {
            PackageVulnerabilityDetails {
                vulnerability_id: p.vulnerability_id().to_owned(),
                source: Some(p.source().to_owned()).filter(|s| !s.is_empty()),
                vulnerable_packages: p
                    .vulnerable_packages()
                    .iter()
                    .map(|v| VulnerablePackage {
                        name: v.name().to_owned(),
                        version: v.version().to_owned(),
                        fixed_in_version: v.fixed_in_version().map(str::to_owned),
                        package_manager: v.package_manager().map(|m| m.as_str().to_owned()),
                        file_path: v.file_path().map(str::to_owned),
                    })
                    .collect(),
            }
        }),
        resources: f
            .resources()
            .iter()
            .map(|r| Resource {
                id: r.id().to_owned(),
                resource_type: r.r#type().as_str().to_owned(),
                details: ResourceDetails {
                    aws_ecr_container_image: r
                        .details()
                        .and_then(|d| d.aws_ecr_container_image())
                        .map(|i| EcrImageDetails {
                            image_hash: i.image_hash().to_owned(),
                            repository_name: i.repository_name().to_owned(),
                            registry: Some(i.registry().to_owned()).filter(|s| !s.is_empty()),
                            architecture: i.architecture().map(str::to_owned),
                            platform: i.platform().map(str::to_owned),
                            image_tags: i.image_tags().to_vec(),
                        }),
                },
            })
            .collect(),
        first_observed_at: timestamp(f.first_observed_at()),
        last_observed_at: timestamp(f.last_observed_at()),
        updated_at: f.updated_at().and_then(timestamp),
    })
}

#[cfg(test)]
mod tests {
    //! The adapter against a stub of the Inspector2 HTTP API on loopback: the stub records every
    //! request, so the tests prove the filters sent and that every page is followed (moto
    //! ignores filters and pagination and has no ListCoverage, so it cannot prove either).

    use super::*;
    use crate::testing::Stub;
    use aws_sdk_inspector2::config::retry::RetryConfig;
    use aws_sdk_inspector2::config::{BehaviorVersion, Credentials, Region};
    use promotion_core::digest::Digest;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    /// The adapter pointed at `stub`, with the SDK's own retries off.
    fn source(stub: &Stub) -> InspectorSource {
        let conf = aws_sdk_inspector2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
            .endpoint_url(&stub.url)
            .retry_config(RetryConfig::disabled())
            .build();
        InspectorSource::new(Client::from_conf(conf))
    }

    fn image() -> ScannedImage {
        ScannedImage {
            registry: Some("123456789012".into()),
            repository: "team/app".into(),
            digest: Digest::of(b"platform manifest"),
            platform: Some("linux/amd64".into()),
        }
    }

    /// A finding in the API's wire shape (epoch-second timestamps).
    fn wire_finding(digest: &str, id: &str, severity: &str, status: &str) -> Value {
        json!({
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}-{}", &digest[7..15]),
            "awsAccountId": "123456789012",
            "description": "d",
            "type": "PACKAGE_VULNERABILITY",
            "severity": severity,
            "status": status,
            "title": format!("{id} - openssl"),
            "firstObservedAt": 1725468938.411,
            "lastObservedAt": 1725468938.411,
            "fixAvailable": "YES",
            "exploitAvailable": "NO",
            "epss": {"score": 0.00045},
            "inspectorScore": 7.5,
            "remediation": {"recommendation": {"text": "upgrade"}},
            "packageVulnerabilityDetails": {
                "vulnerabilityId": id, "source": "NVD",
                "vulnerablePackages": [{"name": "openssl", "version": "3.0.13", "fixedInVersion": "3.0.14", "packageManager": "OS"}]
            },
            "resources": [{
                "type": "AWS_ECR_CONTAINER_IMAGE",
                "id": format!("arn:aws:ecr:us-east-1:123456789012:repository/team/app/{digest}"),
                "details": {"awsEcrContainerImage": {
                    "imageHash": digest, "repositoryName": "team/app", "registry": "123456789012",
                    "architecture": "amd64", "pushedAt": 1725468928.0
                }}
            }]
        })
    }

    #[tokio::test]
    async fn list_findings_sends_the_image_filters_and_follows_every_page() {
        let d = image().digest.to_string();
        let other = Digest::of(b"another image").to_string();
        let (d2, other2) = (d.clone(), other.clone());
        let stub = Stub::start(move |path, body| {
            assert_eq!(path, "/findings/list");
            let status = body["filterCriteria"]["findingStatus"][0]["value"]
                .as_str()
                .unwrap();
            if status == "SUPPRESSED" {
                return (
                    200,
                    json!({"findings": [wire_finding(&d2, "CVE-S", "CRITICAL", "SUPPRESSED")]}),
                );
            }
            match body["nextToken"].as_str() {
                None => (
                    200,
                    json!({"findings": [
                    wire_finding(&d2, "CVE-1", "HIGH", "ACTIVE"),
                    wire_finding(&d2, "CVE-2", "LOW", "ACTIVE")], "nextToken": "page-2"}),
                ),
                Some("page-2") => (
                    200,
                    json!({"findings": [
                    // A stand-in that ignores filters: this one must not count.
                    wire_finding(&other2, "CVE-X", "CRITICAL", "ACTIVE"),
                    wire_finding(&d2, "CVE-3", "MEDIUM", "ACTIVE")], "nextToken": "page-3"}),
                ),
                Some("page-3") => (
                    200,
                    json!({"findings": [wire_finding(&d2, "CVE-4", "CRITICAL", "ACTIVE")]}),
                ),
                Some(t) => panic!("unexpected token {t}"),
            }
        })
        .await;
        let found = source(&stub).findings(&image()).await.unwrap();
        let ids: Vec<(&str, FindingStatus)> = found
            .iter()
            .map(|f| (f.vulnerability_id(), f.status))
            .collect();
        assert_eq!(
            ids,
            [
                ("CVE-1", FindingStatus::Active),
                ("CVE-2", FindingStatus::Active),
                ("CVE-3", FindingStatus::Active),
                ("CVE-4", FindingStatus::Active),
                ("CVE-S", FindingStatus::Suppressed)
            ]
        );
        assert_eq!(found[0].fix_available, Some(Availability::Yes));
        assert_eq!(found[0].inspector_score, Some(7.5));
        assert_eq!(
            found[0].ecr_images().next().unwrap().repository_name,
            "team/app"
        );

        let requests = stub.requests("/findings/list");
        assert_eq!(
            requests.len(),
            4,
            "three ACTIVE pages and one SUPPRESSED page"
        );
        let tokens: Vec<Option<&str>> = requests.iter().map(|r| r["nextToken"].as_str()).collect();
        assert_eq!(tokens, [None, Some("page-2"), Some("page-3"), None]);
        let eq = |v: &str| json!([{"comparison": "EQUALS", "value": v}]);
        for (r, status) in requests
            .iter()
            .zip(["ACTIVE", "ACTIVE", "ACTIVE", "SUPPRESSED"])
        {
            assert_eq!(r["maxResults"], 100);
            assert_eq!(
                r["filterCriteria"],
                json!({
                    "ecrImageHash": eq(&d),
                    "ecrImageRepositoryName": eq("team/app"),
                    "ecrImageRegistry": eq("123456789012"),
                    "resourceType": eq("AWS_ECR_CONTAINER_IMAGE"),
                    "findingStatus": eq(status),
                })
            );
        }

        // Without a known account the registry filter is left out.
        let anonymous = ScannedImage {
            registry: None,
            ..image()
        };
        source(&stub).findings(&anonymous).await.unwrap();
        let last = stub.requests("/findings/list").pop().unwrap();
        assert!(
            last["filterCriteria"].get("ecrImageRegistry").is_none(),
            "{last}"
        );
    }

    #[tokio::test]
    async fn list_coverage_maps_scan_status_and_follows_pages() {
        let reason = Arc::new(Mutex::new(String::from("SUCCESSFUL")));
        let r2 = reason.clone();
        let d = image().digest.to_string();
        let d2 = d.clone();
        let stub = Stub::start(move |path, body| {
            assert_eq!(path, "/coverage/list");
            let covered = |digest: &str, reason: &str| json!({
                "resourceType": "AWS_ECR_CONTAINER_IMAGE",
                "resourceId": format!("arn:aws:ecr:us-east-1:123456789012:repository/team/app/{digest}"),
                "accountId": "123456789012", "scanType": "PACKAGE",
                "scanStatus": {"statusCode": "ACTIVE", "reason": reason},
                "lastScannedAt": 1_795_000_000.5
            });
            let reason = r2.lock().unwrap().clone();
            if reason == "none" {
                return (200, json!({"coveredResources": []}));
            }
            match body["nextToken"].as_str() {
                None => (200, json!({"coveredResources": [covered("sha256:0000", "SUCCESSFUL")], "nextToken": "c2"})),
                Some(_) => (200, json!({"coveredResources": [covered(&d2, &reason)]})),
            }
        })
        .await;
        let source = source(&stub);
        for (r, expected) in [
            ("SUCCESSFUL", ScanState::Scanned),
            (
                "SCAN_IN_PROGRESS",
                ScanState::Pending("SCAN_IN_PROGRESS".into()),
            ),
            (
                "PENDING_INITIAL_SCAN",
                ScanState::Pending("PENDING_INITIAL_SCAN".into()),
            ),
            (
                "UNSUPPORTED_OS",
                ScanState::Unscannable("UNSUPPORTED_OS".into()),
            ),
            (
                "SCAN_ELIGIBILITY_EXPIRED",
                ScanState::Unscannable("SCAN_ELIGIBILITY_EXPIRED".into()),
            ),
            ("ACCESS_DENIED", ScanState::Error("ACCESS_DENIED".into())),
            ("INTERNAL_ERROR", ScanState::Error("INTERNAL_ERROR".into())),
            ("none", ScanState::Pending(NO_COVERAGE_RECORD.into())),
        ] {
            *reason.lock().unwrap() = r.to_owned();
            assert_eq!(source.scan_state(&image()).await.unwrap(), expected, "{r}");
        }
        // The completion time comes with the state (promote refuses unsettled scans).
        *reason.lock().unwrap() = "SUCCESSFUL".to_owned();
        let c = source.coverage(&image()).await.unwrap();
        assert_eq!(c.state, ScanState::Scanned);
        assert_eq!(
            c.completed_at,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_500))
        );
        let requests = stub.requests("/coverage/list");
        assert_eq!(requests[1]["nextToken"], "c2", "second page requested");
        let eq = |v: &str| json!([{"comparison": "EQUALS", "value": v}]);
        assert_eq!(
            requests[0]["filterCriteria"],
            json!({
                "resourceId": eq(&format!("arn:aws:ecr:us-east-1:123456789012:repository/team/app/{d}")),
                "resourceType": eq("AWS_ECR_CONTAINER_IMAGE"),
                "ecrRepositoryName": eq("team/app"),
            })
        );
    }

    #[tokio::test]
    async fn service_failures_are_classified_and_bad_findings_rejected() {
        let d = image().digest.to_string();
        let mode = Arc::new(Mutex::new("throttle"));
        let m2 = mode.clone();
        let stub = Stub::start(move |_, _| match *m2.lock().unwrap() {
            "throttle" => (
                429,
                json!({"__type": "ThrottlingException", "message": "slow down"}),
            ),
            "denied" => (
                403,
                json!({"__type": "AccessDeniedException", "message": "no"}),
            ),
            "validation" => (
                400,
                json!({"__type": "ValidationException", "message": "bad filter"}),
            ),
            "severity" => (
                200,
                json!({"findings": [wire_finding(&d, "CVE-1", "SEVERE", "ACTIVE")]}),
            ),
            _ => (
                500,
                json!({"__type": "InternalServerException", "message": "oops"}),
            ),
        })
        .await;
        let source = source(&stub);
        for (m, expected) in [
            ("throttle", ErrorType::FindingsUnavailable),
            ("internal", ErrorType::FindingsUnavailable),
            ("denied", ErrorType::FindingsUnauthorized),
            ("validation", ErrorType::FindingsInvalid),
            ("severity", ErrorType::FindingsInvalid),
        ] {
            *mode.lock().unwrap() = m;
            let e = source.findings(&image()).await.unwrap_err();
            assert_eq!(e.error_type(), expected, "{m}: {e}");
            if m == "severity" {
                assert!(e.to_string().contains("SEVERE"), "{e}");
            }
        }
        *mode.lock().unwrap() = "denied";
        let e = source.scan_state(&image()).await.unwrap_err();
        assert_eq!(e.error_type(), ErrorType::FindingsUnauthorized, "{e}");
    }

    use promotion_core::error::{Classify as _, ErrorType};
}
