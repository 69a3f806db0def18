//! The result of an ECR image scan, from DescribeImageScanFindings.
//!
//! ECR reports basic scanning (ECR's own scanner) and enhanced scanning
//! (Amazon Inspector) in two shapes; both become one [`ScanReport`]: the scan
//! status, when it completed, and every finding with its id and severity.
//! Whether the findings block a promotion is decided by the policy, not here.

use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsOutput;
use aws_sdk_ecr::types::{
    EnhancedImageScanFinding, FindingSeverity, ImageScanFinding, ScanStatus as SdkScanStatus,
};
use k8s_openapi::jiff::Timestamp;

use crate::api::Severity;
use crate::api::verify::FindingCounts;

/// Where an image's scan stands, as ECR reports it, plus "never scanned".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    /// The scan finished; its findings are final.
    Complete,
    /// Enhanced (continuous) scanning is active; its findings are current.
    Active,
    /// The scan is running.
    InProgress,
    /// Enhanced scanning has queued the image.
    Pending,
    /// The scan failed.
    Failed,
    /// ECR cannot scan this image (e.g. its OS is not supported).
    UnsupportedImage,
    /// Enhanced scanning has no findings for the image.
    FindingsUnavailable,
    /// The image is no longer scanned continuously.
    ScanEligibilityExpired,
    /// A scan quota was exceeded (basic scanning allows one scan per image a day).
    LimitExceeded,
    /// The image is archived and not scanned.
    ImageArchived,
    /// The image has never been scanned (ECR answers ScanNotFoundException).
    NotScanned,
    /// A status this version does not know.
    Other(String),
}

impl ScanStatus {
    /// The name ECR uses; `NOT_SCANNED` for an image without a scan.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Complete => "COMPLETE",
            Self::Active => "ACTIVE",
            Self::InProgress => "IN_PROGRESS",
            Self::Pending => "PENDING",
            Self::Failed => "FAILED",
            Self::UnsupportedImage => "UNSUPPORTED_IMAGE",
            Self::FindingsUnavailable => "FINDINGS_UNAVAILABLE",
            Self::ScanEligibilityExpired => "SCAN_ELIGIBILITY_EXPIRED",
            Self::LimitExceeded => "LIMIT_EXCEEDED",
            Self::ImageArchived => "IMAGE_ARCHIVED",
            Self::NotScanned => "NOT_SCANNED",
            Self::Other(other) => other,
        }
    }

    /// Whether the findings are final (basic) or current (enhanced).
    pub fn has_findings(&self) -> bool {
        matches!(self, Self::Complete | Self::Active)
    }

    /// Whether waiting may bring a completed scan.
    pub fn is_running(&self) -> bool {
        matches!(self, Self::InProgress | Self::Pending)
    }

    fn from_sdk(status: Option<&SdkScanStatus>) -> Self {
        match status {
            None => Self::Other("UNKNOWN".into()),
            Some(SdkScanStatus::Complete) => Self::Complete,
            Some(SdkScanStatus::Active) => Self::Active,
            Some(SdkScanStatus::InProgress) => Self::InProgress,
            Some(SdkScanStatus::Pending) => Self::Pending,
            Some(SdkScanStatus::Failed) => Self::Failed,
            Some(SdkScanStatus::UnsupportedImage) => Self::UnsupportedImage,
            Some(SdkScanStatus::FindingsUnavailable) => Self::FindingsUnavailable,
            Some(SdkScanStatus::ScanEligibilityExpired) => Self::ScanEligibilityExpired,
            Some(SdkScanStatus::LimitExceeded) => Self::LimitExceeded,
            Some(SdkScanStatus::ImageArchived) => Self::ImageArchived,
            Some(other) => Self::Other(other.as_str().to_string()),
        }
    }
}

/// One vulnerability finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The vulnerability id, e.g. `CVE-2025-12345` or `GHSA-xxxx-xxxx-xxxx`.
    pub id: String,
    /// The severity; `None` when ECR reports `UNDEFINED` (or Inspector `UNTRIAGED`).
    pub severity: Option<Severity>,
    /// The affected package, when the scanner says.
    pub package: Option<String>,
}

/// What ECR knows about the scan of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanReport {
    /// Where the scan stands.
    pub status: ScanStatus,
    /// ECR's description of the status, e.g. why a scan failed.
    pub description: Option<String>,
    /// When the scan completed.
    pub completed_at: Option<Timestamp>,
    /// Every active finding, basic and enhanced.
    pub findings: Vec<Finding>,
}

impl ScanReport {
    /// The report for an image that was never scanned.
    pub fn not_scanned() -> Self {
        Self {
            status: ScanStatus::NotScanned,
            description: None,
            completed_at: None,
            findings: Vec::new(),
        }
    }

    /// Joins the pages of one DescribeImageScanFindings listing. Status,
    /// description and completion time come from the first page.
    pub fn from_pages<'a>(
        pages: impl IntoIterator<Item = &'a DescribeImageScanFindingsOutput>,
    ) -> Self {
        let mut pages = pages.into_iter().peekable();
        let Some(first) = pages.peek() else {
            return Self::not_scanned();
        };
        let status = first.image_scan_status();
        let mut report = Self {
            status: ScanStatus::from_sdk(status.and_then(|s| s.status())),
            description: status.and_then(|s| s.description()).map(str::to_string),
            completed_at: first
                .image_scan_findings()
                .and_then(|f| f.image_scan_completed_at())
                .and_then(|t| Timestamp::new(t.secs(), t.subsec_nanos() as i32).ok()),
            findings: Vec::new(),
        };
        for page in pages {
            let Some(findings) = page.image_scan_findings() else {
                continue;
            };
            report
                .findings
                .extend(findings.findings().iter().filter_map(basic_finding));
            report.findings.extend(
                findings
                    .enhanced_findings()
                    .iter()
                    .filter_map(enhanced_finding),
            );
        }
        report
    }

    /// Number of findings by severity.
    pub fn counts(&self) -> FindingCounts {
        let mut counts = FindingCounts::default();
        for finding in &self.findings {
            let slot = match finding.severity {
                Some(Severity::Critical) => &mut counts.critical,
                Some(Severity::High) => &mut counts.high,
                Some(Severity::Medium) => &mut counts.medium,
                Some(Severity::Low) => &mut counts.low,
                Some(Severity::Informational) => &mut counts.informational,
                None => &mut counts.undefined,
            };
            *slot += 1;
        }
        counts
    }
}

fn severity(name: &str) -> Option<Severity> {
    match name.to_ascii_uppercase().as_str() {
        "CRITICAL" => Some(Severity::Critical),
        "HIGH" => Some(Severity::High),
        "MEDIUM" => Some(Severity::Medium),
        "LOW" => Some(Severity::Low),
        "INFORMATIONAL" => Some(Severity::Informational),
        _ => None,
    }
}

fn basic_finding(finding: &ImageScanFinding) -> Option<Finding> {
    let package = finding
        .attributes()
        .iter()
        .find(|a| a.key() == "package_name")
        .and_then(|a| a.value())
        .map(str::to_string);
    Some(Finding {
        id: finding.name()?.to_string(),
        severity: finding
            .severity()
            .map(FindingSeverity::as_str)
            .and_then(severity),
        package,
    })
}

/// An Inspector finding; closed and suppressed findings are not findings.
fn enhanced_finding(finding: &EnhancedImageScanFinding) -> Option<Finding> {
    if matches!(finding.status(), Some("CLOSED" | "SUPPRESSED")) {
        return None;
    }
    let details = finding.package_vulnerability_details();
    let id = details
        .and_then(|d| d.vulnerability_id())
        .or(finding.title())
        .or(finding.finding_arn())?;
    Some(Finding {
        id: id.to_string(),
        severity: finding.severity().and_then(severity),
        package: details
            .and_then(|d| d.vulnerable_packages().first())
            .and_then(|p| p.name())
            .map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use aws_sdk_ecr::primitives::DateTime;
    use aws_sdk_ecr::types::{
        Attribute, ImageScanFindings, ImageScanStatus, PackageVulnerabilityDetails,
        VulnerablePackage,
    };

    use super::*;

    fn page(
        status: SdkScanStatus,
        basic: Vec<ImageScanFinding>,
        enhanced: Vec<EnhancedImageScanFinding>,
    ) -> DescribeImageScanFindingsOutput {
        DescribeImageScanFindingsOutput::builder()
            .image_scan_status(
                ImageScanStatus::builder()
                    .status(status)
                    .description("described")
                    .build(),
            )
            .image_scan_findings(
                ImageScanFindings::builder()
                    .image_scan_completed_at(DateTime::from_secs(1_780_000_000))
                    .set_findings(Some(basic))
                    .set_enhanced_findings(Some(enhanced))
                    .build(),
            )
            .build()
    }

    fn basic(id: &str, severity: FindingSeverity) -> ImageScanFinding {
        ImageScanFinding::builder()
            .name(id)
            .severity(severity)
            .attributes(
                Attribute::builder()
                    .key("package_name")
                    .value("openssl")
                    .build()
                    .unwrap(),
            )
            .build()
    }

    fn enhanced(id: &str, severity: &str, status: &str) -> EnhancedImageScanFinding {
        EnhancedImageScanFinding::builder()
            .title(format!("{id} - libfoo"))
            .severity(severity)
            .status(status)
            .package_vulnerability_details(
                PackageVulnerabilityDetails::builder()
                    .vulnerability_id(id)
                    .vulnerable_packages(VulnerablePackage::builder().name("libfoo").build())
                    .build(),
            )
            .build()
    }

    #[test]
    fn basic_and_enhanced_findings_across_pages_make_one_report() {
        let first = page(
            SdkScanStatus::Complete,
            vec![
                basic("CVE-1", FindingSeverity::Critical),
                basic("CVE-2", FindingSeverity::Undefined),
            ],
            vec![],
        );
        let second = page(
            SdkScanStatus::Complete,
            vec![basic("CVE-3", FindingSeverity::Low)],
            vec![
                enhanced("CVE-4", "HIGH", "ACTIVE"),
                enhanced("CVE-5", "UNTRIAGED", "ACTIVE"),
                enhanced("CVE-6", "CRITICAL", "SUPPRESSED"),
                enhanced("CVE-7", "CRITICAL", "CLOSED"),
            ],
        );
        let report = ScanReport::from_pages([&first, &second]);
        assert_eq!(report.status, ScanStatus::Complete);
        assert_eq!(report.description.as_deref(), Some("described"));
        assert_eq!(report.completed_at.unwrap().as_second(), 1_780_000_000);
        let ids: Vec<_> = report.findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["CVE-1", "CVE-2", "CVE-3", "CVE-4", "CVE-5"]);
        assert_eq!(report.findings[0].package.as_deref(), Some("openssl"));
        assert_eq!(report.findings[3].package.as_deref(), Some("libfoo"));
        let counts = report.counts();
        assert_eq!(
            (counts.critical, counts.high, counts.medium, counts.low),
            (1, 1, 0, 1)
        );
        assert_eq!(counts.undefined, 2);
    }

    #[test]
    fn every_ecr_status_is_named_and_classified() {
        let cases = [
            (SdkScanStatus::Complete, "COMPLETE", true, false),
            (SdkScanStatus::Active, "ACTIVE", true, false),
            (SdkScanStatus::InProgress, "IN_PROGRESS", false, true),
            (SdkScanStatus::Pending, "PENDING", false, true),
            (SdkScanStatus::Failed, "FAILED", false, false),
            (
                SdkScanStatus::UnsupportedImage,
                "UNSUPPORTED_IMAGE",
                false,
                false,
            ),
            (
                SdkScanStatus::FindingsUnavailable,
                "FINDINGS_UNAVAILABLE",
                false,
                false,
            ),
            (
                SdkScanStatus::ScanEligibilityExpired,
                "SCAN_ELIGIBILITY_EXPIRED",
                false,
                false,
            ),
            (SdkScanStatus::LimitExceeded, "LIMIT_EXCEEDED", false, false),
            (SdkScanStatus::ImageArchived, "IMAGE_ARCHIVED", false, false),
        ];
        for (sdk, name, findings, running) in cases {
            let status = ScanStatus::from_sdk(Some(&sdk));
            assert_eq!(status.as_str(), name);
            assert_eq!(status.has_findings(), findings, "{name}");
            assert_eq!(status.is_running(), running, "{name}");
        }
        let not_scanned = ScanReport::from_pages([]);
        assert_eq!(not_scanned.status.as_str(), "NOT_SCANNED");
        assert!(!not_scanned.status.has_findings() && !not_scanned.status.is_running());
    }
}
