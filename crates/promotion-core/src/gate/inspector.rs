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

use super::findings::{
    Availability, EcrImageDetails, Epss, Finding, FindingStatus, PackageVulnerabilityDetails,
    Resource, ResourceDetails, Severity, Timestamp, VulnerablePackage,
};
use super::{FindingsSource, GateError, NO_COVERAGE_RECORD, ScanState, ScannedImage};
use async_trait::async_trait;
use aws_sdk_inspector2::Client;
use aws_sdk_inspector2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_inspector2::primitives::{DateTime, DateTimeFormat};
use aws_sdk_inspector2::types::{
    CoverageFilterCriteria, CoverageStringComparison, CoverageStringFilter, FilterCriteria,
    StringComparison, StringFilter,
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
                return Ok(match r.scan_status() {
                    Some(s) => ScanState::from_reason(s.reason().as_str()),
                    None => ScanState::Pending(NO_COVERAGE_RECORD.to_owned()),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() && token.as_deref() != Some(t) => {
                    token = Some(t.to_owned())
                }
                _ => return Ok(ScanState::Pending(NO_COVERAGE_RECORD.to_owned())),
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
    let detail = DisplayErrorContext(&e).to_string();
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
